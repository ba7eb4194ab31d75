"""RMM circuits: modelled neurons, recorded-only (exogenous) voltages, synapses and gap junctions.

For modelled neuron i and every voltage j acting on it (SCIENCE.md §5; Burghi, Ivanova, Morozova,
Wang, Marder & O'Leary, PNAS 122(32) e2426916122, 2025)::

    x_ij[k+1] = A_ij x_ij[k] + B_ij v_j[k]            (j = i: intrinsic bank; j ≠ i: synapse j → i)
    v_i[k+1]  = v_i[k] + dt / C_i · (I_app,i + I_hold,i − Σ I_intrinsic − Σ_j I_syn,ji − Σ I_gap)

A synapse's filter bank is driven by the *presynaptic* voltage (modelled or exogenous); its current
uses the *postsynaptic* voltage: lumped ``MLP([v_post, x_pre])`` or conductance-based
``g · s(x_pre) · (v_post − E_syn)`` (a :class:`ConductanceCurrent` fed the presynaptic states).
Connectivity is sparse: only the synapses listed exist and cost anything. Gap junctions add
``g (v_i − v_j)``. Units: ms, mV, nA, nF, µS.

The functional core is :func:`circuit_step` (one sample, with generalised teacher forcing
``v̂ = γ v_meas + (1 − γ) v_model`` feeding the banks and currents); :func:`simulate_circuit` runs it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._filters import FilterBank, filter_step, rest_state
from ._model import DivergenceError, derivative
from ._params import FIXED, SCALE


class Synapse(eqx.Module):
    """A chemical synapse ``pre → post``: a filter bank of the presynaptic voltage and a current.

    Attributes:
        bank: :class:`FilterBank` driven by the presynaptic voltage (fixed).
        current: ``current(v_post, x_pre)`` (nA, outward positive): a :class:`ConductanceCurrent`
            (``g · s(x_pre) · (v_post − E)``, no voltage input to its gate) or a :class:`LumpedCurrent`.
        pre: index of the presynaptic channel in ``Circuit.channels``; post: index of the
            postsynaptic modelled neuron; name: ``"syn PRE->POST"``.
    """

    bank: FilterBank
    current: eqx.Module
    pre: int = eqx.field(static=True)
    post: int = eqx.field(static=True)
    name: str = eqx.field(static=True)

    def spec(self):
        return Synapse(jax.tree.map(lambda _: FIXED, self.bank), self.current.spec(), self.pre, self.post, self.name)


class Gap(eqx.Module):
    """An electrical synapse between modelled neurons ``a`` and ``b``: ``g (v_a − v_b)`` (g in µS)."""

    g: jnp.ndarray
    a: int = eqx.field(static=True)
    b: int = eqx.field(static=True)

    def spec(self):
        return Gap(SCALE, self.a, self.b)


class Circuit(eqx.Module):
    """A circuit RMM (an immutable Equinox module).

    Attributes:
        neurons: one :class:`RMM` per modelled neuron (its intrinsic bank, currents, C, I_hold).
        synapses: the :class:`Synapse` es that exist (sparse connectivity).
        gaps: :class:`Gap` junctions.
        names: the modelled neurons' names; exogenous: names of recorded-only voltages that act
            through synapses but are not modelled. ``channels = names + exogenous`` orders voltages.

    Build one from data with :func:`~neuromech.rmm.init_circuit`; run it with :func:`simulate_circuit`.
    """

    neurons: tuple
    synapses: tuple
    gaps: tuple
    names: tuple[str, ...] = eqx.field(static=True)
    exogenous: tuple[str, ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        n, c = len(self.names), len(self.names) + len(self.exogenous)
        if len(self.neurons) != n:
            raise ValueError(f"{len(self.neurons)} neuron models for {n} names {list(self.names)}")
        for s in self.synapses:
            if not 0 <= s.pre < c:
                raise ValueError(f"{s.name}: presynaptic index {s.pre} is not a channel 0..{c - 1}")
            if not 0 <= s.post < n:
                raise ValueError(f"{s.name}: a synapse must end on a modelled neuron (0..{n - 1}); exogenous "
                                 "voltages are recorded, not modelled, so nothing can act on them")

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.names) + tuple(self.exogenous)

    @property
    def dt(self) -> float:
        return self.neurons[0].dt

    @property
    def adjacency(self) -> np.ndarray:
        """(n_channels, n_neurons) boolean: True where a synapse pre → post exists."""
        a = np.zeros((len(self.channels), len(self.names)), bool)
        for s in self.synapses:
            a[s.pre, s.post] = True
        return a

    def synapse(self, name: str) -> Synapse:
        names = [s.name for s in self.synapses]
        if name not in names:
            raise ValueError(f"no synapse {name!r} in this circuit; it has {names}")
        return self.synapses[names.index(name)]

    def spec(self):
        return Circuit(tuple(m.spec() for m in self.neurons), tuple(s.spec() for s in self.synapses),
                       tuple(g.spec() for g in self.gaps), self.names, self.exogenous)

    def penalty(self, weight_decay: float = 0.0):
        from ._currents import weights_l2

        total = sum((m.penalty(weight_decay) for m in self.neurons), jnp.asarray(0.0))
        for s in self.synapses:
            total = total + s.current.penalty()
            if weight_decay:
                total = total + weight_decay * weights_l2(s.current)
        return total


def circuit_state(circuit: Circuit, v_all):
    """Rest start: every bank at rest at its input voltage. ``v_all`` (n_channels,) mV.

    Returns ``(v, xs, ss)``: (n,) voltages of the modelled neurons, intrinsic and synaptic states.
    """
    v_all = jnp.asarray(v_all, circuit.neurons[0].bank.A.dtype)
    xs = tuple(rest_state(m.bank, v_all[i]) for i, m in enumerate(circuit.neurons))
    ss = tuple(rest_state(s.bank, v_all[s.pre]) for s in circuit.synapses)
    return v_all[: len(circuit.names)], xs, ss


def synaptic_currents(circuit: Circuit, v_all, ss):
    """(n_syn,) synaptic currents (nA) from postsynaptic voltages and presynaptic filter states."""
    if not circuit.synapses:
        return jnp.zeros((0,), v_all.dtype)
    return jnp.stack([s.current(v_all[s.post], x) for s, x in zip(circuit.synapses, ss)])


def gap_currents(circuit: Circuit, v_all, v_partner=None):
    """(n_neurons,) total gap-junction current (nA, outward) of each modelled neuron; each side
    sees its partner's voltage in ``v_partner`` (default ``v_all``)."""
    vp = v_all if v_partner is None else v_partner
    out = jnp.zeros(len(circuit.names), v_all.dtype)
    for g in circuit.gaps:
        out = out.at[g.a].add(g.g * (v_all[g.a] - vp[g.b])).at[g.b].add(g.g * (v_all[g.b] - vp[g.a]))
    return out


def circuit_derivative(circuit: Circuit, v_all, xs, ss, i_app, v_partner=None):
    """(n_neurons,) dv/dt (mV/ms) for voltages ``v_all`` (n_channels,), states and ``i_app`` (n,) nA;
    gap junctions see the partners' voltages in ``v_partner`` (default ``v_all``)."""
    i_syn = synaptic_currents(circuit, v_all, ss)
    inputs = jnp.asarray(i_app, v_all.dtype) - gap_currents(circuit, v_all, v_partner)
    for k, s in enumerate(circuit.synapses):
        inputs = inputs.at[s.post].add(-i_syn[k])
    return jnp.stack([derivative(m, v_all[i], xs[i], inputs[i]) for i, m in enumerate(circuit.neurons)])


def circuit_step(circuit: Circuit, v, xs, ss, v_exo, i_app, v_meas=None, gamma=0.0, measured_partners=False):
    """One sample of the circuit: ``(v[k+1], xs[k+1], ss[k+1], i_syn[k])``.

    Args:
        v: (n_neurons,) model voltages (mV); xs, ss: intrinsic and synaptic filter states.
        v_exo: (n_exogenous,) recorded voltages of the exogenous channels (mV).
        i_app: (n_neurons,) injected currents (nA).
        v_meas, gamma: generalised teacher forcing: the banks and currents see
            ``v̂ = γ v_meas + (1 − γ) v`` (γ = 0: closed loop; γ = 1: teacher forcing), Burghi,
            Schapiro et al., Front. Comput. Neurosci. 19:1515194 (2025).
        measured_partners: the synapses' presynaptic banks and the gap junctions see the measured
            voltages ``v_meas`` of the other neurons, so that each neuron runs on its own against
            its recorded partners (needs ``v_meas``).
    """
    v_hat = v if v_meas is None else gamma * v_meas + (1 - gamma) * v
    v_exo = jnp.asarray(v_exo, v.dtype)
    v_all = jnp.concatenate([v_hat, v_exo])
    v_src = jnp.concatenate([v_meas, v_exo]) if measured_partners else v_all
    dv = circuit_derivative(circuit, v_all, xs, ss, i_app, v_src)
    xs_new = tuple(filter_step(m.bank, x, v_all[i]) for i, (m, x) in enumerate(zip(circuit.neurons, xs)))
    ss_new = tuple(filter_step(s.bank, x, v_src[s.pre]) for s, x in zip(circuit.synapses, ss))
    return v_hat + circuit.dt * dv, xs_new, ss_new, synaptic_currents(circuit, v_all, ss)


def run_circuit(circuit: Circuit, start, v_exo, i_app, v_meas=None, gamma=0.0, measured_partners=False):
    """Scan :func:`circuit_step` over T samples (jit-friendly, no checks).

    Args: start ``(v, xs, ss)``; v_exo (T, n_exo); i_app (T, n); v_meas (T, n) or None;
    gamma and measured_partners as :func:`circuit_step`.
    Returns: ``(vs (T, n), i_syn (T, n_syn), end state)`` with ``vs[0] = start v``.
    """
    def step(carry, inp):
        v, xs, ss = carry
        ve, ia, vm = inp
        v_new, xs, ss, isyn = circuit_step(circuit, v, xs, ss, ve, ia, vm, gamma, measured_partners)
        return (v_new, xs, ss), (v, isyn)

    if measured_partners and v_meas is None:
        raise ValueError("measured_partners needs the measured voltages v_meas of the modelled neurons")
    vm = jnp.zeros_like(i_app) if v_meas is None else v_meas
    end, (vs, isyn) = jax.lax.scan(step, start, (v_exo, i_app, vm))
    return vs, isyn, end


@eqx.filter_jit
def _closed_loop(circuit, start, v_exo, i_app):
    lo = jnp.asarray([m.v_bounds[0] for m in circuit.neurons])
    hi = jnp.asarray([m.v_bounds[1] for m in circuit.neurons])

    def step(carry, inp):
        v, xs, ss, k_bad, k = carry
        v_new, xs_new, ss_new, isyn = circuit_step(circuit, v, xs, ss, inp[0], inp[1])
        bad = jnp.any(~jnp.isfinite(v_new) | (v_new < lo) | (v_new > hi))
        k_bad = jnp.where((k_bad < 0) & bad, k + 1, k_bad)
        keep = k_bad >= 0  # freeze at the last good state: no NaN leaves the scan
        v_new = jnp.where(keep, v, v_new)
        xs_new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), xs, xs_new)
        ss_new = jax.tree.map(lambda a, b: jnp.where(keep, a, b), ss, ss_new)
        return (v_new, xs_new, ss_new, k_bad, k + 1), (v, isyn)

    (_, _, _, k_bad, _), (vs, isyn) = jax.lax.scan(step, (*start, jnp.asarray(-1), jnp.asarray(0)), (v_exo, i_app))
    return vs, isyn, k_bad


def _as_channels(x, rows: int, what: str, T: int | None = None) -> np.ndarray:
    x = np.asarray(x, float)
    if x.ndim == 1 and rows == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] != rows or (T is not None and x.shape[1] != T):
        want = f"({rows}, {T if T is not None else 'T'})"
        raise ValueError(f"{what} must have shape {want} (one row per channel, samples along time); got {x.shape}")
    return x


def simulate_circuit(circuit: Circuit, i_app, v0, *, v_exo=None, start=None):
    """Free-running (closed-loop) simulation of every modelled neuron of the circuit, jointly.

    Main arguments:
        circuit: a :class:`Circuit`.
        i_app: (n_neurons, T) injected currents (nA), rows in the order of ``circuit.names``.
        v0: (n_channels,) voltages (mV) at sample 0 (modelled, then exogenous); banks start at rest
            there. Ignored (may be None) when ``start`` is given: a state ``(v, xs, ss)`` from
            :func:`circuit_state` or a warm-up (:func:`~neuromech.rmm.circuit_warm_start`).

    Other arguments:
        v_exo: (n_exogenous, T) recorded voltages (mV) of the exogenous channels (required when the
            circuit has any).

    Returns:
        ``(v, i_syn)``: (n_neurons, T) voltages (mV) with ``v[:, 0] = v0``, and (n_syn, T) synaptic
        currents (nA) in the order of ``circuit.synapses``.

    Raises:
        ValueError: for arrays whose rows do not match the circuit's neurons/exogenous channels.
        DivergenceError: if a voltage leaves its neuron's ``v_bounds`` (first sample given).

    Example:
        >>> import jax.numpy as jnp, numpy as np
        >>> from neuromech.rmm import RMM, Leak, filter_bank, Circuit
        >>> cell = RMM(filter_bank([1.0], 0.1), (Leak(jnp.asarray(0.1), jnp.asarray(-60.0)),),
        ...            jnp.asarray(1.0), jnp.asarray(0.0), ("leak",))
        >>> c = Circuit((cell, cell), (), (), ("a", "b"))
        >>> v, _ = simulate_circuit(c, np.zeros((2, 50)), [-60.0, -60.0])
        >>> v.shape
        (2, 50)
    """
    n, n_exo = len(circuit.names), len(circuit.exogenous)
    i_app = _as_channels(i_app, n, "i_app (nA)")
    T = i_app.shape[1]
    if n_exo and v_exo is None:
        raise ValueError(f"the circuit reads exogenous voltages {list(circuit.exogenous)}; pass v_exo (n_exo, T)")
    v_exo = np.zeros((0, T)) if not n_exo else _as_channels(v_exo, n_exo, "v_exo (mV)", T)
    dtype = circuit.neurons[0].bank.A.dtype
    if start is None:
        v0 = np.atleast_1d(np.asarray(v0, float))
        if v0.shape != (n + n_exo,):
            raise ValueError(f"v0 must hold one voltage per channel {list(circuit.channels)}, got shape {v0.shape}")
        start = circuit_state(circuit, v0)
    vs, isyn, k_bad = _closed_loop(circuit, start, jnp.asarray(v_exo.T, dtype), jnp.asarray(i_app.T, dtype))
    vs, isyn, k = np.asarray(vs).T, np.asarray(isyn).T, int(k_bad)
    if k >= 0:
        raise DivergenceError(
            f"the free-running circuit diverged at sample {k} (t = {k * circuit.dt:g} ms): a voltage left the range "
            "its neuron was trained on; train longer, with multiple shooting or generalised teacher forcing",
            k, k * circuit.dt, vs[:, :k])
    return vs, isyn
