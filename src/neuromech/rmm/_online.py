"""Online use of a trained RMM or circuit: a causal step per sample, recursive least squares on the
linear read-out, and a replay tool.

A trained RMM is causal and small, so it can run beside an experiment (SCIENCE.md §5; Burghi et
al., PNAS 122(32) e2426916122, 2025; Burghi, Schapiro et al., Front. Comput. Neurosci. 19:1515194,
2025). Every current is linear in one parameter (a conductance ``g``, a lumped current's output
scale, the holding current), so each neuron's membrane equation reads::

    C (v[k+1] − v[k]) / dt − I_app[k] + I_gap[k] = θ · ψ(v[k], x[k])          (ψ: unit currents)

and θ can be adapted by recursive least squares (RLS) with forgetting while data stream in; the
nonlinear parts (gates, filter banks) stay as trained.

Modes:
- ``"observer"``: banks and currents are driven by the *measured* voltages (teacher forcing); the
  step returns the one-step-ahead prediction and reads out every current; RLS may run.
- ``"closed-loop"``: the modelled neurons run on their own voltage, driven by the applied current
  and the measured exogenous voltages: a model neuron or a virtual synapse for dynamic clamp (the
  returned synaptic currents are what to inject).

A sample with a NaN (a dropped or missing sample) is never absorbed: the step holds the last
valid exogenous voltage, lets the model fill in for the measured voltage, skips the RLS update,
and flags the sample in the state (``flagged``, ``n_flagged``).

Backends (one step, three realisations that agree to rounding): ``"numba"`` (the default) runs the
step as one compiled machine-code call on float64 operands packed from the model's arrays
(:mod:`._online_numba`); ``"numpy"`` evaluates the same equations with a few dozen NumPy calls
(:mod:`._online_numpy`; no compiler, but each call's interpreter overhead adds up); ``"jax"`` runs
it as one compiled XLA call (:mod:`._online_jax`, the reference). For one 36-state neuron on this
project's 2-core x86 CPU under a CPython 3.11 build that runs pure Python slowly, the median sample
took ≈ 8 µs with Numba (≈ 9 µs with RLS), ≈ 31 µs (54 µs) with NumPy and ≈ 190 µs with JAX, whose
call hands the work to XLA's threads and back (``benchmarks/bench_online.py``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ._circuit import Circuit, circuit_state
from ._filters import dc_gain, filter_step
from ._model import RMM
from ._online_jax import OnlineState as OnlineState
from ._online_jax import _channels, _linear, jax_step, regressors
from ._online_jax import rls_update as rls_update
from ._online_numpy import numpy_step, pack

MODES = ("observer", "closed-loop")


def as_circuit(model) -> Circuit:
    """A single-neuron :class:`RMM` as a one-neuron circuit (a circuit is returned unchanged)."""
    if isinstance(model, Circuit):
        return model
    if isinstance(model, RMM):
        return Circuit((model,), (), (), ("neuron",))
    raise ValueError(f"expected an RMM or a Circuit, got {type(model).__name__}")


BACKENDS = ("numba", "numpy", "jax")


@dataclasses.dataclass(frozen=True)
class Streamer:
    """A streaming interface (see :func:`online`).

    The state travels as one flat array (NumPy float64 for ``"numba"`` and ``"numpy"``, a JAX array in the
    model's dtype for ``"jax"``: a compiled call's cost grows with the number of arrays it is
    passed, and a real-time loop pays it every sample); ``unpack(state)`` gives the named
    :class:`OnlineState` of NumPy arrays (``flagged``, ``n_flagged``, ``theta``, ...). A step never
    writes to the state it is given. The Numba and NumPy steps keep buffers of their own: run one
    streamer per thread (call :func:`online` again for a second loop).

    Attributes:
        init: ``init(v0) -> state``, ``v0`` (n_channels,) mV (a scalar for one neuron).
        step: ``step(state, v_measured, i_applied) -> (state, prediction, currents)``, one sample:
            ``v_measured`` (n_channels,) mV, ``i_applied`` (n_neurons,) nA (scalars broadcast);
            ``prediction`` (n,) the voltage at the next sample (mV); ``currents`` the read-out
            currents (nA) named by ``current_names``; both NumPy arrays.
        flag_index: position of ``flagged`` in the flat state (``np.asarray(state)[flag_index] > 0``:
            the last sample had a NaN and was not absorbed).
        circuit, mode, forgetting; current_names; parameter_names: per neuron, the θ entries;
        backend: ``"numba"``, ``"numpy"`` or ``"jax"``.
    """

    init: Callable
    step: Callable
    unpack: Callable
    flag_index: int
    circuit: Circuit
    mode: str
    forgetting: float | None
    current_names: tuple
    parameter_names: tuple
    backend: str = "numba"


@dataclasses.dataclass(frozen=True)
class _Layout:
    """What both backends share: sizes, θ bookkeeping and where each field sits in the flat state."""

    n: int
    C: int
    n_states: int
    size: int
    offsets: dict
    incoming: list
    theta0: list
    groups: list
    masks: list
    sel: list
    current_names: tuple
    parameter_names: tuple


def online(model, *, mode: str = "observer", rls: bool = False, forgetting: float = 0.9999,
           delta: float = 1e-2, adapt: tuple[str, ...] | None = None, backend: str = "numba") -> Streamer:
    """A causal streaming interface for an :class:`RMM` or a :class:`Circuit`.

    Main arguments:
        model: a trained RMM or circuit (an RMM is a one-neuron circuit named ``"neuron"``).
        mode: ``"observer"`` (teacher-forced read-out from measured voltages) or ``"closed-loop"``
            (the model runs on its own voltage: model neuron / virtual synapse).

    Other arguments:
        rls: adapt each neuron's linear read-out (holding current, conductances, synaptic
            conductances, lumped scales) by recursive least squares; observer mode only.
        forgetting: RLS forgetting factor λ per sample (memory ≈ dt / (1 − λ): 0.9999 at 10 kHz
            remembers ≈ 1 s).
        adapt: names of the read-out parameters RLS adapts (``"holding"``, current names such as
            ``"K"``, synapse names ``"syn A->B"``); default all. Adapting only those expected to
            change keeps the others from soaking up noise (measurement noise enters both sides
            of the regression and biases every free parameter a little).
        delta: RLS prior weight: P₀ = I / (δ · C²) so that the start values count like δ samples'
            worth of data (scaled to the neuron's C).
        backend: ``"numba"`` (default: one machine-code kernel on float64 operands built from
            the model's arrays, compiled once, in about 8 s, then read from Numba's on-disk cache;
            ≈ 8 µs per sample for one neuron, for real-time loops), ``"numpy"`` (the same
            equations in float64 NumPy calls, no compiler; ≈ 30 µs) or ``"jax"`` (one
            ahead-of-time compiled XLA call per sample in the model's dtype; ≈ 80–190 µs per
            sample on a CPU, nearly all of it the call itself).
            All give the same numbers to rounding (to float32 rounding for a float32 model, which
            Numba and NumPy run in float64).

    Returns:
        A :class:`Streamer`; with ``backend="jax"`` its step is compiled here, before the first
        sample.

    Raises:
        ValueError: for an unknown mode or backend, RLS in closed-loop mode (there is no measured
            voltage of the modelled neurons to regress on), a forgetting factor outside (0, 1], or
            an ``adapt`` name the model does not have.
        TypeError: for a current other than Leak, ConductanceCurrent or LumpedCurrent.
        NotImplementedError: ``backend="numba"`` or ``"numpy"`` for a model whose currents the
            float64 realisation does not reproduce (checked on one step at four voltages);
            ``backend="jax"`` runs it.

    Example:
        A passive cell (leak 0.1 µS to −60 mV, C = 1 nF, dt = 0.1 ms) measured at −59 mV:

        >>> import jax.numpy as jnp
        >>> from neuromech.rmm import RMM, Leak, filter_bank
        >>> cell = RMM(filter_bank([1.0], 0.1), (Leak(jnp.asarray(0.1), jnp.asarray(-60.0)),),
        ...            jnp.asarray(1.0), jnp.asarray(0.0), ("leak",))
        >>> s = online(cell)
        >>> state = s.init(-60.0)
        >>> state, v_next, currents = s.step(state, -59.0, 0.0)   # v_measured (mV), i_applied (nA)
        >>> round(float(v_next[0]), 6), round(float(currents[0]), 6)   # −59 + 0.1·(−0.1 nA / 1 nF)
        (-59.01, 0.1)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if rls and mode != "observer":
        raise ValueError("RLS adapts the read-out against measured voltages: use mode='observer'")
    if not 0 < forgetting <= 1:
        raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
    circuit = as_circuit(model)
    layout, init_tree, template = _layout(circuit, adapt, delta)
    treedef = jax.tree_util.tree_structure(template)
    shapes = [np.shape(leaf) for leaf in jax.tree_util.tree_leaves(template)]

    def unpack(state) -> OnlineState:
        flat, leaves, q = np.asarray(state), [], 0
        for shape in shapes:
            size = int(np.prod(shape, dtype=int))
            leaves.append(flat[q:q + size].reshape(shape))
            q += size
        return jax.tree_util.tree_unflatten(treedef, leaves)

    flag_index = layout.offsets["flagged"]
    if backend in ("numba", "numpy"):
        if backend == "numba":
            from ._online_numba import numba_step as make_step  # its kernel compiles (or loads) on import
        else:
            make_step = numpy_step
        init = _float64_init(circuit, layout, delta)
        step = make_step(pack(layout, circuit), mode, rls, forgetting)
        _check_float64_step(circuit, layout, init, step, mode)
    else:
        init, step = jax_step(circuit, layout, init_tree, mode, rls, forgetting)
    return Streamer(init, step, unpack, flag_index, circuit, mode, forgetting if rls else None,
                    layout.current_names, layout.parameter_names, backend)


def _layout(circuit: Circuit, adapt, delta):
    """(:class:`_Layout`, ``init_tree(v0) -> OnlineState`` in the model's dtype, a template state)."""
    n, C = len(circuit.names), len(circuit.channels)
    dtype = circuit.neurons[0].bank.A.dtype
    incoming = [[k for k, s in enumerate(circuit.synapses) if s.post == i] for i in range(n)]
    theta0, pnames, groups, cnames = [], [], [], []
    for i, m in enumerate(circuit.neurons):
        vals, names, grp = [jnp.atleast_1d(m.holding)], ["holding"], [-1]
        for j, (name, c) in enumerate(zip(m.names, m.currents)):
            _, v = _linear(c)
            vals.append(v)
            names += [name] * v.size
            grp += [j] * v.size
            cnames.append(f"{circuit.names[i]}.{name}")
        for q, k in enumerate(incoming[i]):
            _, v = _linear(circuit.synapses[k].current)
            vals.append(v)
            names += [circuit.synapses[k].name] * v.size
            grp += [len(m.currents) + q] * v.size
        theta0.append(jnp.concatenate(vals).astype(dtype))
        pnames.append(tuple(names))
        groups.append(np.asarray(grp))
    cnames += [s.name for s in circuit.synapses]
    every = sorted({nm for names in pnames for nm in names})
    if adapt is not None:
        unknown = [a for a in adapt if a not in every]
        if unknown:
            raise ValueError(f"adapt names {unknown} are not read-out parameters of this model; choose among {every}")
    masks = [np.asarray([adapt is None or nm in adapt for nm in names]) for names in pnames]
    sel = [np.flatnonzero(m) for m in masks]
    caps = [m.capacitance for m in circuit.neurons]

    def init_tree(v0) -> OnlineState:
        v0 = jnp.broadcast_to(jnp.asarray(v0, dtype), (C,))
        v, xs, ss = circuit_state(circuit, v0)
        P = tuple(jnp.eye(len(sel[i]), dtype=dtype) / (delta * caps[i] ** 2) for i in range(n))
        # Flags and counters are stored as floats so the whole state ravels into one array.
        zero = jnp.asarray(0.0, dtype)
        return OnlineState(v, xs, ss, tuple(theta0), P, tuple(jnp.zeros_like(t) for t in theta0),
                           jnp.zeros(n, dtype), v, v0, zero, zero, zero, zero)

    template = init_tree(jnp.zeros(C, dtype))
    offsets, q = {}, 0
    for name, value in zip(OnlineState._fields, template):
        offsets[name] = q
        q += sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(value))
    n_states = offsets["theta"] - offsets["xs"]
    layout = _Layout(n, C, n_states, q, offsets, incoming, [np.asarray(t, np.float64) for t in theta0], groups,
                     masks, sel, tuple(cnames), tuple(pnames))
    return layout, init_tree, template


def _check_float64_step(circuit: Circuit, layout: _Layout, init, step, mode: str):
    """One float64 (Numba or NumPy) step against the model's own (JAX) currents and banks, at rest
    at a few voltages.

    The float64 realisations mirror the current classes by hand; should they gain a term it does not
    know, this fails here, loudly, instead of streaming different numbers.

    Raises:
        NotImplementedError: when ψ or the filter states differ beyond the model dtype's rounding.
    """
    n, C, off = layout.n, layout.C, layout.offsets
    dtype = circuit.neurons[0].bank.A.dtype
    # float32 models run in float64 here: allow float32 rounding through a gate network.
    tol = 1e3 * float(jnp.finfo(dtype).eps)
    rest = np.array([-75.0, -55.0, -35.0, -15.0])  # mV: banks at rest there, then measured 1 mV higher

    def reference(v0):
        # what the step reads: the measured voltages, but its own in closed loop
        v_all = jnp.full(C, v0 + 1.0, dtype).at[:n].set(v0 if mode == "closed-loop" else v0 + 1.0)
        _, xs, ss = circuit_state(circuit, jnp.full(C, v0, dtype))
        banks = [(m.bank, x, i) for i, (m, x) in enumerate(zip(circuit.neurons, xs))]
        banks += [(s.bank, x, s.pre) for s, x in zip(circuit.synapses, ss)]
        return (jnp.concatenate(regressors(circuit, layout.incoming, v_all, xs, ss)),
                jnp.concatenate([filter_step(b, x, v_all[src]) for b, x, src in banks]))

    psis, xss = jax.jit(jax.vmap(reference))(jnp.asarray(rest, dtype))  # one compile, not one per op
    for v0, psi, x_new in zip(rest, np.asarray(psis, np.float64), np.asarray(xss, np.float64)):
        new = step(init(v0), np.full(C, v0 + 1.0), np.zeros(n))[0]
        got_psi = new[off["psi_prev"]:off["psi_prev"] + psi.size]
        got_x = new[off["xs"]:off["xs"] + x_new.size]
        for name, got, want in (("regressors ψ", got_psi, psi), ("filter states", got_x, x_new)):
            err = np.abs(got - want) / (1.0 + np.abs(want))
            if not np.all(err <= tol):
                raise NotImplementedError(
                    f"the float64 online step disagrees with the model's own {name} near {v0 + 1.0:g} mV (relative "
                    f"error {np.nanmax(err):.2g} > {tol:.2g}): the model holds a current or field the float64 "
                    "realisations do not know; use online(..., backend='jax')")


def _float64_init(circuit: Circuit, layout: _Layout, delta: float):
    """``init(v0)`` for the float64 backends: the JAX backend's start state, built in float64."""
    n, C, off = layout.n, layout.C, layout.offsets
    banks = [(m.bank, i) for i, m in enumerate(circuit.neurons)] + [(s.bank, s.pre) for s in circuit.synapses]
    gains = [(dc_gain(b), b, src) for b, src in banks]
    caps = [float(m.capacitance) for m in circuit.neurons]

    def init(v0) -> np.ndarray:
        v0 = _channels(v0, C)
        flat = np.zeros(layout.size)
        flat[off["v"]:off["v"] + n] = v0[:n]
        flat[off["v_prev"]:off["v_prev"] + n] = v0[:n]
        flat[off["v_last"]:off["v_last"] + C] = v0
        q = off["xs"]
        for gain, bank, src in gains:
            flat[q:q + gain.size] = gain * bank.input(float(v0[src]))
            q += gain.size
        flat[off["theta"]:off["P"]] = np.concatenate(layout.theta0)
        q = off["P"]
        for i in range(n):
            p = len(layout.sel[i])
            flat[q:q + p * p] = (np.eye(p) / (delta * caps[i] ** 2)).ravel()
            q += p * p
        return flat

    return init


def replay(streamer: Streamer, voltage, current, *, v0=None, every: int = 100, timing: bool = True) -> dict:
    """Stream a record through ``streamer.step`` one sample at a time, as a real-time loop would.

    Args:
        voltage: (n_channels, T) measured voltages (mV; NaN marks missing samples) — a (T,) array
            for one neuron; current: (n_neurons, T) applied currents (nA) or (T,).
        v0: (n_channels,) start voltages (mV); default the first measured sample.
        every: keep the read-out parameters θ every ``every`` samples.
        timing: measure each step's wall time, from the call to the prediction and currents in hand
            as NumPy values (what a real-time loop waits for).

    Returns:
        dict with ``prediction`` (n, T) (voltage predicted for the next sample), ``currents``
        (n_currents, T), ``theta`` list per neuron of (T // every, p_i), ``theta_time`` (ms),
        ``flagged`` (T,) bool, ``latency_us`` (T,) per-step wall time (µs; NaN if not timed).

    Raises:
        ValueError: when the arrays' rows do not match the circuit's channels and neurons.
    """
    c = streamer.circuit
    n, C = len(c.names), len(c.channels)
    v = np.atleast_2d(np.asarray(voltage, float))
    i = np.atleast_2d(np.asarray(current, float))
    if v.shape[0] != C or i.shape[0] != n or v.shape[1] != i.shape[1]:
        raise ValueError(f"replay needs voltage ({C}, T) for channels {list(c.channels)} and current ({n}, T) for "
                         f"neurons {list(c.names)}; got {v.shape} and {i.shape}")
    T = v.shape[1]
    first = v[:, 0] if v0 is None else np.broadcast_to(np.asarray(v0, float), (C,))
    if not np.all(np.isfinite(first)):
        raise ValueError(f"the first sample {first.tolist()} mV is missing; pass v0 to start the stream")
    state = streamer.init(first)
    streamer.step(state, v[:, 0], i[:, 0])  # a first call outside the timed loop (caches, pages)
    state = streamer.init(first)
    dtype = np.asarray(state).dtype
    # Inputs converted once, one contiguous row per sample, as a real-time loop would hold them.
    vv, ii = np.ascontiguousarray(v.T, dtype), np.ascontiguousarray(i.T, dtype)
    preds = np.empty((T, n))
    curs = np.empty((T, len(streamer.current_names)))
    flags = np.zeros(T, bool)
    lat = np.full(T, np.nan)
    thetas, ttime = [[] for _ in range(n)], []
    step, i_flag = streamer.step, streamer.flag_index
    clock = time.perf_counter_ns
    for k in range(T):
        t0 = clock()
        state, p, cur = step(state, vv[k], ii[k])  # p, cur: NumPy values, ready (synchronised)
        if timing:
            lat[k] = (clock() - t0) / 1e3
        preds[k] = p
        curs[k] = cur
        flags[k] = np.asarray(state)[i_flag] > 0  # a view of the state: no JAX dispatch
        if k % every == every - 1:
            ttime.append((k + 1) * c.dt)
            tree = streamer.unpack(state)
            for q in range(n):
                thetas[q].append(np.array(tree.theta[q]))
    return {"prediction": preds.T, "currents": curs.T, "theta": [np.asarray(t) for t in thetas],
            "theta_time": np.asarray(ttime), "flagged": flags, "latency_us": lat,
            "current_names": streamer.current_names, "parameter_names": streamer.parameter_names}


def plot_replay(result: dict, *, neuron: int = 0, ax=None):
    """Figure: each read-out parameter θ of ``neuron`` over streamed time, relative to its start."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    th = result["theta"][neuron]
    t = result["theta_time"] / 1000.0
    names = result["parameter_names"][neuron]
    for j in range(th.shape[1]):
        ref = th[0, j] if abs(th[0, j]) > 1e-12 else 1.0
        ax.plot(t, th[:, j] / ref, lw=1, label=names[j])
    ax.set_xlabel("streamed time (s)")
    ax.set_ylabel("RLS estimate / first estimate")
    ax.legend(fontsize=7, ncol=2)
    return ax
