"""The recurrent mechanistic model (RMM) of one neuron, its step, closed-loop and teacher-forced runs.

Discrete time at the sampling period dt (SCIENCE.md §5; Burghi, Ivanova, Morozova, Wang, Marder &
O'Leary, PNAS 122(32) e2426916122, 2025)::

    x[k+1] = A x[k] + B v[k]
    v[k+1] = v[k] + dt / C · (I_app[k] + I_hold − Σ_j I_j(v[k], x[k]))

Units: ms, mV, nA, nF (so nA/nF = mV/ms), µS.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._currents import weights_l2
from ._filters import FilterBank, filter_step, rest_state
from ._params import FIXED, FREE, SCALE


class DivergenceError(FloatingPointError):
    """A closed-loop run left the voltage range the model was trained on.

    Attributes:
        sample: first sample index out of range (per sweep: the earliest).
        time: its time (ms) from the start of the run.
        voltage: (sample,) the trajectory up to (excluding) that sample, finite.
        sweep: the sweep (row of a batched run) it happened in.
    """

    def __init__(self, message, sample: int, time: float, voltage: np.ndarray, sweep: int = 0):
        super().__init__(message)
        self.sample, self.time, self.voltage, self.sweep = sample, time, voltage, sweep


class RMM(eqx.Module):
    """A single-neuron recurrent mechanistic model (an immutable Equinox module).

    Attributes:
        bank: the intrinsic :class:`FilterBank` (fixed).
        currents: membrane currents (nA, outward positive), e.g. ``(Leak, ConductanceCurrent, ...)``.
        names: a name per current (``"leak"``, ``"Na"``, ...).
        capacitance: membrane capacitance C (nF) > 0, learned unless ``learn_capacitance`` is False
            (a value known from a membrane test).
        holding: holding-current offset I_hold (nA) added to the injected current, learned.
        v_bounds: (low, high) voltages (mV) beyond which a free run counts as diverged.

    Build one from data with :func:`init_rmm`; train with :func:`fit`.
    """

    bank: FilterBank
    currents: tuple
    capacitance: jnp.ndarray
    holding: jnp.ndarray
    names: tuple[str, ...] = eqx.field(static=True)
    v_bounds: tuple[float, float] = eqx.field(static=True, default=(-200.0, 150.0))
    learn_capacitance: bool = eqx.field(static=True, default=True)

    @property
    def dt(self) -> float:
        return self.bank.dt

    def current(self, name: str):
        """The current called ``name``."""
        if name not in self.names:
            raise ValueError(f"no current {name!r} in this model; it has {list(self.names)}")
        return self.currents[self.names.index(name)]

    def ablate(self, *names: str) -> "RMM":
        """The model without the named currents (to see what each contributes)."""
        for n in names:
            self.current(n)
        keep = [k for k, n in enumerate(self.names) if n not in names]
        return RMM(self.bank, tuple(self.currents[k] for k in keep), self.capacitance, self.holding,
                   tuple(self.names[k] for k in keep), self.v_bounds, self.learn_capacitance)

    def spec(self):
        """The parameter spec: bank fixed, capacitance positive, holding free, each current's own."""
        return RMM(jax.tree.map(lambda _: FIXED, self.bank),
                   tuple(c.spec() for c in self.currents), SCALE if self.learn_capacitance else FIXED, FREE,
                   self.names, self.v_bounds, self.learn_capacitance)

    def penalty(self, weight_decay: float = 0.0):
        """Priors (reversal potentials) plus ``weight_decay`` × the squared network weights."""
        total = sum((c.penalty() for c in self.currents), jnp.asarray(0.0))
        if weight_decay:
            total = total + weight_decay * sum((weights_l2(c) for c in self.currents), jnp.asarray(0.0))
        return total


def membrane_currents(model: RMM, v, x):
    """(n_currents,) every current (nA) at voltage ``v`` (mV) and filter states ``x``."""
    return jnp.stack([c(v, x) for c in model.currents])


def derivative(model: RMM, v, x, i_app):
    """dv/dt (mV/ms) = (I_app + I_hold − Σ I) / C, for ``i_app`` (nA)."""
    return (i_app + model.holding - jnp.sum(membrane_currents(model, v, x))) / model.capacitance


def derivatives(model: RMM, v, x, i_app):
    """(B,) :func:`derivative` of B rows: ``v`` (B,) mV, ``x`` (B, n), ``i_app`` (B,) nA."""
    return jax.vmap(lambda a, b, c: derivative(model, a, b, c))(v, x, i_app)


def rmm_step(model: RMM, v, x, i_app):
    """One sample: ``(v[k+1], x[k+1])`` from ``v[k]`` (mV), ``x[k]`` and ``i_app[k]`` (nA)."""
    return v + model.dt * derivative(model, v, x, i_app), filter_step(model.bank, x, v)


@eqx.filter_jit
def _free_run(model: RMM, i_app, v0, x0):
    lo, hi = model.v_bounds

    def step(carry, i):
        v, x, k_bad, k = carry
        v_new, x_new = rmm_step(model, v, x, i)
        bad = ~jnp.isfinite(v_new) | (v_new < lo) | (v_new > hi)
        k_bad = jnp.where((k_bad < 0) & bad, k + 1, k_bad)
        # Freeze a diverged run at its last good state so no inf/NaN ever leaves the scan.
        v_new = jnp.where(k_bad >= 0, v, v_new)
        x_new = jnp.where(k_bad >= 0, x, x_new)
        return (v_new, x_new, k_bad, k + 1), v

    init = (jnp.asarray(v0, model.bank.A.dtype), x0, jnp.asarray(-1), jnp.asarray(0))
    (_, _, k_bad, _), vs = jax.lax.scan(step, init, i_app)
    return vs, k_bad


def simulate(model: RMM, i_app, v0, *, x0=None) -> np.ndarray:
    """Free-running (closed-loop) voltage driven by an injected current.

    Main arguments:
        model: a trained :class:`RMM`.
        i_app: (T,) injected current (nA) on the model's grid, or (S, T) for S sweeps.
        v0: initial voltage (mV), scalar or (S,); filter states start at rest there unless ``x0``.

    Returns:
        (T,) or (S, T) voltage (mV), ``v[0] = v0``.

    Raises:
        DivergenceError: if the voltage leaves ``model.v_bounds`` or stops being finite; the error
            gives the first such sample and carries the trajectory up to it (never NaNs).

    Example:
        >>> import numpy as np
        >>> from neuromech.rmm import RMM, Leak, filter_bank
        >>> import jax.numpy as jnp
        >>> m = RMM(filter_bank([1.0], 0.1), (Leak(jnp.asarray(0.1), jnp.asarray(-60.0)),),
        ...         jnp.asarray(1.0), jnp.asarray(0.0), ("leak",))
        >>> v = simulate(m, np.zeros(100), -60.0)
        >>> float(abs(v[-1] + 60.0)) < 1e-4
        True
    """
    i_app = jnp.asarray(i_app, model.bank.A.dtype)
    single = i_app.ndim == 1
    i2 = i_app[None] if single else i_app
    v0 = jnp.broadcast_to(jnp.asarray(v0, i2.dtype), (i2.shape[0],))
    x0s = jax.vmap(lambda v: rest_state(model.bank, v))(v0) if x0 is None else jnp.broadcast_to(
        jnp.asarray(x0, i2.dtype), (i2.shape[0], model.bank.size))
    vs, k_bad = jax.vmap(_free_run, in_axes=(None, 0, 0, 0))(model, i2, v0, x0s)
    vs, k_bad = np.asarray(vs), np.asarray(k_bad)
    if np.any(k_bad >= 0):
        s = int(np.argmin(np.where(k_bad >= 0, k_bad, np.iinfo(k_bad.dtype).max)))
        k = int(k_bad[s])
        raise DivergenceError(
            f"the free-running model diverged at sample {k} (t = {k * model.dt:g} ms) of sweep {s}: the "
            f"voltage left the range {model.v_bounds} mV it can represent; the model is unstable for "
            "this input — train longer, with more data, multiple shooting, or a smaller learning rate",
            k, k * model.dt, vs[s, :k], s,
        )
    return vs[0] if single else vs


@dataclasses.dataclass(frozen=True)
class ReadOut:
    """What a teacher-forced run reads out of a measured voltage.

    Attributes:
        currents: name → (T,) current (nA, outward positive).
        conductances: name → (T, units) conductance ``g a b`` (µS) of conductance-based currents.
        derivative: (T,) predicted dv/dt (mV/ms).
        states: (T, n) filter states.
    """

    currents: dict
    conductances: dict
    derivative: np.ndarray
    states: np.ndarray


def teacher_forced(model: RMM, voltage, i_app=None) -> ReadOut:
    """Read the currents and conductances out of a *measured* voltage (teacher-forced mode).

    The filter states are computed from the measured voltage (causal start at rest at ``v[0]``),
    so every sample is independent of the model's own predictions — the mode used for training
    and for online read-out of currents during an experiment.

    Args:
        voltage: (T,) measured voltage (mV).
        i_app: (T,) injected current (nA), for the predicted derivative (zeros if None).
    """
    from ._filters import filter_signal

    v = np.asarray(voltage, np.float64)
    x = filter_signal(model.bank, v)
    i = np.zeros_like(v) if i_app is None else np.asarray(i_app, np.float64)
    dtype = model.bank.A.dtype
    vj, xj, ij = (jnp.asarray(a, dtype) for a in (v, x, i))
    per = np.asarray(jax.jit(jax.vmap(lambda a, b: membrane_currents(model, a, b)))(vj, xj))
    dv = np.asarray(jax.jit(derivatives)(model, vj, xj, ij))
    conds = {}
    for name, c in zip(model.names, model.currents):
        if hasattr(c, "conductance"):
            conds[name] = np.asarray(jax.vmap(c.conductance)(vj, xj))
    return ReadOut(dict(zip(model.names, per.T)), conds, dv, x)
