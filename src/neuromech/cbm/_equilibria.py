"""Equilibria of conductance-based models and their linear stability, for whole populations.

A model at rest sits at an equilibrium: every gate (and calcium) at its steady state for the
voltage, and the steady-state membrane current balancing the applied current, dV/dt = 0. Such
voltages are the zeros of the steady-state I–V curve. A model with a *stable* equilibrium can rest
silently when nothing drives it; one without any cannot rest, so it fires (or oscillates) on its own,
though an equilibrium whose instability grows over seconds can hold it near rest for a while.
Which models can rest is what the dynamic input conductances at threshold leave open (of 480 DA
models drawn at 30 DIC targets over the published ranges, 261 could rest), and what this module
checks without simulating.

Method: the steady-state dV/dt is evaluated on a voltage grid; each sign change is refined by
bisection; at each root the Jacobian of the full vector field (automatic differentiation) decides
linear stability through its Cayley transform C = (I − hJ/2)⁻¹(I + hJ/2), which maps the left
half-plane onto the unit disc: the equilibrium is stable exactly when the spectral radius of C is
below 1. The radius is read from repeated squaring (Gelfand's formula), all in batched matrix
products: no general eigen-solver, which is slow on many tiny matrices and missing on some JAX
backends, so the check runs on any device (18–22 ms per 1 000 STG models, 7–13 ms for DA, on a 2-core
CPU).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ._batching import bucket, pad_rows
from ._model import ConductanceBasedModel, as_conductances

MAX_EQUILIBRIA = 5  # an I–V curve of these models crosses zero at most 3 times; 5 leaves room
BISECTIONS = 40  # a 0.5 mV bracket halved 40 times: below 10⁻¹² mV, far below any physical scale
CAYLEY_STEP = 10.0  # ms: maps the slow modes that decide stability (|λ| ≲ 0.1 /ms) far from |μ| = 1
# 16 squarings raise C to the power 2¹⁶: the radius estimate then errs by about log(condition)/2¹⁶
# ≈ 4·10⁻⁴, i.e. 4·10⁻⁵ /ms in growth rate. Modes that grow or decay that slowly (e-folding in
# 25 s or more) do not decide whether a model fires within a recording.
SQUARINGS = 16


@dataclasses.dataclass(frozen=True)
class Equilibria:
    """Equilibria of N models, padded to a common count K.

    Attributes:
        v: (N, K) equilibrium voltages (mV) in increasing order, NaN past each model's count.
        growth: (N, K) growth rate (1/ms) of the least stable mode there: log of the spectral
            radius of the Jacobian's Cayley transform over its step h. Negative exactly when every
            eigenvalue has a negative real part; for the slow modes that decide stability it is
            close to their real part. +inf at saddles (where the steady-state I–V curve has a
            negative slope), NaN where padded.
        count: (N,) equilibria found in the searched voltage range.
    """

    v: np.ndarray
    growth: np.ndarray
    count: np.ndarray

    @property
    def stable(self) -> np.ndarray:
        """(N, K) whether each equilibrium is linearly stable (False where padded)."""
        return np.nan_to_num(self.growth, nan=np.inf) < 0.0

    @property
    def can_rest(self) -> np.ndarray:
        """(N,) whether each model has a stable equilibrium (can rest silently)."""
        return self.stable.any(axis=1)

    @property
    def v_rest(self) -> np.ndarray:
        """(N,) the lowest stable equilibrium (mV), NaN where the model cannot rest."""
        return np.where(self.can_rest, np.where(self.stable, self.v, np.inf).min(axis=1), np.nan)


def _dvdt(model, g, v, i_app):
    """dV/dt (mV/ms) with every gate and calcium at steady state for the voltage v."""
    return model.derivatives(model.steady_state(g, v), g, i_app)[0]


_KERNELS: dict = {}  # id(model) → (model, kernels); the model is kept so that its id is not reused


def _kernels(model: ConductanceBasedModel):
    """Compiled (curve on a grid, bisection, growth rate), cached per model object."""
    key = id(model)
    if key not in _KERNELS or _KERNELS[key][0] is not model:
        if len(_KERNELS) >= 16:
            _KERNELS.pop(next(iter(_KERNELS)))

        @jax.jit
        def curve(g, grid, i_app):  # (N, n), (M,) → (N, M)
            return jax.vmap(lambda gi: jax.vmap(lambda v: _dvdt(model, gi, v, i_app))(grid))(g)

        @jax.jit
        def refine(g, lo, hi, i_app):  # (N, n), (N, K) brackets → (N, K) voltages
            def one(gi, a, b):
                fa = _dvdt(model, gi, a, i_app)

                def halve(_, state):
                    a, b, fa = state
                    m = 0.5 * (a + b)
                    fm = _dvdt(model, gi, m, i_app)
                    same = jnp.sign(fm) == jnp.sign(fa)
                    return jnp.where(same, m, a), jnp.where(same, b, m), jnp.where(same, fm, fa)

                a, b, _ = jax.lax.fori_loop(0, BISECTIONS, halve, (a, b, fa))
                return 0.5 * (a + b)

            return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(g, lo, hi)

        @jax.jit
        def growth(g, v, i_app):  # (M, n), (M,) → (M,)
            def one(gi, vi):
                return cayley_growth(jax.jacfwd(lambda y: model.derivatives(y, gi, i_app))(model.steady_state(gi, vi)))

            return jax.vmap(one)(g, v)

        _KERNELS[key] = (model, (curve, refine, growth))
    return _KERNELS[key][1]


def cayley_growth(jac, h: float = CAYLEY_STEP, squarings: int = SQUARINGS):
    """log ρ(C) / h for C = (I − hJ/2)⁻¹(I + hJ/2): < 0 exactly when J (S, S) is Hurwitz."""
    eye = jnp.eye(jac.shape[-1], dtype=jac.dtype)
    c = jnp.linalg.solve(eye - 0.5 * h * jac, eye + 0.5 * h * jac)

    def square(carry, _):  # carry: C^(2^j) = c · exp(log_scale), with max |c| = 1
        c, log_scale = carry
        c = c @ c
        size = jnp.max(jnp.abs(c))
        return (c / size, 2.0 * log_scale + jnp.log(size)), None

    size = jnp.max(jnp.abs(c))
    (_, log_scale), _ = jax.lax.scan(square, (c / size, jnp.log(size)), None, length=squarings)
    return log_scale / (2.0**squarings * h)


def equilibria(
    model: ConductanceBasedModel,
    conductances,
    *,
    i_app: float = 0.0,
    v_range: tuple[float, float] = (-100.0, 30.0),
    step: float = 0.5,
) -> Equilibria:
    """Equilibria of one model or a population and whether each is stable.

    Main arguments:
        model: a :class:`ConductanceBasedModel`.
        conductances: (n_channels,) or (N, n_channels) maximal conductances (mS/cm²), or a
            mapping or table by name, as for :func:`simulate`.

    Other arguments:
        i_app: constant applied current (µA/cm²).
        v_range, step: voltages searched (mV) and the grid step (mV). Two equilibria closer than
            ``step`` (a saddle-node about to vanish) can be missed; a narrower step finds them.

    Returns:
        An :class:`Equilibria` (N = 1 for one model).

    Example:
        >>> from neuromech.cbm import hh
        >>> eq = equilibria(hh(), [120.0, 36.0, 0.3])
        >>> round(float(eq.v[0, 0]), 1), bool(eq.can_rest[0])
        (-65.0, True)
        >>> bool(equilibria(hh(), [120.0, 36.0, 0.3], i_app=10.0).can_rest[0])  # fires repetitively
        False
    """
    g = np.atleast_2d(as_conductances(model, conductances))
    lo_v, hi_v = float(v_range[0]), float(v_range[1])
    if not (np.isfinite(lo_v) and np.isfinite(hi_v) and hi_v > lo_v and step > 0):
        raise ValueError(f"v_range must be (low, high) mV with low < high and step > 0; got {v_range!r}, {step!r}")
    curve, refine, growth = _kernels(model)
    n_models = len(g)
    size = bucket(n_models)  # few compiled shapes serve every population size
    with jax.enable_x64(True):
        grid = np.arange(lo_v, hi_v + 0.5 * step, step)
        g_in = jnp.asarray(pad_rows(g, size))
        f = np.asarray(curve(g_in, jnp.asarray(grid), float(i_app)))[:n_models]
        crossing = np.sign(f[:, :-1]) * np.sign(f[:, 1:]) <= 0
        crossing &= ~(f[:, :-1] == 0)  # an exact zero on the grid is counted once, from its right
        count = np.minimum(crossing.sum(axis=1), MAX_EQUILIBRIA)
        k = max(1, int(count.max()))
        index = np.argsort(~crossing, axis=1, kind="stable")[:, :k]  # first k crossings, in order
        present = np.take_along_axis(crossing, index, axis=1)
        v = np.asarray(refine(g_in, jnp.asarray(pad_rows(grid[index], size)),
                              jnp.asarray(pad_rows(grid[index + 1], size)), float(i_app)))[:n_models]
        v = np.where(present, v, np.nan)
        # Where dV/dt falls through zero, the steady-state conductance is positive and the equilibrium
        # may be stable. Where it rises, det(J) has the sign that no stable matrix of this size has
        # (det J = f'(V) · det of the clamped-voltage block, whose eigenvalues are all negative):
        # a saddle, unstable without further work.
        falling = present & (np.take_along_axis(f, index, axis=1) > 0)
        rows, cols = np.nonzero(falling)
        rate = np.where(present, np.inf, np.nan)
        if rows.size:
            m = bucket(rows.size)
            out = growth(jnp.asarray(pad_rows(g[rows], m)), jnp.asarray(pad_rows(v[rows, cols], m)), float(i_app))
            rate[rows, cols] = np.asarray(out)[: rows.size]
    return Equilibria(v=v, growth=rate, count=count)
