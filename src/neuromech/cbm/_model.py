"""The conductance-based model: channels, an optional calcium pool, and a membrane.

State layout (one flat vector per model, names in :attr:`ConductanceBasedModel.state_names`):
``[V, states of channel 1, ..., states of channel K, Ca]``. Conductances are a vector in the order
of :attr:`ConductanceBasedModel.conductance_names`; a population is a ``(N, n_conductances)`` array
with the same model, which is what ``jax.vmap`` maps over.

All functions here are pure and differentiable; the simulator and the DIC code are built on them.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._channels import CalciumPool, Channel


# Columns of population tables that describe models rather than set a conductance: identifiers, DICs
# and how they were set (``Population.to_frame``, ``DICs.to_frame``, member tables); so does any
# ``target_*`` column (see :func:`is_metadata_column`). The one definition, shared with the DIC code.
METADATA_COLUMNS = frozenset(
    {"id", "ID", "member", "g_f", "g_s", "g_u", "g_t", "v", "v_th", "residual", "compensated"}
)


def is_metadata_column(name) -> bool:
    """Whether a table column describes models (``id``, ``g_f``, ``target_g_s``, ...) rather than
    setting a conductance."""
    return name in METADATA_COLUMNS or str(name).startswith("target_")


class ConductanceBasedModel(eqx.Module):
    """A single-compartment conductance-based neuron model.

    Attributes:
        name: short identifier (``"stg"``, ``"da"``, ``"hh"``).
        channels: the ionic channels, in the order of the conductances.
        calcium: intracellular calcium pool, or ``None``.
        capacitance: membrane capacitance (µF/cm²).
        v_init: initial voltage (mV); gates start at their steady state there.
        dt: default integration step of the exponential solver (ms), validated against a BDF
            reference at tight tolerance (see tests/test_accuracy.py).
        duration, transient: the published simulation protocol (ms): simulate ``duration`` and
            keep spikes after ``transient``.
        v_th: the published fixed threshold voltage for DICs (mV), or ``None``.
        dic_timescales: reference time constants (τ_f, τ_s, τ_u) for DICs, each the name of a
            gate state (e.g. ``"m_Na"``) whose τ(V) is used, or a constant in ms.

    Example:
        >>> from neuromech.cbm import stg
        >>> model = stg()
        >>> model.conductance_names[:2]
        ('g_Na', 'g_Kd')
    """

    name: str = eqx.field(static=True)
    channels: tuple[Channel, ...]
    calcium: CalciumPool | None = None
    capacitance: float = 1.0
    v_init: float = -70.0
    dt: float = 0.025
    duration: float = 6000.0
    transient: float = 3000.0
    v_th: float | None = None
    dic_timescales: tuple = eqx.field(static=True, default=())

    def __check_init__(self):
        names = [ch.name for ch in self.channels]
        if len(set(names)) != len(names):
            raise ValueError(f"model {self.name!r}: channel names must be unique, got {names}")
        if self.calcium is not None:
            unknown = set(self.calcium.sources) - set(names)
            if unknown:
                raise ValueError(
                    f"model {self.name!r}: calcium sources {sorted(unknown)} are not channels; "
                    f"channels are {names}"
                )

    # ----------------------------------------------------------------------------------- layout
    @property
    def conductance_names(self) -> tuple[str, ...]:
        return tuple(f"g_{ch.name}" for ch in self.channels)

    @property
    def channel_names(self) -> tuple[str, ...]:
        return tuple(ch.name for ch in self.channels)

    @property
    def state_names(self) -> tuple[str, ...]:
        names = ("V",) + tuple(n for ch in self.channels for n in ch.state_names)
        return names + (("Ca",) if self.calcium is not None else ())

    @property
    def n_states(self) -> int:
        return len(self.state_names)

    def _slices(self):
        start, out = 1, []
        for ch in self.channels:
            n = len(ch.state_names)
            out.append(slice(start, start + n))
            start += n
        return out

    def channel_index(self, name: str) -> int:
        """Index of channel ``name`` (without the ``g_`` prefix) in the conductance vector."""
        key = name[2:] if name.startswith("g_") else name
        try:
            return self.channel_names.index(key)
        except ValueError:
            raise KeyError(
                f"model {self.name!r} has no channel {name!r}; its conductances are "
                f"{', '.join(self.conductance_names)}"
            ) from None

    # ----------------------------------------------------------------------------- physiology
    def _calcium(self, y):
        return y[-1] if self.calcium is not None else jnp.zeros_like(y[0])

    def currents(self, g, y):
        """Ionic current densities (µA/cm²) of every channel, shape (n_channels,).

        Args:
            g: conductances (mS/cm²), shape (n_channels,).
            y: state vector, shape (n_states,).
        """
        v = y[0]
        return jnp.stack(
            [ch.current(g[k], v, y[sl]) for k, (ch, sl) in enumerate(zip(self.channels, self._slices()))]
        )

    def _calcium_influx(self, g, v, gate_states):
        total = 0.0
        for k, ch in enumerate(self.channels):
            if ch.name in self.calcium.sources:
                total = total + ch.current(g[k], v, gate_states[k])
        return total

    def derivatives(self, y, g, i_app=0.0):
        """Time derivative dy/dt (per ms) of the state for applied current ``i_app`` (µA/cm²)."""
        v, ca = y[0], self._calcium(y)
        slices = self._slices()
        parts = [(-jnp.sum(self.currents(g, y)) + i_app) / self.capacitance]
        for ch, sl in zip(self.channels, slices):
            inf, tau = ch.relaxation(v, ca, y[sl])
            parts.append((inf - y[sl]) / tau)
        if self.calcium is not None:
            influx = self._calcium_influx(g, v, [y[sl] for sl in slices])
            parts.append(jnp.atleast_1d((self.calcium.steady(influx) - ca) / self.calcium.tau))
        return jnp.concatenate([jnp.atleast_1d(p) for p in parts])

    def steady_state(self, g, v):
        """State with every gate (and calcium) at steady state for a clamped voltage ``v`` (mV).

        Calcium-gated steady states use Ca∞(V), which depends on the calcium-source conductances.
        """
        v = jnp.asarray(v, dtype=float)
        ca = jnp.zeros_like(v)
        if self.calcium is not None:
            # Sources are voltage-gated only, so one pass gives their steady currents.
            first = [ch.steady_state(v, ca) for ch in self.channels]
            ca = self.calcium.steady(self._calcium_influx(g, v, first))
        states = [ch.steady_state(v, ca) for ch in self.channels]
        parts = [v[None]] + states + ([ca[None]] if self.calcium is not None else [])
        return jnp.concatenate(parts)

    def initial_state(self, g=None):
        """State at t = 0: V = ``v_init``, gates at steady state there, Ca at the pool's initial value."""
        v = jnp.asarray(self.v_init, dtype=float)
        if self.calcium is None:
            return jnp.concatenate([v[None]] + [ch.steady_state(v, 0.0) for ch in self.channels])
        ca = jnp.asarray(self.calcium.initial, dtype=float)
        states = [ch.steady_state(v, ca) for ch in self.channels]
        return jnp.concatenate([v[None]] + states + [ca[None]])

    def relaxation(self, y, g, i_app=0.0):
        """The whole state in quasi-linear form ``dy/dt = (y∞ − y) · rate``: returns ``(y∞, rate)``.

        Gates and calcium relax towards their steady state at rate 1/τ; the voltage relaxes
        towards V∞ = (Σ g_j p_j E_j + I_app) / Σ g_j p_j at rate Σ g_j p_j / C, the membrane
        equation with the open fractions p_j held at their current values.
        """
        v, ca = y[0], self._calcium(y)
        slices = self._slices()
        targets, rates, conductance, drive = [], [], 0.0, i_app
        for k, (ch, sl) in enumerate(zip(self.channels, slices)):
            inf, tau = ch.relaxation(v, ca, y[sl])
            targets.append(inf)
            rates.append(1.0 / tau)
            gk = g[k] * ch.open_fraction(v, y[sl])
            conductance = conductance + gk
            drive = drive + gk * ch.reversal
        targets.insert(0, (drive / conductance)[None])
        rates.insert(0, (conductance / self.capacitance)[None])
        if self.calcium is not None:
            influx = self._calcium_influx(g, v, [y[sl] for sl in slices])
            targets.append(self.calcium.steady(influx)[None])
            rates.append(jnp.full((1,), 1.0 / self.calcium.tau))
        return jnp.concatenate(targets), jnp.concatenate(rates)

    def exponential_step(self, y, g, i_app, dt):
        """One step of the exponential midpoint integrator: second order, stable for any ``dt``.

        Every variable, gates and calcium (Rush–Larsen) as well as the voltage (linear in V once the
        open fractions are fixed), moves exactly towards its instantaneous target:
        ``y ← y∞ + (y − y∞) exp(−rate · dt)``. The targets and rates are taken at the midpoint of
        the step, predicted by a first-order half step; this makes the scheme second order (the
        "RL2" scheme of Perego & Veneziani 2009), which matters for slow pacemakers whose
        inter-spike interval is very sensitive to small biases in the slow dynamics.
        """
        target, rate = self.relaxation(y, g, i_app)
        half = target + (y - target) * jnp.exp(-0.5 * dt * rate)
        target, rate = self.relaxation(half, g, i_app)
        return target + (y - target) * jnp.exp(-dt * rate)

    # -------------------------------------------------------------------------- conductances
    def conductances(self, table=None, /, *, allow_negative: bool = False, **named) -> np.ndarray:
        """Validated conductance array (mS/cm²) from names: keyword arguments, a mapping or a DataFrame.

        Returns shape (n_channels,) for scalars or (N, n_channels) for columns. Missing or unknown
        names, negative or non-finite values raise ``ValueError`` saying which. Columns that
        describe models (``id``, DICs ``g_f, g_s, g_u``, ``v_th``, ``target_*``, ...) are ignored.
        ``allow_negative=True`` accepts negative values (see :func:`check_conductances`).

        Example:
            >>> from neuromech.cbm import hh
            >>> hh().conductances(g_Na=120.0, g_K=36.0, g_leak=0.3)
            array([120. ,  36. ,   0.3])
        """
        source = dict(named) if table is None else table
        expected = self.conductance_names
        keys = [k for k in (source.columns if hasattr(source, "columns") else source.keys())
                if k in expected or not is_metadata_column(k)]
        missing = [k for k in expected if k not in keys]
        extra = [k for k in keys if k not in expected]
        if missing or extra:
            raise ValueError(
                f"model {self.name!r} needs exactly the conductances {', '.join(expected)}; "
                + (f"missing: {', '.join(missing)}. " if missing else "")
                + (f"unknown: {', '.join(map(str, extra))}. " if extra else "")
                + "Rename or add the columns (units mS/cm²)."
            )
        try:
            values = np.stack([np.asarray(source[k], dtype=float) for k in expected], axis=-1)
        except (TypeError, ValueError) as err:
            raise ValueError(f"conductances must be numbers (mS/cm²): {err}") from err
        return check_conductances(self, values, allow_negative=allow_negative)


def as_conductances(model: ConductanceBasedModel, g, *, allow_negative: bool = False) -> np.ndarray:
    """Validated conductances (mS/cm²), shape (n,) or (N, n), from an array in the order of
    ``model.conductance_names`` or from names (a mapping or a DataFrame, see
    :meth:`ConductanceBasedModel.conductances`). The one input path of the simulators and the DIC code.
    """
    if isinstance(g, (np.ndarray, jax.Array, list, tuple)):
        return check_conductances(model, g, allow_negative=allow_negative)
    return model.conductances(g, allow_negative=allow_negative)


def check_conductances(model: ConductanceBasedModel, g, *, allow_negative: bool = False) -> np.ndarray:
    """Check a conductance array's shape and values; return it as float NumPy, shape (..., n).

    Values must be finite; unless ``allow_negative``, also ≥ 0 with at least one positive per model.
    ``allow_negative=True`` is for the DIC code, which evaluates intermediate compensation results
    (negative conductances) and checks what it needs itself (g_leak > 0).
    """
    g = np.asarray(g, dtype=float)
    n = len(model.channels)
    if g.ndim not in (1, 2) or g.shape[-1] != n:
        raise ValueError(
            f"conductances for model {model.name!r} must have shape ({n},) or (N, {n}) in the order "
            f"{', '.join(model.conductance_names)}; got shape {g.shape}"
        )
    if g.size == 0:
        raise ValueError(f"the population is empty: no conductance rows for model {model.name!r}")
    bad = ~np.isfinite(g)
    if bad.any():
        row = np.argwhere(bad)[0]
        raise ValueError(
            f"conductances must be finite; found {g[tuple(row)]} for {model.conductance_names[row[-1]]}"
            + (f" in row {row[0]}" if g.ndim == 2 else "")
        )
    if allow_negative:
        return g
    if (g < 0).any():
        row = np.argwhere(g < 0)[0]
        raise ValueError(
            f"conductances must be ≥ 0 mS/cm²; found {g[tuple(row)]} for {model.conductance_names[row[-1]]}"
            + (f" in row {row[0]}" if g.ndim == 2 else "")
        )
    if (g.sum(axis=-1) <= 0).any():
        raise ValueError("every model needs at least one positive conductance")
    return g
