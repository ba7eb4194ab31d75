"""Interpretation of a trained RMM: I–V curves per current and learned gating curves."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ._filters import rest_state
from ._model import RMM


def iv_curves(model: RMM, v_grid, *, v_hold: float = -65.0) -> dict:
    """Steady-state and instantaneous I–V curves of every current (nA) on ``v_grid`` (mV).

    Steady state: filter states at rest at each voltage (every gate has settled). Instantaneous:
    filter states at rest at ``v_hold`` (mV) while the voltage steps to each grid value — the
    current right after a voltage step from ``v_hold``, before any gate has moved.

    Returns:
        ``{"v": grid, "steady": {name: (n,)}, "instantaneous": {name: (n,)}}``.

    Example:
        >>> # curves = iv_curves(model, np.linspace(-90, 20, 111)); curves["steady"]["K"]
    """
    v = jnp.asarray(np.asarray(v_grid, float), model.bank.A.dtype)
    x_hold = rest_state(model.bank, v_hold)
    steady, inst = {}, {}
    for name, c in zip(model.names, model.currents):
        steady[name] = np.asarray(jax.vmap(lambda u: c(u, rest_state(model.bank, u)))(v))
        inst[name] = np.asarray(jax.vmap(lambda u: c(u, x_hold))(v))
    steady["total"] = sum(steady[n] for n in model.names)
    inst["total"] = sum(inst[n] for n in model.names)
    return {"v": np.asarray(v_grid, float), "steady": steady, "instantaneous": inst, "v_hold": v_hold}


def gate_curves(model: RMM, v_grid) -> dict:
    """Steady-state activation and inactivation of each conductance-based current on ``v_grid``.

    Returns:
        ``{name: {"activation": (n, units) or None, "inactivation": ..., "conductance": (n, units)}}``
        with the gates evaluated at the filter states' rest values for each voltage (mV); the
        conductance is ``g a b`` (µS).
    """
    v = jnp.asarray(np.asarray(v_grid, float), model.bank.A.dtype)
    x = jax.vmap(lambda u: rest_state(model.bank, u))(v)
    out = {}
    for name, c in zip(model.names, model.currents):
        if not hasattr(c, "conductance"):
            continue
        act = None if c.activation is None else np.asarray(jax.vmap(c.activation)(x, v))
        inact = None if c.inactivation is None else np.asarray(jax.vmap(c.inactivation)(x, v))
        out[name] = {"activation": act, "inactivation": inact,
                     "conductance": np.asarray(jax.vmap(c.conductance)(v, x)), "E": np.asarray(c.E)}
    return out
