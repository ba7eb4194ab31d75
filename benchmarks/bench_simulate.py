"""Speed of the population simulator against per-model scipy BDF, in one run, as ratios.

1. Fast path: N STG models (published reference population), 6 s, spikes only, after warm-up.
2. How users do it today: scipy BDF with an exact (autodiff) Jacobian, one model at a time, at the
   reference tolerance (rtol = atol = 1e-8) and at a looser rtol = 1e-6, on a few of the same models.
3. Peak memory of 10⁴ models × 12 s, spikes only (a child process; its peak RSS).

    python benchmarks/bench_simulate.py [--n 1000] [--bdf-models 3] [--memory-models 10000]
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import neuromech

neuromech.use_cpu_cores()

import jax  # noqa: E402
import numpy as np  # noqa: E402

from neuromech.cbm import simulate, simulate_reference, stg  # noqa: E402
from neuromech.dics import reference_population  # noqa: E402

MEMORY_CHILD = """
import sys, time, resource, numpy as np, neuromech
neuromech.use_cpu_cores()
from neuromech.cbm import stg, simulate
from neuromech.dics import reference_population
n = int(sys.argv[1])
g = reference_population(stg(), n, seed=7).conductances
t = time.perf_counter()
r = simulate(stg(), g, duration=12000.0, transient=3000.0)
print(time.perf_counter() - t, r.spike_counts.mean(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--bdf-models", type=int, default=3)
    p.add_argument("--memory-models", type=int, default=10_000, help="0 to skip")
    a = p.parse_args()
    model = stg()
    g = reference_population(model, a.n, seed=0).conductances
    print(f"devices: {jax.devices()}, default dt = {model.dt} ms")

    simulate(model, g, duration=1000.0)  # warm-up: compiles the same program
    t = time.perf_counter()
    res = simulate(model, g, duration=6000.0, transient=3000.0)
    fast = (time.perf_counter() - t) / a.n
    print(f"fast path: {a.n} STG models x 6 s in {fast * a.n:.2f} s = {1e3 * fast:.2f} ms per model "
          f"({res.spike_counts.mean():.0f} spikes per model kept)")

    for rtol in (1e-8, 1e-6):
        times = []
        for row in g[: a.bdf_models]:
            simulate_reference(model, row, duration=10.0)  # compile the RHS and Jacobian
            t = time.perf_counter()
            simulate_reference(model, row, duration=6000.0, transient=3000.0, rtol=rtol, atol=rtol)
            times.append(time.perf_counter() - t)
        bdf = float(np.mean(times))
        print(f"scipy BDF rtol={rtol:g}: {bdf:.2f} s per model (mean of {len(times)}) -> "
              f"fast path is {bdf / fast:.0f}x faster per model")

    if a.memory_models:
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(a.memory_models)], capture_output=True,
                             text=True, check=True).stdout.split()
        secs, spikes, rss_kb = float(out[0]), float(out[1]), int(out[2])
        print(f"{a.memory_models} STG models x 12 s, spikes only: {secs:.0f} s "
              f"({1e3 * secs / a.memory_models:.2f} ms per model), peak RSS {rss_kb / 1e6:.2f} GB, "
              f"{spikes:.0f} spikes per model")
    print(json.dumps({"ms_per_model_fast": 1e3 * fast}))


if __name__ == "__main__":
    main()
