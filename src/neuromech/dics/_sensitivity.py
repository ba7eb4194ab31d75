"""The DIC sensitivity matrix S(V): how much each channel, per unit conductance, contributes to the
fast, slow and ultraslow dynamic input conductances (Drion, Franci, Dethier, Sepulchre 2015, eLife
4:e04871; SCIENCE.md §2).

Everything is obtained by automatic differentiation of the model's own steady-state currents, so a
new channel needs no hand-written derivative. At a voltage V with every gate at steady state (and
Ca = Ca∞(V)), gate x of channel j contributes, per unit ḡ_j,

    c_x(V) = ∂I_j/∂x · dx∞/dV   (= −C ∂V̇/∂x · dx∞/dV)

and its share goes to the fast/slow/ultraslow bands by the logarithmic position of τx(V) between the
reference time constants. The instantaneous term ∂I_j/∂V at fixed gates (the steady gating product,
plus the derivative of an instantaneous block such as NMDA's Mg²⁺ factor) is fast.

The functions here are pure and precision-agnostic: call them under ``jax.enable_x64(True)`` when the
numbers matter (the public wrappers in this package do), since g_Na·S_Na/g_leak is of order 10⁴ in the
STG model and float32 would leave errors of order 10⁻³ in the DICs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..cbm import ConductanceBasedModel

CALCIUM_PATHS = ("python", "ultraslow")
BANDS = ("f", "s", "u")


def check_calcium_path(calcium_path: str) -> str:
    if calcium_path not in CALCIUM_PATHS:
        raise ValueError(
            f"calcium_path must be one of {CALCIUM_PATHS} (the published Python pipeline weights the "
            f"KCa calcium path with τ_Ca; the earlier Julia code puts it in the ultraslow band); "
            f"got {calcium_path!r}"
        )
    return calcium_path


def leak_index(model: ConductanceBasedModel) -> int:
    """Index of the leak conductance, which normalises the DICs."""
    try:
        return model.channel_index("leak")
    except KeyError:
        raise ValueError(
            f"model {model.name!r} has no channel named 'leak'; DICs are normalised by g_leak, so the "
            f"model needs one (its conductances are {', '.join(model.conductance_names)})"
        ) from None


def _state_owner(model: ConductanceBasedModel, state: str) -> tuple[int, int]:
    for k, ch in enumerate(model.channels):
        if state in ch.state_names:
            return k, ch.state_names.index(state)
    raise ValueError(
        f"model {model.name!r}: DIC reference time constant {state!r} is not a gate state; gate "
        f"states are {', '.join(model.state_names[1:])}"
    )


def reference_taus(model: ConductanceBasedModel, v, ca):
    """The reference time constants (τ_f, τ_s, τ_u) at voltage ``v`` (mV), in ms."""
    if len(model.dic_timescales) != 3:
        raise ValueError(
            f"model {model.name!r} declares no DIC reference time constants (dic_timescales = "
            f"{model.dic_timescales!r}); give three, e.g. ('m_Na', 'm_Kd', 'm_H')"
        )
    out = []
    for ref in model.dic_timescales:
        if isinstance(ref, str):
            k, i = _state_owner(model, ref)
            ch = model.channels[k]
            x = ch.steady_state(v, ca)
            out.append(ch.relaxation(v, ca, x)[1][i])
        else:
            out.append(jnp.asarray(float(ref), dtype=jnp.result_type(v)))
    return tuple(out)


def band_weight(tau, tau_1, tau_2):
    """Logarithmic weight of a time constant ``tau`` between ``tau_1`` and ``tau_2`` (SCIENCE.md §2).

    1 if τ ≤ τ1, (ln τ2 − ln τ)/(ln τ2 − ln τ1) if τ1 < τ ≤ τ2, 0 if τ > τ2 (also when the references
    cross, τ1 ≥ τ2, exactly as the published code does).
    """
    inside = (tau > tau_1) & (tau <= tau_2)
    denom = jnp.where(inside, jnp.log(tau_2) - jnp.log(tau_1), 1.0)
    ratio = (jnp.log(tau_2) - jnp.log(jnp.where(inside, tau, tau_2))) / denom
    return jnp.where(tau > tau_2, 0.0, jnp.where(tau <= tau_1, 1.0, ratio))


def _weights(tau, taus, timescale):
    """``(w_fs, w_su)`` for time constant(s) ``tau``, or the channel's fixed band."""
    if timescale == "fast":
        one = jnp.ones_like(tau)
        return one, one
    if timescale == "ultraslow":
        zero = jnp.zeros_like(tau)
        return zero, zero
    if timescale is not None:
        raise ValueError(f"unknown channel timescale {timescale!r}; use None, 'fast' or 'ultraslow'")
    tau_f, tau_s, tau_u = taus
    return band_weight(tau, tau_f, tau_s), band_weight(tau, tau_s, tau_u)


def steady_calcium(model: ConductanceBasedModel, g, v):
    """Ca∞(V) (µM) for conductances ``g`` (mS/cm²); zero for models without a calcium pool.

    Same as ``model.steady_state(g, v)[-1]`` (tested), but evaluates only the calcium sources, which
    keeps the compensation loop small. Sources are voltage-gated only, as the model assumes.
    """
    if model.calcium is None:
        return jnp.zeros_like(v)
    influx = 0.0
    for k, ch in enumerate(model.channels):
        if ch.name in model.calcium.sources:
            influx = influx + ch.current(g[k], v, ch.steady_state(v, jnp.zeros_like(v)))
    return model.calcium.steady(influx)


def calcium_dependent(model: ConductanceBasedModel) -> tuple[int, ...]:
    """Indices of the channels whose S column depends on Ca∞ (hence on the calcium-source conductances).

    Gated channels depend on calcium only through gates with a ``calcium`` factor; other channel
    types are assumed to (conservatively) when the model has a calcium pool.
    """
    from ..cbm import GatedChannel

    if model.calcium is None:
        return ()
    return tuple(
        k for k, ch in enumerate(model.channels)
        if not isinstance(ch, GatedChannel) or any(gate.calcium is not None for gate in ch.gates)
    )


def calcium_at(model: ConductanceBasedModel, g, v):
    """``(Ca∞(V), dCa∞/dV)`` for conductances ``g`` (zeros without a calcium pool)."""
    return jax.jvp(lambda vv: steady_calcium(model, g, vv), (v,), (jnp.ones_like(v),))


def columns_at(model: ConductanceBasedModel, v, ca, dca_dv, calcium_path: str = "python", channels=None):
    """Columns of S(V) for the channels ``channels`` (default all), given Ca∞(V) and dCa∞/dV.

    This is where the work is; :func:`sensitivity_at` wraps it. Splitting off calcium lets the
    compensation recompute only the calcium-dependent columns while it iterates.
    """
    check_calcium_path(calcium_path)
    channels = range(len(model.channels)) if channels is None else channels
    taus = reference_taus(model, v, ca)
    if model.calcium is not None:
        tau_ca = jnp.asarray(model.calcium.tau, dtype=v.dtype)
        ca_w = _weights(tau_ca, taus, None) if calcium_path == "python" else _weights(tau_ca, taus, "ultraslow")
    columns = []
    for k in channels:
        ch = model.channels[k]
        x, dx_dv = jax.jvp(lambda vv: ch.steady_state(vv, ca), (v,), (jnp.ones_like(v),))
        di_dv = jax.grad(lambda vv: ch.current(1.0, vv, x))(v)
        di_dx = jax.grad(lambda xx: ch.current(1.0, v, xx))(x)
        tau = ch.relaxation(v, ca, x)[1]
        w_fs, w_su = _weights(tau, taus, ch.timescale)
        direct = di_dx * dx_dv
        s_f = di_dv + jnp.sum(w_fs * direct)
        s_s = jnp.sum((w_su - w_fs) * direct)
        s_u = jnp.sum((1.0 - w_su) * direct)
        if model.calcium is not None and k in calcium_dependent(model):
            # The calcium path: x∞ depends on Ca∞(V), which relaxes with τ_Ca, not with τx.
            dx_dca = jax.jvp(lambda cc: ch.steady_state(v, cc), (ca,), (jnp.ones_like(ca),))[1]
            via_ca = jnp.sum(di_dx * dx_dca) * dca_dv
            c_fs, c_su = ca_w if ch.timescale is None else _weights(tau_ca, taus, ch.timescale)
            s_f = s_f + c_fs * via_ca
            s_s = s_s + (c_su - c_fs) * via_ca
            s_u = s_u + (1.0 - c_su) * via_ca
        columns.append(jnp.stack([s_f, s_s, s_u]))
    return jnp.stack(columns, axis=-1)


def sensitivity_at(model: ConductanceBasedModel, g, v, calcium_path: str = "python"):
    """Sensitivity matrix S(V) of one model at one voltage: a pure, jit/vmap/grad-able function.

    Args:
        model: the conductance-based model.
        g: conductances (mS/cm²), shape (n_channels,). S depends on them only through Ca∞(V).
        v: voltage (mV), a scalar.
        calcium_path: ``"python"`` weights the KCa calcium path with the pool's τ_Ca (20 ms in the
            STG), ``"ultraslow"`` puts it in the ultraslow band.

    Returns:
        S, shape (3, n_channels): rows fast, slow, ultraslow; entries are dimensionless (current
        slope per unit conductance). ``S @ g / g_leak`` are the DICs (g_f, g_s, g_u).
    """
    check_calcium_path(calcium_path)
    v = jnp.asarray(v, dtype=jnp.result_type(float))
    g = jnp.asarray(g, dtype=v.dtype)
    ca, dca_dv = calcium_at(model, g, v)
    return columns_at(model, v, ca, dca_dv, calcium_path)


def dics_at(model: ConductanceBasedModel, g, v, calcium_path: str = "python"):
    """DICs of one model at one voltage: ``(g_f, g_s, g_u, g_t)``, shape (4,), normalised by g_leak.

    Pure and jit/vmap/grad-able; precision follows the caller (use float64 for 1e-3 accuracy).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from neuromech.cbm import stg
        >>> g = [8228.904834, 88.877566, 3.970819, 54.642893, 164.678951, 472.321169, 0.610392, 0.012287]
        >>> with jax.enable_x64(True):
        ...     out = dics_at(stg(), jnp.asarray(g), -51.0)
        >>> [round(float(x), 3) for x in out[:3]]
        [-4.97, -8.0, 8.0]
    """
    g = jnp.asarray(g, dtype=jnp.result_type(float))
    s = sensitivity_at(model, g, v, calcium_path) @ g / g[leak_index(model)]
    return jnp.concatenate([s, jnp.sum(s, keepdims=True)])
