"""Channels: the building blocks every conductance-based model is assembled from.

A channel owns a few state variables, each relaxing as ``dx/dt = (x∞ − x) / τ`` with x∞ and τ
functions of the voltage (and possibly of calcium and the channel's other states). This
quasi-linear form covers Hodgkin–Huxley gates and first-order kinetic schemes alike, and is what the
exponential (Rush–Larsen) integrator needs. The current is ``g · open_fraction · (V − E)``.

To add a channel, subclass :class:`Channel` and implement its four methods; nothing in the
simulator needs to change.
"""

from __future__ import annotations

import abc
from typing import Callable

import equinox as eqx
import jax.numpy as jnp

from ._kinetics import Hill, VoltageFunction


class Gate(eqx.Module):
    """One Hodgkin–Huxley gate: ``dx/dt = (x∞(V, Ca) − x) / τ(V)``.

    Attributes:
        name: gate name, e.g. ``"m"``; the state is called ``f"{name}_{channel}"``.
        inf: steady state as a function of V (mV), dimensionless in [0, 1].
        tau: time constant as a function of V (mV), in ms.
        calcium: optional factor multiplying ``inf`` as a function of intracellular Ca (µM),
            for calcium-gated channels (STG KCa).
    """

    name: str = eqx.field(static=True)
    inf: VoltageFunction
    tau: VoltageFunction
    calcium: Hill | None = None

    def steady(self, v, ca):
        x = self.inf(v)
        return x if self.calcium is None else x * self.calcium(ca)


class Channel(eqx.Module):
    """Abstract ionic channel. Concrete channels are final and short.

    The conductance ``g`` (mS/cm²) is not part of the channel: it is a per-model parameter, so that a
    population is one model description and an array of conductances.
    """

    name: eqx.AbstractVar[str]
    reversal: eqx.AbstractVar[float]

    @property
    @abc.abstractmethod
    def state_names(self) -> tuple[str, ...]:
        """Names of this channel's state variables (may be empty)."""

    @abc.abstractmethod
    def steady_state(self, v, ca):
        """States at steady state for voltage ``v`` (mV) and calcium ``ca`` (µM); shape (n_states,)."""

    @abc.abstractmethod
    def relaxation(self, v, ca, x):
        """``(x∞, τ)`` of the quasi-linear form ``dx/dt = (x∞ − x)/τ``, each of shape (n_states,)."""

    @abc.abstractmethod
    def open_fraction(self, v, x):
        """Fraction of the conductance that is open (dimensionless), given v (mV) and states x."""

    def current(self, g, v, x):
        """Current density (µA/cm²) for conductance ``g`` (mS/cm²)."""
        return g * self.open_fraction(v, x) * (v - self.reversal)


class GatedChannel(Channel):
    """A channel with independent gates raised to powers, e.g. ``m³h`` for sodium.

    Attributes:
        name: channel name; its conductance is called ``f"g_{name}"``.
        reversal: reversal potential E (mV).
        gates: the gates, in order.
        powers: the exponent of each gate (e.g. (3, 1) for m³h).
        block: optional instantaneous voltage factor (e.g. the Mg²⁺ block of NMDA receptors).
        timescale: ``None`` to weight each gate by its own time constant in DIC computations, or
            ``"fast"`` / ``"ultraslow"`` to place the whole channel in one band.
    """

    name: str = eqx.field(static=True)
    reversal: float
    gates: tuple[Gate, ...] = ()
    powers: tuple[int, ...] = eqx.field(static=True, default=())
    block: Callable | None = None
    timescale: str | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if len(self.gates) != len(self.powers):
            raise ValueError(
                f"channel {self.name!r}: {len(self.gates)} gates but {len(self.powers)} powers; "
                "give one power per gate"
            )

    @property
    def state_names(self):
        return tuple(f"{gate.name}_{self.name}" for gate in self.gates)

    def steady_state(self, v, ca):
        v = jnp.asarray(v, dtype=float)
        return jnp.stack([gate.steady(v, ca) for gate in self.gates]) if self.gates else jnp.zeros((0,) + v.shape)

    def relaxation(self, v, ca, x):
        inf = self.steady_state(v, ca)
        v = jnp.asarray(v, dtype=float)
        tau = jnp.stack([gate.tau(v) for gate in self.gates]) if self.gates else jnp.zeros((0,) + v.shape)
        return inf, tau

    def open_fraction(self, v, x):
        p = jnp.ones_like(jnp.asarray(v, dtype=float))
        for k, power in enumerate(self.powers):
            p = p * x[k] ** power
        if self.block is not None:
            p = p * self.block(v)
        return p


class MarkovChannel(Channel):
    """Three-state kinetic channel closed ⇄ open ⇄ inactivated (e.g. ERG).

    ``do/dt = a0 (1 − o − i) + bi·i − o (ai + b0)``, ``di/dt = ai·o − bi·i``; the open fraction is o.
    Rates are voltage functions in 1/ms. Each state is put in quasi-linear form with the other held,
    which is exact for the steady state and what the exponential integrator needs.
    """

    name: str = eqx.field(static=True)
    reversal: float
    a0: VoltageFunction
    b0: VoltageFunction
    ai: VoltageFunction
    bi: VoltageFunction
    timescale: str | None = eqx.field(static=True, default="ultraslow")

    @property
    def state_names(self):
        return (f"o_{self.name}", f"i_{self.name}")

    def steady_state(self, v, ca):
        a0, b0, ai, bi = self.a0(v), self.b0(v), self.ai(v), self.bi(v)
        o = a0 * bi / (a0 * (ai + bi) + b0 * bi)
        return jnp.stack([o, ai * o / bi])

    def relaxation(self, v, ca, x):
        o, i = x[0], x[1]
        a0, b0, ai, bi = self.a0(v), self.b0(v), self.ai(v), self.bi(v)
        leave_open = a0 + ai + b0
        o_inf = (a0 * (1.0 - i) + bi * i) / leave_open
        i_inf = ai * o / bi
        return jnp.stack([o_inf, i_inf]), jnp.stack([1.0 / leave_open, 1.0 / bi])

    def open_fraction(self, v, x):
        return x[0] * jnp.ones_like(jnp.asarray(v, dtype=float))


class CalciumPool(eqx.Module):
    """Intracellular calcium: ``τ dCa/dt = −α Σ I_source − Ca + β`` (Ca in µM, τ in ms).

    Attributes:
        sources: names of the channels whose currents fill the pool.
        alpha: µM per (µA/cm²); beta: µM; tau: ms; initial: µM at t = 0.
    """

    sources: tuple[str, ...] = eqx.field(static=True)
    alpha: float = 0.94
    beta: float = 0.05
    tau: float = 20.0
    initial: float = 0.5

    def steady(self, source_current):
        return -self.alpha * source_current + self.beta
