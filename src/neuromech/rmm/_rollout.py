"""Short closed-loop rollouts from teacher-forced states: a multi-step loss for single neurons.

Teacher forcing fits one Euler step at a time; a free run compounds the model's own errors over
thousands. A rollout loss sits in between (Burghi, Schapiro et al., Front. Comput. Neurosci. 2025,
"generalised teacher forcing"; SCIENCE.md §5): windows of ``m`` samples start from the measured
voltage and the filter states computed from the measured voltage (known, unlike multiple
shooting's trainable starts), run the model for ``m`` steps on the voltage

    v̂[k] = γ v_meas[k] + (1 − γ) v_model[k]          (γ = 0: closed loop)

and compare the model's voltage with the measured one. Over a few milliseconds the model meets
its own trajectories (the spike it fires a little late, the slow drift the one-step fit missed),
which is what decides a free run; and the measurement noise of the start enters the m-step
increment once rather than once per step, which shrinks the errors-in-variables bias of the
one-step derivative target by about a factor m.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ._build import as_recordings, sweep_states
from ._filters import filter_step
from ._model import RMM, derivative


@dataclasses.dataclass(frozen=True)
class Windows:
    """Rollout windows of ``length`` steps.

    Attributes:
        v: (W, length + 1) measured voltage (mV), ``v[:, 0]`` the start.
        x: (W, n) filter states at the start, from the measured voltage (causal).
        i: (W, length) injected current (nA).
    """

    v: np.ndarray
    x: np.ndarray
    i: np.ndarray

    @property
    def size(self) -> int:
        return self.v.shape[0]


def rollout_windows(bank, recordings, length: int, stride: int | None = None) -> Windows:
    """Windows of ``length`` steps every ``stride`` samples (default: ``length``, no overlap) of
    every sweep of ``recordings``, with their teacher-forced start states."""
    if length < 1:
        raise ValueError(f"rollout windows need length ≥ 1 sample, got {length}")
    stride = length if stride is None else stride
    vs, xs, is_ = [], [], []
    for rec in as_recordings(recordings):
        for v, i in zip(rec.voltage, rec.current):
            x = sweep_states(bank, v)
            starts = np.arange(0, len(v) - length, stride)
            idx = starts[:, None] + np.arange(length + 1)
            vs.append(v[idx])
            is_.append(i[idx[:, :-1]])
            xs.append(x[starts])
    if not vs or sum(len(a) for a in vs) == 0:
        raise ValueError(f"the recordings are shorter than one rollout window of {length} samples")
    return Windows(np.concatenate(vs), np.concatenate(xs), np.concatenate(is_))


def rollout(model: RMM, v0, x0, i_app, v_meas=None, gamma=0.0):
    """(len(i_app),) model voltages v[1..m] of one window from ``(v0, x0)``, with generalised
    teacher forcing: each step sees ``γ v_meas[k] + (1 − γ) v_model[k]`` (``v_meas`` (m,), the
    measured v[0..m−1]; ignored when None or γ = 0)."""
    vm = jnp.zeros_like(i_app) if v_meas is None else v_meas

    def step(carry, inp):
        v, x = carry
        i, m = inp
        v_in = gamma * m + (1.0 - gamma) * v
        v_new = v_in + model.dt * derivative(model, v_in, x, i)
        return (v_new, filter_step(model.bank, x, v_in)), v_new

    _, vs = jax.lax.scan(step, (v0, x0), (i_app, vm))
    return vs


def rollout_loss(model: RMM, v_meas, x0, i_app, scale, gamma=0.0, weight_decay: float = 0.0):
    """Mean squared voltage error over a batch of windows, over ``scale`` (mV²), plus priors and
    the L2 weight penalty (per window, as :func:`teacher_forcing_loss` does per sample).

    Args:
        v_meas: (B, m + 1) measured voltage (mV); the run starts at ``v_meas[:, 0]``.
        x0: (B, n) start filter states; i_app: (B, m) injected current (nA).
        scale: normaliser, e.g. the variance of the measured m-step voltage increments.
        gamma: generalised-teacher-forcing mix in [0, 1] (0: closed loop).
    """
    pred = jax.vmap(lambda v, x, i, vm: rollout(model, v[0], x, i, vm[:-1], gamma))(v_meas, x0, i_app, v_meas)
    err = jnp.mean((pred - v_meas[:, 1:]) ** 2) / scale
    return err + model.penalty(weight_decay) / (v_meas.shape[0] * v_meas.shape[1])
