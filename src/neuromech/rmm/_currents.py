"""Membrane currents of an RMM (nA, outward positive): leak, lumped MLP and conductance-based.

Each current is a small immutable module called as ``current(v, x)`` with the membrane voltage
``v`` (mV) and the filter states ``x`` (n,) of the neuron's bank; its trainable arrays and their
constraints are declared by ``spec()`` (see ``_params``). Inputs to the networks are scaled to
[−1, 1] from the training data's range (SCIENCE.md §5).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._params import FIXED, FREE, POSITIVE, SCALE, default_spec


class MLP(eqx.Module):
    """A multilayer perceptron: tanh hidden layers, linear output. ``weights[k]`` is (out, in)."""

    weights: tuple
    biases: tuple

    def __call__(self, z):
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            z = jnp.tanh(W @ z + b)
        return self.weights[-1] @ z + self.biases[-1]


def init_mlp(key, sizes, *, positive: bool = False) -> MLP:
    """An MLP with layer sizes ``sizes`` (input first); ``positive`` draws weights > 0 (monotone nets)."""
    keys = jax.random.split(key, len(sizes) - 1)
    weights, biases = [], []
    for k, (m, n) in zip(keys, zip(sizes[:-1], sizes[1:])):
        W = jax.random.normal(k, (n, m)) / np.sqrt(m)
        weights.append(jnp.abs(W) if positive else W)
        biases.append(jnp.zeros(n))
    return MLP(tuple(weights), tuple(biases))


class Scaler(eqx.Module):
    """Affine map of raw inputs onto roughly [−1, 1]: ``(z − center) / halfwidth`` (fixed)."""

    center: jnp.ndarray
    halfwidth: jnp.ndarray

    def __call__(self, z):
        return (z - self.center) / self.halfwidth


def fit_scaler(samples: np.ndarray) -> Scaler:
    """A :class:`Scaler` from (N, d) samples: their range maps to [−1, 1]."""
    lo, hi = np.min(samples, axis=0), np.max(samples, axis=0)
    half = np.maximum((hi - lo) / 2, 1e-6)
    return Scaler(jnp.asarray((hi + lo) / 2), jnp.asarray(half))


class Leak(eqx.Module):
    """Ohmic leak ``g (v − E)``: ``g`` (µS) ≥ 0, ``E`` (mV)."""

    g: jnp.ndarray
    E: jnp.ndarray

    def __call__(self, v, x):
        return self.g * (v - self.E)

    def spec(self):
        return Leak(SCALE, FREE)

    def penalty(self):
        return 0.0


class LumpedCurrent(eqx.Module):
    """A lumped current ``out_scale · MLP([v, x[inputs]])`` (nA) of Burghi et al. (PNAS 2025)."""

    net: MLP
    scaler: Scaler
    out_scale: jnp.ndarray
    inputs: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, v, x):
        z = self.scaler(jnp.concatenate([jnp.atleast_1d(v), x[jnp.asarray(self.inputs)]]))
        return self.out_scale * self.net(z)[0]

    def spec(self):
        spec = default_spec(self)
        return eqx.tree_at(lambda c: (c.scaler, c.out_scale), spec, (Scaler(FIXED, FIXED), FIXED))

    def penalty(self):
        return 0.0


class MonotoneGate(eqx.Module):
    """Gating variables ``sigmoid(± net(x))`` (``units`` outputs) with all weights of ``net`` ≥ 0.

    With increasing activation functions and non-negative weights the net is increasing in every
    input; ``sign = +1`` gives activations that increase with (filtered) voltage, ``−1``
    inactivations that decrease. The weights' sign is kept by the spec (softplus), not by clipping.

    ``gain`` (units,) > 0, optional, multiplies the net's output and trains in log space: a gate
    that must switch within a millivolt (a spike upstroke that takes one sample at 10 kHz) needs a
    logit slope hundreds of times its initial one, which softplus-parametrised weights reach only
    by slow linear growth, a log-gain by a few hundred steps of a factor each.

    ``rest_logit`` (static), optional, pins the gate at ``sigmoid(rest_logit)`` where every input
    is at its lowest in the training data (−1 after the scaler): the logit is
    ``± gain · (net(z) − net(−1)) + rest_logit``. A synapse that is closed while its presynaptic
    cell rests (:class:`~neuromech.rmm.SynapseSettings` ``open_at_rest``) then cannot hold a tonic
    conductance that trades against the postsynaptic leak.
    """

    net: MLP
    scaler: Scaler
    inputs: tuple[int, ...] = eqx.field(static=True)
    sign: float = eqx.field(static=True)
    with_voltage: bool = eqx.field(static=True, default=False)
    gain: jnp.ndarray | None = None
    rest_logit: float | None = eqx.field(static=True, default=None)

    def __call__(self, x, v=None):
        z = x[jnp.asarray(self.inputs)]
        if self.with_voltage:  # the present voltage too: gates faster than one sample
            z = jnp.concatenate([jnp.atleast_1d(v), z])
        h = self.net(self.scaler(z))
        if self.rest_logit is not None:  # zero where every input is at the data's minimum (−1 scaled)
            h = h - self.net(-jnp.ones_like(z))
        if self.gain is not None:
            h = self.gain * h
        return jax.nn.sigmoid(self.sign * h + (0.0 if self.rest_logit is None else self.rest_logit))

    def spec(self):
        net = MLP(tuple(POSITIVE for _ in self.net.weights), tuple(FREE for _ in self.net.biases))
        return MonotoneGate(net, Scaler(FIXED, FIXED), self.inputs, self.sign, self.with_voltage,
                            None if self.gain is None else SCALE, self.rest_logit)


class KineticGate(eqx.Module):
    """A synaptic gate that is a convex combination of release-driven filter states:
    ``s = Σ_k softmax(w)_k x_k`` (0 ≤ s ≤ 1).

    Fed by a bank with a release (:func:`~neuromech.rmm.filter_bank`), state k is a first-order
    kinetic variable ``τ_k dx_k/dt = σ((v_pre − θ_k)/δ) − x_k``, and ``s`` a mixture of such
    kinetics: the gate of a graded synapse (Abbott & Marder 1998) with its release curve and decay
    learnt as non-negative mixtures. It has no bias: the gate is closed only after the
    presynaptic cell has been silent for the slowest time constant, and its lowest value in a
    rhythm follows from the kinetics, not from a free offset that the postsynaptic leak could
    trade against.
    """

    logits: jnp.ndarray
    inputs: tuple[int, ...] = eqx.field(static=True)

    def weights(self):
        return jax.nn.softmax(self.logits)

    def __call__(self, x, v=None):
        return jnp.atleast_1d(self.weights() @ x[jnp.asarray(self.inputs)])

    def spec(self):
        return KineticGate(FREE, self.inputs)


class ConductanceCurrent(eqx.Module):
    """Data-driven conductance-based current ``Σ_u g_u a_u(x) b_u(x) (v − E_u)`` (nA).

    ``a`` (activation) and ``b`` (inactivation, optional) are :class:`MonotoneGate` networks on
    selected filter states (a synapse's activation may be a :class:`KineticGate`); ``g`` (µS) ≥ 0 per unit; ``E`` (mV) per unit, learnable with a Gaussian
    prior ``N(E_prior, E_prior_std²)`` or fixed (``E_prior_std = 0``). Burghi et al. (PNAS 2025).
    """

    g: jnp.ndarray
    E: jnp.ndarray
    activation: MonotoneGate | None
    inactivation: MonotoneGate | None
    E_prior: jnp.ndarray
    E_prior_std: float = eqx.field(static=True)

    def conductance(self, v, x):
        """(units,) conductances ``g a b`` (µS)."""
        g = self.g if self.activation is None else self.g * self.activation(x, v)
        return g if self.inactivation is None else g * self.inactivation(x, v)

    def __call__(self, v, x):
        return jnp.sum(self.conductance(v, x) * (v - self.E))

    def spec(self):
        return ConductanceCurrent(
            SCALE, FIXED if self.E_prior_std == 0 else FREE,
            None if self.activation is None else self.activation.spec(),
            None if self.inactivation is None else self.inactivation.spec(), FIXED, self.E_prior_std,
        )

    def penalty(self):
        if self.E_prior_std == 0:
            return 0.0
        return jnp.sum(((self.E - self.E_prior) / self.E_prior_std) ** 2)


def weights_l2(current) -> jnp.ndarray:
    """Sum of squared network weights of a current (the L2 regulariser; biases excluded)."""
    nets = [n for n in (getattr(current, "net", None), getattr(getattr(current, "activation", None), "net", None),
                        getattr(getattr(current, "inactivation", None), "net", None)) if n is not None]
    return sum((jnp.sum(W**2) for n in nets for W in n.weights), jnp.asarray(0.0))
