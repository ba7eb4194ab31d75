"""Time DIC computations and population generation on this machine (CPU), after warm-up.

    .venv/bin/python benchmarks/bench_dics.py [--repeats 30]

Prints the median (and min) wall time of:
- ``generate_population`` (the published two-stage recipe, float64) for 1 000 and 10 000 STG models,
  for a target of each published compensated pair (no Newton loop for (A, H); the calcium loop for
  (CaS, H) and (CaS, A)), and for DA;
- ``dics`` of 10 000 STG models at −51 mV; ``threshold_voltage`` of 1 000 STG models;
- the compiled two-stage kernel alone in float64 (what the package uses) and in float32, with the
  float32 error on the DICs (rechecked in float64): why the package pays for float64.

Targets of the issue: ≤ 3 ms for 1 000 STG models, ≤ 15 ms for 10 000. For reference, the issue
quotes the published Python tool at 4–13 ms (1 000) and 13–37 ms (10 000) on this machine; it is not
re-run here (it is not a dependency). Timings on a shared machine vary with its load: the load
average is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from neuromech.cbm import da, stg
from neuromech.dics import dics, generate_population, reference_population, threshold_voltage


def timeit(fn, repeats):
    fn()  # warm-up: compiles
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.median(times) * 1e3, np.min(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    print(f"{'what':58s} {'median ms':>10s} {'min ms':>8s}")
    rows = []
    for model, targets in ((stg(), [(4.0, 5.0), (-8.0, 8.0), (-15.0, -3.0)]), (da(), [(-4.0, 5.0), (5.0, 5.0)])):
        for g_s, g_u in targets:
            for n in (1_000, 10_000):
                seeds = iter(range(10**6))
                pop = generate_population(model, n, g_s=g_s, g_u=g_u)
                label = f"generate {model.name} n={n:>6d} (g_s, g_u)=({g_s:g}, {g_u:g}) [{pop.compensated[0]}]"
                med, low = timeit(lambda: generate_population(model, n, g_s=g_s, g_u=g_u, seed=next(seeds)),
                                  args.repeats)
                rows.append((label, med, low))
                print(f"{label:58s} {med:10.2f} {low:8.2f}", flush=True)
    model = stg()
    pop = reference_population(model, 10_000, seed=0)
    for label, fn, reps in (
        ("reference_population stg n=10000", lambda: reference_population(model, 10_000, seed=1), args.repeats),
        ("dics stg n=10000 at -51 mV", lambda: dics(model, pop.conductances), args.repeats),
        ("threshold_voltage stg n=1000", lambda: threshold_voltage(model, pop.conductances[:1000]), 5),
    ):
        med, low = timeit(fn, reps)
        print(f"{label:58s} {med:10.2f} {low:8.2f}", flush=True)
    precision(model, args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def precision(model, repeats):
    """Kernel time in float64 vs float32 (internal API: the public functions always use float64)."""
    import jax

    from neuromech.dics._generate import _draw, _kernel, _layout, recipe_for

    recipe, layout = recipe_for(model), _layout(model)
    ref_cols = tuple(layout.index[c] for c in recipe.reference_compensated)
    ref = np.asarray(recipe.reference_targets)
    for comp, target in ((("A", "H"), (4.0, 5.0)), (("CaS", "H"), (-8.0, 8.0))):
        cols = tuple(layout.index[c] for c in comp)
        guess_cols = (layout.index["CaS"],) if layout.index["CaS"] in cols else ()
        guess = np.array([(34.12 - 2.33 * target[0]) / recipe.leak_reference])[: len(guess_cols)]
        g0 = _draw(recipe, layout, np.random.default_rng(0), 10_240)
        args64 = (g0, ref, np.asarray(target), guess)
        args32 = tuple(np.asarray(a, np.float32) for a in args64)
        k64 = _kernel(model, recipe.v_th, ref_cols, ((1, 2), cols, guess_cols), "python", 1e-6)
        k32 = _kernel(model, recipe.v_th, ref_cols, ((1, 2), cols, guess_cols), "python", 1e-3)
        with jax.enable_x64(True):
            t64, _ = timeit(lambda: jax.block_until_ready(k64(*args64)), repeats)
        t32, _ = timeit(lambda: jax.block_until_ready(k32(*args32)), repeats)
        g, _, ok = k32(*args32)
        g = np.asarray(g, dtype=np.float64)[np.asarray(ok)]
        err = np.abs(dics(model, g).as_array()[:, 1:] - target).max()
        print(f"kernel stg n=10240 [{'+'.join(comp)}]: float64 {t64:.2f} ms, float32 {t32:.2f} ms "
              f"(float32 DIC error up to {err:.1e})", flush=True)


if __name__ == "__main__":
    main()
