"""Injected currents (µA/cm²) as functions of time (ms), plus seeded noise processes.

A stimulus has a deterministic part ``at(t)``, evaluated at every integration step, and an optional
random part drawn once per sample of the output grid (``dt_out``) and held over it, independently
for each model of a population. Stimuli add: ``Step(2.0, start=100) + Noise(3.0)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal


class Stimulus(eqx.Module):
    """Base class. Subclasses override ``at`` and/or the random-process trio ``prepare/init/sample``."""

    def at(self, t):
        """Deterministic current (µA/cm²) at time ``t`` (ms)."""
        return jnp.zeros_like(t)

    def prepare(self, dt_out: float) -> "Stimulus":
        """Return the stimulus ready for an output grid of step ``dt_out`` (ms); checks settings."""
        return self

    def init(self, key):
        """Initial state of the random part for one model."""
        return ()

    def sample(self, state, key):
        """Advance the random part by one output sample: ``(state, current held over the sample)``."""
        return state, 0.0

    def __add__(self, other: "Stimulus") -> "Stimulus":
        if not isinstance(other, Stimulus):
            return NotImplemented
        return Sum((self, other))


class Sum(Stimulus):
    """Sum of stimuli."""

    parts: tuple[Stimulus, ...]

    def at(self, t):
        return sum(p.at(t) for p in self.parts)

    def prepare(self, dt_out):
        return Sum(tuple(p.prepare(dt_out) for p in self.parts))

    def init(self, key):
        keys = jax.random.split(key, len(self.parts))
        return tuple(p.init(k) for p, k in zip(self.parts, keys))

    def sample(self, state, key):
        keys = jax.random.split(key, len(self.parts))
        out = [p.sample(s, k) for p, s, k in zip(self.parts, state, keys)]
        return tuple(s for s, _ in out), sum(i for _, i in out)


class Constant(Stimulus):
    """Constant current ``amplitude`` (µA/cm²)."""

    amplitude: float = 0.0

    def at(self, t):
        return jnp.full_like(t, self.amplitude)


class Step(Stimulus):
    """``amplitude`` (µA/cm²) between ``start`` and ``stop`` (ms), ``baseline`` elsewhere."""

    amplitude: float
    start: float = 0.0
    stop: float = float("inf")
    baseline: float = 0.0

    def at(self, t):
        on = (t >= self.start) & (t < self.stop)
        return jnp.where(on, self.amplitude, self.baseline)


class Ramp(Stimulus):
    """Linear ramp from ``i_start`` at ``start`` to ``i_stop`` at ``stop`` (ms, µA/cm²); 0 outside."""

    i_start: float
    i_stop: float
    start: float
    stop: float

    def at(self, t):
        frac = (t - self.start) / (self.stop - self.start)
        on = (t >= self.start) & (t < self.stop)
        return jnp.where(on, self.i_start + frac * (self.i_stop - self.i_start), 0.0)


class Sampled(Stimulus):
    """An arbitrary sampled current, linearly interpolated; held at its ends outside.

    Attributes:
        values: current samples (µA/cm²), shape (n,).
        dt: sample period (ms). t0: time of the first sample (ms).
    """

    values: jnp.ndarray
    dt: float
    t0: float = 0.0

    def __check_init__(self):
        if np.ndim(self.values) != 1 or np.size(self.values) < 2:
            raise ValueError(f"Sampled values must be 1-D with ≥ 2 samples, got shape {np.shape(self.values)}")
        if not np.all(np.isfinite(self.values)):
            raise ValueError("Sampled values contain NaN or inf; clean or interpolate the current first")
        if not self.dt > 0:
            raise ValueError(f"Sampled dt must be > 0 ms, got {self.dt}")

    def at(self, t):
        k = (t - self.t0) / self.dt
        k0 = jnp.clip(jnp.floor(k), 0, self.values.shape[0] - 2)
        w = jnp.clip(k - k0, 0.0, 1.0)
        i0 = k0.astype(jnp.int32)
        return self.values[i0] * (1 - w) + self.values[i0 + 1] * w


class Noise(Stimulus):
    """Noisy current of SCIENCE.md §1.4: white Gaussian noise of std ``sigma`` (µA/cm²) on the output
    grid, low-pass filtered by a Butterworth filter (``order``, ``cutoff`` in Hz), independent per model.
    """

    sigma: float
    cutoff: float = 1000.0
    order: int = eqx.field(static=True, default=4)
    sos: jnp.ndarray | None = None

    def prepare(self, dt_out):
        nyquist = 0.5 * 1000.0 / dt_out  # Hz, dt_out in ms
        if not 0 < self.cutoff < nyquist:
            raise ValueError(
                f"noise cut-off {self.cutoff} Hz must be below the Nyquist frequency {nyquist:g} Hz of "
                f"the output grid (dt_out = {dt_out} ms); use a finer dt_out"
            )
        sos = scipy.signal.butter(self.order, self.cutoff, fs=1000.0 / dt_out, output="sos")
        return eqx.tree_at(lambda s: s.sos, self, jnp.asarray(sos), is_leaf=lambda x: x is None)

    def init(self, key):
        return jnp.zeros((self.sos.shape[0], 2))

    def sample(self, state, key):
        x = self.sigma * jax.random.normal(key)
        new = []
        for k in range(self.sos.shape[0]):  # direct form II transposed, one biquad per section
            b0, b1, b2, _, a1, a2 = (self.sos[k, j] for j in range(6))
            z1, z2 = state[k, 0], state[k, 1]
            y = b0 * x + z1
            new.append(jnp.stack([b1 * x - a1 * y + z2, b2 * x - a2 * y]))
            x = y
        return jnp.stack(new), x


class OrnsteinUhlenbeck(Stimulus):
    """Ornstein–Uhlenbeck current: mean ``mean``, stationary std ``sigma`` (µA/cm²), correlation time
    ``tau`` (ms); sampled exactly on the output grid, started from its stationary distribution.
    """

    mean: float
    sigma: float
    tau: float
    decay: float | None = None

    def prepare(self, dt_out):
        if not self.tau > 0:
            raise ValueError(f"OU correlation time tau must be > 0 ms, got {self.tau}")
        return eqx.tree_at(lambda s: s.decay, self, float(np.exp(-dt_out / self.tau)), is_leaf=lambda x: x is None)

    def init(self, key):
        return self.mean + self.sigma * jax.random.normal(key)

    def sample(self, state, key):
        new = self.mean + (state - self.mean) * self.decay
        new = new + self.sigma * jnp.sqrt(1.0 - self.decay**2) * jax.random.normal(key)
        return new, state
