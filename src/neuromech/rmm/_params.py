"""Which parameters of a model train, and how they are kept in range: a tree beside the model.

The model holds the *constrained* values (a conductance ≥ 0, a capacitance > 0); a spec tree of the
same structure holds, for each array, a transform: :data:`FREE` (trained as is), :data:`POSITIVE`
(trained through softplus), :data:`SCALE` (trained in log space) or :data:`FIXED` (not trained). Fitting works on the unconstrained list
``unconstrain(model, spec)`` and maps back with ``constrain`` (the dynamax pattern, STYLE.md §5).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Transform:
    """How one array trains: ``name`` is ``"free"``, ``"positive"`` or ``"fixed"``."""

    name: str

    def forward(self, u):
        if self.name == "positive":
            return jax.nn.softplus(u)
        if self.name == "scale":
            return jnp.exp(u)
        return u

    def inverse(self, x):
        if self.name == "positive":
            x = jnp.maximum(x, 1e-12)
            return x + jnp.log(-jnp.expm1(-x))  # softplus⁻¹, stable for large x
        if self.name == "scale":
            return jnp.log(jnp.maximum(x, 1e-30))
        return x


# POSITIVE (softplus) keeps network weights ≥ 0 with an almost linear response away from 0;
# SCALE (exp) trains conductances and capacitances in log space, so that a step of the optimiser
# changes them by a factor: they span orders of magnitude across cells (0.01 to 10⁴ µS), which a
# linear parametrisation would cross only in thousands of steps.
FREE, POSITIVE, SCALE, FIXED = Transform("free"), Transform("positive"), Transform("scale"), Transform("fixed")


def _is_transform(x) -> bool:
    return isinstance(x, Transform)


def default_spec(model):
    """A spec marking every inexact array of ``model`` as :data:`FREE` (models refine it)."""
    return jax.tree.map(lambda x: FREE if eqx.is_inexact_array(x) else FIXED, model)


def _pairs(model, spec):
    leaves, treedef = jax.tree.flatten(spec, is_leaf=_is_transform)
    return leaves, treedef.flatten_up_to(model), treedef


def unconstrain(model, spec) -> list:
    """The trainable arrays of ``model``, unconstrained, as a list (what the optimiser updates)."""
    transforms, values, _ = _pairs(model, spec)
    return [t.inverse(x) for t, x in zip(transforms, values) if t.name != "fixed"]


def constrain(params: list, model, spec):
    """``model`` with its trainable arrays replaced by ``params`` mapped back through the transforms."""
    transforms, values, treedef = _pairs(model, spec)
    it = iter(params)
    out = [x if t.name == "fixed" else t.forward(next(it)) for t, x in zip(transforms, values)]
    return jax.tree.unflatten(treedef, out)
