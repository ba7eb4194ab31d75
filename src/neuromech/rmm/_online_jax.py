"""The online step in JAX (the reference realisation): the streaming state, recursive least
squares, and the step traced, lowered and compiled once per :func:`~neuromech.rmm.online` call.

See :mod:`neuromech.rmm._online` for the equations and modes; :mod:`._online_numpy` evaluates the
same step with NumPy, faster per sample on a CPU.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._circuit import Circuit, gap_currents
from ._currents import ConductanceCurrent, Leak, LumpedCurrent
from ._filters import filter_step


def rls_update(theta, P, psi, y, forgetting: float = 1.0):
    """One recursive-least-squares step with exponential forgetting λ = ``forgetting`` ∈ (0, 1].

    ``k = P ψ / (λ + ψᵀ P ψ)``, ``θ ← θ + k (y − ψᵀ θ)``, ``P ← (P − k ψᵀ P) / λ`` (symmetrised).
    Started from ``θ₀`` and ``P₀ = I/δ`` with λ = 1, after N samples θ is exactly the ridge
    solution ``(ΨᵀΨ + δI)⁻¹ (Ψᵀy + δθ₀)``: least squares as δ → 0.

    Example:
        >>> import jax.numpy as jnp
        >>> th, P = jnp.zeros(1), jnp.eye(1) * 1e6
        >>> for x in (1.0, 2.0, 3.0):
        ...     th, P = rls_update(th, P, jnp.array([x]), 2.0 * x)
        >>> round(float(th[0]), 4)
        2.0
    """
    Pp = P @ psi
    k = Pp / (forgetting + psi @ Pp)
    theta = theta + k * (y - psi @ theta)
    P = (P - jnp.outer(k, Pp)) / forgetting
    return theta, 0.5 * (P + P.T)


def _linear(current):
    """(accessor of the linear parameter, its values as 1-D)."""
    if isinstance(current, (Leak, ConductanceCurrent)):
        return (lambda c: c.g), jnp.atleast_1d(current.g)
    if isinstance(current, LumpedCurrent):
        return (lambda c: c.out_scale), jnp.atleast_1d(current.out_scale)
    raise TypeError(f"online read-out needs Leak, ConductanceCurrent or LumpedCurrent, got {type(current).__name__}")


def _unit(current, v, x):
    """(units,) currents per unit of the linear parameter (nA per µS, or per unit scale)."""
    if isinstance(current, ConductanceCurrent):
        return eqx.tree_at(lambda c: c.g, current, jnp.ones_like(current.g)).conductance(v, x) * (v - current.E)
    where, value = _linear(current)
    one = jnp.ones_like(where(current))
    return jnp.atleast_1d(eqx.tree_at(where, current, one)(v, x))


class OnlineState(NamedTuple):
    """The streaming state (arrays only, so the jit call stays cheap).

    v: (n,) model voltage (closed loop) / last prediction; xs, ss: filter states; theta, P: per
    neuron read-out parameters and RLS covariance; psi_prev, base_prev, v_prev: last sample's
    regressor, applied-minus-gap current and voltage (for the RLS target); v_last: (C,) last valid
    measured voltages; prev_valid (1.0/0.0); flagged: 1.0 if this sample had NaN input;
    n_flagged: count so far; k: samples seen (floats: the state ravels into one array).
    """

    v: jnp.ndarray
    xs: tuple
    ss: tuple
    theta: tuple
    P: tuple
    psi_prev: tuple
    base_prev: jnp.ndarray
    v_prev: jnp.ndarray
    v_last: jnp.ndarray
    prev_valid: jnp.ndarray
    flagged: jnp.ndarray
    n_flagged: jnp.ndarray
    k: jnp.ndarray


def _channels(v0, C: int) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(v0, np.float64), (C,))
    except ValueError as err:
        raise ValueError(f"v0 must be one voltage (mV) per channel, shape ({C},) or a scalar; got shape "
                         f"{np.shape(v0)}") from err


def regressors(circuit: Circuit, incoming, v_all, xs, ss) -> tuple:
    """Per neuron i, ψ_i = [1, −unit currents of its currents, −those of its incoming synapses]:
    the regressor of its θ (nA per unit parameter) at voltages ``v_all`` (mV) and states."""
    dtype = circuit.neurons[0].bank.A.dtype
    out = []
    for i, m in enumerate(circuit.neurons):
        parts = [jnp.ones(1, dtype)] + [-_unit(c, v_all[i], xs[i]) for c in m.currents]
        parts += [-_unit(circuit.synapses[k].current, v_all[i], ss[k]) for k in incoming[i]]
        out.append(jnp.concatenate(parts))
    return tuple(out)


def jax_step(circuit: Circuit, layout, init_tree, mode: str, rls: bool, forgetting: float):
    """(init, step) of the JAX backend: the step is traced, lowered and compiled once, here.

    One packed input ``[v_measured, i_applied]`` and two outputs (the new state, which stays a
    device array for the next call, and ``[prediction, currents]``, read back as one NumPy view)
    keep the per-call overhead of the executable at its minimum.
    """
    from jax.flatten_util import ravel_pytree

    n, C = layout.n, layout.C
    dtype = circuit.neurons[0].bank.A.dtype
    unravel = ravel_pytree(init_tree(jnp.zeros(C, dtype)))[1]
    groups, masks, sel, incoming = layout.groups, layout.masks, layout.sel, layout.incoming
    caps = [m.capacitance for m in circuit.neurons]

    def step(state: OnlineState, vm, ia):
        # Only the voltages this mode reads count: closed loop reads the exogenous channels alone.
        used = vm if mode == "observer" else vm[n:]
        valid = jnp.all(jnp.isfinite(used)) & jnp.all(jnp.isfinite(ia))
        v_last = jnp.where(valid & jnp.isfinite(vm), vm, state.v_last)
        ia = jnp.where(valid, ia, 0.0)
        own = state.v if mode == "closed-loop" else jnp.where(valid, vm[:n], state.v)
        v_all = jnp.concatenate([own, v_last[n:]])
        theta, P = state.theta, state.P
        if rls:
            update = valid & (state.prev_valid > 0)
            new_t, new_P = [], []
            for i in range(n):
                y = caps[i] * (vm[i] - state.v_prev[i]) / circuit.dt - state.base_prev[i]
                psi, fixed = state.psi_prev[i], jnp.asarray(~masks[i])
                y = y - jnp.sum(jnp.where(fixed, theta[i] * psi, 0.0))  # the parameters held fixed
                t2, P2 = rls_update(theta[i][sel[i]], P[i], psi[sel[i]], y, forgetting)
                new_t.append(jnp.where(update, theta[i].at[sel[i]].set(t2), theta[i]))
                new_P.append(jnp.where(update, P2, P[i]))
            theta, P = tuple(new_t), tuple(new_P)
        gaps = gap_currents(circuit, v_all)
        psi = regressors(circuit, incoming, v_all, state.xs, state.ss)
        base = ia - gaps
        dv = jnp.stack([(base[i] + theta[i] @ psi[i]) / caps[i] for i in range(n)])
        pred = own + circuit.dt * dv
        per = []
        for i in range(n):
            contrib = -theta[i] * psi[i]
            per += [jnp.sum(jnp.where(groups[i] == j, contrib, 0.0)) for j in range(len(circuit.neurons[i].currents))]
        syn = [None] * len(circuit.synapses)
        for i in range(n):
            for q, k in enumerate(incoming[i]):
                syn[k] = jnp.sum(jnp.where(groups[i] == len(circuit.neurons[i].currents) + q, -theta[i] * psi[i], 0.0))
        currents = jnp.stack(per + syn) if per or syn else jnp.zeros(0, dtype)
        xs = tuple(filter_step(m.bank, x, v_all[i]) for i, (m, x) in enumerate(zip(circuit.neurons, state.xs)))
        ss = tuple(filter_step(s.bank, x, v_all[s.pre]) for s, x in zip(circuit.synapses, state.ss))
        bad = (~valid).astype(dtype)
        new = OnlineState(pred, xs, ss, theta, P, psi, base, own, v_last, valid.astype(dtype), bad,
                          state.n_flagged + bad, state.k + 1)
        return new, pred, currents

    def packed(flat, inputs):
        new, pred, currents = step(unravel(flat), inputs[:C], inputs[C:])
        return ravel_pytree(new)[0], jnp.concatenate([pred, currents])

    def init(v0):
        return ravel_pytree(init_tree(_channels(v0, C)))[0]

    compiled = jax.jit(packed).lower(init(0.0), jnp.zeros(C + n, dtype)).compile()
    np_dtype = np.dtype(dtype)

    def run(state, v_measured, i_applied):
        inputs = np.empty(C + n, np_dtype)
        try:
            inputs[:C] = v_measured
            inputs[C:] = i_applied
        except ValueError as err:
            raise ValueError(f"step takes v_measured ({C},) mV and i_applied ({n},) nA (or scalars); got shapes "
                             f"{np.shape(v_measured)} and {np.shape(i_applied)}") from err
        new, out = compiled(state, inputs)
        out = np.asarray(out)  # the loop needs the values now: this synchronises
        return new, out[:n], out[n:]

    return init, run
