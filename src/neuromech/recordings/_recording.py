"""The :class:`Recording` type: current-clamp sweeps (with optional voltage-clamp stretches) on one
time base, in ms, mV and nA."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Recording:
    """Current-clamp sweeps of one neuron: membrane voltage and injected current on a uniform grid.

    Every sweep has the same length; recordings of different lengths stay separate ``Recording``
    objects (the RMM training functions take a sequence of them). Units are fixed inside
    neuromech and converted by the loaders: time **ms**, voltage **mV**, current **nA**.

    Attributes:
        voltage: (n_sweeps, n_samples) membrane voltage (mV).
        current: (n_sweeps, n_samples) injected current (nA), positive = depolarising.
        dt: sampling period (ms).
        t0: time of the first sample of every sweep (ms).
        sweeps: (n_sweeps,) the sweep numbers in the source file (0-based).
        metadata: provenance: the source, the units read or assumed, processing applied.
        truth: optional ground truth of a synthetic recording, name → (n_sweeps, n_samples)
            true membrane currents (nA, outward positive), e.g. ``{"Na": ..., "K": ...}``.
        command: optional (n_sweeps, n_samples) voltage-clamp command (mV), NaN where the cell ran
            in current clamp; None: current clamp throughout. Where it is finite the cell was held
            by a voltage clamp: ``voltage`` is the measured (clamped) voltage and ``current`` the
            current the clamp supplied. A synapse onto a clamped cell shows in that current
            directly, which is how the circuit fit measures synapses (:func:`~neuromech.rmm.fit_circuit`).

    Raises:
        ValueError: for mismatched shapes of voltage and current, NaN or infinite samples (the
            message gives the sweep and time), a non-positive ``dt`` or fewer than 2 samples.

    Example:
        >>> import numpy as np
        >>> rec = Recording(np.full((1, 100), -65.0), np.zeros((1, 100)), dt=0.1)
        >>> rec.n_sweeps, rec.n_samples, rec.duration
        (1, 100, 10.0)
    """

    voltage: np.ndarray
    current: np.ndarray
    dt: float
    t0: float = 0.0
    sweeps: tuple[int, ...] | None = None
    metadata: Mapping = dataclasses.field(default_factory=dict)
    truth: Mapping[str, np.ndarray] | None = None
    command: np.ndarray | None = None

    def __post_init__(self):
        v = _as_sweeps(self.voltage, "voltage")
        i = _as_sweeps(self.current, "current")
        if v.shape != i.shape:
            raise ValueError(
                f"voltage and current must have the same shape (sweeps, samples); got voltage {v.shape} "
                f"and current {i.shape} — check that both come from the same sweeps and channels"
            )
        if v.shape[1] < 2:
            raise ValueError(f"a recording needs at least 2 samples per sweep, got {v.shape[1]}")
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ValueError(f"dt must be a positive sampling period in ms, got {self.dt!r}")
        for name, x in (("voltage", v), ("current", i)):
            bad = np.argwhere(~np.isfinite(x))
            if bad.size:
                s, k = (int(j) for j in bad[0])
                raise ValueError(
                    f"{name} has {len(bad)} NaN/infinite sample(s), the first in sweep {s} at "
                    f"t = {self.t0 + k * self.dt:g} ms; cut the record around gaps or interpolate them "
                    "before building a Recording"
                )
        sweeps = tuple(range(v.shape[0])) if self.sweeps is None else tuple(int(s) for s in self.sweeps)
        if len(sweeps) != v.shape[0]:
            raise ValueError(f"sweeps has {len(sweeps)} numbers for {v.shape[0]} sweeps")
        truth = None
        if self.truth is not None:
            truth = {}
            for name, x in self.truth.items():
                x = _as_sweeps(x, f"truth[{name!r}]")
                if x.shape != v.shape:
                    raise ValueError(f"truth[{name!r}] has shape {x.shape}, expected {v.shape} like the voltage")
                truth[str(name)] = x
        command = None
        if self.command is not None:
            command = _as_sweeps(self.command, "command")
            if command.shape != v.shape:
                raise ValueError(f"command has shape {command.shape}, expected {v.shape} like the voltage "
                                 "(NaN where the cell ran in current clamp)")
            if np.isinf(command).any():
                raise ValueError("command holds infinite values; give the clamp's command in mV, NaN where the "
                                 "cell ran in current clamp")
            command = None if np.isnan(command).all() else command
        for name, value in (("voltage", v), ("current", i), ("sweeps", sweeps), ("truth", truth), ("command", command),
                            ("dt", float(self.dt)), ("t0", float(self.t0)), ("metadata", dict(self.metadata))):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------------------------ views
    @property
    def n_sweeps(self) -> int:
        return self.voltage.shape[0]

    @property
    def n_samples(self) -> int:
        return self.voltage.shape[1]

    @property
    def duration(self) -> float:
        """Length of one sweep (ms), ``n_samples * dt``."""
        return self.n_samples * self.dt

    @property
    def time(self) -> np.ndarray:
        """(n_samples,) sample times (ms)."""
        return self.t0 + self.dt * np.arange(self.n_samples)

    @property
    def rate_hz(self) -> float:
        return 1000.0 / self.dt

    @property
    def full_command(self) -> np.ndarray:
        """(n_sweeps, n_samples) the voltage-clamp command (mV), all NaN where ``command`` is None."""
        return np.full(self.voltage.shape, np.nan) if self.command is None else self.command

    @property
    def clamped(self) -> np.ndarray:
        """(n_sweeps, n_samples) bool: where the cell was under voltage clamp (finite ``command``)."""
        if self.command is None:
            return np.zeros(self.voltage.shape, bool)
        return np.isfinite(self.command)

    def replace(self, **changes) -> "Recording":
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def _noted(self, step: str, **changes) -> "Recording":
        meta = dict(self.metadata)
        meta["processing"] = list(meta.get("processing", [])) + [step]
        return self.replace(metadata=meta, **changes)

    def _map(self, fn, command_fn=None) -> dict:
        """The arrays (voltage, current, truth) with ``fn`` applied along time, and the command with
        ``command_fn`` (default ``fn``; filters must not smear a clamp's NaN edges)."""
        out = {"voltage": fn(self.voltage), "current": fn(self.current)}
        if self.truth is not None:
            out["truth"] = {k: fn(x) for k, x in self.truth.items()}
        if self.command is not None:
            out["command"] = (command_fn or fn)(self.command)
        return out

    # ------------------------------------------------------------------------------- selection
    def select(self, sweeps: Sequence[int] | str) -> "Recording":
        """The given sweeps, by their number in the source file (``sweeps`` attribute).

        Args:
            sweeps: numbers, or a text selection like ``"0-3,7"`` (ranges inclusive).

        Raises:
            ValueError: for a sweep the recording does not have (the message lists those it has).
        """
        wanted = parse_sweeps(sweeps) if isinstance(sweeps, str) else [int(s) for s in sweeps]
        missing = [s for s in wanted if s not in self.sweeps]
        if missing or not wanted:
            raise ValueError(
                f"sweep(s) {missing or wanted} not in this recording, which has sweeps "
                f"{_ranges(self.sweeps)}; choose among those"
            )
        rows = [self.sweeps.index(s) for s in wanted]
        return self.replace(
            sweeps=tuple(wanted), **self._map(lambda x: x[rows])
        )

    def window(self, start: float, stop: float) -> "Recording":
        """The part of every sweep with ``start ≤ t < stop`` (ms)."""
        a = max(0, int(math.ceil((start - self.t0) / self.dt - 1e-9)))
        b = min(self.n_samples, int(math.ceil((stop - self.t0) / self.dt - 1e-9)))
        if b - a < 2:
            raise ValueError(
                f"window [{start}, {stop}) ms holds {max(b - a, 0)} samples of a sweep spanning "
                f"[{self.t0:g}, {self.t0 + self.duration:g}) ms; choose a window inside the sweep"
            )
        return self.replace(t0=self.t0 + a * self.dt, **self._map(lambda x: x[:, a:b]))

    # ------------------------------------------------------------------------------ processing
    def resample(self, dt: float) -> "Recording":
        """The recording on a new sampling period ``dt`` (ms), by polyphase filtering (anti-aliased).

        The ratio of periods is approximated by a fraction with denominator ≤ 100; the achieved
        period is stored (e.g. 20 kHz → 10 kHz is exact).

        Example:
            >>> import numpy as np
            >>> rec = Recording(np.zeros((1, 200)), np.zeros((1, 200)), dt=0.05)
            >>> rec.resample(0.1).n_samples
            100
        """
        import scipy.signal

        if not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a positive sampling period in ms, got {dt!r}")
        ratio = Fraction(self.dt / dt).limit_denominator(100)
        up, down = ratio.numerator, ratio.denominator
        if up == down:
            return self
        fn = lambda x: scipy.signal.resample_poly(x, up, down, axis=1, padtype="line")  # noqa: E731
        n_new = -(-self.n_samples * up // down)  # resample_poly's output length

        def nearest(x):  # the command at the sample nearest each new one: it switches, it is not filtered
            return x[:, np.minimum(np.round(np.arange(n_new) * down / up).astype(int), self.n_samples - 1)]

        return self._noted(f"resample dt {self.dt:g} -> {self.dt * down / up:g} ms",
                           dt=self.dt * down / up, **self._map(fn, nearest))

    def lowpass(self, cutoff_hz: float, *, order: int = 4, zero_phase: bool = True,
                current: bool = True) -> "Recording":
        """Butterworth low-pass filtered recording.

        Args:
            cutoff_hz: cut-off frequency (Hz), below the Nyquist frequency ``rate_hz / 2``.
            order: filter order (doubled in effect when ``zero_phase``).
            zero_phase: forward-backward filtering (no delay, non-causal) if True; a causal
                filter (which delays the signal, as an online filter would) if False.
            current: filter the injected current as well as the voltage.

        Raises:
            ValueError: for a cut-off outside (0, Nyquist).
        """
        import scipy.signal

        nyquist = self.rate_hz / 2
        if not 0 < cutoff_hz < nyquist:
            raise ValueError(f"cut-off {cutoff_hz} Hz must be in (0, {nyquist:g}) Hz, the Nyquist band of this recording")
        sos = scipy.signal.butter(order, cutoff_hz, fs=self.rate_hz, output="sos")
        if zero_phase:
            fn = lambda x: scipy.signal.sosfiltfilt(sos, x, axis=1)  # noqa: E731
        else:
            # Causal: start the filter at rest on the first sample, so it does not ring up from 0.
            def fn(x):
                zi = scipy.signal.sosfilt_zi(sos)[:, None, :] * x[None, :, :1]  # (sections, sweeps, 2)
                return scipy.signal.sosfilt(sos, x, axis=1, zi=zi)[0]
        arrays = self._map(fn, lambda x: x)
        if not current:
            arrays["current"] = self.current
        kind = "zero-phase" if zero_phase else "causal"
        return self._noted(f"lowpass {cutoff_hz:g} Hz order {order} {kind}", **arrays)

    def check_length(self, min_duration: float, *, why: str = "") -> None:
        """Raise ``ValueError`` unless every sweep lasts at least ``min_duration`` (ms)."""
        if self.duration < min_duration:
            raise ValueError(
                f"{self.metadata.get('source', 'recording')} lasts {self.duration:g} ms per sweep, shorter "
                f"than {min_duration:g} ms{why}; use longer sweeps or shorter time constants"
            )

    # ---------------------------------------------------------------------------------- splits
    def split_time(self, fractions: Sequence[float] = (0.7, 0.15, 0.15)) -> tuple["Recording", ...]:
        """Consecutive pieces of every sweep with the given fractions of its duration, in order.

        Typical use: ``train, validation, test = rec.split_time((0.7, 0.15, 0.15))``.
        """
        fractions = np.asarray(fractions, dtype=float)
        if fractions.ndim != 1 or np.any(fractions <= 0) or abs(fractions.sum() - 1) > 1e-9:
            raise ValueError(f"fractions must be positive and sum to 1, got {fractions.tolist()}")
        edges = np.round(np.concatenate([[0], np.cumsum(fractions)]) * self.n_samples).astype(int)
        t = self.t0 + self.dt * edges
        return tuple(self.window(a, b) for a, b in zip(t[:-1], t[1:]))

    def split_sweeps(self, *groups: Sequence[int] | str) -> tuple["Recording", ...]:
        """The recording cut by sweep numbers, e.g. ``rec.split_sweeps("0-8", "9-10", "11-16")``."""
        parsed = [parse_sweeps(g) if isinstance(g, str) else [int(s) for s in g] for g in groups]
        flat = [s for g in parsed for s in g]
        if len(set(flat)) != len(flat):
            raise ValueError(f"sweep groups overlap: {parsed}; a sweep may be in one split only")
        return tuple(self.select(g) for g in parsed)


def concatenate(recordings: Sequence[Recording]) -> Recording:
    """Sweeps of several recordings with the same ``dt`` and length stacked into one recording."""
    first = recordings[0]
    for r in recordings[1:]:
        if r.dt != first.dt or r.n_samples != first.n_samples:
            raise ValueError(
                f"cannot stack sweeps of {r.n_samples} samples at dt {r.dt} ms onto {first.n_samples} at "
                f"{first.dt} ms; resample or window them first, or keep them as a list"
            )
    truth = None
    if all(r.truth is not None for r in recordings):
        truth = {k: np.concatenate([r.truth[k] for r in recordings]) for k in first.truth}
    command = None
    if any(r.command is not None for r in recordings):
        command = np.concatenate([r.full_command for r in recordings])
    return Recording(np.concatenate([r.voltage for r in recordings]), np.concatenate([r.current for r in recordings]),
                     first.dt, first.t0, metadata={"sources": [dict(r.metadata) for r in recordings]}, truth=truth,
                     command=command)


def parse_sweeps(text: str) -> list[int]:
    """Sweep numbers from a selection such as ``"0-8"`` or ``"0-3,7,9-10"`` (ranges inclusive).

    Example:
        >>> parse_sweeps("0-2,5")
        [0, 1, 2, 5]
    """
    out: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if b < a:
                    raise ValueError
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(
                f"cannot read sweep selection {text!r}: expected numbers and inclusive ranges like '0-8' or '0-3,7'"
            ) from None
    return out


def _ranges(numbers: Sequence[int]) -> str:
    if not numbers:
        return "none"
    parts, start, prev = [], numbers[0], numbers[0]
    for n in list(numbers[1:]) + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        if n is not None:
            start = prev = n
    return ",".join(parts)


def _as_sweeps(x, name: str) -> np.ndarray:
    x = np.array(x, dtype=np.float64)  # a copy: the recording owns its arrays
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"{name} must be 1-D (one sweep) or 2-D (sweeps, samples), got shape {x.shape}")
    x.setflags(write=False)
    return x
