"""Do generated populations fire like their input? `populate --verify` on held-out test trains.

Takes trains of the test split of a training data set (targets never seen in training: the split
of the shipped network's record, same seed), runs the whole pipeline with verification, and prints
the fraction of generated members whose firing pattern matches the input's (target ≥ 90 %), per
pattern, with the members' median feature errors. Each train is verified like with like: its
members are simulated under the noisy current σ that the train itself was simulated with
(``--member-noise matched``, the default), or all without noise (``--member-noise 0``).

    python benchmarks/verify_populate.py DATA_DIR --model stg [--trains 100] [--members 100]
        [--member-noise matched|SIGMA]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--model", default="stg", choices=["stg", "da"])
    parser.add_argument("--trains", type=int, default=100)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--member-noise", default="matched",
                        help="σ of the members' verification runs: 'matched' (each train's own) or a number")
    args = parser.parse_args(argv)

    import neuromech

    neuromech.use_cpu_cores()
    from neuromech.dics import TrainingConfig, load_network, populate
    from neuromech.dics._training import Examples, split_by_target
    from neuromech.jobs import read_training_data

    loaded = load_network(args.model)
    config = TrainingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in loaded.record["config"].items()})
    _, _, test = split_by_target(Examples.from_frame(read_training_data(args.data)), config)
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(test), size=min(args.trains, len(test)), replace=False)
    recorded = {int(k): float(test.sigma[k]) for k in pick}  # σ each input train was simulated with
    member = {k: level if args.member_noise == "matched" else float(args.member_noise) for k, level in recorded.items()}
    start = time.perf_counter()
    parts = []
    for level in sorted(set(member.values())):
        trains = {k: test.trains[k] for k in member if member[k] == level}
        summary, _ = populate(trains, args.model, n=args.members, seed=args.seed, verify=True,
                              verify_noise=level, progress=True)
        parts.append(summary.assign(sigma=[recorded[k] for k in summary["id"]]))
    summary = pd.concat(parts, ignore_index=True)
    elapsed = time.perf_counter() - start
    ok = summary[summary["status"] == "ok"]
    print(f"{args.model}: {len(recorded)} held-out test trains × {args.members} members, {elapsed:.0f} s")
    print(f"members reproducing the input's pattern: {ok['pattern_match'].mean():.3f} (target ≥ 0.90); "
          f"statuses {summary['status'].value_counts().to_dict()}")
    print(f"members simulated at σ = {args.member_noise}; by the σ the input was simulated with: "
          + ", ".join(f"{level:g}: {g['pattern_match'].mean():.3f} (n={len(g)})" for level, g in ok.groupby("sigma")))
    for pattern, group in ok.groupby("pattern"):
        errors = {c.removesuffix("_error"): round(float(group[c].median()), 3)
                  for c in group.columns if c.endswith("_error") and group[c].notna().any()}
        print(f"  {pattern:9s} n={len(group):3d}  pattern match {group['pattern_match'].mean():.3f}  "
              f"median relative feature errors {errors}")


if __name__ == "__main__":
    main()
