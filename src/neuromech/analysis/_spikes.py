"""Spike detection: threshold crossings with hysteresis, interpolated between samples."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["detect_spikes"]


def detect_spikes(
    t: ArrayLike | float,
    v: ArrayLike,
    *,
    threshold: float = 10.0,
    rearm: float = 0.0,
    interpolate: bool = True,
    t0: float = 0.0,
) -> np.ndarray | list[np.ndarray]:
    """Spike times as upward crossings of a voltage threshold, with hysteresis.

    A spike is counted when the membrane potential crosses ``threshold`` upwards while the
    detector is *armed*; counting disarms the detector, which re-arms only once the potential
    has gone below ``rearm``. Noise chattering around the threshold therefore counts once, and
    so does a spike with a notch or a second peak that stays above ``rearm``. The defaults are
    those of the published pipeline (Brandoit et al. 2025, arXiv 2509.12783; see SCIENCE.md
    §1.4): +10 mV up, re-armed below 0 mV.

    The detector starts armed iff ``v[0] < threshold``: a trace that begins above threshold
    (mid-spike) does not count a spike at its first sample; it must first go below ``rearm``.
    A trace that begins between ``rearm`` and ``threshold`` starts armed.

    Main arguments:
        t: sample times (ms), a 1-D strictly increasing array of length ``n_samples``; or a
            scalar, the sample period ``dt`` (ms), meaning ``t = t0 + k * dt``.
        v: membrane potential (mV), shape ``(n_samples,)`` for one trace or
            ``(n_traces, n_samples)`` for several traces on the same time grid.

    Other arguments:
        threshold: crossing level (mV). Real recordings may call for a lower one (e.g. 0 mV)
            when spikes peak below +10 mV.
        rearm: re-arming level (mV), must be below ``threshold``.
        interpolate: if True (default), each spike time is the linear interpolation between the
            last sample below ``threshold`` and the first at or above it, so its error is
            O(dt² |v''| / |v'|) instead of O(dt). If False, the time of the first sample at or
            above ``threshold``.
        t0: time of the first sample (ms), used only when ``t`` is a scalar ``dt``.

    Returns:
        For 1-D ``v``, a float array of spike times (ms), increasing. For 2-D ``v``, a list of
        ``n_traces`` such arrays.

    Raises:
        ValueError: if ``rearm >= threshold``; if ``v`` is not 1-D or 2-D or holds a NaN or an
            infinite value (the message names the index); if ``t`` does not match ``v``'s
            number of samples, is not strictly increasing or finite, or ``dt`` is not positive.

    Example:
        >>> import numpy as np
        >>> t = np.arange(0.0, 100.0, 0.1)                      # ms
        >>> v = -65.0 + 95.0 * (np.sin(2 * np.pi * t / 25.0) > 0.99)   # four square "spikes"
        >>> detect_spikes(t, v).size
        4
        >>> detect_spikes(0.1, np.stack([v, v - 100.0]))[1].size       # dt form, 2 traces
        0
    """
    threshold = float(threshold)
    rearm = float(rearm)
    if not (np.isfinite(threshold) and np.isfinite(rearm)):
        raise ValueError(
            f"threshold and rearm must be finite voltages (mV); got threshold={threshold}, "
            f"rearm={rearm}."
        )
    if not rearm < threshold:
        raise ValueError(
            f"rearm must be below threshold for hysteresis; got rearm={rearm} mV >= "
            f"threshold={threshold} mV. Pass e.g. rearm=threshold - 10."
        )

    v_arr = np.asarray(v, dtype=float)
    if v_arr.ndim not in (1, 2):
        raise ValueError(
            f"v must be 1-D (n_samples,) or 2-D (n_traces, n_samples) in mV; got an array of "
            f"shape {v_arr.shape}. Reshape it, or call detect_spikes once per trace."
        )
    one_trace = v_arr.ndim == 1
    v2 = v_arr[None, :] if one_trace else v_arr
    n_samples = v2.shape[1]

    bad = ~np.isfinite(v2)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        where = f"index {col}" if one_trace else f"index ({row}, {col})"
        raise ValueError(
            f"v holds a non-finite value ({v2[row, col]}) at {where}. Remove or interpolate "
            f"missing samples before spike detection."
        )

    t_arr = _time_grid(t, n_samples, v_arr.shape, float(t0))

    times = _crossings(t_arr, v2, threshold, rearm, interpolate)
    return times[0] if one_trace else times


def _time_grid(t: ArrayLike | float, n_samples: int, v_shape: tuple, t0: float) -> np.ndarray:
    """The sample times (ms) as a 1-D array, checked against ``v``'s number of samples."""
    t_arr = np.asarray(t, dtype=float)
    if t_arr.ndim == 0:
        dt = float(t_arr)
        if not (np.isfinite(dt) and dt > 0.0):
            raise ValueError(
                f"a scalar t is the sample period dt (ms) and must be positive and finite; "
                f"got {dt}."
            )
        if not np.isfinite(t0):
            raise ValueError(f"t0 (ms) must be finite; got {t0}.")
        return t0 + dt * np.arange(n_samples)
    if t_arr.ndim != 1 or t_arr.shape[0] != n_samples:
        raise ValueError(
            f"t must be a 1-D array with one time (ms) per sample of v, or a scalar dt; got t "
            f"of shape {t_arr.shape} for v of shape {v_shape} (expected t of shape "
            f"({n_samples},))."
        )
    return check_increasing(
        t_arr, "t", item="t[{i}]={x} ms", if_missing="Remove or interpolate missing samples.",
        if_unsorted="Sort the samples or drop duplicates.",
    )


def check_increasing(times: np.ndarray, name: str, *, item: str, if_missing: str, if_unsorted: str) -> np.ndarray:
    """``times`` (1-D, ms) unchanged if finite and strictly increasing, else a ValueError that names
    the first offending index and says what to do.

    Args:
        times: 1-D float array (ms). name: the argument's name, for the message.
        item: how the message names entry ``i`` at time ``x``, e.g. ``"t[{i}]={x} ms"``.
        if_missing, if_unsorted: what to do, appended to the message for a non-finite value or for
            a time not above the previous one.
    """
    bad = ~np.isfinite(times)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite; got {times[i]} at index {i}. {if_missing}")
    steps = np.diff(times)
    if (steps <= 0.0).any():
        i = int(np.flatnonzero(steps <= 0.0)[0])
        first, then = (item.format(i=j, x=times[j]) for j in (i, i + 1))
        raise ValueError(f"{name} must be strictly increasing; {first} is followed by {then}. {if_unsorted}")
    return times


def _crossings(
    t: np.ndarray, v: np.ndarray, threshold: float, rearm: float, interpolate: bool
) -> list[np.ndarray]:
    """Armed upward crossings of every row of ``v`` (a Schmitt trigger, vectorised).

    The trigger's state is "high" (1) at samples at or above ``threshold``, "low" (0) below
    ``rearm`` and, in between, whatever it was at the previous sample; a spike is a low-to-high
    transition. The in-between samples are filled forward from the last decided sample, so the
    whole thing is a cumulative maximum over indices, with no loop over samples.
    """
    n_traces, n_samples = v.shape
    if n_samples < 2:
        return [np.empty(0) for _ in range(n_traces)]

    high = v >= threshold
    decided = high | (v < rearm)
    cols = np.arange(n_samples)
    last = np.maximum.accumulate(np.where(decided, cols, -1), axis=1)
    rows = np.arange(n_traces)[:, None]
    # Before its first decided sample a trace is low (armed) iff it starts below threshold;
    # a trace starting at or above threshold is decided high at sample 0, so the fallback
    # "low" is only ever used for traces that start armed.
    state = np.where(last >= 0, high[rows, np.maximum(last, 0)], False)

    r, k = np.nonzero(~state[:, :-1] & state[:, 1:])
    k = k + 1  # index of the first sample at or above threshold; v[k - 1] < threshold
    if interpolate:
        v0, v1 = v[r, k - 1], v[r, k]
        frac = (threshold - v0) / (v1 - v0)  # v1 >= threshold > v0, so 0 < frac <= 1
        spikes = t[k - 1] + frac * (t[k] - t[k - 1])
    else:
        spikes = t[k]
    # np.nonzero returns row-major order: split the flat result per trace.
    bounds = np.searchsorted(r, np.arange(1, n_traces))
    return np.split(spikes, bounds)
