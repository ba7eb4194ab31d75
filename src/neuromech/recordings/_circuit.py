"""Multi-channel recordings of a circuit: one :class:`Recording` per neuron, on one time base.

Files: :func:`read_circuit_recording` reads ``.mat`` (``V1..Vn``, ``I1..Im``), ``.npz`` (written by
:func:`write_circuit_npz`) and ``.csv``/``.txt`` (``t_ms``, ``v_mV[NAME]``, ``i_nA[NAME]``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ._recording import Recording


@dataclasses.dataclass(frozen=True, eq=False)
class CircuitRecording:
    """Simultaneous current-clamp recordings of several neurons (ms, mV, nA).

    Each channel is a :class:`Recording` (its voltage, the current injected into that neuron, and
    optional truth such as the synaptic currents it receives, named ``"syn A->B"``); all channels
    share dt, t0, the number of sweeps and of samples. A channel that a circuit model only reads
    (an exogenous, recorded-only presynaptic neuron) is a channel like any other.

    Attributes:
        channels: channel name → :class:`Recording`, in a fixed order.

    Raises:
        ValueError: for no channels, or channels that differ in dt, t0 or shape (the message names
            the channel).

    Example:
        >>> import numpy as np
        >>> a = Recording(np.full(100, -60.0), np.zeros(100), dt=0.1)
        >>> rec = CircuitRecording({"PD": a, "LP": a})
        >>> rec.names, rec.n_samples
        (('PD', 'LP'), 100)
    """

    channels: Mapping[str, Recording]

    def __post_init__(self):
        channels = dict(self.channels)
        if not channels:
            raise ValueError("a circuit recording needs at least one channel")
        for name, rec in channels.items():
            if not isinstance(rec, Recording):
                raise ValueError(f"channel {name!r} must be a Recording, got {type(rec).__name__}")
        first_name, first = next(iter(channels.items()))
        for name, rec in channels.items():
            if (rec.voltage.shape != first.voltage.shape or abs(rec.dt - first.dt) > 1e-12 * first.dt
                    or abs(rec.t0 - first.t0) > 1e-9):
                raise ValueError(
                    f"channel {name!r} has {rec.n_sweeps}×{rec.n_samples} samples at dt {rec.dt} ms from "
                    f"t0 {rec.t0} ms, but {first_name!r} has {first.n_sweeps}×{first.n_samples} at dt {first.dt} "
                    f"ms from {first.t0} ms; the channels of a circuit recording must be simultaneous"
                )
        object.__setattr__(self, "channels", channels)

    @classmethod
    def from_arrays(cls, voltage, current, names: Sequence[str], dt: float, **kw) -> "CircuitRecording":
        """From arrays (channels, samples) or (sweeps, channels, samples) of voltage (mV) and
        injected current (nA), one channel per name.

        Raises:
            ValueError: when the number of channels differs from the number of names.
        """
        v, i = np.asarray(voltage, float), np.asarray(current, float)
        v, i = (v[None] if v.ndim == 2 else v), (i[None] if i.ndim == 2 else i)
        names = tuple(names)
        if v.ndim != 3 or v.shape != i.shape:
            raise ValueError(f"voltage and current must both be (channels, samples) or (sweeps, channels, samples); "
                             f"got {np.shape(voltage)} and {np.shape(current)}")
        if v.shape[1] != len(names):
            raise ValueError(f"the arrays hold {v.shape[1]} channels but {len(names)} names were given {list(names)}; "
                             "give one name per recorded channel, in order")
        return cls({n: Recording(v[:, k], i[:, k], dt=dt, **kw) for k, n in enumerate(names)})

    # ------------------------------------------------------------------------------------ views
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.channels)

    def _first(self) -> Recording:
        return next(iter(self.channels.values()))

    @property
    def dt(self) -> float:
        return self._first().dt

    @property
    def n_sweeps(self) -> int:
        return self._first().n_sweeps

    @property
    def n_samples(self) -> int:
        return self._first().n_samples

    @property
    def time(self) -> np.ndarray:
        return self._first().time

    def __getitem__(self, name: str) -> Recording:
        if name not in self.channels:
            raise KeyError(f"no channel {name!r} in this recording; it has {list(self.channels)}")
        return self.channels[name]

    def voltages(self, names: Sequence[str]) -> np.ndarray:
        """(n_sweeps, len(names), n_samples) voltages (mV) of the named channels, in that order."""
        return np.stack([self[n].voltage for n in names], axis=1)

    def currents(self, names: Sequence[str]) -> np.ndarray:
        """(n_sweeps, len(names), n_samples) injected currents (nA) of the named channels."""
        return np.stack([self[n].current for n in names], axis=1)

    # ------------------------------------------------------------------------------ processing
    def _apply(self, fn) -> "CircuitRecording":
        return CircuitRecording({n: fn(r) for n, r in self.channels.items()})

    def window(self, start: float, stop: float) -> "CircuitRecording":
        """Every channel's :meth:`Recording.window` (ms)."""
        return self._apply(lambda r: r.window(start, stop))

    def select(self, sweeps) -> "CircuitRecording":
        return self._apply(lambda r: r.select(sweeps))

    def split_time(self, fractions=(0.7, 0.15, 0.15)) -> tuple["CircuitRecording", ...]:
        parts = {n: r.split_time(fractions) for n, r in self.channels.items()}
        return tuple(CircuitRecording({n: p[k] for n, p in parts.items()}) for k in range(len(fractions)))

    def resample(self, dt: float) -> "CircuitRecording":
        """Every channel's :meth:`Recording.resample` (ms)."""
        return self._apply(lambda r: r.resample(dt))

    def lowpass(self, cutoff_hz: float, **options) -> "CircuitRecording":
        """Every channel's :meth:`Recording.lowpass` (Hz; same options)."""
        return self._apply(lambda r: r.lowpass(cutoff_hz, **options))


# ------------------------------------------------------------------------------------- files
CIRCUIT_SUFFIXES = (".mat", ".npz", ".csv", ".txt", ".dat")


def read_circuit_recording(path, *, channels: Sequence[str] = (), dt: float | None = None,
                           time_unit: str | None = None, voltage_unit: str | None = None,
                           current_unit: str | None = None) -> CircuitRecording:
    """Read a multi-channel (circuit) recording: one voltage and one injected current per channel.

    Formats, by suffix:

    - ``.mat`` (v5–v7.2): ``V1..Vn`` the voltages of channels 1..n and ``I1..Im`` the currents
      injected into them (the RMM authors' layout); a channel without its ``Ik`` was not injected:
      its current is zero and ``metadata["current_recorded"]`` is False. 2-D arrays hold sweeps in
      columns. dt from a ``dt`` key, ``fs``/``Fs``/``rate`` (Hz) or the ``dt`` argument. The file
      does not name its channels: ``channels`` does (one name per ``Vk``, in order), default
      ``"V1"``, ``"V2"``, ...
    - ``.npz`` written by :func:`write_circuit_npz`: ``channels`` (names), ``voltage`` and
      ``current`` (sweeps, channels, samples), ``dt``, optional ``t0``, ``sweeps``, units, truth,
      and ``command`` (sweeps, channels, samples; the voltage-clamp command in the voltage's unit,
      NaN where a cell ran in current clamp).
    - ``.csv``/``.txt``/``.dat`` with a header: ``t_ms`` (or ``dt=``), optional ``sweep``, and per
      channel NAME a voltage column ``v_mV[NAME]`` and a current column ``i_nA[NAME]`` (units as
      in :func:`~neuromech.recordings.read_text`; also ``v_measured[NAME]``/``i_applied[NAME]``, so
      a circuit prediction written by ``neuromech predict`` reads back). A channel without a current
      column was not injected (zero current, ``current_recorded`` False).

    For ``.npz`` and text files, which name their channels, ``channels`` (if given) must list the
    same names in the same order.

    Raises:
        ValueError: for an unknown suffix, a voltage without any channel, ``channels`` whose count
            or names differ from the file's channels, or bad content (as the one-channel loaders).

    Example:
        >>> rec = read_circuit_recording("lp_pd.mat", channels=("PD", "LP"))   # doctest: +SKIP
        >>> rec.names                                                           # doctest: +SKIP
        ('PD', 'LP')
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in CIRCUIT_SUFFIXES:
        raise ValueError(f"{path}: a circuit recording is read from {', '.join(CIRCUIT_SUFFIXES)} files, not "
                         f"{suffix!r}; convert it (e.g. write_circuit_npz)")
    if not path.is_file():
        raise FileNotFoundError(2, "No such file", str(path))
    units = {"time_unit": time_unit, "voltage_unit": voltage_unit, "current_unit": current_unit}
    if suffix == ".mat":
        return _read_mat(path, tuple(channels), dt, **units)
    rec = _read_npz(path, **units) if suffix == ".npz" else _read_text(path, dt, **units)
    if channels and tuple(channels) != rec.names:
        raise ValueError(
            f"{path} names its {len(rec.names)} channel(s) {list(rec.names)}, but {len(channels)} channel name(s) "
            f"{list(channels)} were given; leave the channel names out (the file has them) or make them agree"
        )
    return rec


def _read_mat(path, channels, dt, time_unit, voltage_unit, current_unit) -> CircuitRecording:
    import re

    from ._load import _Units, load_mat, mat_sampling
    from ._units import to_internal

    data, keys = load_mat(path)
    numbers = sorted(int(m.group(1)) for k in keys if (m := re.fullmatch(r"V(\d+)", k)))
    if not numbers:
        raise ValueError(f"{path}: no voltage keys V1, V2, ...; found {keys}")
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"{path}: voltage keys must be V1..Vn without gaps, found {['V%d' % n for n in numbers]}")
    extra = [k for k in keys if re.fullmatch(r"I(\d+)", k) and int(k[1:]) not in numbers]
    if extra:
        raise ValueError(f"{path}: current(s) {extra} have no voltage (the file has V1..V{len(numbers)})")
    names = channels or tuple(f"V{n}" for n in numbers)
    if len(names) != len(numbers):
        raise ValueError(
            f"{path} holds {len(numbers)} voltage channel(s) V1..V{len(numbers)}, but {len(names)} channel name(s) "
            f"{list(names)} were given; give one name per voltage channel, in order"
        )
    dt, time_unit = mat_sampling(data, path, dt, time_unit)
    units = _Units(path)
    step = float(to_internal(dt, units.use("time", time_unit, None, "ms"), "time"))
    v_unit = units.use("voltage", voltage_unit, None, "mV")
    i_unit = units.use("current", current_unit, None, "nA")
    meta = units.metadata(format="mat")

    def sweeps(x):
        x = np.asarray(x, dtype=float)
        x = x.reshape(-1, 1) if min(x.shape) == 1 else x
        return x.T  # samples × sweeps → sweeps × samples

    out = {}
    for n, name in zip(numbers, names):
        v = to_internal(sweeps(data[f"V{n}"]), v_unit, "voltage")
        has_i = f"I{n}" in data
        i = to_internal(sweeps(data[f"I{n}"]), i_unit, "current") if has_i else np.zeros_like(v)
        out[name] = Recording(v, i, dt=step, metadata={**meta, "channel": f"V{n}", "current_recorded": has_i})
    return _named(out, path)


def _named(channels: dict, path) -> CircuitRecording:
    try:
        return CircuitRecording(channels)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _read_npz(path, time_unit, voltage_unit, current_unit) -> CircuitRecording:
    import json

    from ._load import _Units
    from ._units import to_internal

    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        missing = {"channels", "voltage", "current", "dt"} - keys
        if missing:
            hint = " (a one-neuron recording? read it with read_recording)" if "channels" in missing else ""
            raise ValueError(f"{path}: missing key(s) {sorted(missing)} of a circuit recording{hint}; "
                             f"found {sorted(keys)}")
        names = tuple(str(n) for n in np.atleast_1d(data["channels"]))
        v, i = np.asarray(data["voltage"], float), np.asarray(data["current"], float)
        v, i = (v[None] if v.ndim == 2 else v), (i[None] if i.ndim == 2 else i)
        if v.ndim != 3 or v.shape != i.shape or v.shape[1] != len(names):
            raise ValueError(f"{path}: voltage {data['voltage'].shape} and current {data['current'].shape} must both "
                             f"be (sweeps, channels, samples) with one channel per name in channels {list(names)}")
        stored = {k: str(data[f"{k}_unit"]) if f"{k}_unit" in keys else None for k in ("time", "voltage", "current")}
        units = _Units(path)
        t_unit = units.use("time", time_unit, stored["time"], "ms")
        v_unit = units.use("voltage", voltage_unit, stored["voltage"], "mV")
        v = to_internal(v, v_unit, "voltage")
        command = (to_internal(np.asarray(data["command"], float).reshape(v.shape), v_unit, "voltage")
                   if "command" in keys else None)
        i_unit = units.use("current", current_unit, stored["current"], "nA")
        i = to_internal(i, i_unit, "current")
        truth = {n: {} for n in names}
        index = json.loads(str(data["truth_index"])) if "truth_index" in keys else []
        for k, (channel, name) in enumerate(index):
            truth[channel][name] = to_internal(data[f"truth_{k}"], i_unit, "current")
        meta = units.metadata(format="npz")
        stored_meta = json.loads(str(data["metadata_json"])) if "metadata_json" in keys else {}
        recorded = np.atleast_1d(data["current_recorded"]) if "current_recorded" in keys else np.ones(len(names), bool)
        kw = {"dt": float(to_internal(data["dt"], t_unit, "time")),
              "t0": float(to_internal(data["t0"], t_unit, "time")) if "t0" in keys else 0.0,
              "sweeps": tuple(int(s) for s in data["sweeps"]) if "sweeps" in keys else None}
        out = {n: Recording(v[:, c], i[:, c], metadata={**stored_meta.get(n, {}), **meta,
                                                          "current_recorded": bool(recorded[c])},
                            truth=truth[n] or None, command=None if command is None else command[:, c], **kw)
               for c, n in enumerate(names)}
    return _named(out, path)


def write_circuit_npz(path, recording: CircuitRecording) -> Path:
    """Write ``recording`` (every channel, with its ground truth and voltage-clamp command) to
    ``path`` (.npz), atomically, in ms/mV/nA; :func:`read_circuit_recording` reads it back."""
    import json

    from ..io import atomic_path

    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"{path}: a circuit recording is written as .npz; name the file *.npz")
    names = recording.names
    first = recording[names[0]]
    arrays = {"channels": np.asarray(names), "voltage": recording.voltages(names),
              "current": recording.currents(names), "dt": recording.dt, "t0": first.t0,
              "sweeps": np.asarray(first.sweeps), "time_unit": "ms", "voltage_unit": "mV", "current_unit": "nA",
              "current_recorded": np.asarray([recording[n].metadata.get("current_recorded", True) for n in names]),
              "metadata_json": json.dumps({n: recording[n].metadata for n in names}, default=str)}
    if any(recording[n].command is not None for n in names):
        arrays["command"] = np.stack([recording[n].full_command for n in names], axis=1)
    index = [(n, k) for n in names for k in (recording[n].truth or {})]
    for q, (n, k) in enumerate(index):
        arrays[f"truth_{q}"] = recording[n].truth[k]
    arrays["truth_index"] = json.dumps(index)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return path


def _read_text(path, dt, time_unit, voltage_unit, current_unit) -> CircuitRecording:
    import re

    import pandas as pd

    from ._load import _column, _Units, _uniform_step
    from ._units import canonical_unit, to_internal

    sep = "," if path.suffix.lower() == ".csv" else r"\s+"
    table = pd.read_csv(path, sep=sep, engine="python")
    plain, per = {}, {}  # quantity -> column; (channel, quantity) -> (column, unit)
    for col in map(str, table.columns):
        m = re.fullmatch(r"(.+?)\[(.+)\]", col.strip())
        kind, unit = _column(m.group(1) if m else col)
        if m and kind in ("voltage", "current") and not m.group(1).lower().startswith("v_predicted"):
            per[(m.group(2), kind)] = (col, unit)
        elif not m and kind in ("time", "sweep"):
            plain[kind] = (col, unit)
    names = tuple(dict.fromkeys(c for c, kind in per if kind == "voltage"))
    if not names:
        raise ValueError(f"{path}: no voltage column of a channel; columns found: {list(map(str, table.columns))}. "
                         "Name them v_mV[NAME] and i_nA[NAME], one pair per channel")
    orphans = [c for c, kind in per if kind == "current" and c not in names]
    if orphans:
        raise ValueError(f"{path}: current column(s) for channel(s) {orphans} without a voltage column "
                         f"v_mV[...]; the voltage channels are {list(names)}")
    if "time" not in plain and dt is None:
        raise ValueError(f"{path}: no time column; pass dt= (the sampling period) or add a t_ms column")

    def numeric(col, what):
        x = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            raise ValueError(f"{path}: column {col} ({what}) has {bad.size} missing or non-numeric value(s), the "
                             f"first on line {int(bad[0]) + 2}; a gap in a recording cannot be fitted — cut the file "
                             "around it")
        return x

    units = _Units(path)
    t_unit = units.use("time", time_unit, plain.get("time", (0, None))[1], "ms")
    sweep = numeric(plain["sweep"][0], "sweep") if "sweep" in plain else np.zeros(len(table))
    labels, starts = np.unique(sweep, return_index=True)
    labels = labels[np.argsort(starts)]
    rows = [np.flatnonzero(sweep == s) for s in labels]
    if len({len(r) for r in rows}) != 1:
        lengths = sorted({len(r) for r in rows})
        raise ValueError(f"{path}: sweeps have different lengths {lengths}; split them into separate files")
    if "time" in plain:
        t = to_internal(numeric(plain["time"][0], "time"), t_unit, "time")
        step, t0 = _uniform_step(t[rows[0]], path)
        for r in rows[1:]:
            _uniform_step(t[r], path)
    else:
        step, t0 = float(to_internal(dt, t_unit, "time")), 0.0
    given = {"voltage": voltage_unit, "current": current_unit}
    arrays = {}
    for (name, kind), (col, unit) in per.items():
        u = canonical_unit(given[kind], kind) if given[kind] else (canonical_unit(unit, kind) if unit else None)
        if u is None:  # assumed: announced once per quantity
            default = "mV" if kind == "voltage" else "nA"
            u = default if kind in units.assumed else units.use(kind, None, None, default)
        else:
            units.read.setdefault(kind, u)
        x = to_internal(numeric(col, kind), u, kind)
        arrays[(name, kind)] = np.stack([x[r] for r in rows])
    meta = units.metadata(format="text")
    out = {}
    for name in names:
        v = arrays[(name, "voltage")]
        has_i = (name, "current") in arrays
        out[name] = Recording(v, arrays[(name, "current")] if has_i else np.zeros_like(v), dt=step, t0=t0,
                              sweeps=tuple(int(s) for s in labels), metadata={**meta, "current_recorded": has_i})
    return _named(out, path)
