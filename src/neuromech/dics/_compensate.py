"""Compensation: set some conductances so that every model of a population has prescribed DICs.

Fyon, Franci, Sacré, Drion (2024, PNAS Nexus) and Brandoit et al. (2025); SCIENCE.md §3. With fixed
channels F and compensated channels C (|C| = number of targets k), model i solves the k×k system

    S_i[T, C] · ḡ_i,C = g*_T · g_leak,i − S_i[T, F] · ḡ_i,F ,    S_i = S(V_th; ḡ_i).

S depends on ḡ only through Ca∞(V) (the STG calcium sources g_CaT, g_CaS). When a calcium source is
compensated the system is nonlinear; the published code iterates the linear solve (≈ 0.07 residual
after 5 iterations); here the first linear solve is followed by Newton steps on the exact residual
(Jacobian by forward-mode autodiff), which converge quadratically to the tolerance.
"""

from __future__ import annotations

from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..cbm import ConductanceBasedModel
from ..cbm._model import is_metadata_column
from ._dics import (
    as_conductance_array,
    bucket,
    dics_rows,
    pad_rows,
    published_v_th,
    shared_voltage,
)
from ._population import DIC_NAMES, Population
from ._sensitivity import (
    calcium_at,
    calcium_dependent,
    check_calcium_path,
    columns_at,
    leak_index,
    sensitivity_at,
)

DEFAULT_TOL = 1e-6  # DIC units (dimensionless); float64 Newton reaches ~1e-12.
DEFAULT_MAX_ITER = 25


class UnreachableTargetError(ValueError):
    """The requested DICs cannot be reached with non-negative conductances.

    Attributes:
        target: the requested (g_f, g_s, g_u) (NaN where free).
        closest: the closest DICs achieved by a valid model (negative conductances clipped to 0).
        valid_fraction: fraction of the attempted models that came out valid.
        attempted: number of models tried.
    """

    def __init__(self, message, *, target=None, closest=None, valid_fraction=0.0, attempted=0):
        super().__init__(message)
        self.target = None if target is None else np.asarray(target)
        self.closest = None if closest is None else np.asarray(closest)
        self.valid_fraction = float(valid_fraction)
        self.attempted = int(attempted)


# ------------------------------------------------------------------------------------ input parsing
def parse_targets(targets, n_models: int) -> tuple[tuple[int, ...], np.ndarray]:
    """``(rows, values)``: which of (g_f, g_s, g_u) are targeted and their values, shape (N, k).

    ``targets`` is a mapping such as ``{"g_s": -4.0, "g_u": 5.0}`` (values a number or one per model),
    or a sequence of three with ``None`` for a free DIC.
    """
    if isinstance(targets, Mapping):
        unknown = [k for k in targets if k not in DIC_NAMES]
        if unknown:
            raise ValueError(f"unknown DIC target(s) {unknown}; targets are named {', '.join(DIC_NAMES)}")
        items = [(i, targets[name]) for i, name in enumerate(DIC_NAMES) if targets.get(name) is not None]
    else:
        seq = list(targets)
        if len(seq) != 3:
            raise ValueError(
                f"targets must be a mapping like {{'g_s': -4.0, 'g_u': 5.0}} or three values (g_f, g_s, g_u) "
                f"with None for a free DIC; got {targets!r}"
            )
        items = [(i, t) for i, t in enumerate(seq) if t is not None]
    if not items:
        raise ValueError("give at least one DIC target (g_f, g_s or g_u)")
    rows, cols = [], []
    for i, value in items:
        arr = np.asarray(value, dtype=float)
        if arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != n_models):
            raise ValueError(
                f"target {DIC_NAMES[i]} must be a number or one value per model ({n_models}); got shape {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError(
                f"target {DIC_NAMES[i]} must be finite; got {value!r}. Leave a DIC free by omitting it "
                "(or passing None), not with NaN"
            )
        rows.append(i)
        cols.append(np.broadcast_to(arr, (n_models,)))
    return tuple(rows), np.stack(cols, axis=-1)


def parse_compensated(model: ConductanceBasedModel, compensated, n_targets: int) -> tuple[int, ...]:
    """Indices of the compensated channels; names with or without the ``g_`` prefix."""
    if isinstance(compensated, str):
        compensated = (compensated,)
    idx = []
    for name in compensated:
        try:
            idx.append(model.channel_index(str(name)))
        except KeyError as err:
            raise ValueError(str(err.args[0])) from None
    if len(set(idx)) != len(idx):
        raise ValueError(f"compensated conductances must be distinct; got {tuple(compensated)}")
    if leak_index(model) in idx:
        raise ValueError("g_leak cannot be compensated: it normalises the DICs; compensate other conductances")
    if len(idx) != n_targets:
        more = "more" if n_targets > len(idx) else "fewer"
        raise ValueError(
            f"{n_targets} DIC target(s) but {len(idx)} compensated conductance(s) {tuple(compensated)}: "
            f"{more} targets than compensated conductances. Each target needs exactly one compensated "
            "conductance (leave the other DICs free)"
        )
    return tuple(idx)


def is_coupled(model: ConductanceBasedModel, cols) -> bool:
    """Whether S depends on the compensated conductances (a compensated calcium source)."""
    if model.calcium is None:
        return False
    return any(model.channels[c].name in model.calcium.sources for c in cols)


# ----------------------------------------------------------------------------------------- solver
def _solve(a, b):
    """Solve small k×k systems (k ≤ 3) in closed form: cheaper than batched LU for tiny matrices."""
    k = a.shape[-1]
    if k == 1:
        return b / a[..., 0]
    if k == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        return jnp.stack([a[1, 1] * b[0] - a[0, 1] * b[1], a[0, 0] * b[1] - a[1, 0] * b[0]]) / det
    if k == 3:
        # Cramer's rule: x_i = det(a with column i replaced by b) / det(a).
        c0, c1, c2 = a[:, 0], a[:, 1], a[:, 2]
        det = jnp.dot(c0, jnp.cross(c1, c2))
        x = [jnp.dot(b, jnp.cross(c1, c2)), jnp.dot(c0, jnp.cross(b, c2)), jnp.dot(c0, jnp.cross(c1, b))]
        return jnp.stack(x) / det
    return jnp.linalg.solve(a, b)


# S(V) as its own traced function: the two stages of a population trace it once between them.
_sensitivity = eqx.filter_jit(sensitivity_at)


def compensate_one(model, g0, v, target, rows, cols, calcium_path="python", max_iter=DEFAULT_MAX_ITER, tol=DEFAULT_TOL):
    """Compensate one model: a pure, jit/vmap-able function (precision follows the caller).

    Args:
        model: the model. g0: (n,) conductances (mS/cm²); the compensated entries are the starting
            guess (they set Ca∞ for the first solve). v: voltage (mV). target: (k,) targets for the DIC
            rows ``rows`` (0 = g_f, 1 = g_s, 2 = g_u). cols: the k compensated channel indices.
        calcium_path, max_iter, tol: see :func:`compensate`.

    Returns:
        ``(g, dics, iterations)``: the conductances, their (g_f, g_s, g_u, g_t) at v and the number
        of Newton steps taken (0 when S does not depend on the compensated conductances).
    """
    v = jnp.asarray(v, dtype=g0.dtype)
    rows_a, cols_a = jnp.asarray(rows), jnp.asarray(cols)
    leak = leak_index(model)

    def with_c(gc):
        return g0.at[cols_a].set(gc)

    def finish(s_full, g):
        d = s_full @ g / g[leak]
        return jnp.concatenate([d, jnp.sum(d, keepdims=True)])

    # Linear solve with S at the starting guess: exact when S does not depend on g_C.
    s_full = _sensitivity(model, g0, v, calcium_path)
    s = s_full[rows_a] / g0[leak]
    gc = _solve(s[:, cols_a], target - s @ g0.at[cols_a].set(0.0))
    if not is_coupled(model, cols):
        g = with_c(gc)
        return g, finish(s_full, g), jnp.asarray(0)

    # Only the calcium-dependent columns of S change with g_C: recompute those alone in the loop.
    dep = calcium_dependent(model)

    def s_of(g):
        ca, dca_dv = calcium_at(model, g, v)
        return s_full.at[:, jnp.asarray(dep)].set(columns_at(model, v, ca, dca_dv, calcium_path, dep))

    def residual(gc):
        g = with_c(gc)
        r = s_of(g)[rows_a] @ g / g[leak] - target
        return r, r

    # Residual and Jacobian in one forward-mode pass.
    linearise = jax.jacfwd(residual, has_aux=True)

    def going(r):
        return (jnp.max(jnp.abs(r)) > tol) & jnp.all(jnp.isfinite(r))

    def cond(state):
        it, _, r = state
        return (it < max_iter) & going(r)

    def newton(state):  # linearise, then step unless converged: one trace of the Jacobian, not two
        it, gc, _ = state
        jac, r = linearise(gc)
        step = going(r)
        return it + step, jnp.where(step, gc - _solve(jac, r), gc), r

    # Start with a finite residual above tol, so that the loop linearises at the first guess.
    start = jnp.full(cols_a.shape, 2.0 * tol + 1.0, gc.dtype)
    it, gc, _ = jax.lax.while_loop(cond, newton, (jnp.asarray(0), gc, start))
    g = with_c(gc)
    return g, finish(s_of(g), g), it


@eqx.filter_jit
def compensate_batch(model, g0, v, target, rows, cols, calcium_path, max_iter, tol):
    """:func:`compensate_one` over a batch: g0 (N, n), target (N, k), v a scalar or (N,)."""
    v_axis = None if jnp.ndim(v) == 0 else 0
    fn = lambda g, vv, t: compensate_one(model, g, vv, t, rows, cols, calcium_path, max_iter, tol)
    return jax.vmap(fn, in_axes=(0, v_axis, 0))(g0, v, target)


def run_compensation(model, g0, v, rows, values, cols, calcium_path, max_iter, tol):
    """NumPy in/out, float64: ``(g (N, n), achieved (N, 3), residuals (N,))``."""
    n = g0.shape[0]
    size = bucket(n)  # pad, so that populations of different sizes share compilations
    with jax.enable_x64(True):
        g, d, _ = compensate_batch(
            model, jnp.asarray(pad_rows(g0, size), jnp.float64),
            jnp.asarray(pad_rows(shared_voltage(v), size), jnp.float64),
            jnp.asarray(pad_rows(values, size), jnp.float64),
            tuple(rows), tuple(cols), calcium_path, int(max_iter), float(tol),
        )
        g, d = np.asarray(g)[:n], np.asarray(d)[:n]
    achieved = d[:, :3]
    residuals = np.max(np.abs(achieved[:, list(rows)] - values), axis=1)
    residuals = np.where(np.isfinite(residuals), residuals, np.inf)
    return g, achieved, residuals


def model_ok(g, residuals, tol):
    """Valid models: finite, non-negative conductances and DICs matched to ``tol``."""
    return np.isfinite(g).all(axis=1) & (g >= 0).all(axis=1) & (residuals <= tol)


def _v_array(model, v_th, n):
    if v_th is None:
        return np.full(n, published_v_th(model))
    v = np.broadcast_to(np.asarray(v_th, dtype=float), (n,)).copy()
    if not np.isfinite(v).all():
        raise ValueError(f"v_th must be finite (mV); got {v_th!r}")
    return v


def compensate(
    model: ConductanceBasedModel,
    conductances,
    targets,
    compensated=("Na", "A", "H"),
    *,
    v_th=None,
    calcium_path: str = "python",
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    on_invalid: str = "raise",
    ids=None,
) -> Population:
    """Set the ``compensated`` conductances of every model so that its DICs at V_th equal ``targets``.

    Fyon et al. (2024, PNAS Nexus), iterated as in Brandoit et al. (2025): batched k×k linear solves,
    then Newton steps when a compensated conductance feeds calcium (S depends on it through Ca∞), to
    ``tol``. Float64 throughout.

    Main arguments:
        model: the model.
        conductances: (N, n) or (n,) conductances (mS/cm²), or a table with named columns. The fixed
            ones are kept; the compensated ones are starting guesses (they may be absent from a table).
        targets: the DICs to reach, e.g. ``{"g_s": -4.0, "g_u": 5.0}`` (numbers or one per model), or
            ``(g_f, g_s, g_u)`` with ``None`` for a free DIC.
        compensated: names of the conductances to solve for (``"Na"`` or ``"g_Na"``), one per target.

    Other arguments:
        v_th: voltage (mV) of the DICs: ``None`` for the model's published value, a number, or one
            per model.
        calcium_path: ``"python"`` (default) or ``"ultraslow"`` (see :func:`~neuromech.dics.dics`).
        tol: tolerance on the achieved DICs (dimensionless); max_iter: Newton steps at most.
        on_invalid: ``"raise"`` (default) raises :class:`UnreachableTargetError` if any model comes out
            with a negative conductance or unmatched DICs; ``"keep"`` returns them (see
            :attr:`Population.valid`), e.g. to filter or resample yourself.
        ids: identifiers (default 0..N−1).

    Returns:
        A :class:`Population` with exactly the input models.

    Raises:
        ValueError: bad targets (NaN, unknown names), unknown or duplicate compensated conductances,
            a number of targets different from the number of compensated conductances.
        UnreachableTargetError: see ``on_invalid``.

    Example:
        >>> import numpy as np
        >>> from neuromech.cbm import stg
        >>> g = np.array([[0, 100.0, 5.0, 14.0, 160.0, 0, 0, 0.0105]])
        >>> pop = compensate(stg(), g, {"g_f": -6.2, "g_s": 4.0, "g_u": 5.0}, ("Na", "A", "H"))
        >>> np.round(pop.achieved, 6).tolist()
        [[-6.2, 4.0, 5.0]]
    """
    check_calcium_path(calcium_path)
    if on_invalid not in ("raise", "keep"):
        raise ValueError(f"on_invalid must be 'raise' or 'keep'; got {on_invalid!r}")
    if not (tol > 0):
        raise ValueError(f"tol must be > 0 (dimensionless DIC units); got {tol!r}")
    g0 = _starting_conductances(model, conductances, compensated)
    n = g0.shape[0]
    rows, values = parse_targets(targets, n)
    cols = parse_compensated(model, compensated, len(rows))
    fixed = [k for k in range(len(model.channels)) if k not in cols]
    if (g0[:, fixed] < 0).any():
        raise ValueError("fixed conductances must be ≥ 0 mS/cm²")
    v = _v_array(model, v_th, n)
    g, achieved, residuals = run_compensation(model, g0, v, rows, values, cols, calcium_path, max_iter, tol)
    target_full = np.full((n, 3), np.nan)
    target_full[:, list(rows)] = values
    ok = model_ok(g, residuals, tol)
    if on_invalid == "raise" and not ok.all():
        raise unreachable_error(model, g, ok, target_full, v, calcium_path, cols)
    names = ",".join(model.conductance_names[c] for c in cols)
    return Population(
        model=model, conductances=g, ids=np.arange(n) if ids is None else np.asarray(ids),
        targets=target_full, achieved=achieved, v_th=v, residuals=residuals,
        compensated=np.full(n, names), calcium_path=calcium_path,
    )


def _starting_conductances(model, conductances, compensated):
    names = [compensated] if isinstance(compensated, str) else list(compensated)
    if isinstance(conductances, (np.ndarray, jax.Array, list, tuple)):
        g = np.array(conductances, dtype=float, ndmin=1)
        if g.ndim in (1, 2) and g.shape[-1] == len(model.channels):
            # Compensated entries are only starting guesses: NaN (as in the published code) means "none".
            for name in names:
                try:
                    k = model.channel_index(str(name))
                except KeyError:
                    continue  # reported by parse_compensated
                g[..., k] = np.where(np.isfinite(g[..., k]), g[..., k], 0.0)
        return np.atleast_2d(as_conductance_array(model, g, allow_negative=True)).copy()
    # A table: the compensated columns may be missing (start from 0).
    names = {(c if str(c).startswith("g_") else f"g_{c}") for c in names}
    keys = list(conductances.columns) if hasattr(conductances, "columns") else list(conductances.keys())
    unknown = [k for k in keys if k not in model.conductance_names and not is_metadata_column(k)]
    if unknown:
        raise ValueError(
            f"unknown column(s) {', '.join(map(str, unknown))} for model {model.name!r}; its conductances are "
            f"{', '.join(model.conductance_names)}"
        )
    cols = {}
    for name in model.conductance_names:
        if name in conductances:
            cols[name] = np.asarray(conductances[name], dtype=float)
            if name in names:
                cols[name] = np.where(np.isfinite(cols[name]), cols[name], 0.0)
        elif name in names:
            cols[name] = None
        else:
            raise ValueError(
                f"the table lacks the fixed conductance {name!r} of model {model.name!r}; give every "
                f"conductance except the compensated ones ({', '.join(sorted(names))})"
            )
    size = max(np.size(c) for c in cols.values() if c is not None)
    g = np.stack([np.zeros(size) if c is None else np.broadcast_to(c, (size,)) for c in cols.values()], axis=-1)
    return np.atleast_2d(as_conductance_array(model, g, allow_negative=True)).copy()


def unreachable_error(model, g, ok, target, v, calcium_path, cols, *, extra=""):
    """An :class:`UnreachableTargetError` reporting the closest valid DICs and the valid fraction."""
    n = g.shape[0]
    frac = float(ok.mean()) if n else 0.0
    closest = closest_valid_dics(model, g, target, v, calcium_path)
    t = target[0] if target.ndim == 2 else target
    names = ", ".join(model.conductance_names[c] for c in cols)
    fmt = lambda a: "(" + ", ".join("free" if not np.isfinite(x) else f"{x:.4g}" for x in a) + ")"
    return UnreachableTargetError(
        f"{n - int(ok.sum())} of {n} models cannot reach the target (g_f, g_s, g_u) = {fmt(t)} by "
        f"compensating {names} with non-negative conductances (valid fraction {frac:.3g}). "
        f"Closest valid DICs: {fmt(closest)}.{extra} Choose a target nearer that, or other compensated "
        "conductances.",
        target=t, closest=closest, valid_fraction=frac, attempted=n,
    )


def closest_valid_dics(model, g, target, v, calcium_path):
    """DICs nearest the target among the models with negative conductances clipped to zero."""
    clipped = np.clip(np.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    leak = leak_index(model)
    clipped[:, leak] = np.where(clipped[:, leak] > 0, clipped[:, leak], 1.0)
    with jax.enable_x64(True):
        d = dics_rows(model, clipped, np.broadcast_to(v, (len(clipped),)), calcium_path)[:, :3]
    t = np.broadcast_to(target, d.shape)
    dist = np.nansum(np.where(np.isfinite(t), (d - t) ** 2, 0.0), axis=1)
    dist = np.where(np.isfinite(dist), dist, np.inf)
    return d[int(np.argmin(dist))]
