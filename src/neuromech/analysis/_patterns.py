"""Firing pattern (silent, tonic, bursting) and firing features from spike times."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ._spikes import check_increasing

__all__ = ["FiringPattern", "SpikeFeatures", "features_table", "firing_features", "isi_cv"]

# Published pipeline (SCIENCE.md §1.4): fewer than this many spikes is "silent".
_MIN_SPIKES = 3


class FiringPattern(enum.StrEnum):
    """Firing pattern of a spike train, as classified by :func:`firing_features`.

    A ``str`` enum: ``FiringPattern.TONIC == "tonic"`` and ``str(FiringPattern.TONIC)`` is
    ``"tonic"``, so tables and files hold plain strings.

    Example:
        >>> FiringPattern("bursting") is FiringPattern.BURSTING
        True
    """

    SILENT = "silent"
    TONIC = "tonic"
    BURSTING = "bursting"


@dataclasses.dataclass(frozen=True)
class SpikeFeatures:
    """Firing pattern and features of one spike train (units: ms, Hz).

    Features that do not apply are NaN: all of the float features for a silent train, the
    burst features for a tonic one, and the burst features of a bursting train whose complete
    bursts are too few (see :func:`firing_features`).

    Attributes:
        pattern: silent, tonic or bursting.
        n_spikes: number of spikes in the train.
        spiking_frequency: mean firing rate (Hz), 1000 / mean inter-spike interval (ISI).
        cv_isi: coefficient of variation of the ISIs, std / mean (population std, ddof=0).
        intraburst_frequency: 1000 / mean ISI within complete bursts (Hz), the ISIs of all
            complete bursts pooled.
        interburst_frequency: burst rate (Hz), 1000 / mean burst period, the period being the
            time between the first spikes of successive complete bursts.
        burst_duration: mean time from first to last spike of a complete burst (ms).
        spikes_per_burst: mean number of spikes in a complete burst.
        n_bursts: number of complete bursts the burst features are averaged over (0 when the
            train is not bursting).
    """

    pattern: FiringPattern
    n_spikes: int
    spiking_frequency: float = np.nan
    cv_isi: float = np.nan
    intraburst_frequency: float = np.nan
    interburst_frequency: float = np.nan
    burst_duration: float = np.nan
    spikes_per_burst: float = np.nan
    n_bursts: int = 0



# The numeric features of a train, in the order tables and networks use them.
CV_TONIC = 0.15  # largest CV(ISI) of a tonic train (SCIENCE.md §1.4)

FEATURES = ("spiking_frequency", "cv_isi", "intraburst_frequency", "interburst_frequency",
            "burst_duration", "spikes_per_burst")

def _check_spike_times(spike_times: ArrayLike) -> np.ndarray:
    """The spike times (ms) as a float array, after checking they are 1-D, finite, sorted."""
    s = np.asarray(spike_times, dtype=float)
    if s.ndim != 1:
        raise ValueError(
            f"spike_times must be a 1-D array of spike times (ms) of one train; got shape "
            f"{s.shape}. For several trains use features_table, or call once per train."
        )
    return check_increasing(
        s, "spike_times", item="spike {i} at {x} ms",
        if_missing="Drop missing entries (e.g. padding NaNs of a ragged table) before computing features.",
        if_unsorted="Sort them (np.sort) and drop duplicates (np.unique does both).",
    )


def _cv(isi: np.ndarray) -> float:
    mean = isi.mean()
    return float(np.sqrt(np.mean((isi - mean) ** 2)) / mean)


def isi_cv(spike_times: ArrayLike) -> float:
    """Coefficient of variation of the inter-spike intervals, std / mean (ddof=0).

    Args:
        spike_times: spike times (ms) of one train, 1-D, finite, strictly increasing.

    Returns:
        The CV (dimensionless), or NaN with fewer than 3 spikes (fewer than 2 intervals: no
        variability to estimate).

    Raises:
        ValueError: if ``spike_times`` is not 1-D, not finite or not strictly increasing.

    Example:
        >>> isi_cv([0.0, 10.0, 20.0, 30.0])
        0.0
        >>> round(isi_cv([0.0, 10.0, 30.0]), 3)   # ISIs 10 and 20: std 5, mean 15
        0.333
    """
    s = _check_spike_times(spike_times)
    if s.size < 3:
        return float("nan")
    return _cv(np.diff(s))


def firing_features(spike_times: ArrayLike, *, cv_threshold: float = CV_TONIC) -> SpikeFeatures:
    """Classify a spike train as silent, tonic or bursting, and compute its firing features.

    The rules of the published pipeline (Brandoit et al. 2025, arXiv 2509.12783; SCIENCE.md
    §1.4):

    - fewer than 3 spikes: silent (every float feature NaN);
    - CV of the inter-spike intervals (ISIs) ``<= cv_threshold``: tonic (spiking frequency and
      CV only; burst features NaN);
    - otherwise bursting. Bursts are split at ISIs strictly larger than
      ``(max ISI + min ISI) / 2``; the first and last bursts are taken as cut by the ends of
      the recording and dropped. Burst features are means over the remaining *complete* bursts.
      With no complete burst left, all burst features are NaN; with exactly one, the
      interburst frequency (which needs two burst onsets) is NaN. The train is still
      classified as bursting in both cases. Intra-burst frequency is NaN if every complete
      burst is a single spike.

    Main arguments:
        spike_times: spike times (ms) of one train, 1-D, finite, strictly increasing (e.g. the
            output of :func:`detect_spikes`).

    Other arguments:
        cv_threshold: largest CV(ISI) still called tonic (dimensionless, default 0.15).

    Returns:
        A :class:`SpikeFeatures`; frequencies in Hz, durations in ms.

    Raises:
        ValueError: if ``spike_times`` is not 1-D, holds a non-finite value or is not strictly
            increasing; or if ``cv_threshold`` is not a positive finite number.

    Example:
        >>> import numpy as np
        >>> burst = np.arange(5) * 10.0                          # 5 spikes at 100 Hz
        >>> train = np.concatenate([burst + 150.0 * k for k in range(6)])
        >>> f = firing_features(train)
        >>> f.pattern, f.n_bursts, f.spikes_per_burst, f.burst_duration
        (<FiringPattern.BURSTING: 'bursting'>, 4, 5.0, 40.0)
        >>> round(f.interburst_frequency, 6), round(f.intraburst_frequency, 6)
        (6.666667, 100.0)
    """
    cv_threshold = float(cv_threshold)
    if not (np.isfinite(cv_threshold) and cv_threshold > 0.0):
        raise ValueError(
            f"cv_threshold must be a positive finite CV (dimensionless); got {cv_threshold}."
        )
    s = _check_spike_times(spike_times)
    n = int(s.size)
    if n < _MIN_SPIKES:
        return SpikeFeatures(pattern=FiringPattern.SILENT, n_spikes=n)

    isi = np.diff(s)
    mean_isi = float(isi.mean())
    cv = _cv(isi)
    frequency = 1000.0 / mean_isi
    if cv <= cv_threshold:
        return SpikeFeatures(
            pattern=FiringPattern.TONIC, n_spikes=n, spiking_frequency=frequency, cv_isi=cv
        )

    # CV > 0 here, so max ISI > min ISI and the largest ISI always splits: >= 2 bursts.
    gap = isi > 0.5 * (isi.max() + isi.min())
    cuts = np.flatnonzero(gap)
    # Spike indices of each burst's first and last spike, complete bursts only ([1:-1]).
    first = cuts[:-1] + 1
    last = cuts[1:]
    n_bursts = int(first.size)
    if n_bursts == 0:
        return SpikeFeatures(
            pattern=FiringPattern.BURSTING,
            n_spikes=n,
            spiking_frequency=frequency,
            cv_isi=cv,
        )

    durations = s[last] - s[first]
    n_intra_isi = int((last - first).sum())
    intra = 1000.0 * n_intra_isi / durations.sum() if n_intra_isi > 0 else np.nan
    inter = 1000.0 / float(np.diff(s[first]).mean()) if n_bursts > 1 else np.nan
    return SpikeFeatures(
        pattern=FiringPattern.BURSTING,
        n_spikes=n,
        spiking_frequency=frequency,
        cv_isi=cv,
        intraburst_frequency=float(intra),
        interburst_frequency=float(inter),
        burst_duration=float(durations.mean()),
        spikes_per_burst=float((last - first + 1).mean()),
        n_bursts=n_bursts,
    )


def features_table(
    trains: Sequence[ArrayLike],
    ids: Sequence | None = None,
    *,
    cv_threshold: float = CV_TONIC,
) -> pd.DataFrame:
    """Firing features of many spike trains, one row per train.

    Args:
        trains: spike-time arrays (ms), one per train, each as accepted by
            :func:`firing_features`.
        ids: one label per train for the ``id`` column; default ``0 .. len(trains) - 1``.
        cv_threshold: passed to :func:`firing_features`.

    Returns:
        A DataFrame with column ``id`` followed by the :class:`SpikeFeatures` fields in order;
        ``pattern`` holds plain strings ("silent", "tonic", "bursting").

    Raises:
        ValueError: if ``ids`` does not have one entry per train, or a train is invalid (the
            message names which one).

    Example:
        >>> import numpy as np
        >>> table = features_table([np.arange(10) * 20.0, [5.0]], ids=["a", "b"])
        >>> table[["id", "pattern", "n_spikes", "spiking_frequency"]].values.tolist()
        [['a', 'tonic', 10, 50.0], ['b', 'silent', 1, nan]]
    """
    trains = list(trains)
    if ids is None:
        ids = list(range(len(trains)))
    else:
        ids = list(ids)
        if len(ids) != len(trains):
            raise ValueError(
                f"ids must have one entry per train; got {len(ids)} ids for {len(trains)} "
                f"trains."
            )
    names = [f.name for f in dataclasses.fields(SpikeFeatures)]
    rows = []
    for label, train in zip(ids, trains):
        try:
            features = firing_features(train, cv_threshold=cv_threshold)
        except ValueError as err:
            raise ValueError(f"train with id {label!r}: {err}") from err
        rows.append([getattr(features, name) for name in names])
    columns = {"id": ids}
    for j, name in enumerate(names):
        values = [row[j] for row in rows]
        if name == "pattern":
            columns[name] = pd.Series([str(p) for p in values], dtype=object)
        elif name in ("n_spikes", "n_bursts"):
            columns[name] = pd.Series(values, dtype=np.int64)
        else:
            columns[name] = pd.Series(values, dtype=float)
    return pd.DataFrame(columns)
