"""Population tables: one row per model, an ``id`` column and one column per conductance (mS/cm²)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import atomic_path
from ._tables import check_unique, parse_ids, read_raw, table_kind


def read_population(path: str | os.PathLike) -> pd.DataFrame:
    """Read a population table (CSV or Parquet by suffix) with an ``id`` column first.

    The ``id`` column (``ID`` is accepted too) names the models; ids must be unique. A table without
    one is numbered by row order: ids ``0 .. N−1``, the ids :func:`neuromech.cbm.simulate` would
    use. The other columns are returned as read; validate them against a model with
    ``model.conductances(table)``, which names missing, unknown, negative or non-finite values.

    Returns:
        DataFrame with columns ``id, g_..., ...`` (one row per model).

    Raises:
        ValueError: unsupported suffix, empty file, a header without rows, empty or duplicated ids,
            an unparsable file.
        OSError: the file cannot be opened (missing, a directory, no permission).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "pop.csv"
        >>> _ = p.write_text("g_Na,g_K,g_leak\\n120,36,0.3\\n")
        >>> read_population(p).to_dict("list")
        {'id': [0], 'g_Na': [120], 'g_K': [36], 'g_leak': [0.3]}
    """
    kind = table_kind(path)
    table = read_raw(path, what="population file")
    if len(table) == 0:
        raise ValueError(
            f"population file {path} has no models: a header ({', '.join(table.columns)}) but no rows"
        )
    if "id" not in table.columns and "ID" in table.columns:
        table = table.rename(columns={"ID": "id"})
    if "id" in table.columns:
        ids = parse_ids(table["id"], kind=kind, column="id", path=path)
        check_unique(ids, what=f"population file {path}")
        table = table.drop(columns="id")
    else:
        ids = np.arange(len(table))
    table.insert(0, "id", ids)
    return table.reset_index(drop=True)


def write_population(path: str | os.PathLike, table: pd.DataFrame) -> Path:
    """Write a population table (CSV or Parquet by suffix) atomically; ``id`` first if present."""
    kind = table_kind(path)
    table = pd.DataFrame(table)
    if "id" in table.columns:
        table = table[["id"] + [c for c in table.columns if c != "id"]]
    with atomic_path(path) as tmp:
        if kind == "csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return Path(path)
