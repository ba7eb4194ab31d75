"""Population simulation with the exponential integrator: ``vmap`` over models, ``lax.scan`` over time.

Time is cut into output samples of ``dt_out`` (each of several integration steps) and those into
chunks; only what was asked for leaves a chunk, so memory stays bounded for long runs of large
populations. Spikes are detected inside the scan (upward threshold crossing with hysteresis,
linearly interpolated time) and at most one is recorded per output sample, which holds because a
spike must fall back below the re-arm level, which takes far longer than ``dt_out`` (≤ 0.5 ms).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from ._model import ConductanceBasedModel, as_conductances
from ._stimulus import Stimulus

RECORDABLE = ("voltage", "states", "currents")
MAX_DT = 0.2  # ms: spikes last ~1 ms; coarser steps cannot resolve them even with a stable scheme.


@dataclasses.dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` returns.

    Attributes:
        model: the simulated model.
        conductances: (N, n_channels) conductances (mS/cm²).
        ids: (N,) identifiers of the models.
        spike_times: all spike times (ms, absolute simulation time, after the transient), grouped by
            model: the spikes of model k are ``spike_times[offsets[k]:offsets[k+1]]``.
        offsets: (N+1,) start of each model's spikes in ``spike_times``.
        time: (T,) time grid of the recorded traces (ms), empty if none were recorded.
        voltage: (N, T) membrane voltage (mV) or ``None``.
        states: (N, T, n_states) full states or ``None`` (names: ``model.state_names``).
        currents: (N, T, n_channels) channel currents (µA/cm²) or ``None``.
        duration, transient, dt: the protocol (ms).
    """

    model: ConductanceBasedModel
    conductances: np.ndarray
    ids: np.ndarray
    spike_times: np.ndarray
    offsets: np.ndarray
    time: np.ndarray
    voltage: np.ndarray | None
    states: np.ndarray | None
    currents: np.ndarray | None
    duration: float
    transient: float
    dt: float

    @property
    def trains(self) -> list[np.ndarray]:
        """Spike times (ms) per model, as a list of arrays."""
        return [self.spike_times[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    @property
    def spike_counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def to_frame(self):
        """Long table with columns ``id, spike_time`` (ms)."""
        import pandas as pd

        return pd.DataFrame({"id": np.repeat(self.ids, self.spike_counts), "spike_time": self.spike_times})


def _window(model, stimulus, theta, rearm, n_inner, dt, record):
    """Advance one model by one output sample (``n_inner`` steps); record a spike if one occurs."""

    def run(g, carry, key, t0):
        y, armed, noise_state = carry
        noise_state, i_noise = stimulus.sample(noise_state, key)

        def step(inner, k):
            y, armed, spike, extra = inner
            t = t0 + k * dt
            i_app = stimulus.at(t + 0.5 * dt) + i_noise  # midpoint: second-order in the drive
            y_new = model.exponential_step(y, g, i_app, dt)
            v0, v1 = y[0], y_new[0]
            crossed = armed & (v0 < theta) & (v1 >= theta)
            when = k * dt + dt * (theta - v0) / (v1 - v0)
            extra = extra + (crossed & ~jnp.isnan(spike))
            spike = jnp.where(crossed & jnp.isnan(spike), when, spike)
            armed = jnp.where(crossed, False, armed | (v1 < rearm))
            return (y_new, armed, spike, extra), None

        init = (y, armed, jnp.asarray(jnp.nan, y.dtype), jnp.asarray(0, jnp.int32))
        (y_new, armed, spike, extra), _ = jax.lax.scan(step, init, jnp.arange(n_inner), unroll=True)
        out = (spike, extra) + ((y,) if record == "states" else (y[0],) if record == "voltage" else ())
        return (y_new, armed, noise_state), out

    return run


@eqx.filter_jit
def _chunk(model, stimulus, g, carry, keys, first_window, *, n_windows, n_inner, dt, theta, rearm, record):
    """Simulate ``n_windows`` output samples for a batch of models (vmap over models, scan over time)."""
    window = _window(model, stimulus, theta, rearm, n_inner, dt, record)
    t_window = n_inner * dt

    def one_model(g, carry, key):
        def body(c, w):
            # Noise keys depend on the absolute sample index, so chunking does not change results.
            return window(g, c, jax.random.fold_in(key, w), w * t_window)

        return jax.lax.scan(body, carry, first_window + jnp.arange(n_windows))

    return jax.vmap(one_model)(g, carry, keys)


def simulate(
    model: ConductanceBasedModel,
    conductances,
    stimulus: Stimulus | None = None,
    *,
    duration: float,
    transient: float = 0.0,
    dt: float | None = None,
    dt_out: float = 0.1,
    record: str | Sequence[str] = (),
    seed: int = 0,
    ids=None,
    spike_threshold: float = 10.0,
    spike_rearm: float = 0.0,
    batch_size: int = 4096,
    chunk_samples: int = 10_000,
    key_offset: int = 0,
    progress: bool = False,
) -> SimulationResult:
    """Simulate one model or a population of models with the exponential (Rush–Larsen) integrator.

    Main arguments:
        model: a :class:`ConductanceBasedModel` (e.g. ``stg()``).
        conductances: (n_channels,) for one model or (N, n_channels) for a population (mS/cm²), in
            the order of ``model.conductance_names``; or a mapping/DataFrame with those names.
        stimulus: injected current (µA/cm²), shared by all models (noise realisations are
            independent per model); ``None`` for no current.
        duration: simulated time (ms).

    Other arguments:
        transient: spikes and traces before this time (ms) are dropped.
        dt: integration step (ms); default ``model.dt``, validated against a BDF reference.
        dt_out: output grid (ms): traces are sampled and noise is drawn on it; a multiple of dt.
        record: any of ``"voltage"``, ``"states"``, ``"currents"``; spikes are always returned.
        seed: seed of the noise; model k of the population uses stream ``key_offset + k``, so a
            population split into parts gives the same result as a whole.
        ids: identifiers for the models (default 0..N−1).
        spike_threshold, spike_rearm: spike detection levels (mV): upward crossing of the
            threshold, re-armed below ``spike_rearm``.
        batch_size: models simulated at once (bounds memory); chunk_samples: output samples per
            compiled chunk.
        progress: show a progress bar.

    Returns:
        A :class:`SimulationResult`.

    Raises:
        ValueError: for invalid conductances, non-positive or too large ``dt``, bad ``duration``.

    Example:
        >>> from neuromech.cbm import hh, simulate, Constant
        >>> res = simulate(hh(), [120.0, 36.0, 0.3], Constant(10.0), duration=100.0)
        >>> len(res.trains[0]) > 3
        True
    """
    record = (record,) if isinstance(record, str) else tuple(record)
    unknown = [r for r in record if r not in RECORDABLE]
    if unknown:
        raise ValueError(f"unknown record option(s) {unknown}; choose from {RECORDABLE}")
    dt = model.dt if dt is None else float(dt)
    g = np.atleast_2d(check_run(model, conductances, duration, transient, dt, dt_out))
    n_models = g.shape[0]
    ids = np.arange(n_models) if ids is None else np.asarray(ids)
    if ids.shape != (n_models,):
        raise ValueError(f"ids must have one entry per model ({n_models}), got shape {ids.shape}")
    stimulus = (stimulus or Stimulus()).prepare(dt_out)
    n_inner = int(round(dt_out / dt))
    n_total = int(math.ceil(duration / dt_out - 1e-9))
    # A fixed chunk length keeps one compiled program for every run of a model (the tail of the
    # last chunk is simulated and discarded).
    per_chunk = min(chunk_samples, n_total)
    n_chunks = math.ceil(n_total / per_chunk)
    devices = jax.devices()
    mode = "states" if ("states" in record or "currents" in record) else "voltage" if record else "none"
    dtype = jnp.asarray(1.0).dtype

    spikes_model, spikes_time, traces = [], [], []
    lost = 0
    n_batches = math.ceil(n_models / batch_size)
    bar = tqdm(total=n_batches * n_chunks, disable=not progress, desc=f"simulate {model.name}", unit="chunk")
    base_key = jax.random.PRNGKey(seed)
    for start in range(0, n_models, batch_size):
        nb = min(batch_size, n_models - start)
        # Pad the batch to a multiple of the device count and split it across devices.
        padded = -(-nb // len(devices)) * len(devices) if nb >= len(devices) else nb
        rows = np.minimum(np.arange(padded), nb - 1) + start
        gb = jnp.asarray(g[rows], dtype)
        model_keys = jax.vmap(lambda k: jax.random.fold_in(base_key, k))(key_offset + jnp.asarray(rows))
        init_keys, keys = jnp.moveaxis(jax.vmap(jax.random.split)(model_keys), 1, 0)
        y0 = jax.vmap(model.initial_state)(gb)
        noise0 = jax.vmap(stimulus.init)(init_keys)
        armed0 = y0[:, 0] < spike_threshold
        carry = (y0, armed0, noise0)
        if len(devices) > 1 and padded % len(devices) == 0:
            sharding = NamedSharding(Mesh(np.array(devices), ("models",)), PartitionSpec("models"))
            gb, carry, keys = jax.device_put((gb, carry, keys), sharding)
        batch_traces = []
        for c in range(n_chunks):
            first = c * per_chunk
            carry, out = _chunk(
                model, stimulus, gb, carry, keys, first,
                n_windows=per_chunk, n_inner=n_inner, dt=dt, theta=spike_threshold, rearm=spike_rearm,
                record=mode,
            )
            spike, extra = np.asarray(out[0][:nb], dtype=np.float64), np.asarray(out[1][:nb])
            lost += int(extra.sum())
            m, w = np.nonzero(~np.isnan(spike))
            t = (first + w) * dt_out + spike[m, w]
            keep = (t >= transient) & (t <= duration)
            spikes_model.append(m[keep] + start)
            spikes_time.append(t[keep])
            if mode != "none":
                batch_traces.append(np.asarray(out[2][:nb]))
            bar.update(1)
            v_end = np.asarray(carry[0][:nb, 0])
            if not np.all(np.isfinite(v_end)):
                bad = int(np.argwhere(~np.isfinite(v_end))[0, 0]) + start
                raise FloatingPointError(
                    f"the simulation of model {ids[bad]} diverged (non-finite voltage); check its "
                    "conductances and the stimulus amplitude"
                )
        if batch_traces:
            traces.append(np.concatenate(batch_traces, axis=1))
    bar.close()
    if lost:
        warnings.warn(
            f"{lost} spikes fell in an output sample that already had one and were dropped; "
            f"use a smaller dt_out (now {dt_out} ms)",
            RuntimeWarning,
            stacklevel=2,
        )

    m = np.concatenate(spikes_model) if spikes_model else np.zeros(0, int)
    t = np.concatenate(spikes_time) if spikes_time else np.zeros(0)
    order = np.lexsort((t, m))
    m, t = m[order], t[order]
    offsets = np.searchsorted(m, np.arange(n_models + 1))

    time = np.zeros(0)
    voltage = states = currents = None
    if traces:
        full = np.concatenate(traces, axis=0)[:, :n_total]
        time = np.arange(n_total) * dt_out
        keep = time >= transient
        time, full = time[keep], full[:, keep]
        if mode == "voltage":
            voltage = full
        else:
            voltage = full[..., 0]
            states = full if "states" in record else None
            if "currents" in record:
                currents = np.asarray(
                    jax.vmap(jax.vmap(model.currents, in_axes=(None, 0)))(jnp.asarray(g, dtype), jnp.asarray(full))
                )
    return SimulationResult(
        model=model, conductances=g, ids=ids, spike_times=t, offsets=offsets, time=time,
        voltage=voltage, states=states, currents=currents, duration=float(duration),
        transient=float(transient), dt=dt,
    )


def check_run(model, conductances, duration, transient, dt=None, dt_out=None) -> np.ndarray:
    """The argument checks shared by :func:`simulate` and :func:`simulate_reference`.

    Returns the conductances (mS/cm²), shape (n,) or (N, n), from an array or a named table (see
    :func:`as_conductances`), after checking the protocol (ms): ``duration`` > 0,
    0 ≤ ``transient`` < ``duration`` and, unless ``dt`` is None (an adaptive solver), the fixed step
    ``dt`` and output step ``dt_out``.
    """
    g = as_conductances(model, conductances)
    _check_times(duration, transient, dt, dt_out)
    return g


def _check_times(duration, transient, dt, dt_out):
    _check_positive("duration", duration)
    if dt is not None:
        _check_steps(dt, dt_out)
    if not (0 <= transient < duration):
        raise ValueError(f"transient must be in [0, duration) = [0, {duration}) ms, got {transient}")


def _check_positive(name, value):
    if not (isinstance(value, (int, float, np.floating)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number of ms, got {value!r}")


def _check_steps(dt, dt_out):
    _check_positive("dt", dt)
    _check_positive("dt_out", dt_out)
    if dt > MAX_DT:
        raise ValueError(
            f"dt = {dt} ms is too large: spikes last about 1 ms and are lost above {MAX_DT} ms "
            "(the exponential integrator stays stable but is no longer accurate); use the model's "
            "default dt"
        )
    ratio = dt_out / dt
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise ValueError(f"dt_out = {dt_out} ms must be a whole multiple of dt = {dt} ms")
    if dt_out > 0.5:
        raise ValueError(f"dt_out = {dt_out} ms must be ≤ 0.5 ms so that each output sample holds at most one spike")
