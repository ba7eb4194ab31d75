"""Do generated populations fire like their input? `populate --verify` on held-out test trains.

Takes trains of the test split of a training data set (targets never seen in training: the split
of the shipped network's record, same seed), runs the whole pipeline with verification, and prints
the fraction of generated members whose firing pattern matches the input's (target ≥ 90 %), per
pattern, with the members' median feature errors. Each train is verified like with like: its
members are simulated under the noisy current σ that the train itself was simulated with
(``--member-noise matched``, the default), or all without noise (``--member-noise 0``). Beside it,
what exact DICs would score: of the other models of each input's target in the data set (drawn by
the same recipe at the true DICs), the fraction that reproduce its pattern under the same σ.

Members are drawn as `populate` draws them, by the published recipe; `--spontaneous` keeps only
members without a stable equilibrium (which cannot rest) and adds what exact DICs score among
such siblings. `--unseen` takes every train of DATA_DIR, for a data set whose targets the network
never saw (e.g. one generated with another seed), instead of the network's test split.

    python benchmarks/verify_populate.py DATA_DIR --model stg [--trains 100] [--members 100]
        [--member-noise matched|SIGMA] [--exact-only] [--spontaneous] [--unseen]
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
    parser.add_argument("--exact-only", action="store_true",
                        help="only what exact DICs score, on every test train (no simulation)")
    parser.add_argument("--spontaneous", action="store_true",
                        help="draw only members that cannot rest (no stable equilibrium)")
    parser.add_argument("--unseen", action="store_true",
                        help="DATA_DIR holds only targets the network never saw: verify on all its trains")
    args = parser.parse_args(argv)

    import neuromech

    neuromech.use_cpu_cores()
    from neuromech.cbm import get_model
    from neuromech.dics import TrainingConfig, load_network, populate
    from neuromech.dics._training import Examples, split_by_target
    from neuromech.jobs import read_training_data

    loaded = load_network(args.model)
    config = TrainingConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in loaded.record["config"].items()})
    frame = read_training_data(args.data)
    examples = Examples.from_frame(frame)
    test = examples if args.unseen else split_by_target(examples, config)[2]
    variants = [("all", None)] + ([("spontaneously active", get_model(args.model))] if args.spontaneous else [])
    if args.exact_only:
        for label, cbm in variants:
            exact = np.asarray(same_dic_match(frame, test, range(len(test)), cbm))
            print(f"{args.model}: what exact DICs score ({label} siblings) on all {len(test)} trains: "
                  f"{np.nanmean(exact):.3f}; by σ: " + ", ".join(
                      f"{level:g}: {np.nanmean(exact[test.sigma == level]):.3f}" for level in np.unique(test.sigma)))
        return
    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(test), size=min(args.trains, len(test)), replace=False)
    recorded = {int(k): float(test.sigma[k]) for k in pick}  # σ each input train was simulated with
    member = {k: level if args.member_noise == "matched" else float(args.member_noise) for k, level in recorded.items()}
    start = time.perf_counter()
    parts = []
    for level in sorted(set(member.values())):
        trains = {k: test.trains[k] for k in member if member[k] == level}
        summary, _ = populate(trains, args.model, n=args.members, seed=args.seed, verify=True,
                              verify_noise=level, spontaneous=args.spontaneous, progress=True)
        parts.append(summary.assign(sigma=[recorded[k] for k in summary["id"]]))
    summary = pd.concat(parts, ignore_index=True)
    elapsed = time.perf_counter() - start
    ok = summary[summary["status"] == "ok"]
    print(f"{args.model}: {len(recorded)} {'unseen' if args.unseen else 'held-out test'} trains × "
          f"{args.members} members ({'spontaneously active only' if args.spontaneous else 'all'}), {elapsed:.0f} s")
    print(f"members reproducing the input's pattern: {ok['pattern_match'].mean():.3f} (target ≥ 0.90); "
          f"statuses {summary['status'].value_counts().to_dict()}")
    print(f"members simulated at σ = {args.member_noise}; by the σ the input was simulated with: "
          + ", ".join(f"{level:g}: {g['pattern_match'].mean():.3f} (n={len(g)})" for level, g in ok.groupby("sigma")))
    for label, cbm in variants:
        exact = np.asarray(same_dic_match(frame, test, pick, cbm))
        sigma = np.array([recorded[int(k)] for k in pick])
        print(f"what exact DICs score: the other models of each input's target ({label}; the generator's "
              f"population at the true DICs) under the same σ reproduce the input's pattern "
              f"{np.nanmean(exact):.3f}; by σ: "
              + ", ".join(f"{level:g}: {np.nanmean(exact[sigma == level]):.3f}" for level in np.unique(sigma)))
    for pattern, group in ok.groupby("pattern"):
        errors = {c.removesuffix("_error"): round(float(group[c].median()), 3)
                  for c in group.columns if c.endswith("_error") and group[c].notna().any()}
        print(f"  {pattern:9s} n={len(group):3d}  pattern match {group['pattern_match'].mean():.3f}  "
              f"median relative feature errors {errors}")


def same_dic_match(frame, test, pick, model=None) -> list[float]:
    """Per picked test train: the fraction of the other models of its target simulated under its σ
    (silent ones included) whose pattern is the train's. Members drawn at the true DICs by the
    same compensation recipe match, on average, this often: what a perfect DIC prediction scores.
    With ``model``, only the other models that cannot rest (no stable equilibrium) count, as
    `populate --spontaneous` draws them (NaN where none is left)."""
    keep = np.ones(len(frame), bool)
    if model is not None:
        from neuromech.cbm import equilibria

        keep = ~equilibria(model, frame[list(model.conductance_names)].to_numpy()).can_rest
    frame = frame.assign(_keep=keep)
    groups = dict(list(frame.groupby(["target", "sigma"])))
    out = []
    for k in pick:
        group = groups[(test.target[k], test.sigma[k])]
        own = np.array([len(t) == len(test.trains[k]) and np.array_equal(t, test.trains[k])
                        for t in group["spike_times"]])
        others = group["pattern"].to_numpy()[~own & group["_keep"].to_numpy()]
        mine = "bursting" if test.bursting[k] else "tonic"
        out.append(float(np.mean(others == mine)) if len(others) else np.nan)
    return out


if __name__ == "__main__":
    main()
