"""Multi-channel recordings of a circuit: one :class:`Recording` per neuron, on one time base."""

from __future__ import annotations

import dataclasses
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
