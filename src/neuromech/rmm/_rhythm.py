"""Burst rhythm of spike trains: burst period and phase, free run against data (SCIENCE.md §5,
validation). Bursts are split by the rule of :func:`~neuromech.analysis.firing_features` (an ISI
longer than midway between the shortest and the longest), found in the *measured* spikes and
applied to the model's alike."""

from __future__ import annotations

import numpy as np

from ..analysis import CV_TONIC, detect_spikes, isi_cv


def _onsets(spikes: np.ndarray, gap: float) -> np.ndarray:
    """Burst onsets: spikes that follow the previous spike by more than ``gap`` ms (and the first)."""
    if spikes.size == 0:
        return spikes
    return spikes[np.concatenate([[True], np.diff(spikes) > gap])]


def burst_gap(spikes) -> float:
    """The inter-spike interval (ms) that separates bursts in a spike train: midway between the
    shortest and the longest ISI (the rule of :func:`~neuromech.analysis.firing_features`), or NaN
    when the train does not burst (fewer than 3 spikes, or an ISI CV ≤ ``CV_TONIC``)."""
    isi = np.diff(np.asarray(spikes, float))
    if isi.size < 2 or isi_cv(spikes) <= CV_TONIC:
        return float("nan")
    return float((isi.max() + isi.min()) / 2)


def _cycle(onsets: np.ndarray, ref: np.ndarray):
    """(median period of ``onsets``, circular mean phase of ``onsets`` in the cycles of ``ref``,
    and the phases' vector strength: 1 when every burst falls at the same phase, near 0 when the
    phase drifts through the cycle)."""
    nan = float("nan")
    period = float(np.median(np.diff(onsets))) if onsets.size >= 2 else nan
    if ref.size < 2:
        return period, nan, nan
    k = np.searchsorted(ref, onsets, side="right") - 1
    ok = (k >= 0) & (k < ref.size - 1)
    if not ok.any():
        return period, nan, nan
    mean = np.mean(np.exp(2j * np.pi * (onsets[ok] - ref[k[ok]]) / (ref[k[ok] + 1] - ref[k[ok]])))
    return period, float(np.angle(mean) / (2 * np.pi) % 1.0), float(np.abs(mean))


def burst_rhythm(t, measured, predicted, *, threshold: float = 0.0, rearm: float | None = None) -> list[dict]:
    """Burst period and phase of every channel, data against free run (SCIENCE.md §5, validation).

    Args:
        t: (T,) sample times (ms); measured, predicted: (n_channels, T) voltages (mV), channel 0
            the reference (an exogenous channel's prediction is its measured voltage).
        threshold, rearm: spike detection (mV; rearm default threshold − 10).

    Returns:
        One dict per channel: ``period_data``, ``period_model`` (ms, median interval between burst
        onsets), ``period_error`` (model / data − 1), ``phase_data``, ``phase_model`` (circular
        mean of the burst onsets' phase in the reference channel's cycle, in cycles [0, 1); NaN
        for the reference itself), ``phase_error`` (circular distance, cycles, ≤ 0.5) and
        ``locking_data``, ``locking_model``: the vector strength |mean exp(2πiφ)| of the bursts'
        phases φ. The mean phase says where a cell bursts only when it is locked to the
        reference: two cells that burst at nearly the same period without locking drift through
        every phase, and their mean phase is then any number (its error as likely small as large);
        their locking falls well below 1 (near 0 for a uniform drift), a locked cell's stays near
        1 (R = exp(−2π²σ²) for a normal per-cycle jitter of std σ cycles: 0.82 for σ = 0.1, 0.5
        for σ = 0.19). Bursts are split at the gap found in each channel's *measured* spikes
        (:func:`burst_gap`), and the same gap splits the model's; channels whose data do not burst
        get NaN throughout.
    """
    rearm = threshold - 10.0 if rearm is None else rearm
    spikes = {key: [detect_spikes(t, v, threshold=threshold, rearm=rearm) for v in vs]
              for key, vs in (("data", measured), ("model", predicted))}
    gaps = [burst_gap(sp) for sp in spikes["data"]]
    onsets = {key: [_onsets(sp, g) if np.isfinite(g) else sp[:0] for sp, g in zip(spikes[key], gaps)]
              for key in spikes}
    out = []
    for c in range(len(gaps)):
        row = {}
        for key in ("data", "model"):
            period, phase, locking = _cycle(onsets[key][c], onsets[key][0])
            row[f"period_{key}"] = period
            row[f"phase_{key}"], row[f"locking_{key}"] = (float("nan"),) * 2 if c == 0 else (phase, locking)
        row["period_error"] = row["period_model"] / row["period_data"] - 1
        d = abs(row["phase_model"] - row["phase_data"]) % 1.0
        row["phase_error"] = min(d, 1.0 - d)
        out.append(row)
    return out


def burst_periods(data_spikes, model_spikes, *, min_onsets: int = 3) -> tuple[float, float]:
    """(data, model) burst periods (ms, median interval between burst onsets) of one sweep, the
    bursts of both split at the gap found in the data (:func:`burst_gap`). NaN for the data when
    they do not burst or hold fewer than ``min_onsets`` bursts (a period needs several cycles, not
    one pause in an irregular train); NaN for the model when it has fewer than two bursts."""
    gap = burst_gap(data_spikes)
    if not np.isfinite(gap):
        return float("nan"), float("nan")
    onsets = [_onsets(np.asarray(sp, float), gap) for sp in (data_spikes, model_spikes)]
    if onsets[0].size < min_onsets:
        return float("nan"), float("nan")
    return tuple(float(np.median(np.diff(o))) if o.size >= 2 else float("nan") for o in onsets)
