"""Spike tables: the long format ``id,spike_time`` and the Spike2Pop wide format ``ID,spiking_times``.

Long: one row per spike (ms), models without spikes do not appear. Wide (the format of the
published Spike2Pop tool, Brandoit et al. 2025): one row per model, ``spiking_times`` a string
``"[t1, t2, ...]"`` in CSV (``"[]"`` for a silent model); in Parquet a native list column (ragged
data stored as strings is for CSV compatibility only); the readers accept both.

Internally a block of trains is held as ``(ids (N,), spike_times (M,), offsets (N+1,))``: the spikes
of model k are ``spike_times[offsets[k]:offsets[k+1]]``, as in :class:`neuromech.cbm.SimulationResult`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_path
from ._tables import check_unique, describe_rows, normalise_ids, parse_ids, read_raw, row_label, table_kind

SPIKE_FORMATS = ("long", "spike2pop")
LONG_COLUMNS = ("id", "spike_time")
WIDE_COLUMNS = ("ID", "spiking_times")


def _check_format(format: str) -> str:
    if format not in SPIKE_FORMATS:
        raise ValueError(f"unknown spike table format {format!r}; choose one of {', '.join(SPIKE_FORMATS)}")
    return format


def format_train(times) -> str:
    """``"[t1, t2, ...]"`` with each time written exactly (shortest round-trip repr); ``"[]"`` if empty."""
    return "[" + ", ".join(repr(t) for t in np.asarray(times, dtype=float).tolist()) + "]"


_SEPARATOR = re.compile(r"\s*,\s*|\s+")


def parse_train(text: str) -> np.ndarray:
    """Parse ``"[t1, t2, ...]"`` (commas and/or whitespace between numbers, ``"[]"`` for none).

    Raises:
        ValueError: if the brackets are missing, a number is malformed or not finite, or a
            separator is doubled.
    """
    s = str(text).strip()
    if len(s) < 2 or s[0] != "[" or s[-1] != "]":
        raise ValueError("expected a list like '[12.5, 40.1]' (or '[]' for no spikes)")
    inner = s[1:-1].strip()
    if not inner:
        return np.zeros(0)
    tokens = _SEPARATOR.split(inner)
    if any(t == "" for t in tokens):
        raise ValueError("empty entry between separators")
    try:
        values = np.array([float(t) for t in tokens])
    except ValueError as err:
        raise ValueError(str(err)) from None
    if not np.all(np.isfinite(values)):
        raise ValueError("spike times must be finite")
    return values


class SpikeWriter:
    """Write spike trains block by block (e.g. one chunk of a large job at a time) to one table.

    The file appears at ``path`` only when the ``with`` block ends without error (atomic
    replace); memory holds one block at a time.

    Args:
        path: ``*.csv`` or ``*.parquet``.
        format: ``"long"`` (``id,spike_time``) or ``"spike2pop"`` (``ID,spiking_times``).

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "spikes.csv"
        >>> with SpikeWriter(out, format="spike2pop") as w:
        ...     w.write([7, 8], [10.5, 20.25], [0, 2, 2])
        >>> print(out.read_text().strip())
        ID,spiking_times
        7,"[10.5, 20.25]"
        8,"[]"
    """

    def __init__(self, path: str | os.PathLike, *, format: str = "long"):
        self.path = Path(path)
        self.kind = table_kind(path)
        self.format = _check_format(format)
        self._stack: contextlib.ExitStack | None = None
        self._parquet = None
        self._csv = None

    def __enter__(self) -> "SpikeWriter":
        with contextlib.ExitStack() as stack:
            tmp = stack.enter_context(atomic_path(self.path))
            if self.kind == "csv":
                fh = stack.enter_context(open(tmp, "w", newline="", encoding="utf-8"))
                fh.write(",".join(LONG_COLUMNS if self.format == "long" else WIDE_COLUMNS) + "\n")
                # Spike2Pop quotes every train ("[]" too); numbers (ids, times) are never quoted.
                quoting = csv.QUOTE_MINIMAL if self.format == "long" else csv.QUOTE_NONNUMERIC
                self._csv = csv.writer(fh, lineterminator="\n", quoting=quoting)
            else:
                self._tmp = tmp
                stack.callback(self._close_parquet)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None and self.kind == "parquet" and self._parquet is None:
            self._write_parquet(np.zeros(0, np.int64), np.zeros(0), np.zeros(1, np.int64))  # empty table
        stack, self._stack = self._stack, None
        return stack.__exit__(exc_type, exc, tb)

    def write(self, ids, spike_times, offsets) -> None:
        """Append the trains of models ``ids`` (N,): model k's spikes (ms) are
        ``spike_times[offsets[k]:offsets[k+1]]``."""
        if self._stack is None:
            raise RuntimeError("use SpikeWriter in a with block")
        ids = normalise_ids(ids)
        offsets = np.asarray(offsets, dtype=np.int64)
        times = np.asarray(spike_times, dtype=np.float64)
        if ids.ndim != 1 or offsets.shape != (ids.size + 1,):
            raise ValueError(f"offsets must have shape (N+1,) = ({ids.size + 1},), got {offsets.shape}")
        if np.any(np.diff(offsets) < 0) or offsets[0] < 0 or offsets[-1] > times.size:
            raise ValueError("offsets must be non-decreasing indices into spike_times")
        times, offsets = times[offsets[0]:offsets[-1]], offsets - offsets[0]
        if self.kind == "parquet":
            self._write_parquet(ids, times, offsets)
        elif self.format == "long":
            ids_long = np.repeat(ids, np.diff(offsets)).tolist()
            self._csv.writerows(zip(ids_long, times.tolist()))  # floats written by repr: exact
        else:
            self._csv.writerows(
                (i, format_train(times[a:b])) for i, a, b in zip(ids.tolist(), offsets[:-1], offsets[1:])
            )

    def _write_parquet(self, ids, times, offsets):
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.format == "long":
            columns = {"id": pa.array(np.repeat(ids, np.diff(offsets))), "spike_time": pa.array(times)}
        else:
            trains = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(times, pa.float64()))
            columns = {"ID": pa.array(ids), "spiking_times": trains}
        table = pa.table(columns)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._tmp, table.schema)
        elif table.schema != self._parquet.schema:
            table = table.cast(self._parquet.schema)  # e.g. an empty block typed differently
        if table.num_rows:
            self._parquet.write_table(table)

    def _close_parquet(self):
        if self._parquet is not None:
            self._parquet.close()


def write_spikes(path: str | os.PathLike, spikes, *, ids=None, format: str = "long") -> Path:
    """Write spike trains to ``path`` (CSV or Parquet by suffix), atomically.

    Main arguments:
        path: output file, ``*.csv`` or ``*.parquet``.
        spikes: a :class:`neuromech.cbm.SimulationResult`, or a long table (DataFrame) with columns
            ``id, spike_time`` (ms).

    Other arguments:
        ids: every model to write, in order (default: the result's ids, or the table's ids in order
            of first appearance). With ``format="spike2pop"`` models without spikes get ``"[]"``.
        format: ``"long"`` (``id,spike_time``) or ``"spike2pop"`` (``ID,spiking_times``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: unknown format or suffix, a table without ``id``/``spike_time``, or spikes of an
            id missing from ``ids``.
    """
    all_ids, times, offsets = _to_blocks(spikes, ids)
    with SpikeWriter(path, format=format) as writer:
        writer.write(all_ids, times, offsets)
    return Path(path)


def _to_blocks(spikes, ids):
    if hasattr(spikes, "spike_times") and hasattr(spikes, "offsets"):
        if ids is not None:
            raise ValueError("ids come from the SimulationResult; do not pass them")
        return np.asarray(spikes.ids), np.asarray(spikes.spike_times), np.asarray(spikes.offsets)
    table = pd.DataFrame(spikes)
    missing = [c for c in LONG_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"a spike table needs columns id, spike_time; missing {', '.join(missing)}")
    codes, uniques = pd.factorize(table["id"])
    if ids is None:
        all_ids = np.asarray(uniques)
    else:
        all_ids = np.asarray(ids)
        position = pd.Index(all_ids).get_indexer(uniques)
        if (position < 0).any():
            absent = np.asarray(uniques)[position < 0][:5].tolist()
            raise ValueError(f"the spike table has ids not in `ids`: {absent}")
        codes = position[codes]
    order = np.argsort(codes, kind="stable")
    times = table["spike_time"].to_numpy(dtype=float)[order]
    offsets = np.searchsorted(codes[order], np.arange(len(all_ids) + 1))
    return all_ids, times, offsets


def read_trains(path: str | os.PathLike) -> dict:
    """Spike trains from a spike table (either format, CSV or Parquet), as ``{id: times (ms)}``.

    With the Spike2Pop format every row appears (silent models map to an empty array); with the long
    format only models that spiked. Spikes keep the file's order within each model.

    Raises:
        ValueError: unsupported suffix, empty file, columns of neither format, malformed rows (the
            message names them by row and CSV line), duplicated ids in the wide format.
        OSError: the file cannot be opened.
    """
    ids, times, offsets = read_blocks(path)
    return {i: times[a:b] for i, a, b in zip(ids.tolist(), offsets[:-1], offsets[1:])}


def read_spikes(path: str | os.PathLike) -> pd.DataFrame:
    """A spike table (either format, CSV or Parquet) as a long DataFrame ``id, spike_time`` (ms).

    Models without spikes (``"[]"`` in the wide format) have no rows; use :func:`read_trains` to
    keep them. Raises as :func:`read_trains`.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
        >>> _ = p.write_text('ID,spiking_times\\n3,"[1.5,  2.5]"\\n4,[]\\n')
        >>> read_spikes(p).to_dict("list")
        {'id': [3, 3], 'spike_time': [1.5, 2.5]}
    """
    ids, times, offsets = read_blocks(path)
    return pd.DataFrame({"id": np.repeat(ids, np.diff(offsets)), "spike_time": times})


def read_blocks(path: str | os.PathLike):
    """``(ids, spike_times, offsets)`` from a spike table; see :func:`read_trains`."""
    kind = table_kind(path)
    raw = read_raw(path, what="spike table")
    columns = set(raw.columns)
    if set(LONG_COLUMNS) <= columns:
        if kind == "csv" and not (
            pd.api.types.is_numeric_dtype(raw["spike_time"]) and np.isfinite(raw["spike_time"]).all()
        ):
            raw = read_raw(path, what="spike table", text=True)  # keep the cells as written, to report them
        return _read_long(raw, kind, path)
    if set(WIDE_COLUMNS) <= columns:
        return _read_wide(raw, kind, path)
    raise ValueError(
        f"{path}: not a spike table; expected columns 'id,spike_time' (long) or 'ID,spiking_times' "
        f"(Spike2Pop), found {', '.join(map(repr, raw.columns)) or 'none'}"
    )


def _read_long(raw, kind, path):
    ids = parse_ids(raw["id"], kind=kind, column="id", path=path) if len(raw) else np.zeros(0, np.int64)
    text = raw["spike_time"]
    times = pd.to_numeric(text.astype(str).str.strip() if text.dtype == object else text, errors="coerce")
    times = times.to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(times))
    if bad.size:
        raise ValueError(
            f"{path}: spike_time must be a finite number of ms; malformed at "
            f"{describe_rows(kind, bad, text.tolist())}"
        )
    codes, uniques = pd.factorize(ids)
    order = np.argsort(codes, kind="stable")
    offsets = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    return np.asarray(uniques), times[order], offsets


def _read_wide(raw, kind, path):
    ids = parse_ids(raw["ID"], kind=kind, column="ID", path=path) if len(raw) else np.zeros(0, np.int64)
    check_unique(ids, what=str(path))
    trains, errors = [], []
    for i, cell in enumerate(raw["spiking_times"].tolist()):
        try:
            if isinstance(cell, str):
                trains.append(parse_train(cell))
            else:
                values = np.asarray(cell, dtype=float) if cell is not None else None
                if values is None or values.ndim != 1 or not np.all(np.isfinite(values)):
                    raise ValueError("expected a list of finite spike times")
                trains.append(values)
        except (ValueError, TypeError) as err:
            errors.append(f"{row_label(kind, i)}: {cell!r} ({err})")
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValueError(f"{path}: malformed spiking_times at " + "; ".join(errors[:5]) + more)
    counts = np.array([t.size for t in trains], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    times = np.concatenate(trains) if trains else np.zeros(0)
    return ids, times, offsets
