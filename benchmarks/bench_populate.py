"""Speed of the spike-times → DICs → population pipeline on this CPU, against the published tool.

Prints: network inference per train at batch 1 and batch 512; one train end to end (inference +
1 000-model population); 100 trains × 1 000 models end to end; and (STG) the whole command a user
runs, ``neuromech populate examples/stg_spikes.csv -n 1000`` in a fresh process, first with an empty
compilation cache, then with the one that run filled. Published reference (Brandoit et al. 2025,
Spike2Pop): 14 ms per train for the network alone at batch 1.

Targets: ≤ 1 ms per train in batches; ≤ 20 ms for one train end to end with 1 000 models.

    python benchmarks/bench_populate.py [--model stg] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PUBLISHED_BATCH1_MS = 14.0


def _trains(n, rng):
    """Realistic trains: bursting and tonic, 20–120 spikes."""
    out = []
    for _ in range(n):
        if rng.random() < 0.5:
            burst = np.cumsum(rng.uniform(8, 15, int(rng.integers(3, 8))))
            period = rng.uniform(300, 900)
            out.append(np.concatenate([burst + period * k for k in range(int(3000 / period))]))
        else:
            out.append(np.cumsum(rng.uniform(20, 60) * rng.normal(1, 0.03, int(rng.integers(20, 120)))))
    return out


def _best(fn, repeats):
    fn()  # compile / warm
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _command_seconds() -> tuple[float, float]:
    """Wall time (s) of ``neuromech populate`` on the bundled STG example in a new process: with an
    empty compilation cache (importing, tracing and compiling), then with the cache that run filled."""
    example = Path(__file__).resolve().parents[1] / "examples" / "stg_spikes.csv"
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "NEUROMECH_COMPILATION_CACHE": str(Path(tmp) / "cache")}
        cmd = [sys.executable, "-m", "neuromech", "populate", str(example), "--model", "stg", "-n", "1000",
               "--seed", "0", "--out", str(Path(tmp) / "pops.csv")]
        times = []
        for _ in range(2):
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - t)
    return times[0], times[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="stg", choices=["stg", "da"])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)

    from neuromech.dics import infer_dics, populate

    rng = np.random.default_rng(0)
    one, batch, hundred = _trains(1, rng), _trains(512, rng), _trains(100, rng)
    t1 = _best(lambda: infer_dics(one, args.model), args.repeats)
    t512 = _best(lambda: infer_dics(batch, args.model), max(3, args.repeats // 5))
    # The population of one train: warm every compensated pair the generator may use first.
    for train in hundred[:20]:
        populate({"w": train}, args.model, n=1000)
    e2e1 = _best(lambda: populate({"x": one[0]}, args.model, n=1000), args.repeats)
    e2e1_spontaneous = _best(lambda: populate({"x": one[0]}, args.model, n=1000, spontaneous=True), args.repeats)
    t = time.perf_counter()
    summary, pops = populate({k: v for k, v in enumerate(hundred)}, args.model, n=1000)
    e2e100 = time.perf_counter() - t

    print(f"model {args.model}; median of repeats; this CPU")
    print(f"network, batch 1:    {t1 * 1e3:8.2f} ms per train   (published tool: {PUBLISHED_BATCH1_MS} ms, "
          f"{PUBLISHED_BATCH1_MS / (t1 * 1e3):.1f}× faster)")
    print(f"network, batch 512:  {t512 / 512 * 1e3:8.3f} ms per train   (target ≤ 1 ms)")
    print(f"one train → 1000 models:   {e2e1 * 1e3:8.1f} ms   (target ≤ 20 ms)")
    print(f"one train → 1000 models that cannot rest (--spontaneous): {e2e1_spontaneous * 1e3:8.1f} ms")
    print(f"100 trains → 100×1000 models: {e2e100:6.2f} s ({e2e100 / 100 * 1e3:.1f} ms per train; "
          f"{len(pops)} models, statuses {summary['status'].value_counts().to_dict()})")
    if args.model == "stg":  # the bundled example holds STG trains
        cold, warm = _command_seconds()
        print(f"neuromech populate examples/stg_spikes.csv -n 1000 (8 trains), new process: {cold:.1f} s with an "
              f"empty compilation cache, {warm:.1f} s with it filled")


if __name__ == "__main__":
    main()
