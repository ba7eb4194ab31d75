"""Build an untrained RMM from settings and training data (scalings and initial values from data)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ..recordings import Recording
from ._currents import ConductanceCurrent, Leak, LumpedCurrent, MonotoneGate, fit_scaler, init_mlp
from ._filters import filter_bank, filter_signal, geometric_taus, rest_state
from ._model import RMM
from ._settings import CurrentSettings, ModelSettings


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """Teacher-forcing samples of one or more records: inputs at k, target derivative k → k+1.

    Attributes:
        v: (N,) measured voltage v[k] (mV); x: (N, n) filter states x[k]; i: (N,) current (nA);
        dvdt: (N,) target (v[k+1] − v[k]) / dt (mV/ms).
    """

    v: np.ndarray
    x: np.ndarray
    i: np.ndarray
    dvdt: np.ndarray

    @property
    def size(self) -> int:
        return self.v.shape[0]


def as_recordings(data) -> list[Recording]:
    recs = [data] if isinstance(data, Recording) else list(data)
    if not recs or not all(isinstance(r, Recording) for r in recs):
        raise ValueError("expected a Recording or a sequence of Recordings")
    dts = {round(r.dt, 12) for r in recs}
    if len(dts) != 1:
        raise ValueError(f"recordings have different sampling periods {sorted(dts)} ms; resample them to one dt")
    return recs


def sweep_states(bank, v) -> np.ndarray:
    """(T, n) filter states of one training sweep ``v`` (mV).

    A sweep of a stimulus protocol starts from rest, and a prediction of it starts the bank at rest
    at v[0] (:func:`filter_signal`'s causal start); training does the same. A long continuous
    record (at least 10 τ_max, the longest time constant) is a window cut out of ongoing activity:
    its v[0] may sit on a spike or in a trough, and the slow states' transient from there, not
    their own fluctuation, would set the input range of the gates (their scalers), squeezing the
    slow states' real excursion into a sliver of it (on 20 s of bursting STG data the 1.5 s
    state's range is 4.0 mV with the v[0] start, 0.9 mV without the transient). Training on such
    a record, which is offline, starts the bank at rest at the mean voltage of its first τ_max:
    the level the slow states settle around (predictions on such records warm up the same way,
    :func:`~neuromech.rmm.evaluate` with ``warmup``).
    """
    v = np.asarray(v, np.float64)
    n = max(int(round(max(bank.taus) / bank.dt)), 1)
    if v.size < 10 * n:
        return filter_signal(bank, v)
    return filter_signal(bank, v, x0=np.asarray(rest_state(bank, float(np.mean(v[:n])))))


def centred_voltage(v) -> np.ndarray:
    """(T,) the measured voltage with its noise made uncorrelated with the teacher-forcing target:
    ``v[k] + clip((v[k−1] − 2 v[k] + v[k+1]) / 3, ±δ)`` (ends unchanged), the voltage *input* of
    teacher forcing with ``centred=True``.

    Why: the target ``(v[k+1] − v[k]) / dt`` holds the measurement noise e[k] with weight −1/dt,
    and so does the raw input v[k] with weight 1: a regression on noisy inputs learns that
    correlation (errors in variables) — a spurious conductance of about C/dt on v[k] against its
    filtered past, which slows a free run's voltage. Unclipped, the correction makes the input the
    centred mean ``(v[k−1] + v[k] + v[k+1]) / 3``, which holds e[k] and e[k+1] with equal weights,
    so that its noise is uncorrelated with the target's e[k+1] − e[k]; the filter states x[k]
    hold only e[k−1] and earlier. The clip δ (4 robust standard deviations of the correction,
    i.e. of the noise) leaves that intact for noise but keeps a spike's upstroke, which may take a
    single sample, from leaking the next sample's jump into the input.
    """
    v = np.asarray(v, np.float64)
    out = v.copy()
    if v.size < 3:
        return out
    d = (v[:-2] - 2.0 * v[1:-1] + v[2:]) / 3.0
    delta = 4.0 * 1.4826 * float(np.median(np.abs(d - np.median(d))))
    out[1:-1] += np.clip(d, -delta, delta)
    return out


def teacher_forcing_data(bank, recordings, *, centred: bool = False) -> TrainingData:
    """Filter states of every sweep from its measured voltage (:func:`sweep_states`); with
    ``centred`` the voltage input is :func:`centred_voltage` (the target stays the raw one-step
    difference)."""
    parts = []
    for rec in as_recordings(recordings):
        if abs(rec.dt - bank.dt) > 1e-9 * bank.dt:
            raise ValueError(f"recording dt {rec.dt} ms differs from the model's {bank.dt} ms; resample it")
        rec.check_length(max(bank.taus), why=f" (the longest filter time constant {max(bank.taus):g} ms)")
        if rec.clamped.any():
            raise ValueError(f"{rec.metadata.get('source', 'a recording')} holds voltage-clamp stretches (a finite "
                             "command), which a single-neuron fit would read as current clamp; cut them out, or "
                             "fit it as a circuit (rmm.fit_circuit), which measures synapses on them")
        for v, i in zip(rec.voltage, rec.current):
            x = sweep_states(bank, v)
            v_in = centred_voltage(v) if centred else v
            parts.append((v_in[:-1], x[:-1], i[:-1], np.diff(v) / rec.dt))
    return TrainingData(*(np.concatenate([p[k] for p in parts]) for k in range(4)))


def _states_in(taus, window) -> tuple[int, ...]:
    if not window:
        return ()
    idx = tuple(int(k) for k in np.flatnonzero((np.asarray(taus) >= window[0]) & (np.asarray(taus) <= window[1])))
    if not idx:
        raise ValueError(
            f"no filter time constant in the window {window} ms (the bank has {min(taus):g}–{max(taus):g} ms); "
            "widen the window or change the bank"
        )
    return idx


def init_rmm(train, settings: ModelSettings = ModelSettings(), *, key=None, seed: int = 0) -> RMM:
    """An untrained RMM for the training recordings ``train``.

    Input scalings come from the range of the data's voltage and filter states; the capacitance
    starts from the response to current steps when the data have them (:func:`step_capacitance`),
    else from a linear least-squares fit of dv/dt on the injected current, v and the filter states
    (the coefficient of the current is 1/C); reversal potentials start at their priors.

    Args:
        train: a :class:`Recording` or a sequence of them (same dt).
        settings: bank and currents.
        key / seed: initialisation of the networks.
    """
    recs = as_recordings(train)
    fs = settings.filters
    bank = filter_bank(geometric_taus(fs.tau_min, fs.tau_max, fs.n), recs[0].dt, fs.kind)
    data = teacher_forcing_data(bank, recs)
    key = jax.random.PRNGKey(seed) if key is None else key
    capacitance, holding = _linear_start(data)
    measured = step_capacitance(recs)
    if measured is not None:
        capacitance = measured
    if settings.capacitance > 0:
        capacitance = float(settings.capacitance)
    v_lo, v_hi = float(data.v.min()), float(data.v.max())
    span = max(v_hi - v_lo, 10.0)
    currents, names = [], []
    for k, cs in enumerate(settings.resolved_currents):
        currents.append(_init_current(cs, bank, data, capacitance, jax.random.fold_in(key, k)))
        names.append(cs.name)
    dtype = jnp.asarray(1.0).dtype
    return RMM(bank, tuple(currents), jnp.asarray(capacitance, dtype), jnp.asarray(holding, dtype), tuple(names),
               (v_lo - span, v_hi + span), settings.capacitance <= 0)


def step_capacitance(recordings, *, skip: float = 0.5, span: float = 1.5, rel: float = 0.2) -> float | None:
    """Membrane capacitance C (nF) from the voltage's response to current steps, or None without steps.

    At a step ΔI of the injected current the membrane currents have no time to change, so the
    slope of the voltage changes by ΔI / C: C is ΔI over the change of slope between a line fitted
    to the ``span`` ms before the step and one fitted to the ``span`` ms after it, each ``skip`` ms
    away from the step (the series-resistance jump of an unbalanced bridge and the ringing of a
    resampled step lie in between). Steps are one-sample changes of the current of at least
    ``rel`` of the sweep's current range; windows holding a spike (a 10 mV excursion) are left
    out, and the median over the steps is returned. A fluctuating (Ornstein–Uhlenbeck) drive has
    no such steps: then None, and :func:`init_rmm` keeps its regression estimate.

    Why: teacher forcing cannot pin C down. With the current constant most of the time, C and the
    scale of every current trade off, and the regression's start is biased upwards by the noise in
    the voltage and filter-state inputs (errors in variables). On cell A of the test data (steps of
    0.1–0.3 nA) the regression started at 1.40 nF and the fit ended at 2.1 nF, while the steps
    give 0.19 nF (72 steps, 10–90 % range 0.17–0.20): ten times too slow a membrane.
    """
    estimates = []
    for rec in as_recordings(recordings):
        dt = rec.dt
        gap, n = max(int(round(skip / dt)), 1), max(int(round(span / dt)), 2)
        t = np.arange(n) * dt
        for v, i in zip(np.asarray(rec.voltage, np.float64), np.asarray(rec.current, np.float64)):
            size = float(np.ptp(i))
            if size <= 0:
                continue
            last = -(10**9)
            for k in np.flatnonzero(np.abs(np.diff(i)) > rel * size):
                if k - last < gap + n:  # the same step (a resampled step spans a few samples)
                    last = k
                    continue
                last = k
                if k - gap - n < 0 or k + gap + n > v.size:
                    continue
                pre, post = slice(k - gap - n + 1, k - gap + 1), slice(k + gap + 1, k + gap + n + 1)
                if max(np.ptp(v[pre]), np.ptp(v[post])) > 10.0:
                    continue
                d_i = float(np.mean(i[post]) - np.mean(i[pre]))
                d_slope = float(np.polyfit(t, v[post], 1)[0] - np.polyfit(t, v[pre], 1)[0])
                if abs(d_i) > rel * size and d_slope * d_i > 0:
                    estimates.append(d_i / d_slope)
    return float(np.median(estimates)) if estimates else None


def _linear_start(data: TrainingData) -> tuple[float, float]:
    """(C nF, I_hold nA) from least squares dv/dt ≈ i/C + a·v + b·x + c (a stable, cheap start).

    Only the quietest 80 % of samples (by |dv/dt|) enter: near rest the membrane is close to
    linear, while spikes (a few % of samples, most of the variance) would bias the fit.
    """
    quiet = np.flatnonzero(np.abs(data.dvdt) <= np.percentile(np.abs(data.dvdt), 80))
    n = min(quiet.size, 200_000)
    rows = quiet[np.linspace(0, quiet.size - 1, n).astype(int)]
    features = np.column_stack([data.i[rows], data.v[rows], data.x[rows][:, ::4], np.ones(n)])
    coef, *_ = np.linalg.lstsq(features, data.dvdt[rows], rcond=None)
    if not (np.isfinite(coef[0]) and coef[0] > 0):
        scale = max(np.std(data.i), 1e-3)
        return float(scale / max(np.std(data.dvdt), 1e-3)), 0.0
    return float(1.0 / coef[0]), 0.0


def _init_current(cs: CurrentSettings, bank, data: TrainingData, capacitance: float, key):
    dtype = jnp.asarray(1.0).dtype
    e0 = float(np.mean(data.v)) if np.isnan(cs.reversal) else cs.reversal
    if cs.kind == "leak":
        return Leak(jnp.asarray(0.05 * capacitance, dtype), jnp.asarray(e0, dtype))
    if cs.kind == "lumped":
        idx = _states_in(bank.taus, cs.input_taus)
        z = np.column_stack([data.v, data.x[:, idx]])
        net = init_mlp(key, (len(idx) + 1, *cs.hidden, 1))
        return LumpedCurrent(net, fit_scaler(z), jnp.asarray(capacitance * np.std(data.dvdt), dtype), idx)
    ka, kb = jax.random.split(key)
    gates = []
    for k, (window, sign) in zip((ka, kb), ((cs.activation_taus, 1.0), (cs.inactivation_taus, -1.0))):
        idx = _states_in(bank.taus, window)
        if not idx:
            gates.append(None)
            continue
        with_v = cs.instantaneous and sign > 0
        z = np.column_stack([data.v, data.x[:, idx]]) if with_v else data.x[:, idx]
        net = init_mlp(k, (z.shape[1], *cs.hidden, cs.units), positive=True)
        gates.append(MonotoneGate(net, fit_scaler(z), idx, sign, with_v, jnp.ones(cs.units, dtype)))
    units = cs.units
    # Start each current at the size of the data's capacitive current C·dv/dt (spread over its
    # driving force), not at an arbitrary conductance: a start orders of magnitude off leaves
    # teacher forcing crawling out of a badly scaled region for most of its epochs.
    g0 = capacitance * float(np.std(data.dvdt)) / max(abs(float(np.mean(data.v)) - e0), 10.0)
    return ConductanceCurrent(
        jnp.full(units, g0, dtype), jnp.full(units, e0, dtype) + jnp.arange(units) * 0.0,
        gates[0], gates[1], jnp.full(units, e0, dtype), float(cs.reversal_std),
    )


def skeleton(settings: ModelSettings, dt: float, v_bounds: tuple[float, float]) -> RMM:
    """An RMM with the structure (shapes, static fields) ``settings`` give, arbitrary values: the
    template into which saved weights are loaded."""
    fs = settings.filters
    bank = filter_bank(geometric_taus(fs.tau_min, fs.tau_max, fs.n), dt, fs.kind)
    rng = np.random.default_rng(0)
    n = 16
    data = TrainingData(rng.normal(size=n), rng.normal(size=(n, bank.size)), rng.normal(size=n), rng.normal(size=n))
    key = jax.random.PRNGKey(0)
    currents = tuple(_init_current(cs, bank, data, 1.0, jax.random.fold_in(key, k))
                     for k, cs in enumerate(settings.resolved_currents))
    dtype = jnp.asarray(1.0).dtype
    return RMM(bank, currents, jnp.asarray(1.0, dtype), jnp.asarray(0.0, dtype),
               tuple(c.name for c in settings.resolved_currents), tuple(float(b) for b in v_bounds),
               settings.capacitance <= 0)
