"""Helpers shared by the table readers and writers: file kind from the suffix, ids, row labels."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

TABLE_KINDS = {".csv": "csv", ".parquet": "parquet"}


def table_kind(path: str | os.PathLike) -> str:
    """``"csv"`` or ``"parquet"`` from the file name's suffix (case-insensitive).

    Raises:
        ValueError: for any other suffix.
    """
    suffix = Path(path).suffix.lower()
    try:
        return TABLE_KINDS[suffix]
    except KeyError:
        raise ValueError(
            f"{path}: unsupported table file type {suffix or '(no suffix)'!r}; name it *.csv or *.parquet"
        ) from None


def read_raw(path: str | os.PathLike, *, what: str, text: bool = False) -> pd.DataFrame:
    """Read a CSV or Parquet table with clear errors; ``text`` keeps CSV cells as strings.

    Raises:
        FileNotFoundError, PermissionError, IsADirectoryError: as raised by the OS.
        ValueError: an empty, unparsable or non-table file (the message names ``what`` it should be).
    """
    path = Path(path)
    kind = table_kind(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot read {what} {path}: it is a directory")
    try:
        if kind == "csv":
            options = dict(dtype=str, keep_default_na=False) if text else {}
            table = pd.read_csv(path, skipinitialspace=True, **options)
        else:
            table = pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{what} {path} is empty (no header line)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot parse {what} {path} as CSV: {err}") from err
    except OSError:
        raise
    except Exception as err:  # pyarrow raises its own types (ArrowInvalid, ...) for corrupt files
        if kind == "parquet":
            raise ValueError(f"cannot read {what} {path} as Parquet: {err}") from err
        raise
    table.columns = [str(c).strip() for c in table.columns]
    return table


def row_label(kind: str, i: int) -> str:
    """Human row number of data row ``i`` (0-based): 1-based, with the CSV line (header is line 1)."""
    return f"row {i + 1} (line {i + 2})" if kind == "csv" else f"row {i + 1}"


def describe_rows(kind: str, rows, values, limit: int = 5) -> str:
    """``row 3 (line 4): 'abc'; ...`` for the first ``limit`` bad rows, with the total count."""
    rows = list(rows)
    shown = "; ".join(f"{row_label(kind, int(i))}: {values[int(i)]!r}" for i in rows[:limit])
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    return f"{shown}{more}"


def parse_ids(values, *, kind: str, column: str, path) -> np.ndarray:
    """Identifiers from a column: integers when every cell is an integer, else stripped strings.

    Raises:
        ValueError: for empty/missing ids.
    """
    series = pd.Series(values)
    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        text = series.astype(str).str.strip()
        missing = np.flatnonzero((text == "").to_numpy() | series.isna().to_numpy())
        if missing.size:
            raise ValueError(
                f"{path}: column {column!r} has missing ids at {describe_rows(kind, missing, text.tolist())}"
            )
        numbers = pd.to_numeric(text, errors="coerce")
        if not numbers.isna().any() and np.all(np.mod(numbers, 1) == 0):
            return numbers.to_numpy().astype(np.int64)
        return text.to_numpy().astype(str)
    array = series.to_numpy()
    if array.dtype.kind == "f":
        missing = np.flatnonzero(~np.isfinite(array))
        if missing.size:
            raise ValueError(
                f"{path}: column {column!r} has missing ids at {describe_rows(kind, missing, array.tolist())}"
            )
        if np.all(np.mod(array, 1) == 0):
            return array.astype(np.int64)
    return array


def normalise_ids(ids) -> np.ndarray:
    """Ids as a NumPy array that CSV, Parquet and ``.npz`` store without pickling (ints or strings)."""
    ids = np.asarray(ids)
    if ids.dtype == object:
        values = ids.tolist()
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            return ids.astype(np.int64)
        return ids.astype(str)
    return ids


def check_unique(ids: np.ndarray, *, what: str) -> None:
    """Raise ``ValueError`` naming the duplicated ids, if any."""
    values, counts = np.unique(ids, return_counts=True)
    dup = values[counts > 1]
    if dup.size:
        shown = ", ".join(map(repr, dup[:5].tolist())) + (f" (and {dup.size - 5} more)" if dup.size > 5 else "")
        raise ValueError(f"{what}: ids must be unique; duplicated: {shown}")
