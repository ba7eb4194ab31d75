"""Voltage (and state) traces in a NumPy ``.npz`` archive, readable without pickling."""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np

from ._atomic import atomic_path
from ._tables import normalise_ids


@dataclasses.dataclass(frozen=True)
class Traces:
    """Traces of N models on a common time grid.

    Attributes:
        time: (T,) sample times (ms).
        voltage: (N, T) membrane voltage (mV).
        ids: (N,) model identifiers.
        state_names: names of the last axis of ``states`` (``("V",)`` when only voltage is stored).
        states: (N, T, S) full states, or ``None``.
    """

    time: np.ndarray
    voltage: np.ndarray
    ids: np.ndarray
    state_names: tuple[str, ...] = ("V",)
    states: np.ndarray | None = None


def _check_suffix(path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".npz":
        raise ValueError(f"{path}: traces are stored as NumPy archives; name the file *.npz")
    return path


def write_traces(path: str | os.PathLike, time, voltage, *, ids=None, states=None, state_names=None) -> Path:
    """Write traces to ``path`` (``*.npz``) atomically.

    Main arguments:
        path: output file, ``*.npz``.
        time: (T,) sample times (ms).
        voltage: (N, T) or (T,) membrane voltage (mV).

    Other arguments:
        ids: (N,) model identifiers (default 0..N−1).
        states: (N, T, S) full states; then ``state_names`` (S names) is required.
        state_names: names of the states (default ``("V",)`` without ``states``).

    Raises:
        ValueError: wrong suffix or inconsistent shapes.
    """
    path = _check_suffix(path)
    time = np.asarray(time, dtype=float)
    voltage = np.atleast_2d(np.asarray(voltage))
    if time.ndim != 1 or voltage.ndim != 2 or voltage.shape[1] != time.size:
        raise ValueError(f"voltage must have shape (N, T) with T = len(time) = {time.size}, got {voltage.shape}")
    n = voltage.shape[0]
    ids = np.arange(n) if ids is None else normalise_ids(ids)
    if ids.shape != (n,):
        raise ValueError(f"ids must have shape ({n},), got {ids.shape}")
    arrays = {"time": time, "voltage": voltage, "ids": ids}
    if states is not None:
        states = np.asarray(states)
        if state_names is None or states.shape != (n, time.size, len(state_names)):
            raise ValueError(
                f"states must have shape (N, T, len(state_names)) = ({n}, {time.size}, "
                f"{None if state_names is None else len(state_names)}), got {states.shape}"
            )
        arrays["states"] = states
    arrays["state_names"] = np.asarray(tuple(state_names) if state_names is not None else ("V",), dtype=str)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
            np.savez(fh, **arrays)
    return path


def read_traces(path: str | os.PathLike) -> Traces:
    """Read traces written by :func:`write_traces`.

    Raises:
        ValueError: wrong suffix, not a NumPy archive, or an archive without time/voltage/ids.
        OSError: the file cannot be opened.
    """
    path = _check_suffix(path)
    if path.is_file() and not zipfile.is_zipfile(path):  # np.load would try to unpickle it
        raise ValueError(f"{path} is not a NumPy .npz archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("time", "voltage", "ids") if k not in data.files]
            if missing:
                raise ValueError(f"{path} is not a traces file: missing {', '.join(missing)}")
            return Traces(
                time=data["time"],
                voltage=data["voltage"],
                ids=data["ids"],
                state_names=tuple(data["state_names"].tolist()) if "state_names" in data.files else ("V",),
                states=data["states"] if "states" in data.files else None,
            )
    except (zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path} is not a NumPy .npz archive: {err}") from err
