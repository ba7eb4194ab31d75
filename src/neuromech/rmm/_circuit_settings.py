"""Settings of a circuit fitted by ``neuromech fit``: the TOML ``[circuit]`` table and its config.

A config with a ``[circuit]`` table describes a circuit RMM (SCIENCE.md §5): which channels of a
multi-channel recording are modelled neurons, which are recorded-only (exogenous) voltages, the
chemical synapses ``pre -> post`` and the gap junctions. Every modelled neuron takes the ``[model]``
settings (the single-neuron defaults unless given); ``[training]`` holds
:class:`~neuromech.rmm.CircuitTrainingSettings`, or ``[[training]]`` several stages run in order
(e.g. teacher forcing, then generalised teacher forcing)::

    [circuit]
    neurons = ["post"]              # modelled channels
    exogenous = ["pre"]             # recorded-only channels acting through synapses
    synapses = ["pre -> post"]      # or [[circuit.synapses]] tables (kind, filters, reversal, ...)

    [[training]]
    method = "teacher forcing"
    epochs = 300

Everything is checked at construction: an unknown neuron or channel, a synapse onto an exogenous
voltage, a repeated synapse or a gap junction off the modelled neurons is an error naming it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Mapping

from ._circuit_build import CircuitSettings, GapSettings, SynapseSettings
from ._circuit_fit import CircuitTrainingSettings
from ._settings import DataSettings, ModelSettings, config_from_dict


@dataclasses.dataclass(frozen=True)
class CircuitDescription:
    """The ``[circuit]`` table: the circuit's neurons, channels and connections.

    Attributes:
        neurons: recording channels modelled as neurons (each gets an RMM with the ``[model]``
            settings).
        exogenous: recording channels read but not modelled; they act only through synapses.
        channels: names of the file's channels in order, for files that do not name them
            (``.mat``: ``V1..Vn``); default ``"V1"``, ``"V2"``, ... Files that name their channels
            (``.npz``, ``.csv``) must agree with it when it is given.
        synapses: chemical synapses (:class:`SynapseSettings`; in TOML a table or ``"pre -> post"``).
        gaps: gap junctions between modelled neurons (:class:`GapSettings`; or ``"a <-> b"``).
        warmup: ms at the start of each held-out sweep during which the circuit follows the
            measured voltages before running free (validation, test, ``neuromech predict``).

    Raises:
        ValueError: for no neurons, repeated names, a neuron or exogenous voltage missing from
            ``channels``, and every error of :class:`CircuitSettings` (unknown synapse ends, a synapse
            onto an exogenous voltage, a repeated synapse, a gap junction off the modelled neurons).

    Example:
        >>> d = CircuitDescription(("post",), exogenous=("pre",), synapses=(SynapseSettings("pre", "post"),))
        >>> d.settings().channels
        ('post', 'pre')
    """

    neurons: tuple[str, ...] = ()
    exogenous: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    synapses: tuple[SynapseSettings, ...] = ()
    gaps: tuple[GapSettings, ...] = ()
    warmup: float = 0.0

    def __post_init__(self):
        for field in ("neurons", "exogenous", "channels", "synapses", "gaps"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        if not self.neurons:
            raise ValueError("[circuit] neurons is empty: name the recording channels to model, "
                             'e.g. neurons = ["PD", "LP"]')
        if len(set(self.channels)) != len(self.channels):
            raise ValueError(f"[circuit] channels must be distinct names, got {list(self.channels)}")
        if self.channels:
            unknown = [n for n in self.neurons + self.exogenous if n not in self.channels]
            if unknown:
                raise ValueError(f"[circuit] names unknown channel(s) {unknown}; the recording's channels are "
                                 f"{list(self.channels)} — model or read only channels listed there")
        if not self.warmup >= 0:
            raise ValueError(f"[circuit] warmup must be ≥ 0 ms, got {self.warmup}")
        self.settings()  # the connections' checks

    def settings(self, model: ModelSettings = ModelSettings()) -> CircuitSettings:
        """The :class:`CircuitSettings` (for :func:`~neuromech.rmm.init_circuit`) with neuron settings ``model``."""
        try:
            return CircuitSettings(self.neurons, self.exogenous, model, self.synapses, self.gaps)
        except ValueError as err:
            raise ValueError(f"[circuit] {err}") from err


@dataclasses.dataclass(frozen=True)
class CircuitConfig:
    """Everything ``neuromech fit`` needs for a circuit: the ``[circuit]`` table, ``[data]`` (as for
    one neuron: resampling, low-pass, splits, spike threshold), ``[model]`` (every modelled neuron's
    RMM) and the training stages (run in order; one ``[training]`` table is one stage)."""

    circuit: CircuitDescription
    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    training: tuple[CircuitTrainingSettings, ...] = (CircuitTrainingSettings(),)

    def __post_init__(self):
        object.__setattr__(self, "training", tuple(self.training))
        if not self.training:
            raise ValueError("[[training]] is empty: give at least one training stage")

    @property
    def settings(self) -> CircuitSettings:
        return self.circuit.settings(self.model)


_SYNAPSE = re.compile(r"\s*([^\s<>-][^<>]*?)\s*->\s*([^\s<>-][^<>]*?)\s*")
_GAP = re.compile(r"\s*([^\s<>-][^<>]*?)\s*<->\s*([^\s<>-][^<>]*?)\s*")


def _shorthand(items, pattern, keys, what, example):
    if not isinstance(items, (list, tuple)):
        return items
    out = []
    for item in items:
        if isinstance(item, str):
            m = pattern.fullmatch(item)
            if m is None:
                raise ValueError(f"[circuit] {what} {item!r} is not of the form {example!r}")
            item = dict(zip(keys, m.groups()))
        out.append(item)
    return out


def circuit_config_from_dict(raw: Mapping[str, Any]) -> CircuitConfig:
    """Build a :class:`CircuitConfig` from nested mappings (a parsed TOML file with ``[circuit]``).

    Shorthands: a synapse ``"pre -> post"`` (default settings), a gap junction ``"a <-> b"``, and a
    single ``[training]`` table for one training stage.

    Raises:
        ValueError: for an unknown key (listing the valid ones), a value of the wrong type, or a
            circuit description that does not hold together (see :class:`CircuitDescription`).

    Example:
        >>> cfg = circuit_config_from_dict({"circuit": {"neurons": ["B"], "exogenous": ["A"],
        ...                                             "synapses": ["A -> B"]}})
        >>> cfg.settings.synapses[0].name
        'syn A->B'
    """
    raw = dict(raw)
    if "circuit" not in raw:
        raise ValueError("a circuit config needs a [circuit] table (neurons, exogenous, synapses)")
    table = raw["circuit"]
    if isinstance(table, Mapping):
        table = dict(table)
        if "synapses" in table:
            table["synapses"] = _shorthand(table["synapses"], _SYNAPSE, ("pre", "post"), "synapse", "pre -> post")
        if "gaps" in table:
            table["gaps"] = _shorthand(table["gaps"], _GAP, ("a", "b"), "gap junction", "a <-> b")
        raw["circuit"] = table
    if isinstance(raw.get("training"), Mapping):
        raw["training"] = [raw["training"]]
    return config_from_dict(raw, CircuitConfig)
