"""Dynamic input conductances of models and populations, and the threshold voltage.

The public functions here take NumPy/table input, work in float64 (inside ``jax.enable_x64``, never
set globally) and return NumPy; the pure per-model functions they vectorise live in
:mod:`._sensitivity`.
"""

from __future__ import annotations

import dataclasses
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..cbm import ConductanceBasedModel
from ..cbm._batching import bucket, pad_rows
from ..cbm._model import as_conductances
from ._sensitivity import check_calcium_path, dics_at, leak_index, sensitivity_at

# Threshold search: a bracketing grid then bisection (SCIENCE.md §2). 0.25 mV is finer than any
# feature of g_t(V) in the built-in models; 45 halvings take the bracket below 1e-14 mV.
THRESHOLD_RANGE = (-90.0, 0.0)
THRESHOLD_STEP = 0.25
_BISECTIONS = 45


def as_conductance_array(model: ConductanceBasedModel, g, *, allow_negative: bool = False) -> np.ndarray:
    """Conductances as a float64 array (n,) or (N, n), from an array, a mapping or a DataFrame.

    Read and checked as the simulator does (:func:`~neuromech.cbm._model.as_conductances`: columns
    describing models, such as ``id``, ``g_f`` or ``v_th``, are ignored; any other unknown column is
    an error, probably a misspelt conductance), and g_leak must be > 0 since it normalises the DICs.
    ``allow_negative=True`` accepts negative conductances (intermediate compensation results).
    """
    g = as_conductances(model, g, allow_negative=allow_negative)
    if (g[..., leak_index(model)] <= 0).any():
        raise ValueError("g_leak must be > 0 mS/cm²: DICs are normalised by it")
    return g


def published_v_th(model: ConductanceBasedModel) -> float:
    if model.v_th is None:
        raise ValueError(
            f"model {model.name!r} has no published threshold voltage; pass v (mV) or v='threshold'"
        )
    return float(model.v_th)


@dataclasses.dataclass(frozen=True)
class DICs:
    """Dynamic input conductances (dimensionless, normalised by each model's g_leak).

    Attributes:
        g_f, g_s, g_u, g_t: fast, slow, ultraslow and total DICs. Shape: the batch shape (``()`` for
            one model, ``(N,)`` for a population), followed by ``(m,)`` when evaluated on a voltage
            grid.
        v: voltage (mV) they were evaluated at: a scalar, one per model ``(N,)``, or the grid ``(m,)``.
        v_source: ``"published"`` (the model's fixed V_th), ``"threshold"`` (each model's own
            threshold, see :func:`threshold_voltage`) or ``"given"``.
        calcium_path: the KCa calcium-path convention used.
    """

    g_f: np.ndarray
    g_s: np.ndarray
    g_u: np.ndarray
    g_t: np.ndarray
    v: np.ndarray
    v_source: str
    calcium_path: str = "python"

    @property
    def is_curve(self) -> bool:
        """Whether the DICs are curves over a voltage grid."""
        return self.v_source == "given" and np.ndim(self.v) == 1

    def as_array(self) -> np.ndarray:
        """``(..., 3)`` array of (g_f, g_s, g_u)."""
        return np.stack([self.g_f, self.g_s, self.g_u], axis=-1)

    def to_frame(self, ids=None):
        """A table: ``id, v_th, g_f, g_s, g_u, g_t`` (one row per model), or ``id, v, g_f, ...`` in
        long format for curves over a voltage grid. Voltages in mV."""
        import pandas as pd

        g_f = np.atleast_1d(self.g_f) if not self.is_curve else np.atleast_2d(self.g_f)
        n = g_f.shape[0]
        ids = np.arange(n) if ids is None else np.asarray(ids)
        if ids.shape != (n,):
            raise ValueError(f"ids must have one entry per model ({n}); got shape {ids.shape}")
        if self.is_curve:
            m = len(self.v)
            cols = {"id": np.repeat(ids, m), "v": np.tile(self.v, n)}
            for name in ("g_f", "g_s", "g_u", "g_t"):
                cols[name] = np.atleast_2d(getattr(self, name)).ravel()
            return pd.DataFrame(cols)
        cols = {"id": ids, "v_th": np.broadcast_to(self.v, (n,)).copy()}
        for name in ("g_f", "g_s", "g_u", "g_t"):
            cols[name] = np.atleast_1d(getattr(self, name))
        return pd.DataFrame(cols)


def shared_voltage(v):
    """A scalar when every model uses the same voltage (so the voltage-only work is done once and
    compiles much faster), else the (N,) array."""
    v = np.asarray(v, dtype=float)
    return v.reshape(-1)[0] if v.ndim == 0 or np.all(v == v.reshape(-1)[0]) else v


@functools.partial(eqx.filter_jit)
def _dics_batch(model, g, v, calcium_path):
    """DICs for (N, n) conductances at a voltage v, scalar or one per model (N,): (N, 4)."""
    v_axis = None if jnp.ndim(v) == 0 else 0
    return jax.vmap(lambda gi, vi: dics_at(model, gi, vi, calcium_path), in_axes=(0, v_axis))(g, v)


def dics_rows(model, g2, volts, calcium_path) -> np.ndarray:
    """(N, 4) DICs of (N, n) conductances at voltages (N,), padded to a bucket size; call under x64."""
    size = bucket(len(g2))
    v_in = jnp.asarray(pad_rows(shared_voltage(volts), size), jnp.float64)
    return np.asarray(_dics_batch(model, jnp.asarray(pad_rows(g2, size), jnp.float64), v_in, calcium_path))[: len(g2)]


@functools.partial(eqx.filter_jit)
def _dics_curves(model, g, grid, calcium_path):
    """DICs for (N, n) conductances over a voltage grid (m,): (N, m, 4)."""
    per_model = lambda gi: jax.vmap(lambda vi: dics_at(model, gi, vi, calcium_path))(grid)
    return jax.vmap(per_model)(g)


@functools.partial(eqx.filter_jit)
def _threshold_batch(model, g, grid, calcium_path):
    """First + → − crossing of g_t going up the grid, refined by bisection; NaN where none. (N,)"""

    def one(gi):
        g_t = lambda v: dics_at(model, gi, v, calcium_path)[3]
        values = jax.vmap(g_t)(grid)
        cross = (values[:-1] > 0) & (values[1:] <= 0)
        i = jnp.argmax(cross)

        def halve(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            above = g_t(mid) > 0
            return jnp.where(above, mid, lo), jnp.where(above, hi, mid)

        lo, hi = jax.lax.fori_loop(0, _BISECTIONS, halve, (grid[i], grid[i + 1]))
        return jnp.where(cross.any(), 0.5 * (lo + hi), jnp.nan)

    return jax.vmap(one)(g)


def _grid(v_range, step):
    lo, hi = float(v_range[0]), float(v_range[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi and step > 0):
        raise ValueError(f"v_range must be (low, high) mV with low < high and step > 0; got {v_range}, {step}")
    return np.linspace(lo, hi, int(round((hi - lo) / step)) + 1)


def threshold_voltage(
    model: ConductanceBasedModel,
    conductances,
    *,
    calcium_path: str = "python",
    v_range: tuple[float, float] = THRESHOLD_RANGE,
    step: float = THRESHOLD_STEP,
) -> np.ndarray:
    """Each model's threshold voltage V_th (mV): the first voltage, going up from ``v_range[0]``
    (below rest), where the total DIC g_t(V) crosses zero from positive to negative.

    A bracketing grid of ``step`` mV, then bisection to 1e-12 mV (SCIENCE.md §2; Drion et al. 2015).
    The published pipeline uses fixed values instead (``model.v_th``: −51 mV STG, −55.5 mV DA).

    Args:
        model: the model; conductances: (n,) or (N, n) mS/cm², or a table with named columns.
        calcium_path, v_range (mV), step (mV): see :func:`dics`.

    Returns:
        V_th (mV): a float for one model, shape (N,) for a population; NaN where g_t has no
        + → − crossing in ``v_range`` (the model has no threshold there).

    Example:
        >>> from neuromech.cbm import stg
        >>> g = [8228.904834, 88.877566, 3.970819, 54.642893, 164.678951, 472.321169, 0.610392, 0.012287]
        >>> -60 < threshold_voltage(stg(), g) < -40
        True
    """
    check_calcium_path(calcium_path)
    g = as_conductance_array(model, conductances, allow_negative=True)
    with jax.enable_x64(True):
        g2 = np.atleast_2d(g)
        out = _threshold_batch(model, jnp.asarray(pad_rows(g2, bucket(len(g2)))), jnp.asarray(_grid(v_range, step)),
                               calcium_path)
        out = np.asarray(out, dtype=np.float64)[: len(g2)]
    return float(out[0]) if g.ndim == 1 else out


def _resolve_v(model, g2, v, calcium_path):
    """(voltages (N,) or grid (m,), source, is_grid)."""
    if v is None:
        return np.full(g2.shape[0], published_v_th(model)), "published", False
    if isinstance(v, str):
        if v not in ("threshold", "auto"):
            raise ValueError(f"v must be None, a voltage (mV), a voltage grid, or 'threshold'; got {v!r}")
        return np.atleast_1d(threshold_voltage(model, g2, calcium_path=calcium_path)), "threshold", False
    arr = np.asarray(v, dtype=float)
    if not np.isfinite(arr).all():
        raise ValueError(f"voltages must be finite (mV); got {v!r}")
    if arr.ndim == 0:
        return np.full(g2.shape[0], float(arr)), "given", False
    if arr.ndim == 1:
        return arr, "given", True
    raise ValueError(f"v must be a scalar or a 1-D voltage grid (mV); got shape {arr.shape}")


def dics(
    model: ConductanceBasedModel,
    conductances,
    v=None,
    *,
    calcium_path: str = "python",
) -> DICs:
    """Dynamic input conductances (g_f, g_s, g_u, g_t) of one model or a population.

    Drion, Franci, Dethier, Sepulchre (2015), eLife 4:e04871; computed by automatic differentiation
    of the steady-state currents, in float64, and normalised by each model's g_leak (SCIENCE.md §2).

    Main arguments:
        model: a :class:`~neuromech.cbm.ConductanceBasedModel` (``stg()``, ``da()``, ...).
        conductances: (n,) for one model or (N, n) for a population (mS/cm², in the order of
            ``model.conductance_names``), or a mapping/DataFrame with those names.
        v: where to evaluate, in mV: ``None`` for the model's published threshold (−51 STG, −55.5 DA);
            ``"threshold"`` for each model's own threshold (:func:`threshold_voltage`); a number; or a
            1-D grid of voltages for DIC curves.

    Other arguments:
        calcium_path: KCa calcium-path convention: ``"python"`` (default, weighted with τ_Ca = 20 ms as
            in the published Python pipeline) or ``"ultraslow"`` (the earlier Julia code).

    Returns:
        :class:`DICs`, which records the voltage used and where it came from.

    Raises:
        ValueError: for bad shapes, non-finite values, g_leak ≤ 0, a model without published V_th
            when ``v`` is None.

    Example:
        >>> from neuromech.cbm import stg
        >>> g = [8228.904834, 88.877566, 3.970819, 54.642893, 164.678951, 472.321169, 0.610392, 0.012287]
        >>> d = dics(stg(), g)
        >>> round(float(d.g_s), 3), float(d.v)
        (-8.0, -51.0)
    """
    check_calcium_path(calcium_path)
    g = as_conductance_array(model, conductances, allow_negative=True)
    g2 = np.atleast_2d(g)
    volts, source, is_grid = _resolve_v(model, g2, v, calcium_path)
    with jax.enable_x64(True):
        if is_grid:
            out = np.asarray(_dics_curves(model, jnp.asarray(g2), jnp.asarray(volts), calcium_path))
        else:
            out = dics_rows(model, g2, volts, calcium_path)
    if g.ndim == 1:
        out, volts = out[0], (volts if is_grid else volts[0])
    elif not is_grid and np.all(volts == volts[0]) and source != "threshold":
        volts = volts[0]
    return DICs(
        g_f=out[..., 0], g_s=out[..., 1], g_u=out[..., 2], g_t=out[..., 3],
        v=np.asarray(volts), v_source=source, calcium_path=calcium_path,
    )


@functools.partial(eqx.filter_jit)
def _sensitivity_batch(model, g, v, calcium_path):
    v_axis = None if jnp.ndim(v) == 0 else 0
    return jax.vmap(lambda gi, vi: sensitivity_at(model, gi, vi, calcium_path), in_axes=(0, v_axis))(g, v)


def sensitivity(model: ConductanceBasedModel, conductances, v=None, *, calcium_path: str = "python") -> np.ndarray:
    """The DIC sensitivity matrix S(V) (SCIENCE.md §2), by automatic differentiation, in float64.

    ``S @ g / g_leak`` gives (g_f, g_s, g_u). S does not depend on g except through Ca∞(V) (the STG
    calcium sources g_CaT, g_CaS), which is why conductances are needed.

    Args:
        model: the model.
        conductances: (n,) or (N, n) mS/cm² (or a table with named columns).
        v: voltage (mV): ``None`` for ``model.v_th``, a number, or one per model (N,).
        calcium_path: ``"python"`` (default) or ``"ultraslow"``, see :func:`dics`.

    Returns:
        S, shape (3, n) for one model or (N, 3, n): rows fast, slow, ultraslow; per unit conductance
        (dimensionless: µA/cm² per mV per mS/cm²), not yet divided by g_leak.

    Example:
        >>> from neuromech.cbm import da
        >>> g = [60.0, 8.0, 0.05, 0.02, 0.1, 0.012, 0.013]
        >>> sensitivity(da(), g).shape
        (3, 7)
    """
    check_calcium_path(calcium_path)
    g = as_conductance_array(model, conductances, allow_negative=True)
    g2 = np.atleast_2d(g)
    if v is None:
        volts = np.full(g2.shape[0], published_v_th(model))
    else:
        volts = np.broadcast_to(np.asarray(v, dtype=float), (g2.shape[0],)).copy()
        if not np.isfinite(volts).all():
            raise ValueError(f"v must be finite (mV); got {v!r}")
    with jax.enable_x64(True):
        size = bucket(len(g2))
        v_in = jnp.asarray(pad_rows(shared_voltage(volts), size), jnp.float64)
        out = np.asarray(_sensitivity_batch(model, jnp.asarray(pad_rows(g2, size)), v_in, calcium_path))[: len(g2)]
    return out[0] if g.ndim == 1 else out
