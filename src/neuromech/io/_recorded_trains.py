"""Reading recorded spike trains leniently: one bad row or train is reported, the others are kept.

Files written by neuromech are read strictly (:func:`~neuromech.io.read_trains`); files that come from
an experiment go through :func:`read_recorded_trains`, which never lets one malformed entry cost the
other neurons their results.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..analysis import check_train
from ._spikes import _SEPARATOR, LONG_COLUMNS, WIDE_COLUMNS
from ._tables import read_raw, row_label, table_kind

def _key(value):
    """An id as an int when it is one (``"7"`` and ``7.0`` → 7), else its stripped text."""
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else text


def _parse_lenient(text: str) -> np.ndarray:
    """``"[t1, t2, ...]"`` as floats, non-finite entries kept (they are dropped with a note later)."""
    s = text.strip()
    if len(s) < 2 or s[0] != "[" or s[-1] != "]":
        raise ValueError("expected a list like '[12.5, 40.1]' (or '[]' for no spikes)")
    inner = s[1:-1].strip()
    return np.array([float(t) for t in _SEPARATOR.split(inner)]) if inner else np.zeros(0)


def read_recorded_trains(path: str | os.PathLike) -> tuple[dict, dict]:
    """Spike trains of a recorded spike table, leniently: ``(trains, problems)``.

    ``trains`` maps each id to its cleaned times (ms; see :func:`check_train`); ``problems`` maps
    an id to a message when its entry was unusable (malformed row, repeated id in the Spike2Pop
    format, negative times) — that id has no train — or to notes on what was cleaned.

    Accepts the long format ``id,spike_time`` and the Spike2Pop format ``ID,spiking_times``
    (``"[t1, t2, ...]"``, ms), CSV or Parquet.

    Raises:
        ValueError: the file is empty or has neither format's columns (nothing can be read).
        OSError: the file cannot be opened.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
        >>> _ = p.write_text('ID,spiking_times\\n1,"[5, 1, 9]"\\n2,"[oops]"\\n')
        >>> trains, problems = read_recorded_trains(p)
        >>> trains[1].tolist(), sorted(problems)
        ([1.0, 5.0, 9.0], [1, 2])
    """
    kind = table_kind(path)
    raw = read_raw(path, what="spike table", text=(kind == "csv"))
    columns = set(raw.columns)
    raw_trains: dict = {}
    problems: dict = {}
    if set(LONG_COLUMNS) <= columns:
        for i, (ident, cell) in enumerate(zip(raw["id"].tolist(), raw["spike_time"].tolist())):
            key = _key(ident)
            try:
                value = float(str(cell).strip())
            except ValueError:
                problems.setdefault(key, []).append(f"{row_label(kind, i)}: malformed spike_time {cell!r} (row skipped)")
                continue
            raw_trains.setdefault(key, []).append(value)
    elif set(WIDE_COLUMNS) <= columns:
        ids = [_key(v) for v in raw["ID"].tolist()]
        counts = pd.Series(ids).value_counts()
        for i, (key, cell) in enumerate(zip(ids, raw["spiking_times"].tolist())):
            if counts[key] > 1:
                problems[key] = [f"id repeated in {counts[key]} rows; give each train its own id"]
                continue
            try:
                raw_trains[key] = _parse_lenient(cell) if isinstance(cell, str) else np.asarray(cell, dtype=float)
            except (ValueError, TypeError) as err:
                problems[key] = [f"{row_label(kind, i)}: malformed spiking_times {cell!r} ({err})"]
    else:
        raise ValueError(
            f"{path}: not a spike table; expected columns 'id,spike_time' (long) or 'ID,spiking_times' "
            f"(Spike2Pop), found {', '.join(map(repr, raw.columns)) or 'none'}"
        )
    trains = {}
    for key, times in raw_trains.items():
        cleaned, notes, error = check_train(times)
        if error is not None:
            problems.setdefault(key, []).append(error)
            continue
        trains[key] = cleaned
        if notes:
            problems.setdefault(key, []).extend(notes)
    return trains, {k: "; ".join(v) for k, v in problems.items()}
