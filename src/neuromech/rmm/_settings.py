"""Frozen, typed settings of RMM fitting, shared by the Python API and ``neuromech fit`` (TOML).

:func:`config_from_dict` maps a parsed TOML document onto :class:`RMMConfig`; an unknown key
fails with the list of valid ones, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class FilterSettings:
    """The filter bank: ``n`` time constants geometrically from ``tau_min`` to ``tau_max`` (ms)."""

    kind: str = "diagonal"
    tau_min: float = 0.05
    tau_max: float = 1500.0
    n: int = 36

    def __post_init__(self):
        if self.kind not in ("diagonal", "orthonormal"):
            raise ValueError(f"filters.kind must be 'diagonal' or 'orthonormal', got {self.kind!r}")
        if not (0 < self.tau_min <= self.tau_max) or self.n < 1:
            raise ValueError(f"need 0 < tau_min ≤ tau_max (ms) and n ≥ 1, got {self.tau_min}, {self.tau_max}, {self.n}")


@dataclasses.dataclass(frozen=True)
class CurrentSettings:
    """One membrane current.

    Attributes:
        name: its name (``"Na"``, ``"K"``, ...).
        kind: ``"leak"``, ``"conductance"`` (g·a·b·(v − E)) or ``"lumped"`` (MLP).
        units: conductance-based units summed in this current, each with its own g and E.
        hidden: hidden-layer sizes of its networks.
        activation_taus: (low, high) ms: filter states feeding the activation gate; empty: none.
        inactivation_taus: (low, high) ms for the inactivation gate; empty: none.
        input_taus: (low, high) ms: filter states feeding a lumped current (with v).
        reversal: reversal potential prior / initial value (mV); NaN: the data's mean voltage.
        reversal_std: prior std (mV); 0 keeps the reversal potential fixed.
        instantaneous: the activation gate also sees the present voltage v[k] (the filter states
            lag by one sample), for gates faster than the sampling period (spike upstrokes).
    """

    name: str
    kind: str = "conductance"
    units: int = 1
    hidden: tuple[int, ...] = (8,)
    activation_taus: tuple[float, ...] = ()
    inactivation_taus: tuple[float, ...] = ()
    input_taus: tuple[float, ...] = (0.05, 1500.0)
    reversal: float = float("nan")
    reversal_std: float = 10.0
    instantaneous: bool = False

    def __post_init__(self):
        if self.kind not in ("leak", "conductance", "lumped"):
            raise ValueError(f"current {self.name!r}: kind must be leak, conductance or lumped, got {self.kind!r}")
        for field in ("activation_taus", "inactivation_taus", "input_taus"):
            value = tuple(getattr(self, field))
            if value and (len(value) != 2 or not 0 < value[0] <= value[1]):
                raise ValueError(f"current {self.name!r}: {field} must be (low, high) in ms, got {value}")
            object.__setattr__(self, field, value)
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.kind == "conductance" and not (self.activation_taus or self.inactivation_taus):
            raise ValueError(f"current {self.name!r}: a conductance current needs activation_taus or inactivation_taus")


def _c(name, **kw):
    return CurrentSettings(name, **kw)


# Generic spiking neuron: fast inward (Na-like), delayed outward (K-like), slow outward
# (adaptation), and leak. Time-constant windows follow the gates' kinetics in HH-type neurons.
NEURON_CURRENTS = (
    _c("leak", kind="leak"),
    _c("Na", activation_taus=(0.05, 0.6), inactivation_taus=(0.3, 12.0), reversal=50.0, instantaneous=True),
    _c("K", activation_taus=(0.3, 12.0), reversal=-80.0),
    _c("slow", activation_taus=(12.0, 1500.0), reversal=-80.0, reversal_std=0.0),
)
# Hyperpolarisation-activated cation current (sag under hyperpolarising steps).
_H = _c("H", inactivation_taus=(100.0, 1500.0), reversal=-20.0, reversal_std=0.0)
# Bursting STG neuron (Liu et al. 1998): add slow inward calcium and H.
STG_CURRENTS = NEURON_CURRENTS + (
    _c("Ca", activation_taus=(0.6, 30.0), inactivation_taus=(30.0, 1500.0), reversal=80.0, reversal_std=0.0),
    _H,
)
# Recorded mammalian neuron (slice current clamp): add H and a second, slower outward adaptation
# current (M-like; with the one slow current the f–I curve comes out too steep). Held-out sweeps
# of three pyABF cells, spike-count error over seeds 0–2, neuron → mammalian: cell A 0.81–1.12 →
# 0.33–0.50, cell B 0.36–0.52 → 0.28–0.35, fast-spiking interneuron 0.32–0.40 → 0.28–0.34
# (benchmarks/bench_rmm.py --only real --real-seeds 0,1,2).
MAMMALIAN_CURRENTS = NEURON_CURRENTS + (
    _c("M", activation_taus=(30.0, 1500.0), reversal=-80.0, reversal_std=0.0),
    _H,
)
PRESETS = {"neuron": NEURON_CURRENTS, "stg": STG_CURRENTS, "mammalian": MAMMALIAN_CURRENTS}


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """The RMM: its filter bank and its currents (a preset name or explicit ``currents``).

    ``capacitance`` (nF): 0 learns C (starting from the response to current steps where the data
    have them, ``rmm._build.step_capacitance``, else from a subthreshold least-squares estimate); a
    positive value fixes it (e.g. from a membrane test), which removes the trade-off between C and
    the currents' amplitudes that spike-dominated teacher forcing otherwise leaves to chance.
    """

    filters: FilterSettings = FilterSettings()
    preset: str = "neuron"
    currents: tuple[CurrentSettings, ...] = ()
    capacitance: float = 0.0

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise ValueError(f"model.preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        names = [c.name for c in self.resolved_currents]
        if len(set(names)) != len(names):
            raise ValueError(f"current names must be distinct, got {names}")

    @property
    def resolved_currents(self) -> tuple[CurrentSettings, ...]:
        return tuple(self.currents) or PRESETS[self.preset]


@dataclasses.dataclass(frozen=True)
class ShootingSettings:
    """Multiple shooting after teacher forcing (Burghi et al. 2025): shots of ``shot_length``
    samples from trainable initial states, a continuity penalty between consecutive shots."""

    shot_length: int = 20
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 1e-3
    continuity: float = 1.0

    def __post_init__(self):
        if not 10 <= self.shot_length <= 40:
            raise ValueError(f"shooting.shot_length must be 10–40 samples, got {self.shot_length}")


@dataclasses.dataclass(frozen=True)
class RolloutSettings:
    """Short closed-loop rollouts after teacher forcing (``neuromech.rmm.rollout_loss``).

    Attributes:
        length: steps per window (m); 20–100 samples (2–10 ms at 10 kHz).
        epochs: passes over the windows; each is followed by a free-run check on the validation
            data, and the best model over both stages is kept.
        batch_size: windows per step; learning_rate: Adam, cosine-decayed to 10 %.
        gamma_start, gamma_end: generalised-teacher-forcing mix γ at the first and last epoch
            (linear); 0 runs the windows in closed loop.
        stride: samples between window starts (default ``length``: no overlap).
        partners: circuits only: ``"model"`` runs the neurons of a window jointly; ``"measured"``
            runs each against its partners' recorded voltages (its synapses and gap junctions see
            the data), so a neuron's own currents cannot stand in for the input it receives.
    """

    length: int = 40
    epochs: int = 4
    batch_size: int = 64
    learning_rate: float = 3e-3
    gamma_start: float = 0.0
    gamma_end: float = 0.0
    stride: int | None = None
    partners: str = "model"

    def __post_init__(self):
        if self.partners not in ("model", "measured"):
            raise ValueError(f"rollout partners must be 'model' or 'measured', got {self.partners!r}")
        if self.length < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"rollout length, epochs and batch_size must be ≥ 1, got {self.length}, "
                             f"{self.epochs}, {self.batch_size}")
        if not (0 <= self.gamma_start <= 1 and 0 <= self.gamma_end <= 1):
            raise ValueError(f"rollout γ must lie in [0, 1], got {self.gamma_start} → {self.gamma_end}")
        if self.learning_rate <= 0:
            raise ValueError(f"rollout learning_rate must be > 0, got {self.learning_rate}")

    def gamma(self, epoch: int) -> float:
        """γ at ``epoch`` (1-based): linear from gamma_start to gamma_end."""
        f = 0.0 if self.epochs == 1 else (epoch - 1) / (self.epochs - 1)
        return self.gamma_start + f * (self.gamma_end - self.gamma_start)


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Teacher forcing (static regression on precomputed filter states), then optional shooting.

    Attributes:
        epochs: passes over the training samples; batch_size: samples per step (shuffled). A
            synthetic HH neuron (60 s at 10 kHz) fits as well with 15 epochs of 512 as with 50 of
            2048, in about half the time; the STG burster does not (burst period 25 % off with
            15 × 512, 0.1 % with 30 × 2048; ``benchmarks/bench_rmm.py``).
        learning_rate: Adam step size (the CLI's optimiser; the API takes any optax one).
        schedule: ``"cosine"`` (decay to 5 % over all steps) or ``"constant"`` learning rate.
        weight_decay: L2 penalty on network weights.
        huber: 0 for squared error; > 0: Huber loss with this threshold in units of the target's
            standard deviation (robust to spike-sample misfits).
        validate_every: epochs between free-run checks on the validation data (model selection).
        seed: seeds initialisation and shuffling.
        warmup: ms of each validation/test sweep during which the filters follow the measured
            voltage before the free run starts (see ``rmm.evaluate``); 0: start at rest.
        weighting: power of the teacher-forcing sample weights (``rmm.derivative_weights``: fast
            voltage changes, spike samples, count less); 0 weighs every sample alike. The weights'
            reference scale is the median local dv/dt (the noise, on most records) but at least a
            tenth of its maximum (the spike upstroke), so that one power serves low-noise real
            records (real cell A: 0.33 mV/ms median against 115 max) and noisy synthetic ones.
        centred: teacher forcing's voltage input is the measured voltage moved towards its
            centred three-sample mean (``rmm.centred_voltage``), so that its noise no longer
            correlates with the derivative target's (errors in variables); False: the raw voltage.
        steady_state: weight of the guard against resting states above the data's voltage range
            (``rmm._fit.steady_state_penalty``), in teacher forcing and rollouts; 0: off.
        rollout: settings of the rollout stage after teacher forcing, or None to skip it
            (``rollout = false`` in TOML).
        shooting: multiple-shooting settings, or None to skip it.
    """

    epochs: int = 40
    batch_size: int = 2048
    learning_rate: float = 1e-2
    schedule: str = "cosine"
    weight_decay: float = 1e-5
    huber: float = 0.0
    validate_every: int = 10
    seed: int = 0
    warmup: float = 0.0
    weighting: float = 1.0
    centred: bool = True
    steady_state: float = 1.0
    rollout: RolloutSettings | None = RolloutSettings()
    shooting: ShootingSettings | None = None

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or self.validate_every < 1:
            raise ValueError("training.epochs, batch_size and validate_every must be ≥ 1")
        if not self.learning_rate > 0:
            raise ValueError(f"training.learning_rate must be > 0, got {self.learning_rate}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"training.schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not self.steady_state >= 0:
            raise ValueError(f"training.steady_state must be ≥ 0 (0: off), got {self.steady_state}")
        if not self.weighting >= 0:
            raise ValueError(f"training.weighting must be ≥ 0 (0: unweighted), got {self.weighting}")


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Preprocessing and splits of the recordings given to ``fit``.

    Attributes:
        dt: resample to this period (ms); 0 keeps the recording's.
        lowpass_hz: zero-phase low-pass cut-off (Hz) applied to the voltage; 0: none.
        validation_sweeps, test_sweeps: sweep selections ("9-10") held out; when both are empty,
            every sweep is split in time by ``split``.
        split: (train, validation, test) fractions of each sweep's duration.
        spike_threshold: mV, for spike metrics on this cell.
        columns: names of a header-less text file's columns in order, with their units, e.g.
            ``["t_s", "i_pA", "v_mV"]`` (``"-"`` skips a column); ignored for other formats and
            for text files with a header line.
    """

    dt: float = 0.0
    lowpass_hz: float = 0.0
    validation_sweeps: str = ""
    test_sweeps: str = ""
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    spike_threshold: float = 0.0
    columns: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RMMConfig:
    """Everything ``neuromech fit`` needs; every field has a default, so no config is required."""

    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    training: TrainingSettings = TrainingSettings()


def config_from_dict(raw: Mapping[str, Any], cls=RMMConfig, where: str = "", base=None):
    """Build ``cls`` (a settings dataclass) from nested mappings, e.g. a parsed TOML file.

    Keys left out keep their defaults; a nested table overrides only the keys it gives of its
    field's default (a synapse's ``filters = {n = 4}`` keeps the synapse's own ``tau_min``; a
    circuit's ``[training.rollout]`` keeps the other keys of ``rmm.CIRCUIT_ROLLOUT``), or of
    ``base`` when given.

    Raises:
        ValueError: for an unknown key (listing the valid ones) or a value of the wrong type.

    Example:
        >>> config_from_dict({"training": {"epochs": 5}}).training.epochs
        5
    """
    if not isinstance(raw, Mapping):
        raise ValueError(f"[{where or 'config'}] must be a table of settings, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(repr(where + k) for k in unknown)}; valid keys"
            f"{' in [' + where.rstrip('.') + ']' if where else ''}: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for k, v in raw.items():
        default = fields[k].default
        if isinstance(v, Mapping) and dataclasses.is_dataclass(default) and not isinstance(default, type):
            values[k] = config_from_dict(v, type(default), f"{where}{k}.", base=default)
        else:
            values[k] = _convert(v, hints[k], f"{where}{k}")
    try:
        return cls(**values) if base is None else dataclasses.replace(base, **values)
    except TypeError as err:
        raise ValueError(f"[{where or 'config'}]: {err}") from err


def _convert(value, hint, where):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return config_from_dict(value, hint, where + ".")
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if value is False and len(inner) < len(args):
            return None  # an optional stage switched off in TOML: `rollout = false`
        return _convert(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{k}]") for k, v in enumerate(value))
        return tuple(_convert(v, a, f"{where}[{k}]") for k, (v, a) in enumerate(zip(value, args)))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise ValueError(f"{where} must be {hint.__name__}, got {value!r}")
    return value


def config_to_dict(config):
    """The settings as plain nested dicts and lists (for JSON next to a saved model), read back
    by :func:`config_from_dict`: an optional stage that is on by default but switched off
    (``rollout=None``) is written ``false``, as in TOML, since a left-out key means the default."""
    if dataclasses.is_dataclass(config):
        out = {}
        for f in dataclasses.fields(config):
            value = getattr(config, f.name)
            if value is None and f.default is not None:
                out[f.name] = False
            elif value is not None:
                out[f.name] = config_to_dict(value)
        return out
    if isinstance(config, (list, tuple)):
        return [config_to_dict(v) for v in config]
    return json_ready(config)


def json_ready(x):
    if isinstance(x, dict):
        return {k: json_ready(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    return x
