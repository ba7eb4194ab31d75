"""The published two-stage generators of degenerate populations (SCIENCE.md §3) and neuromodulation.

Stage 1 draws the fixed conductances of a *reference spiking population* and compensates three
conductances to the reference DICs; stage 2 re-compensates a pair chosen by the target (g_s*, g_u*),
leaving g_f free (Fyon et al. 2024, PNAS Nexus; Brandoit et al. 2025). Unlike the published code,
which drops models with negative conductances and may return fewer than asked, the generator here
redraws until it has exactly ``n`` valid models, falls back to other compensated pairs when the
published pair cannot reach the target, and otherwise raises :class:`UnreachableTargetError` with
the closest DICs and the valid fraction. On request it keeps only *spontaneously active* models,
those without a stable equilibrium (:func:`neuromech.cbm.equilibria`), which DICs at threshold do
not decide: populations of pacemakers that must not rest.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..cbm import ConductanceBasedModel, equilibria
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
from ._dics import bucket
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


# ------------------------------------------------------------------------ cached layout, kernels
# Reading names and indices off an equinox model costs ~0.2 ms per access and hashing a model as much;
# generation must take ~1 ms in all, so what it needs is computed once per model object (kept alive
# by the cache, so its id cannot be reused) and the compiled kernels close over the model.
_CACHE: dict = {}
_CACHE_SIZE = 64


def _cached(model, key, build):
    full = (id(model),) + key
    hit = _CACHE.get(full)
    if hit is not None and hit[0] is model:
        return hit[1]
    if len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    value = build()
    _CACHE[full] = (model, value)
    return value


@dataclasses.dataclass(frozen=True)
class _Layout:
    names: tuple[str, ...]
    index: dict
    leak: int


def _layout(model) -> _Layout:
    def build():
        names = model.conductance_names
        return _Layout(names, {name[2:]: k for k, name in enumerate(names)}, leak_index(model))

    return _cached(model, ("layout",), build)


def _valid(g, d, rows, values, tol):
    ok = jnp.all(jnp.isfinite(g), axis=1) & jnp.all(g >= 0, axis=1)
    return ok & jnp.all(jnp.abs(d[:, jnp.asarray(rows)] - values) <= tol, axis=1)


def _kernel(model, v, ref_cols, stage2, calcium_path, tol):
    """Compiled ``(g0 (M, n), ref_target (3,), target (k,), guess (G,)) → (g, achieved (M, 3), ok)``.

    Stage 1 compensates ``ref_cols`` to the reference targets; ``stage2 = (rows, cols, guess_cols)``
    then re-compensates ``cols`` to the targets of DIC rows ``rows``, the calcium sources starting from
    ``guess · g_leak`` (None: stage 1 only).
    """

    def build():
        max_iter = DEFAULT_MAX_ITER

        def run(g0, ref_target, target, guess):
            # Chunks of CHUNK models, one after the other: the working set stays in cache, and a
            # slowly converging model holds up only its own chunk's Newton loop. ~3× faster at 10⁴.
            m = g0.shape[0]
            if m <= CHUNK:
                return run_chunk(g0, ref_target, target, guess)
            chunks = g0.reshape(m // CHUNK, CHUNK, g0.shape[1])
            g, d, ok = jax.lax.map(lambda c: run_chunk(c, ref_target, target, guess), chunks)
            return g.reshape(m, -1), d.reshape(m, 3), ok.reshape(m)

        def run_chunk(g0, ref_target, target, guess):
            m = g0.shape[0]
            ref_values = jnp.broadcast_to(ref_target, (m, 3))
            one = lambda g, t: compensate_one(model, g, v, t, (0, 1, 2), ref_cols, calcium_path, max_iter, tol)
            g, d, _ = jax.vmap(one)(g0, ref_values)
            ok = _valid(g, d, (0, 1, 2), ref_values, tol)
            if stage2 is None:
                return g, d[:, :3], ok
            rows, cols, guess_cols = stage2
            values = jnp.broadcast_to(target, (m, len(rows)))
            for k, col in enumerate(guess_cols):
                g = g.at[:, col].set(jnp.maximum(guess[k] * g[:, _layout(model).leak], 0.0))
            two = lambda g, t: compensate_one(model, g, v, t, rows, cols, calcium_path, max_iter, tol)
            g, d, _ = jax.vmap(two)(g, values)
            return g, d[:, :3], ok & _valid(g, d, rows, values, tol)

        return jax.jit(run)

    return _cached(model, ("kernel", float(v), ref_cols, stage2, calcium_path, float(tol)), build)


def _draw(recipe: Recipe, layout: _Layout, rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, n) stage-1 conductances: fixed ones drawn, compensated ones zero."""
    g = np.zeros((size, len(layout.names)))
    leak = rng.gamma(recipe.leak_shape, recipe.leak_scale, size)
    scale = leak / recipe.leak_reference
    if recipe.uniform:
        cols = [layout.index[name] for name, _, _ in recipe.uniform]
        low = np.array([lo for _, lo, _ in recipe.uniform])
        high = np.array([hi for _, _, hi in recipe.uniform])
        g[:, cols] = (low + (high - low) * rng.random((size, len(cols)))) * scale[:, None]
    for name, value in recipe.constant:
        g[:, layout.index[name]] = value * scale
    g[:, layout.leak] = leak
    return g


CHUNK = 256  # models per compiled chunk, see _kernel


def _bucket(size: int) -> int:
    return bucket(size, CHUNK)


def _target_dict(g_f, g_s, g_u):
    return {k: v for k, v in (("g_f", g_f), ("g_s", g_s), ("g_u", g_u)) if v is not None}


def _population(model, g, achieved, targets, v, compensated, calcium_path):
    n = g.shape[0]
    residuals = np.where(np.isfinite(targets), np.abs(achieved - targets), 0.0).max(axis=1)
    return Population(
        model=model, conductances=g, ids=np.arange(n), targets=targets, achieved=achieved,
        v_th=np.full(n, float(v)), residuals=residuals, compensated=np.full(n, compensated),
        calcium_path=calcium_path,
    )


def _collect(n, max_draws, run_batch, first_fraction=1.0):
    """Call ``run_batch(size) → (g, achieved, ok)`` until ``n`` valid models are found.

    Gives up when ``max_draws`` candidates have been drawn, or at once when the first batch (at
    least 64 draws) has no valid model at all: such a compensated set is hopeless for this target.
    Returns ``(g, achieved)`` of the first n valid models (fewer if it gave up), and all candidates
    with their validity.
    """
    kept_g, kept_d, all_g, all_ok = [], [], [], []
    have = attempted = valid = 0
    fraction = first_fraction
    while have < n and attempted < max_draws:
        need = n - have
        # A 2 % margin: the published pairs keep every STG draw valid on the training grid, and
        # a shortfall costs one more (small) batch.
        size = min(_bucket(int(math.ceil(need / max(fraction, 1e-3) * 1.02))), _bucket(max_draws - attempted))
        g, d, ok = run_batch(size)
        attempted += size
        good = np.flatnonzero(ok)
        valid += good.size
        take = good[:need]
        kept_g.append(g[take])
        kept_d.append(d[take])
        have += take.size
        all_g.append(g)
        all_ok.append(ok)
        if valid == 0:
            break
        fraction = valid / attempted
    g = kept_g[0] if len(kept_g) == 1 else np.concatenate(kept_g)
    d = kept_d[0] if len(kept_d) == 1 else np.concatenate(kept_d)
    return g, d, np.concatenate(all_g), np.concatenate(all_ok)


def _with_na(pairs, add):
    """With a g_f target, g_Na (the dominant fast conductance) joins every compensated pair."""
    return tuple(("Na",) + p if add and "Na" not in p else p for p in pairs)


def _check_n(n):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer (number of models); got {n!r}")
    return int(n)


def _run(model, recipe, seed, n, max_draws, kernel, target, guess, resting=None):
    """Draw, compensate and collect until n valid models; returns as :func:`_collect`.

    ``resting``: a list to count, per batch, the valid models dropped because they have a stable
    equilibrium; None keeps them.
    """
    layout = _layout(model)
    rng = np.random.default_rng(seed)
    ref_target = np.asarray(recipe.reference_targets, dtype=float)
    target = np.asarray(target, dtype=float)
    guess = np.asarray(guess, dtype=float)

    def run_batch(size):
        g, d, ok = (np.array(a) for a in kernel(_draw(recipe, layout, rng, size), ref_target, target, guess))
        if resting is not None and ok.any():
            rests = equilibria(model, g[ok]).can_rest
            resting.append(int(rests.sum()))
            ok[np.flatnonzero(ok)[rests]] = False
        return g, d, ok

    with jax.enable_x64(True):
        return _collect(n, max_draws, run_batch)


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
    ref_cols = parse_compensated(model, recipe.reference_compensated, 3)
    v = float(recipe.v_th)
    max_draws = max(100 * n, 10_000) if max_draws is None else int(max_draws)
    kernel = _kernel(model, v, ref_cols, None, calcium_path, tol)
    g, d, all_g, all_ok = _run(model, recipe, seed, n, max_draws, kernel, np.zeros(0), np.zeros(0))
    target = np.asarray(recipe.reference_targets, float)
    if len(g) < n:
        raise unreachable_error(model, all_g, all_ok, target[None], np.full(len(all_g), v), calcium_path, ref_cols)
    names = ",".join(_layout(model).names[c] for c in ref_cols)
    return _population(model, g, d, np.broadcast_to(target, (n, 3)).copy(), v, names, calcium_path)


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
    spontaneous: bool = False,
) -> Population:
    """``n`` degenerate models with DICs (g_s, g_u) (and g_f if given) at V_th, by the published
    two-stage recipe (Brandoit et al. 2025; Fyon et al. 2024; SCIENCE.md §3).

    Stage 1 draws a reference spiking population (:func:`reference_population`); stage 2
    re-compensates a pair chosen by the target — STG: g_u < 0 → (CaS, A), g_s ≥ 0 → (A, H), else
    (CaS, H); DA: g_s < 0 → (ERG, CaL), else (ERG, Kd) — with g_f free (or g_Na added to the pair
    when g_f is given). Models with a negative conductance are redrawn; if the published pair gives
    no valid model in a first batch (or not n within ``max_draws``), the recipe's other pairs are
    tried in turn (the population's ``compensated`` says which was used).

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
        spontaneous: keep only models without a stable equilibrium, which cannot rest (redrawn
            like invalid ones). DICs at V_th leave this open: of 480 DA models drawn at 30 targets
            over the published ranges, 261 could rest, and 252 of those stayed silent over 9 s.

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
    rows, values = parse_targets(_target_dict(g_f, g_s, g_u), 1)
    target = values[0]
    target_full = np.full(3, np.nan)
    target_full[list(rows)] = target
    if compensated is not None:
        sets = (tuple([compensated] if isinstance(compensated, str) else compensated),)
    else:
        sets = _with_na(recipe.pairs(g_s, g_u), g_f is not None)
    max_draws = max(100 * n, 10_000) if max_draws is None else int(max_draws)
    layout = _layout(model)
    ref_cols = _cached(model, ("ref_cols", recipe.reference_compensated),
                       lambda: parse_compensated(model, recipe.reference_compensated, 3))
    v = float(recipe.v_th)

    failures = []
    for comp in sets:
        cols = _cached(model, ("cols", comp, len(rows)), lambda: parse_compensated(model, comp, len(rows)))
        guess_cols = tuple(layout.index[name] for name, _, _ in recipe.starting_guess if layout.index[name] in cols)
        # Published starting values for the calcium loop, per unit of g_leak / leak_reference.
        guess = [(a + b * g_s) / recipe.leak_reference for name, a, b in recipe.starting_guess
                 if layout.index[name] in cols]
        kernel = _kernel(model, v, ref_cols, (rows, cols, guess_cols), calcium_path, tol)
        resting = [] if spontaneous else None
        g, d, all_g, all_ok = _run(model, recipe, seed, n, max_draws, kernel, target, guess, resting)
        if len(g) == n:
            names = ",".join(layout.names[c] for c in cols)
            return _population(model, g, d, np.broadcast_to(target_full, (n, 3)).copy(), v, names, calcium_path)
        extra = ""
        if resting:
            extra = (f" Of the valid models, {sum(resting)} have a stable resting state and were dropped "
                     f"(spontaneous=True); {int(all_ok.sum())} cannot rest.")
        err = unreachable_error(model, all_g, all_ok, target_full[None], np.full(len(all_g), v), calcium_path,
                                cols, extra=extra)
        if compensated is not None:
            raise err
        failures.append((comp, err))
    best = min(failures, key=lambda f: float(np.nansum((f[1].closest - target_full) ** 2)))[1]
    tried = "; ".join(f"{'+'.join(c)}: valid fraction {e.valid_fraction:.3g}" for c, e in failures)
    raise UnreachableTargetError(
        f"cannot generate {n} {model.name} models with (g_f, g_s, g_u) = "
        f"({'free' if g_f is None else g_f}, {g_s}, {g_u}) at V_th = {v} mV: every compensated set was "
        f"tried ({tried}). Closest valid DICs: ({best.closest[0]:.4g}, {best.closest[1]:.4g}, "
        f"{best.closest[2]:.4g}). Choose a target nearer that.",
        target=target_full, closest=best.closest, valid_fraction=max(e.valid_fraction for _, e in failures),
        attempted=sum(e.attempted for _, e in failures),
    )


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
        if g_s is None or g_u is None:
            raise ValueError(
                "the recipe's default compensated pairs need both g_s and g_u targets; to move only some "
                "DICs, name the conductances to re-compensate with compensated=(...)"
            )
        recipe = recipe_for(model)
        gs = np.broadcast_to(np.asarray(0.0 if g_s is None else g_s, float), (n,))
        gu = np.broadcast_to(np.asarray(0.0 if g_u is None else g_u, float), (n,))
        plans, per_model = [], []
        for i in range(n):
            sets = _with_na(recipe.pairs(gs[i], gu[i]), g_f is not None)
            if sets not in plans:
                plans.append(sets)
            per_model.append(plans.index(sets))
    per_model = np.asarray(per_model)

    g_out = population.conductances.copy()
    d_out = np.full((n, 3), np.nan)
    res_out = np.full(n, np.inf)
    comp_out = [""] * n
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
            label = ",".join(model.conductance_names[c] for c in cols)
            for i in idx:
                comp_out[i] = label
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
        population, conductances=g_out, targets=target_full, achieved=d_out, residuals=res_out,
        compensated=np.asarray(comp_out),
    )
