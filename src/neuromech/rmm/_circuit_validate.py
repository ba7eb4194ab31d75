"""Free-run validation of a trained circuit RMM on held-out multi-channel recordings.

Every modelled neuron runs in closed loop together, driven by its recorded injected current and the
recorded exogenous voltages (SCIENCE.md §5, validation); each neuron's voltage is scored as a
single neuron's is (RMSE, normalised inner product, spike coincidence factor, spike-count error),
and where the recording carries the true synaptic currents (``truth["syn A->B"]`` of the
postsynaptic channel, as :func:`~neuromech.rmm.synthetic_circuit` writes), so is each synapse:
Pearson correlation and RMSE of the true current against the free-run current and against the
teacher-forced read-out from the measured voltages (:func:`~neuromech.rmm.circuit_readout`). The
correlation ignores an offset and a scale: read it with the RMSE. Circuits that burst are also
scored on their rhythm (:func:`burst_rhythm`): each neuron's burst period and its burst phase in
the cycle of the reference channel (the first exogenous channel, else the first neuron), free
run against data. :func:`synapse_profile` asks whether the data, one sample ahead, want each
synapse at all.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np

from ._circuit import Circuit, simulate_circuit
from ._circuit_clamp import check_free
from ._circuit_fit import (CircuitTrainingSettings, _teacher_forcing_arrays, circuit_readout,
                           circuit_teacher_forcing_loss, circuit_warm_start, target_variance)
from ._currents import LumpedCurrent
from ._metrics import summarise, sweep_metrics
from ._model import DivergenceError
from ._rhythm import burst_rhythm


def _correlation(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def circuit_selection_score(summary: dict) -> float:
    """One number to maximise in model selection of circuits: the mean of the inner-product score,
    the coincidence factor (when the data spike) and, when the data burst, ``1 − |period error|``
    and ``1 − 2 × phase error`` (both 1 for the data's rhythm, 0 for a period off by 100 % or
    the phase off by half a cycle); −inf if any sweep diverged. The phase's locking
    (:func:`burst_rhythm`'s ``locking_model``) is not scored: over a validation window of about
    ten cycles it is noisy, and adding ``1 − |locking − the data's|`` changed the pick on three of
    ten HCO fits and improved none on the test window (docs/circuits.md)."""
    if summary["n_diverged"]:
        return float("-inf")
    parts = [summary["inner_product"]]
    if np.isfinite(summary["coincidence"]):
        parts.append(summary["coincidence"])
    if np.isfinite(summary.get("burst_period_error", np.nan)):
        parts.append(1.0 - summary["burst_period_error"])
    if np.isfinite(summary.get("burst_phase_error", np.nan)):
        parts.append(1.0 - 2.0 * summary["burst_phase_error"])
    return float(np.mean(parts))


def predict_circuit(circuit: Circuit, recording, *, warmup: float = 0.0):
    """Free run of ``circuit`` on every sweep of a :class:`CircuitRecording`.

    With ``warmup`` (ms) the circuit first follows the measured voltages for that long
    (:func:`~neuromech.rmm.circuit_warm_start`, causal) and runs free from there; the prediction
    holds the measured voltages during the warm-up.

    Returns:
        ``(v, i_syn, diverged)``: (n_sweeps, n_neurons, T) voltages (mV), (n_sweeps, n_syn, T)
        synaptic currents (nA; during the warm-up, read out from the measured voltages as
        :func:`~neuromech.rmm.circuit_readout` does), and per sweep the time (ms, after the
        warm-up) at which the free run diverged, or None. A diverged sweep holds its trajectory up
        to the divergence and each neuron's measured first free-run voltage after it.

    Raises:
        ValueError: for a recording missing a channel of the circuit, a different dt, or a warm-up
            as long as the sweeps.
    """
    from ._circuit_build import check_channels

    check_channels(circuit, recording)
    check_free(recording, circuit.names, "a free run")
    if abs(recording.dt - circuit.dt) > 1e-9 * circuit.dt:
        raise ValueError(f"recording dt {recording.dt} ms differs from the circuit's {circuit.dt} ms; resample it")
    n = len(circuit.names)
    w = int(round(warmup / recording.dt))
    if not 0 <= w < recording.n_samples - 2:
        duration = recording.n_samples * recording.dt
        raise ValueError(f"warmup {warmup} ms leaves nothing of sweeps lasting {duration:g} ms")
    V, I = recording.voltages(circuit.channels), recording.currents(circuit.names)
    v_out = np.array(V[:, :n], float)
    i_out = np.zeros((recording.n_sweeps, len(circuit.synapses), recording.n_samples))
    if w and circuit.synapses:  # causal: the read-out at sample k uses samples ≤ k only
        readout = circuit_readout(circuit, recording)
        for k, syn in enumerate(circuit.synapses):
            i_out[:, k, :w] = readout[syn.name][:, :w]
    diverged = []
    for s in range(recording.n_sweeps):
        start = circuit_warm_start(circuit, V[s], w)
        try:
            vs, isyn = simulate_circuit(circuit, I[s, :, w:], None, v_exo=V[s, n:, w:], start=start)
            diverged.append(None)
        except DivergenceError as err:
            k = err.voltage.shape[1]
            vs = np.concatenate([err.voltage, np.repeat(V[s, :n, w:w + 1], V.shape[2] - w - k, axis=1)], axis=1)
            isyn = np.zeros((len(circuit.synapses), V.shape[2] - w))
            diverged.append(err.time)
        v_out[s, :, w:] = vs
        i_out[s, :, w:] = isyn
    return v_out, i_out, diverged


def evaluate_circuit(circuit: Circuit, recording, *, threshold: float = 0.0, window: float = 2.0,
                     warmup: float = 0.0, readout: bool = True):
    """Per-neuron and per-synapse metrics of a free run on ``recording`` (or a list of them).

    Main arguments:
        circuit: a trained :class:`Circuit`; recording: a :class:`CircuitRecording` or a list.

    Other arguments:
        threshold: spike threshold (mV); window: coincidence window (± ms); warmup: ms the circuit
            follows the measured voltages before running free (metrics exclude it).
        readout: also score the teacher-forced synaptic read-out (False: free run only, faster),
            its banks started as the free run's (:func:`~neuromech.rmm.circuit_readout` with the
            warm-up).

    Returns:
        ``(metrics, predictions)``. ``metrics``: ``{"neurons": {name: {"summary", "sweeps",
        "rhythm"}}, "synapses": {name: {"correlation_free_run", "rmse_free_run",
        "correlation_readout", "rmse_readout", "std_readout", "std_true"}}`` (nA; only synapses
        whose true current the recording carries; a read-out std near 0 is a synapse training
        switched off, whose correlation is then only that of its driving force's shape), ``"summary"``: means over neurons of the neurons' summaries, the
        number of diverged sweeps, ``burst_period_error`` (mean over bursting neurons of their
        ``SweepMetrics.burst_period_error``) and ``burst_phase_error`` (cycles; mean over bursting neurons other than
        the reference channel)}. ``rhythm``: :func:`burst_rhythm`'s figures, means over the
        sweeps that did not diverge. ``predictions``: per recording, ``(v, i_syn)`` as
        :func:`predict_circuit` returns them.

    Example:
        >>> metrics, preds = evaluate_circuit(circuit, test, warmup=500.0)   # doctest: +SKIP
        >>> metrics["neurons"]["B"]["summary"]["rmse"]                        # doctest: +SKIP
    """
    from ..recordings._circuit import CircuitRecording

    recs = [recording] if isinstance(recording, CircuitRecording) else list(recording)
    per_neuron = {name: [] for name in circuit.names}
    rhythms = {name: [] for name in circuit.names}
    syn = {s.name: {"truth": [], "free": [], "readout": []} for s in circuit.synapses}
    predictions = []
    n = len(circuit.names)
    for rec in recs:
        v, isyn, diverged = predict_circuit(circuit, rec, warmup=warmup)
        predictions.append((v, isyn))
        w = int(round(warmup / rec.dt))
        t = rec.time[w:]
        V = rec.voltages(circuit.channels)
        for i, name in enumerate(circuit.names):
            measured = rec[name].voltage
            for s in range(rec.n_sweeps):
                m = sweep_metrics(rec[name].sweeps[s], t, measured[s, w:], v[s, i, w:], threshold=threshold,
                                  window=window)
                per_neuron[name].append(m if diverged[s] is None else m.diverged(diverged[s]))
        # The reference cycle: the first exogenous (recorded, driving) channel, else the first neuron.
        order = ([n] if circuit.exogenous else []) + list(range(n))
        for s in range(rec.n_sweeps):
            if diverged[s] is None:
                pred = np.concatenate([v[s, :, w:], V[s, n:, w:]])
                rows = burst_rhythm(t, V[s, order, w:], pred[order], threshold=threshold)
                for i, row in zip(order, rows):
                    if i < n:
                        rhythms[circuit.names[i]].append(row)
        truths = {s.name: rec[circuit.names[s.post]].truth.get(s.name)
                  for s in circuit.synapses if rec[circuit.names[s.post]].truth}
        truths = {k: x for k, x in truths.items() if x is not None}
        if truths:
            ro = circuit_readout(circuit, rec, warmup=w) if readout else None  # scored after w: causal there
            for k, s in enumerate(circuit.synapses):
                if s.name not in truths:
                    continue
                for q in range(rec.n_sweeps):
                    syn[s.name]["truth"].append(truths[s.name][q, w:])
                    syn[s.name]["readout"].append(None if ro is None else ro[s.name][q, w:])
                    syn[s.name]["free"].append(isyn[q, k, w:] if diverged[q] is None else None)
    neurons = {}
    for name, ms in per_neuron.items():
        rows = rhythms[name]
        rhythm = {key: (float(np.nanmean([r[key] for r in rows])) if any(np.isfinite(r[key]) for r in rows)
                        else float("nan")) for key in (rows[0] if rows else ())}
        neurons[name] = {"summary": summarise(ms), "sweeps": [m.as_dict() for m in ms], "rhythm": rhythm}
    synapses = {}
    for name, parts in syn.items():
        if not parts["truth"]:
            continue
        kept = [(a, b) for a, b in zip(parts["truth"], parts["free"]) if b is not None]
        free = _correlation(np.concatenate([a for a, _ in kept]), np.concatenate([b for _, b in kept])) if kept \
            else float("nan")
        rmse_free = float(np.sqrt(np.mean(np.concatenate([(a - b) ** 2 for a, b in kept])))) if kept \
            else float("nan")
        synapses[name] = {"correlation_free_run": free, "rmse_free_run": rmse_free}
        if readout:
            truth, ro = np.concatenate(parts["truth"]), np.concatenate(parts["readout"])
            synapses[name].update(correlation_readout=_correlation(truth, ro),
                                  rmse_readout=float(np.sqrt(np.mean((truth - ro) ** 2))),
                                  std_readout=float(np.std(ro)), std_true=float(np.std(truth)))
    summary = {key: float(np.nanmean([n["summary"][key] for n in neurons.values()]))
               if any(np.isfinite(n["summary"][key]) for n in neurons.values()) else float("nan")
               for key in ("rmse", "inner_product", "coincidence", "spike_count_error", "burst_period_error")}
    summary["n_sweeps"] = sum(rec.n_sweeps for rec in recs)
    summary["n_diverged"] = max(n["summary"]["n_diverged"] for n in neurons.values())
    # The period error is each neuron's own (SweepMetrics.burst_period_error: capped at 1, and 1
    # where the data burst and the free run does not); the phase is scored alike, half a cycle
    # off where the free run does not burst (not NaN, which would drop the neuron).
    phases = [min(r["phase_error"], 0.5) if np.isfinite(r["phase_error"]) else 0.5
              for r in (n["rhythm"] for n in neurons.values()) if np.isfinite(r.get("phase_data", np.nan))]
    summary["burst_phase_error"] = float(np.mean(phases)) if phases else float("nan")
    return {"neurons": neurons, "synapses": synapses, "summary": summary}, predictions


#: Factors on a synapse's size at which synapse_profile evaluates the loss by default.
PROFILE_SCALES = (0.0, 0.5, 1.0, 1.5, 2.0)


def synapse_profile(circuit: Circuit, data, scales=PROFILE_SCALES, *, settings=None) -> dict[str, np.ndarray]:
    """The teacher-forcing loss on ``data`` with each synapse's size scaled, the rest as it is.

    For every synapse, its conductance ``g`` (or a lumped synapse's output scale) is multiplied
    by each of ``scales`` while everything else stays fixed, and the teacher-forcing loss of
    :func:`fit_circuit` (its weighting and centred input from ``settings``, a
    :class:`CircuitTrainingSettings`; without the ridge, the overshoot penalty and weight decay)
    is computed on all of ``data``. A profile
    whose minimum lies at 0 says that one-step prediction does not want this synapse on these
    data, whatever the free run needs: the data do not identify it by teacher forcing, and a fit
    will shrink it. It is a slice, not a profile likelihood: the other parameters are not refitted.

    Args:
        circuit: a (trained) circuit; data: a CircuitRecording or a list of them.
        scales: factors on each synapse's size (≥ 0).

    Returns:
        ``{"syn A->B": (len(scales),) losses}``, in the loss's units (1: predicting each neuron's
        mean dv/dt; summed over neurons).

    Example:
        >>> profile = synapse_profile(circuit, train)   # doctest: +SKIP
        >>> {name: int(np.argmin(losses)) for name, losses in profile.items()}   # doctest: +SKIP
        {'syn pre->post': 2}
    """
    s = CircuitTrainingSettings() if settings is None else settings
    scales = np.asarray(scales, float)
    if scales.ndim != 1 or not np.all(scales >= 0):
        raise ValueError(f"scales must be a list of factors ≥ 0, got {scales.tolist()}")
    dtype = circuit.neurons[0].bank.A.dtype
    v, xs, ss, i, dvdt, w, _ = _teacher_forcing_arrays(circuit, data, dtype, centred=s.centred, weighting=s.weighting,
                                                       blank=int(round(s.clamp_blank_ms / circuit.dt)))
    scale = target_variance(dvdt, w)
    out = {}
    for k, syn in enumerate(circuit.synapses):
        def size(c, k=k):  # a conductance synapse's g, a lumped one's output scale
            current = c.synapses[k].current
            return current.out_scale if isinstance(current, LumpedCurrent) else current.g

        out[syn.name] = np.array([float(circuit_teacher_forcing_loss(
            eqx.tree_at(size, circuit, size(circuit) * float(f)), v, xs, ss, i, dvdt, scale, 0.0, w))
            for f in scales])
    return out
