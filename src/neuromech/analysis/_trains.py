"""Checks on recorded spike trains before they are analysed or fed to a network."""

from __future__ import annotations

import numpy as np

SECONDS_HINT_MS = 2.0  # a median inter-spike interval below 2 ms is not a neuron firing in ms


def check_train(times) -> tuple[np.ndarray, list[str], str | None]:
    """Clean one recorded train: ``(times, notes, error)``.

    Non-finite entries are dropped, the times sorted and exact duplicates removed, each with a note;
    negative times are an ``error`` (spike times are ms from the start of the recording).
    """
    t = np.asarray(times, dtype=float).ravel()
    notes = []
    finite = np.isfinite(t)
    if not finite.all():
        notes.append(f"dropped {int((~finite).sum())} non-finite time(s)")
        t = t[finite]
    if (t < 0).any():
        return t, notes, (f"{int((t < 0).sum())} negative spike time(s) (first {t[t < 0][0]:g}); times must be "
                          "ms from the start of the recording — shift them")
    if np.any(np.diff(t) < 0):
        notes.append("times were not sorted; sorted them")
        t = np.sort(t)
    duplicate = np.concatenate([[False], np.diff(t) == 0])
    if duplicate.any():
        notes.append(f"removed {int(duplicate.sum())} duplicate time(s)")
        t = t[~duplicate]
    return t, notes, None


def looks_like_seconds(trains) -> bool:
    """True if the trains' pooled median ISI is below 2 ms: times probably in seconds, not ms."""
    isis = [np.diff(t) for t in trains if len(t) >= 3]
    return bool(isis) and float(np.median(np.concatenate(isis))) < SECONDS_HINT_MS
