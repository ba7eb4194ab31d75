"""Loaders and a writer for current-clamp recordings: text/CSV, NPZ, MATLAB .mat, ABF and NWB.

Each loader converts to ms, mV and nA and writes into ``metadata["units"]`` the unit it read for
each quantity; a unit it had to *assume* (the file does not say and the caller did not pass one)
is listed in ``metadata["units_assumed"]`` and announced with a :class:`UnitWarning`.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from ._recording import Recording
from ._units import canonical_unit, to_internal

TEXT_SUFFIXES = (".csv", ".txt", ".dat")  # read by read_text
SUFFIXES = (*TEXT_SUFFIXES, ".npz", ".mat", ".abf", ".nwb")


class UnitWarning(UserWarning):
    """A loader assumed a unit the file does not state."""


class _Units:
    """Collects the units a loader read or assumed, and warns once about the assumed ones."""

    def __init__(self, path):
        self.path, self.read, self.assumed = Path(path), {}, []

    def use(self, kind: str, given: str | None, stored: str | None, default: str) -> str:
        if given is not None:
            unit = canonical_unit(given, kind)
        elif stored is not None:
            unit = canonical_unit(stored, kind)
        else:
            unit = default
            self.assumed.append(kind)
        self.read[kind] = unit
        return unit

    def metadata(self, **extra) -> dict:
        if self.assumed:
            said = ", ".join(f"{k} in {self.read[k]}" for k in self.assumed)
            warnings.warn(
                f"{self.path.name}: the file does not state its units; assumed {said}. Pass "
                + ", ".join(f"{k}_unit=" for k in self.assumed) + " to say otherwise",
                UnitWarning, stacklevel=4,
            )
        return {"source": str(self.path), "units": dict(self.read), "units_assumed": list(self.assumed), **extra}


def read_recording(path: str | os.PathLike, **options) -> Recording:
    """Read a current-clamp recording, choosing the loader by the file's suffix.

    ``.csv/.txt/.dat`` → :func:`read_text`, ``.npz`` → :func:`read_npz`, ``.mat`` → :func:`read_mat`,
    ``.abf`` → :func:`read_abf`, ``.nwb`` → :func:`read_nwb`; ``options`` go to that loader.

    Raises:
        ValueError: for an unknown suffix (listing the known ones) or bad content.
        OSError: if the file cannot be opened.

    Example:
        >>> rec = read_recording("../shared/data/recordings/pyabf/171116sh_0016.abf")  # doctest: +SKIP
        >>> rec.metadata["units"]                                                     # doctest: +SKIP
        {'time': 'ms', 'voltage': 'mV', 'current': 'pA'}
    """
    path = Path(path)
    loaders = {**dict.fromkeys(TEXT_SUFFIXES, read_text), ".npz": read_npz, ".mat": read_mat, ".abf": read_abf,
               ".nwb": read_nwb}
    loader = loaders.get(path.suffix.lower())
    if loader is None:
        raise ValueError(f"{path}: unknown recording format {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    return loader(path, **options)


# ------------------------------------------------------------------------------------------ text
_NAMES = {"sweep": "sweep", "t": "time", "time": "time", "v": "voltage", "voltage": "voltage",
          "v_measured": "voltage", "i": "current", "current": "current", "i_applied": "current",
          "i_injected": "current"}


def _column(name: str) -> tuple[str | None, str | None]:
    """(quantity, unit) of a header such as ``t_ms``, ``v_mV``, ``current_pA``, ``sweep``."""
    name = name.strip()
    if name.lower() in _NAMES:
        return _NAMES[name.lower()], None
    m = re.fullmatch(r"(.+?)[_ \[(]+([A-Za-zµ]+)[\])]?", name)
    if m and m.group(1).lower() in _NAMES:
        return _NAMES[m.group(1).lower()], m.group(2)
    return None, None


def read_text(path, *, columns: tuple[str, ...] | None = None, dt: float | None = None,
              time_unit: str | None = None, voltage_unit: str | None = None,
              current_unit: str | None = None) -> Recording:
    """Read a CSV (comma) or whitespace-separated text recording.

    With a header, columns are found by name: ``sweep`` (optional), ``t``/``time``, ``v``/``voltage``,
    ``i``/``current``, each optionally with its unit (``t_ms``, ``v_mV``, ``i_pA``; also
    ``v_measured``/``i_applied`` as written by ``neuromech predict``). Without a header, pass
    ``columns``, e.g. ``("t", "i", "v")``. Rows of a sweep must be consecutive and equally spaced
    in time; sweeps must have the same length.

    Args:
        path: the file.
        columns: names of the columns of a file without header (``"t"``, ``"v"``, ``"i"``, ``"sweep"``,
            or ``"-"`` to skip one).
        dt: sampling period (in ``time_unit``) when there is no time column.
        time_unit, voltage_unit, current_unit: units of the file's columns, overriding a unit in
            the header; assumed ms, mV and nA (with a :class:`UnitWarning`) when neither says.

    Raises:
        ValueError: for missing columns, non-numeric values or NaNs (row given), uneven time steps
            or gaps, sweeps of different lengths, or an unknown unit.
    """
    import pandas as pd

    path = Path(path)
    text_sep = "," if path.suffix.lower() == ".csv" else r"\s+"
    first = path.read_text(errors="replace").lstrip().split("\n", 1)[0]
    has_header = bool(re.search(r"[A-Za-z_]", first.replace("e-", "").replace("e+", "").replace("E-", "")))
    if has_header:
        table = pd.read_csv(path, sep=text_sep, engine="python")
        found = {}
        for name in table.columns:
            kind, unit = _column(str(name))
            if kind is not None:
                found[kind] = (name, unit)
    else:
        if columns is None:
            raise ValueError(
                f"{path}: no header line, so the columns are unnamed. Name them in the file's order, with "
                "their units: add a header line such as 't_ms,v_mV,i_nA', or pass columns=('t_s', 'i_pA', "
                "'v_mV') ('-' skips a column), or for neuromech fit write [data] columns = ['t_s', 'i_pA', "
                "'v_mV'] in the config"
            )
        table = pd.read_csv(path, sep=text_sep, header=None, engine="python")
        if table.shape[1] != len(columns):
            raise ValueError(f"{path}: {table.shape[1]} columns in the file but {len(columns)} names in columns={columns}")
        found = {}
        for k, name in enumerate(columns):
            kind, unit = _column(name)
            if kind is None and name != "-":
                raise ValueError(f"unknown column name {name!r}; use t, v, i, sweep (optionally with a unit, t_s) or -")
            if kind is not None:
                found[kind] = (k, unit)
    for needed in ("voltage", "current"):
        if needed not in found:
            raise ValueError(
                f"{path}: no {needed} column; columns found: {list(map(str, table.columns))}. Name them "
                "v_mV / i_nA (or v, i) in the header"
            )
    if "time" not in found and dt is None:
        raise ValueError(f"{path}: no time column; pass dt= (the sampling period) or add a t_ms column")
    values = {}
    for kind, (col, _) in found.items():
        x = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            line = int(bad[0]) + (2 if has_header else 1)
            raise ValueError(
                f"{path}: {kind} column has {bad.size} missing or non-numeric value(s), the first on line "
                f"{line}; a gap in a recording cannot be fitted — cut the file around it"
            )
        values[kind] = x
    units = _Units(path)
    t_unit = units.use("time", time_unit, found.get("time", (0, None))[1], "ms")
    v = to_internal(values["voltage"], units.use("voltage", voltage_unit, found["voltage"][1], "mV"), "voltage")
    i = to_internal(values["current"], units.use("current", current_unit, found["current"][1], "nA"), "current")
    sweep = values.get("sweep", np.zeros(len(v)))
    labels, starts = np.unique(sweep, return_index=True)
    order = np.argsort(starts)
    labels = labels[order]
    rows = [np.flatnonzero(sweep == s) for s in labels]
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"{path}: sweeps have different lengths {sorted(lengths)}; split them into separate files")
    if "time" in values:
        t = to_internal(values["time"], t_unit, "time")
        step, t0 = _uniform_step(t[rows[0]], path)
        for r in rows[1:]:
            _uniform_step(t[r], path)
    else:
        step, t0 = float(to_internal(dt, t_unit, "time")), 0.0
    return Recording(np.stack([v[r] for r in rows]), np.stack([i[r] for r in rows]), dt=step, t0=t0,
                     sweeps=tuple(int(s) for s in labels), metadata=units.metadata(format="text"))


def _uniform_step(t: np.ndarray, path) -> tuple[float, float]:
    """The constant time step (ms) of ``t`` and its start; errors for gaps or uneven sampling."""
    d = np.diff(t)
    if d.size == 0:
        raise ValueError(f"{path}: a sweep has a single sample")
    step = float(np.median(d))
    if not step > 0:
        raise ValueError(f"{path}: time does not increase (median step {step} ms)")
    # Text files round times; 1 % of a step is far below any real jitter yet above printing error.
    off = np.flatnonzero(np.abs(d - step) > 0.01 * step)
    if off.size:
        k = int(off[0])
        what = "a gap" if d[k] > step else "an uneven step"
        raise ValueError(
            f"{path}: {what} in the time column at t = {t[k]:g} ms (step {d[k]:g} ms, expected {step:g} ms); "
            "recordings must be uniformly sampled — cut the record at the gap or resample it"
        )
    return float((t[-1] - t[0]) / (len(t) - 1)), float(t[0])


# ------------------------------------------------------------------------------------------- npz
def read_npz(path, *, time_unit: str | None = None, voltage_unit: str | None = None,
             current_unit: str | None = None) -> Recording:
    """Read a recording written by :func:`write_npz` (or any ``.npz`` with the same keys).

    Keys: ``voltage``, ``current`` ((sweeps, samples) or (samples,)), ``dt`` (sampling period);
    optional ``t0``, ``sweeps``, ``time_unit``/``voltage_unit``/``current_unit`` (strings, default
    ms/mV/nA, assumed with a warning when absent), ``truth_<name>`` ground-truth currents (nA).
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        missing = {"voltage", "current", "dt"} - keys
        if missing:
            raise ValueError(f"{path}: missing key(s) {sorted(missing)}; found {sorted(keys)}")
        stored = {k: str(data[f"{k}_unit"]) if f"{k}_unit" in keys else None for k in ("time", "voltage", "current")}
        units = _Units(path)
        t_unit = units.use("time", time_unit, stored["time"], "ms")
        v = to_internal(data["voltage"], units.use("voltage", voltage_unit, stored["voltage"], "mV"), "voltage")
        i_unit = units.use("current", current_unit, stored["current"], "nA")
        i = to_internal(data["current"], i_unit, "current")
        truth = {k[6:]: to_internal(data[k], i_unit, "current") for k in sorted(keys) if k.startswith("truth_")}
        meta = units.metadata(format="npz")
        if "metadata_json" in keys:  # what the writer knew (provenance, ground-truth parameters)
            stored_meta = json.loads(str(data["metadata_json"]))
            meta = {**stored_meta, **meta, "written_from": stored_meta.get("source")}
        if "description" in keys:
            meta["description"] = str(data["description"])
        return Recording(
            v, i, dt=float(to_internal(data["dt"], t_unit, "time")),
            t0=float(to_internal(data["t0"], t_unit, "time")) if "t0" in keys else 0.0,
            sweeps=tuple(int(s) for s in data["sweeps"]) if "sweeps" in keys else None,
            metadata=meta, truth=truth or None,
        )


def write_npz(path: str | os.PathLike, recording: Recording, *, description: str = "") -> Path:
    """Write ``recording`` (with its ground truth, if any) to ``path`` (.npz), atomically, in ms/mV/nA."""
    from ..io import atomic_path

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: a recording is written as .npz; name the file *.npz")
    arrays = {"voltage": recording.voltage, "current": recording.current, "dt": recording.dt, "t0": recording.t0,
              "sweeps": np.asarray(recording.sweeps), "time_unit": "ms", "voltage_unit": "mV",
              "current_unit": "nA", "description": description,
              "metadata_json": json.dumps(recording.metadata, default=str)}
    for k, x in (recording.truth or {}).items():
        arrays[f"truth_{k}"] = x
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


# ------------------------------------------------------------------------------------------- mat
def load_mat(path: Path) -> tuple[dict, list[str]]:
    """The variables of a MATLAB v5–v7.2 file and their names (without MATLAB's ``__`` headers)."""
    import scipy.io

    try:
        data = scipy.io.loadmat(path)
    except NotImplementedError as err:  # v7.3 files are HDF5
        raise ValueError(f"{path}: MATLAB v7.3 (HDF5) file; save it with -v7 or convert it to .npz") from err
    return data, sorted(k for k in data if not k.startswith("__"))


def mat_sampling(data: dict, path, dt: float | None, time_unit: str | None) -> tuple[float, str | None]:
    """``(dt, time_unit)`` of a ``.mat`` file: the ``dt`` argument, else a ``dt`` key, else the rate
    of an ``fs``/``Fs``/``rate`` key (Hz, so the period is in s)."""
    if dt is None and "dt" in data:
        dt = float(np.squeeze(data["dt"]))
    elif dt is None:
        for key in ("fs", "Fs", "rate"):
            if key in data:
                dt, time_unit = 1.0 / float(np.squeeze(data[key])), "s"
                break
    if dt is None:
        raise ValueError(f"{path}: no dt/fs key; pass dt= (sampling period, time_unit, default ms)")
    return dt, time_unit


def read_mat(path, *, neuron: int = 1, dt: float | None = None, time_unit: str | None = None,
             voltage_unit: str | None = None, current_unit: str | None = None) -> Recording:
    """Read a MATLAB ``.mat`` file (v5–v7.2) with voltages ``V1..Vn`` and currents ``I1..Im``.

    ``Vk``/``Ik`` are the voltage of neuron k and the current injected into it (the layout of the
    RMM authors' circuit recordings); pick one with ``neuron``. A 2-D ``Vk`` holds sweeps in its
    columns (samples × sweeps). The sampling period comes from a ``dt`` key, or ``fs``/``Fs`` (Hz),
    or the ``dt`` argument. Units assumed ms, mV, nA with a warning unless given.
    """
    path = Path(path)
    data, keys = load_mat(path)
    vk, ik = f"V{neuron}", f"I{neuron}"
    if vk not in data or ik not in data:
        raise ValueError(f"{path}: expected keys {vk} and {ik} (voltage and current of neuron {neuron}); found {keys}")
    units = _Units(path)
    dt, time_unit = mat_sampling(data, path, dt, time_unit)
    t_unit = units.use("time", time_unit, None, "ms")

    def sweeps(x):
        x = np.asarray(x, dtype=float)
        x = x.reshape(-1, 1) if min(x.shape) == 1 else x
        return x.T  # samples × sweeps → sweeps × samples

    v = to_internal(sweeps(data[vk]), units.use("voltage", voltage_unit, None, "mV"), "voltage")
    i = to_internal(sweeps(data[ik]), units.use("current", current_unit, None, "nA"), "current")
    return Recording(v, i, dt=float(to_internal(dt, t_unit, "time")),
                     metadata=units.metadata(format="mat", neuron=neuron))


# ------------------------------------------------------------------------------------------- abf
def read_abf(path, *, channel: int = 0, sweeps=None, voltage_unit: str | None = None,
             current_unit: str | None = None) -> Recording:
    """Read an Axon Binary Format file with pyabf: voltage ``sweepY`` and the command current
    ``sweepC`` rebuilt from the protocol's epoch table, both in the units the header states.

    Args:
        channel: the ADC channel holding the membrane voltage.
        sweeps: sweep numbers to read (default all).
    """
    import pyabf

    path = Path(path)
    abf = pyabf.ABF(str(path))
    if not 0 <= channel < abf.channelCount:
        raise ValueError(f"{path}: channel {channel} does not exist; the file has channels 0..{abf.channelCount - 1}")
    numbers = list(range(abf.sweepCount)) if sweeps is None else [int(s) for s in sweeps]
    vs, cs = [], []
    for s in numbers:
        if not 0 <= s < abf.sweepCount:
            raise ValueError(f"{path}: sweep {s} does not exist; the file has sweeps 0..{abf.sweepCount - 1}")
        abf.setSweep(s, channel=channel)
        vs.append(np.array(abf.sweepY, dtype=float))
        cs.append(np.array(abf.sweepC, dtype=float))
    units = _Units(path)
    units.use("time", None, "s", "ms")
    v = to_internal(np.stack(vs), units.use("voltage", voltage_unit, abf.sweepUnitsY, "mV"), "voltage")
    i = to_internal(np.stack(cs), units.use("current", current_unit, abf.sweepUnitsC, "nA"), "current")
    meta = units.metadata(format="abf", protocol=str(abf.protocol), channel=channel,
                          current_source="command (protocol epoch table)")
    return Recording(v, i, dt=1000.0 / abf.dataRate, sweeps=tuple(numbers), metadata=meta)


# ------------------------------------------------------------------------------------------- nwb
def read_nwb(path, *, series: str | None = None, voltage_unit: str | None = None,
             current_unit: str | None = None) -> Recording:
    """Read the current-clamp sweeps of an NWB file (pynwb), honouring each series' stored
    ``conversion`` and ``offset`` and its unit.

    Voltage: every ``CurrentClampSeries`` in ``acquisition`` (or those whose name starts with
    ``series``), ordered by ``sweep_number``; current: the ``CurrentClampStimulusSeries`` in
    ``stimulus`` with the same sweep number (or, for a single sweep, the only one).
    """
    from pynwb import NWBHDF5IO
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    path = Path(path)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        volts = [s for s in nwb.acquisition.values() if isinstance(s, CurrentClampSeries)
                 and (series is None or s.name.startswith(series))]
        stims = [s for s in nwb.stimulus.values() if isinstance(s, CurrentClampStimulusSeries)]
        if not volts:
            raise ValueError(f"{path}: no CurrentClampSeries in acquisition{' named ' + series + '*' if series else ''}; "
                             f"found {sorted(nwb.acquisition)}")
        volts.sort(key=lambda s: (s.sweep_number if s.sweep_number is not None else 0, s.name))
        by_sweep = {s.sweep_number: s for s in stims}
        units = _Units(path)
        units.use("time", None, "s", "ms")
        v_unit = units.use("voltage", voltage_unit, volts[0].unit, "mV")
        rows_v, rows_i, numbers, rates = [], [], [], set()
        for k, vs in enumerate(volts):
            stim = by_sweep.get(vs.sweep_number) or (stims[0] if len(stims) == 1 else None)
            if stim is None:
                raise ValueError(f"{path}: no CurrentClampStimulusSeries for sweep {vs.sweep_number} ({vs.name})")
            i_unit = units.use("current", current_unit, stim.unit, "nA")
            for s in (vs, stim):
                if s.rate is None:
                    raise ValueError(f"{path}: series {s.name} has timestamps, not a rate; resample it uniformly first")
                rates.add(float(s.rate))
            rows_v.append(to_internal(np.asarray(vs.data[:], float) * vs.conversion + vs.offset, v_unit, "voltage"))
            rows_i.append(to_internal(np.asarray(stim.data[:], float) * stim.conversion + stim.offset, i_unit, "current"))
            numbers.append(int(vs.sweep_number) if vs.sweep_number is not None else k)
        if len(rates) != 1:
            raise ValueError(f"{path}: series have different sampling rates {sorted(rates)} Hz")
        return Recording(np.stack(rows_v), np.stack(rows_i), dt=1000.0 / rates.pop(), sweeps=tuple(numbers),
                         metadata=units.metadata(format="nwb", series=[s.name for s in volts]))
