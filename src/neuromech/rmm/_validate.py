"""Free-run validation of a trained RMM on held-out recordings."""

from __future__ import annotations

import numpy as np

from ..recordings import Recording
from ._filters import filter_signal, warm_states
from ._metrics import summarise, sweep_metrics
from ._model import RMM, DivergenceError, simulate


def predict(model: RMM, recording: Recording) -> np.ndarray:
    """(n_sweeps, n_samples) free-running voltage (mV) for each sweep's injected current.

    Each sweep starts at its measured first voltage with the filters at rest there.

    Raises:
        DivergenceError: if a sweep's free run diverges.
    """
    if abs(recording.dt - model.dt) > 1e-9 * model.dt:
        raise ValueError(f"recording dt {recording.dt} ms differs from the model's {model.dt} ms; resample it")
    return simulate(model, recording.current, recording.voltage[:, 0])


def warm_start(model: RMM, voltage, n: int):
    """Filter states after ``n`` samples of the *measured* voltage (teacher-forced warm-up).

    A free run that starts with every filter at rest at the first voltage sample starts off its
    attractor when the neuron is not at rest there (mid-burst, say: the slow states remember the
    past). Running the bank on the preceding measured voltage is causal and puts them where the
    data say. The bank starts at rest at the *mean* of those ``n`` samples (the level the slow
    states settle around) rather than at their first one: a warm-up shorter than the slowest
    time constant (1 s against 1.5 s) otherwise carries a sizeable share of the first sample's
    value, which may sit on a spike (+40 mV) or at the bottom of a burst's trough.
    Returns (v[n], x[n]).
    """
    x = warm_states(model.bank, np.asarray(voltage[: n + 1], np.float64))
    return float(voltage[n]), x[-1]


def horizon_run(model: RMM, voltage, i_app, x0, horizon: int) -> np.ndarray:
    """Free runs of ``horizon`` samples, each restarted from the measured voltage and the filter
    states the measured voltage gives there (teacher-forced), concatenated: multi-step-ahead
    prediction. ``voltage``, ``i_app``: (T,) from the start of the run; ``x0`` the filter state at
    its first sample.

    Raises:
        DivergenceError: if one of the runs diverges (sample and time counted from the start).
    """
    n = len(voltage)
    xs = filter_signal(model.bank, voltage, x0=np.asarray(x0, np.float64))
    starts = np.arange(0, n, horizon)
    pad = (-n) % horizon
    i_seg = np.concatenate([np.asarray(i_app, np.float64), np.zeros(pad)]).reshape(len(starts), horizon)
    try:
        runs = simulate(model, i_seg, np.asarray(voltage, np.float64)[starts], x0=xs[starts])
    except DivergenceError as err:
        sample = int(starts[err.sweep]) + err.sample
        raise DivergenceError(f"the model diverged at t = {sample * model.dt:g} ms, {err.sample * model.dt:g} ms "
                              "into a free run restarted from the data", sample, sample * model.dt,
                              np.asarray(voltage[:sample], np.float64)) from err
    return runs.reshape(-1)[:n]


def evaluate(model: RMM, recording, *, threshold: float = 0.0, window: float = 2.0, warmup: float = 0.0,
             horizon: float | None = None):
    """Per-sweep :class:`SweepMetrics` and their summary of a free run on ``recording`` (or a list).

    A diverging sweep is reported (``diverged_at`` in ms, worst scores) instead of raising, so that
    model selection can rank an unstable model last. With ``warmup`` (ms) the filters first follow
    the measured voltage for that long (:func:`warm_start`); the free run and the metrics cover the
    rest of each sweep, and the prediction holds the measured voltage during the warm-up.

    Returns:
        ``(metrics, summary, predictions)``: list of SweepMetrics, dict of means, and a
        (n_sweeps, n_samples) array of predictions (NaN-free; a diverged sweep holds its
        trajectory up to the divergence and the measured voltage's first value after).
    """
    if not isinstance(recording, Recording):  # several recordings: metrics of all their sweeps
        parts = [evaluate(model, r, threshold=threshold, window=window, warmup=warmup, horizon=horizon)
                 for r in recording]
        metrics = [m for p in parts for m in p[0]]
        return metrics, summarise(metrics), [p[2] for p in parts]
    out, preds = [], []
    w = int(round(warmup / recording.dt))
    if not 0 <= w < recording.n_samples - 2:
        raise ValueError(f"warmup {warmup} ms leaves nothing of sweeps lasting {recording.duration:g} ms")
    t = recording.time[w:]
    for s in range(recording.n_sweeps):
        v_meas = recording.voltage[s, w:]
        try:
            v0, x0 = warm_start(model, recording.voltage[s], w)
            if horizon is None:
                v_pred = simulate(model, recording.current[s, w:], v0, x0=x0)
            else:
                steps = max(1, int(round(horizon / recording.dt)))
                v_pred = horizon_run(model, v_meas, recording.current[s, w:], x0, steps)
            out.append(sweep_metrics(recording.sweeps[s], t, v_meas, v_pred, threshold=threshold, window=window))
        except DivergenceError as err:
            v_pred = np.concatenate([err.voltage, np.full(len(v_meas) - len(err.voltage), v_meas[0])])
            m = sweep_metrics(recording.sweeps[s], t, v_meas, v_pred, threshold=threshold, window=window)
            out.append(m.diverged(err.time))
        preds.append(np.concatenate([recording.voltage[s, :w], v_pred]))
    return out, summarise(out), np.stack(preds)


def selection_score(summary: dict) -> float:
    """One number to maximise in model selection: the mean of the inner-product score and, when
    the data spike, the coincidence factor and the spike-count agreement ``1 − min(error, 1)``
    (relative count error, :func:`~neuromech.rmm.spike_count_error`), and, when the data burst,
    the burst-period agreement ``1 − |period error|`` (capped; ``SweepMetrics.burst_period_error``);
    −inf if any sweep diverged.

    Why the count term: where spike *timing* is near chance (a real cell firing slowly from a
    plateau), the coincidence factor is ≈ 0 whether the model fires or not, and the inner product
    (dominated by the subthreshold voltage) then prefers a model that never fires: on real cell A
    a silent model scored 0.44 against 0.41 for one firing 22 spikes where the data fire 14.
    Why the period term: a burster's spike phase drifts within a second of free run whatever the
    model (``benchmarks/bench_rmm.py`` measures this ceiling), so its coincidence is ≈ 0 for good
    and bad fits alike; its rhythm is what tells them apart.
    """
    if summary["n_diverged"]:
        return float("-inf")
    parts = [summary["inner_product"]]
    if np.isfinite(summary["coincidence"]):
        parts.append(summary["coincidence"])
    count_error = summary.get("spike_count_error", float("nan"))
    if summary.get("n_spikes_data", 0) > 0 and np.isfinite(count_error):
        parts.append(1.0 - min(count_error, 1.0))
    if np.isfinite(summary.get("burst_period_error", np.nan)):
        parts.append(1.0 - summary["burst_period_error"])
    return float(np.mean(parts))
