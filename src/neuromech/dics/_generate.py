"""The published two-stage generators of degenerate populations (SCIENCE.md §3) and neuromodulation.

Stage 1 draws the fixed conductances of a *reference spiking population* and compensates three
conductances to the reference DICs; stage 2 re-compensates a pair chosen by the target (g_s*, g_u*),
leaving g_f free (Fyon et al. 2024, PNAS Nexus; Brandoit et al. 2025). Unlike the published code,
which drops models with negative conductances and may return fewer than asked, the generator here
redraws until it has exactly ``n`` valid models, falls back to other compensated pairs when the
published pair cannot reach the target, and otherwise raises :class:`UnreachableTargetError` with
the closest DICs and the valid fraction.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..cbm import ConductanceBasedModel
from ._compensate import (
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    UnreachableTargetError,
    compensate_one,
    model_ok,
    parse_compensated,
    parse_targets,
    unreachable_error,
)
from ._population import Population
from ._sensitivity import check_calcium_path, leak_index


def _stg_pairs(g_s: float, g_u: float) -> tuple[tuple[str, ...], ...]:
    """Published rule first (g_u* < 0 → (CaS, A); g_s* ≥ 0 → (A, H); else (CaS, H)), then fallbacks."""
    if g_u < 0:
        first = ("CaS", "A")
    elif g_s >= 0:
        first = ("A", "H")
    else:
        first = ("CaS", "H")
    others = (("CaS", "H"), ("A", "H"), ("CaS", "A"), ("CaT", "H"), ("KCa", "H"), ("Kd", "H"))
    return (first,) + tuple(p for p in others if p != first)


def _da_pairs(g_s: float, g_u: float) -> tuple[tuple[str, ...], ...]:
    """Published rule first (g_s* < 0 → (ERG, CaL); else (ERG, Kd)), then fallbacks."""
    first = ("ERG", "CaL") if g_s < 0 else ("ERG", "Kd")
    others = (("ERG", "CaL"), ("ERG", "Kd"), ("ERG", "CaN"), ("CaL", "Kd"))
    return (first,) + tuple(p for p in others if p != first)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """The published two-stage recipe for one model (SCIENCE.md §3).

    Attributes:
        model_name: the model it applies to.
        v_th: threshold voltage (mV) at which DICs are set.
        leak_shape, leak_scale: Gamma(k, θ) of g_leak (mS/cm²).
        leak_reference: the g_leak (mS/cm²) the ranges refer to: every drawn or constant conductance
            is multiplied by g_leak / leak_reference.
        uniform: ``(name, low, high)`` uniform draws (mS/cm²).
        constant: ``(name, value)`` constants (mS/cm²).
        reference_compensated, reference_targets: stage 1, compensated names and (g_f, g_s, g_u).
        pairs: ``(g_s*, g_u*) → compensated pairs`` for stage 2, the published choice first, then
            fallbacks tried when it cannot reach the target.
        starting_guess: ``(name, a, b)``: when ``name`` is compensated in stage 2 its starting value
            is ``(a + b·g_s*) · g_leak / leak_reference`` (clipped at 0), the published linear fit.
    """

    model_name: str
    v_th: float
    leak_shape: float
    leak_scale: float
    leak_reference: float
    uniform: tuple[tuple[str, float, float], ...]
    constant: tuple[tuple[str, float], ...]
    reference_compensated: tuple[str, ...]
    reference_targets: tuple[float, float, float]
    pairs: Callable[[float, float], tuple[tuple[str, ...], ...]]
    starting_guess: tuple[tuple[str, float, float], ...] = ()

    def draw(self, model: ConductanceBasedModel, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, n) fixed conductances of stage 1 (compensated columns zero)."""
        g = np.zeros((size, len(model.channels)))
        leak = rng.gamma(self.leak_shape, self.leak_scale, size)
        scale = leak / self.leak_reference
        for name, low, high in self.uniform:
            g[:, model.channel_index(name)] = rng.uniform(low, high, size) * scale
        for name, value in self.constant:
            g[:, model.channel_index(name)] = value * scale
        g[:, leak_index(model)] = leak
        return g


def _gamma_matching_uniform(low: float, high: float) -> tuple[float, float]:
    """Shape and scale of the Gamma with the mean and variance of U[low, high]."""
    mean, var = (low + high) / 2.0, (high - low) ** 2 / 12.0
    return mean**2 / var, var / mean


STG_RECIPE = Recipe(
    model_name="stg",
    v_th=-51.0,
    leak_shape=27.0,
    leak_scale=3.889e-4,
    leak_reference=0.0105,
    uniform=(("Kd", 70.0, 140.0), ("CaT", 3.0, 7.0), ("CaS", 6.0, 22.0), ("KCa", 140.0, 180.0)),
    constant=(),
    reference_compensated=("Na", "A", "H"),
    reference_targets=(-6.2, 4.0, 5.0),
    pairs=_stg_pairs,
    starting_guess=(("CaS", 34.12, -2.33), ("CaT", 24.6, -5.14)),
)

DA_RECIPE = Recipe(
    model_name="da",
    v_th=-55.5,
    leak_shape=_gamma_matching_uniform(0.0087, 0.017)[0],
    leak_scale=_gamma_matching_uniform(0.0087, 0.017)[1],
    leak_reference=0.01285,
    uniform=(("Kd", 6.0, 10.0), ("CaL", 0.015, 0.075)),
    constant=(("NMDA", 0.012),),
    reference_compensated=("Na", "CaN", "ERG"),
    reference_targets=(-12.95, 0.5, 5.0),
    pairs=_da_pairs,
)

RECIPES = {"stg": STG_RECIPE, "da": DA_RECIPE}


def recipe_for(model: ConductanceBasedModel) -> Recipe:
    """The published recipe for ``model`` (STG or DA)."""
    try:
        return RECIPES[model.name]
    except KeyError:
        raise ValueError(
            f"no published population recipe for model {model.name!r} (there are for "
            f"{', '.join(RECIPES)}); draw fixed conductances yourself and call compensate(), or pass "
            "recipe=Recipe(...)"
        ) from None


# --------------------------------------------------------------------------------- jitted stages
@eqx.filter_jit
def _stage(model, g0, v, values, rows, cols, calcium_path, max_iter, tol):
    fn = lambda g, t: compensate_one(model, g, v, t, rows, cols, calcium_path, max_iter, tol)
    g, d, _ = jax.vmap(fn)(g0, values)
    return g, d[:, :3]


def _valid(g, d, rows, values, tol):
    ok = jnp.all(jnp.isfinite(g), axis=1) & jnp.all(g >= 0, axis=1)
    return ok & jnp.all(jnp.abs(d[:, jnp.asarray(rows)] - values) <= tol, axis=1)


def _bucket(size: int) -> int:
    """Round batch sizes up (to 1/8 of a power of two) so that repeated calls reuse compilations."""
    if size <= 64:
        return 64
    step = 2 ** (max(int(math.log2(size)) - 3, 0))
    return int(math.ceil(size / step) * step)


def _stage1_inputs(model, recipe, rng, size):
    g0 = recipe.draw(model, rng, size)
    ref_values = np.broadcast_to(np.asarray(recipe.reference_targets, float), (size, 3))
    return g0, ref_values


def _target_dict(g_f, g_s, g_u):
    return {k: v for k, v in (("g_f", g_f), ("g_s", g_s), ("g_u", g_u)) if v is not None}


def _population(model, g, achieved, targets, v, tol, compensated, calcium_path, residuals=None):
    n = g.shape[0]
    if residuals is None:
        diff = np.where(np.isfinite(targets), np.abs(achieved - targets), 0.0)
        residuals = diff.max(axis=1)
    return Population(
        model=model, conductances=g, ids=np.arange(n), targets=targets, achieved=achieved,
        v_th=np.full(n, float(v)), residuals=residuals, compensated=compensated, calcium_path=calcium_path,
    )


def _collect(n, max_draws, run_batch, first_fraction=0.8):
    """Call ``run_batch(size) → (g, achieved, ok)`` until ``n`` valid models; returns the stacks and
    the totals ``(valid, attempted)``."""
    kept_g, kept_d = [], []
    have = attempted = valid = 0
    fraction = first_fraction
    all_g, all_ok = [], []
    while have < n and attempted < max_draws:
        need = n - have
        size = min(_bucket(int(math.ceil(need / max(fraction, 1e-3) * 1.1)) + 8), _bucket(max_draws - attempted))
        g, d, ok = run_batch(size)
        attempted += size
        valid += int(ok.sum())
        fraction = max(valid / attempted, 1.0 / max_draws)
        kept_g.append(g[ok][:need])
        kept_d.append(d[ok][:need])
        have += min(int(ok.sum()), need)
        all_g.append(g)
        all_ok.append(ok)
    return kept_g, kept_d, have, valid, attempted, np.concatenate(all_g), np.concatenate(all_ok)


def reference_population(
    model: ConductanceBasedModel,
    n: int,
    seed: int = 0,
    *,
    calcium_path: str = "python",
    recipe: Recipe | None = None,
    tol: float = DEFAULT_TOL,
    max_draws: int | None = None,
) -> Population:
    """Stage 1 of the published recipe: ``n`` spiking reference models (SCIENCE.md §3).

    STG: g_leak ~ Gamma(27, 3.889e-4); g_Kd ~ U[70, 140], g_CaT ~ U[3, 7], g_CaS ~ U[6, 22],
    g_KCa ~ U[140, 180], each × g_leak/0.0105; (g_Na, g_A, g_H) compensated to (g_f, g_s, g_u) =
    (−6.2, 4, 5) at −51 mV. DA: g_leak Gamma-matched to U[0.0087, 0.017]; g_Kd ~ U[6, 10],
    g_CaL ~ U[0.015, 0.075], g_NMDA = 0.012, × g_leak/0.01285; (g_Na, g_CaN, g_ERG) compensated to
    (−12.95, 0.5, 5.0) at −55.5 mV. Draws giving a negative conductance are redrawn.

    Args:
        model: ``stg()`` or ``da()`` (or any model with a ``recipe``).
        n: number of models (exactly n come back). seed: seed of the draws (NumPy ``default_rng``).
        calcium_path: DIC convention; recipe: override the published recipe; tol: DIC tolerance;
        max_draws: give up after this many draws (default ``max(100 n, 10 000)``).

    Returns:
        A :class:`Population` of n models.

    Raises:
        UnreachableTargetError: if fewer than n valid models are found in ``max_draws`` draws.

    Example:
        >>> from neuromech.cbm import stg
        >>> pop = reference_population(stg(), 5, seed=1)
        >>> len(pop), pop.achieved.round(6).tolist()[0]
        (5, [-6.2, 4.0, 5.0])
    """
    check_calcium_path(calcium_path)
    n = _check_n(n)
    recipe = recipe or recipe_for(model)
    rng = np.random.default_rng(seed)
    ref_cols = parse_compensated(model, recipe.reference_compensated, 3)
    v = float(recipe.v_th)
    max_draws = max(100 * n, 10_000) if max_draws is None else int(max_draws)

    def run_batch(size):
        g0, ref_values = _stage1_inputs(model, recipe, rng, size)
        with jax.enable_x64(True):
            g, d = _stage(model, jnp.asarray(g0), jnp.asarray(v), jnp.asarray(ref_values), (0, 1, 2), ref_cols,
                          calcium_path, DEFAULT_MAX_ITER, tol)
            g, d = np.asarray(g), np.asarray(d)
        residuals = np.max(np.abs(d - ref_values), axis=1)
        return g, d, model_ok(g, residuals, tol)

    kept_g, kept_d, have, valid, attempted, all_g, all_ok = _collect(n, max_draws, run_batch)
    target = np.asarray(recipe.reference_targets, float)
    if have < n:
        raise unreachable_error(model, all_g, all_ok, target[None], np.full(len(all_g), v), calcium_path, ref_cols)
    g, d = np.concatenate(kept_g), np.concatenate(kept_d)
    names = ",".join(model.conductance_names[c] for c in ref_cols)
    return _population(model, g, d, np.broadcast_to(target, (n, 3)).copy(), v, tol,
                       np.full(n, names, dtype=object), calcium_path)


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (number of models); got {n!r}")
    return int(n)


def generate_population(
    model: ConductanceBasedModel,
    n: int,
    *,
    g_s: float,
    g_u: float,
    g_f: float | None = None,
    seed: int = 0,
    compensated=None,
    calcium_path: str = "python",
    recipe: Recipe | None = None,
    tol: float = DEFAULT_TOL,
    max_draws: int | None = None,
) -> Population:
    """``n`` degenerate models with DICs (g_s, g_u) (and g_f if given) at V_th, by the published
    two-stage recipe (Brandoit et al. 2025; Fyon et al. 2024; SCIENCE.md §3).

    Stage 1 draws a reference spiking population (:func:`reference_population`); stage 2
    re-compensates a pair chosen by the target — STG: g_u < 0 → (CaS, A), g_s ≥ 0 → (A, H), else
    (CaS, H); DA: g_s < 0 → (ERG, CaL), else (ERG, Kd) — with g_f free (or g_Na added to the pair
    when g_f is given). Models with a negative conductance are redrawn; if the published pair
    reaches no valid model, the other pairs of the recipe are tried in turn.

    Main arguments:
        model: ``stg()`` or ``da()``.
        n: number of models: exactly n come back, or an error says why not.
        g_s, g_u: target slow and ultraslow DICs (dimensionless, at the recipe's V_th).

    Other arguments:
        g_f: target fast DIC, or None (free).
        seed: seed of the draws; the same seed gives the same population.
        compensated: force the stage-2 compensated conductances (e.g. ``("CaS", "H")``), no fallback.
        calcium_path: DIC convention (``"python"`` or ``"ultraslow"``).
        recipe: override the published :class:`Recipe`.
        tol: tolerance on the achieved DICs; max_draws: candidates drawn at most per compensated set
            (default ``max(100 n, 10 000)``).

    Returns:
        A :class:`Population` of n models, ids 0..n−1.

    Raises:
        ValueError: non-finite targets, unknown compensated names, n < 1.
        UnreachableTargetError: no compensated set yields n valid models within ``max_draws``; the
            error carries the closest valid DICs and the valid fraction.

    Example:
        >>> from neuromech.cbm import stg
        >>> pop = generate_population(stg(), 100, g_s=-8.0, g_u=8.0, seed=0)
        >>> len(pop), bool(abs(pop.achieved[:, 1:] - [-8.0, 8.0]).max() < 1e-6)
        (100, True)
    """
    check_calcium_path(calcium_path)
    n = _check_n(n)
    recipe = recipe or recipe_for(model)
    targets = _target_dict(g_f, g_s, g_u)
    rows, values = parse_targets(targets, 1)
    if compensated is not None:
        sets = (tuple([compensated] if isinstance(compensated, str) else compensated),)
    else:
        sets = tuple(((("Na",) + p) if g_f is not None and "Na" not in p else p) for p in recipe.pairs(g_s, g_u))
    max_draws = max(100 * n, 10_000) if max_draws is None else int(max_draws)
    target_full = np.full(3, np.nan)
    target_full[list(rows)] = values[0]

    failures = []
    for k, comp in enumerate(sets):
        cols = parse_compensated(model, comp, len(rows))
        try:
            return _generate_with(model, n, recipe, seed, rows, values[0], cols, calcium_path, tol, max_draws, target_full)
        except UnreachableTargetError as err:
            failures.append((comp, err))
            # Only fall back when the published choice is hopeless, not merely unlucky.
            if compensated is not None:
                raise
    best = min(failures, key=lambda f: np.nansum((f[1].closest - np.nan_to_num(target_full, nan=f[1].closest)) ** 2))
    tried = "; ".join(f"{'+'.join(c)}: valid fraction {e.valid_fraction:.3g}" for c, e in failures)
    err = best[1]
    raise UnreachableTargetError(
        f"cannot generate {n} {model.name} models with (g_f, g_s, g_u) = "
        f"({'free' if g_f is None else g_f}, {g_s}, {g_u}) at V_th = {recipe.v_th} mV: every compensated "
        f"set was tried ({tried}). Closest valid DICs: "
        f"({err.closest[0]:.4g}, {err.closest[1]:.4g}, {err.closest[2]:.4g}). Choose a target nearer that.",
        target=target_full, closest=err.closest, valid_fraction=max(e.valid_fraction for _, e in failures),
        attempted=sum(e.attempted for _, e in failures),
    )


def _generate_with(model, n, recipe, seed, rows, target, cols, calcium_path, tol, max_draws, target_full):
    rng = np.random.default_rng(seed)
    ref_cols = parse_compensated(model, recipe.reference_compensated, 3)
    v = float(recipe.v_th)
    g_s = float(target_full[1]) if np.isfinite(target_full[1]) else 0.0
    guess = tuple(
        (model.channel_index(name), a + b * g_s) for name, a, b in recipe.starting_guess
        if model.channel_index(name) in cols
    )

    def run_batch(size):
        g0, ref_values = _stage1_inputs(model, recipe, rng, size)
        scale = g0[:, leak_index(model)] / recipe.leak_reference
        with jax.enable_x64(True):
            g, d, ok = _run_two_stages(model, g0, v, ref_values, ref_cols, target, rows, cols, guess, scale,
                                       calcium_path, tol)
        return g, d, ok

    kept_g, kept_d, have, valid, attempted, all_g, all_ok = _collect(n, max_draws, run_batch)
    if have < n:
        raise unreachable_error(model, all_g, all_ok, target_full[None], np.full(len(all_g), v), calcium_path, cols)
    g, d = np.concatenate(kept_g), np.concatenate(kept_d)
    names = ",".join(model.conductance_names[c] for c in cols)
    return _population(model, g, d, np.broadcast_to(target_full, (n, 3)).copy(), v, tol,
                       np.full(n, names, dtype=object), calcium_path)


def _run_two_stages(model, g0, v, ref_values, ref_cols, target, rows, cols, guess, scale, calcium_path, tol):
    size = g0.shape[0]
    g0 = g0.copy()
    values = np.broadcast_to(np.asarray(target, float), (size, len(rows)))
    g, d, ok = _two_stage_kernel(
        model, jnp.asarray(g0), jnp.asarray(v, jnp.float64), jnp.asarray(ref_values, jnp.float64),
        jnp.asarray(values, jnp.float64), jnp.asarray(scale, jnp.float64), jnp.asarray([a for _, a in guess] or [0.0]),
        ref_cols, rows, cols, tuple(c for c, _ in guess), calcium_path, DEFAULT_MAX_ITER, float(tol),
    )
    return np.asarray(g), np.asarray(d), np.asarray(ok)


@eqx.filter_jit
def _two_stage_kernel(model, g0, v, ref_values, values, scale, guess_values, ref_cols, rows, cols, guess_cols,
                      calcium_path, max_iter, tol):
    """Stage 1 (reference), then stage 2 (pair), for a batch; one compiled call."""
    fn1 = lambda g, t: compensate_one(model, g, v, t, (0, 1, 2), ref_cols, calcium_path, max_iter, tol)
    g1, d1, _ = jax.vmap(fn1)(g0, ref_values)
    ok1 = _valid(g1, d1[:, :3], (0, 1, 2), ref_values, tol)
    start = g1
    for k, col in enumerate(guess_cols):
        start = start.at[:, col].set(jnp.maximum(guess_values[k] * scale, 0.0))
    fn2 = lambda g, t: compensate_one(model, g, v, t, rows, cols, calcium_path, max_iter, tol)
    g2, d2, _ = jax.vmap(fn2)(start, values)
    ok = ok1 & _valid(g2, d2[:, :3], rows, values, tol)
    return g2, d2[:, :3], ok


def modulate(
    population: Population,
    *,
    g_s=None,
    g_u=None,
    g_f=None,
    compensated=None,
    tol: float = DEFAULT_TOL,
    on_invalid: str = "raise",
) -> Population:
    """Move a population to new DIC targets, keeping every conductance except a compensated set
    (the published neuromodulation step; Fyon et al. 2024). Targets are numbers or one per model,
    so a path in (g_s, g_u) is a sequence of calls.

    Args:
        population: the population to modulate (its model, V_th and calcium convention are kept).
        g_s, g_u, g_f: new targets (None: free).
        compensated: conductances to re-compensate; default the recipe's pair for each model's new
            (g_s, g_u), and, for models that the pair cannot keep valid, the recipe's other pairs.
        tol: DIC tolerance. on_invalid: ``"raise"`` (default) or ``"keep"`` models that no set keeps
            non-negative (check :attr:`Population.valid`).

    Returns:
        A new :class:`Population` with the same ids, in the same order.

    Raises:
        UnreachableTargetError: if some model cannot be moved with non-negative conductances.

    Example:
        >>> from neuromech.cbm import stg
        >>> pop = generate_population(stg(), 20, g_s=-4.0, g_u=5.0, seed=0)
        >>> moved = modulate(pop, g_s=-8.0, g_u=6.0)
        >>> bool(abs(moved.achieved[:, 1:] - [-8.0, 6.0]).max() < 1e-6)
        True
    """
    from ._compensate import run_compensation

    if on_invalid not in ("raise", "keep"):
        raise ValueError(f"on_invalid must be 'raise' or 'keep'; got {on_invalid!r}")
    model = population.model
    n = len(population)
    rows, values = parse_targets(_target_dict(g_f, g_s, g_u), n)
    if compensated is not None:
        plans = [tuple([compensated] if isinstance(compensated, str) else compensated)]
        per_model = [0] * n
    else:
        recipe = recipe_for(model)
        gs = np.broadcast_to(np.asarray(0.0 if g_s is None else g_s, float), (n,))
        gu = np.broadcast_to(np.asarray(0.0 if g_u is None else g_u, float), (n,))
        plans, per_model = [], []
        for i in range(n):
            sets = tuple(((("Na",) + p) if g_f is not None and "Na" not in p else p) for p in recipe.pairs(gs[i], gu[i]))
            if sets not in plans:
                plans.append(sets)
            per_model.append(plans.index(sets))
        plans = [p for p in plans]
    per_model = np.asarray(per_model)

    g_out = population.conductances.copy()
    d_out = np.full((n, 3), np.nan)
    res_out = np.full(n, np.inf)
    comp_out = np.full(n, "", dtype=object)
    done = np.zeros(n, bool)
    for p, plan in enumerate(plans):
        sets = plan if compensated is None else (plan,)
        for comp in sets:
            todo = np.flatnonzero((per_model == p) & ~done)
            if todo.size == 0:
                break
            cols = parse_compensated(model, comp, len(rows))
            g, d, res = run_compensation(
                model, population.conductances[todo], population.v_th[todo], rows, values[todo], cols,
                population.calcium_path, DEFAULT_MAX_ITER, tol,
            )
            ok = model_ok(g, res, tol)
            first = np.isinf(res_out[todo])
            update = ok | first
            idx = todo[update]
            g_out[idx], d_out[idx], res_out[idx] = g[update], d[update], res[update]
            comp_out[idx] = ",".join(model.conductance_names[c] for c in cols)
            done[todo[ok]] = True
    target_full = np.full((n, 3), np.nan)
    target_full[:, list(rows)] = values
    if on_invalid == "raise" and not done.all():
        bad = ~done
        cols = parse_compensated(model, (plans[0] if compensated is not None else plans[0][0]), len(rows))
        raise unreachable_error(
            model, g_out, done, target_full, population.v_th, population.calcium_path, cols,
            extra=f" Models that cannot be moved: ids {population.ids[bad][:10].tolist()}"
                  + ("..." if bad.sum() > 10 else "") + ".",
        )
    return dataclasses.replace(
        population, conductances=g_out, targets=target_full, achieved=d_out, residuals=res_out, compensated=comp_out,
    )
