"""Voltage functions that gates are built from: steady states x∞(V) and time constants τ(V).

Each is a small immutable callable of the membrane voltage (mV) so that models stay data:
parameters are named fields, and autodiff sees through every function.
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax.numpy as jnp

VoltageFunction = Callable[[jnp.ndarray], jnp.ndarray]


class Sigmoid(eqx.Module):
    """``A + B / (1 + exp((V + D) / C))`` — the ``gsig`` of SCIENCE.md §1."""

    A: float
    B: float
    C: float
    D: float

    def __call__(self, v):
        return self.A + self.B / (1.0 + jnp.exp((v + self.D) / self.C))


class Product(eqx.Module):
    """Pointwise product of two voltage functions (e.g. τ_hNa of the STG model)."""

    first: VoltageFunction
    second: VoltageFunction

    def __call__(self, v):
        return self.first(v) * self.second(v)


class DoubleExponential(eqx.Module):
    """``offset + scale / (exp((V + a) / ka) + exp((V + b) / kb))`` (STG CaS time constants)."""

    offset: float
    scale: float
    a: float
    ka: float
    b: float
    kb: float

    def __call__(self, v):
        return self.offset + self.scale / (jnp.exp((v + self.a) / self.ka) + jnp.exp((v + self.b) / self.kb))


class Exponential(eqx.Module):
    """``rate · exp(slope · V)``: a first-order transition rate (1/ms)."""

    rate: float
    slope: float

    def __call__(self, v):
        return self.rate * jnp.exp(self.slope * v)


class Constant(eqx.Module):
    """A voltage-independent value."""

    value: float

    def __call__(self, v):
        return jnp.full_like(jnp.asarray(v, dtype=float), self.value)


class Hill(eqx.Module):
    """``c / (c + K)``: calcium dependence of a gate's steady state (STG KCa, K = 3 µM)."""

    K: float

    def __call__(self, ca):
        return ca / (ca + self.K)


def exprel(x):
    """``x / (exp(x) − 1)`` evaluated stably, equal to 1 at x = 0 (removable singularity)."""
    small = jnp.abs(x) < 1e-6
    safe = jnp.where(small, 1.0, x)
    return jnp.where(small, 1.0 - x / 2.0, safe / jnp.expm1(safe))


class ExpRel(eqx.Module):
    """``scale · x / (exp(x) − 1)`` with ``x = x0 + slope · V``: a linoid rate, finite at x = 0.

    The Hodgkin–Huxley α_m and α_n and the DA sodium activation time constant have this form;
    written with :func:`exprel` their removable singularity is harmless.
    """

    scale: float
    x0: float
    slope: float

    def __call__(self, v):
        return self.scale * exprel(self.x0 + self.slope * v)


class RateRatio(eqx.Module):
    """Steady state ``α / (α + β)`` of a gate given by opening and closing rates."""

    alpha: VoltageFunction
    beta: VoltageFunction

    def __call__(self, v):
        a = self.alpha(v)
        return a / (a + self.beta(v))


class InverseRateSum(eqx.Module):
    """Time constant ``offset + 1 / Σ rates(V)`` (ms)."""

    offset: float
    rates: tuple

    def __call__(self, v):
        total = sum(rate(v) for rate in self.rates)
        return self.offset + 1.0 / total


class MagnesiumBlock(eqx.Module):
    """NMDA magnesium block ``1 / (1 + Mg · exp(−0.08 V) / 10)``, Mg in mM."""

    mg: float = 1.4

    def __call__(self, v):
        return 1.0 / (1.0 + self.mg * jnp.exp(-0.08 * v) / 10.0)
