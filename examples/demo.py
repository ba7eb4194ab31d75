"""neuromech demo: simulate STG models, then go back from their spike times to populations.

1. Simulates a bundled population of STG models; writes spikes.csv (id, spike_time in ms),
   features.csv (firing pattern and features per model) and demo.png (raster and voltage traces).
2. Reads bundled spike trains (examples/stg_spikes.csv, Spike2Pop format: the same 8 models with
   noisy current), predicts each train's DICs with the shipped network, generates 100 models per
   train and simulates them to check they fire alike; writes pops.csv, summary.csv and populate.png
   (input raster, predicted DICs with ±1 std against the true ones, a few generated members).

    python examples/demo.py --out out/demo
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import neuromech

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--population", type=Path, default=HERE / "stg_population.csv")
    parser.add_argument("--spikes", type=Path, default=HERE / "stg_spikes.csv")
    args = parser.parse_args(argv)
    neuromech.use_cpu_cores()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from neuromech.analysis import features_table
    from neuromech.cbm import simulate, stg
    from neuromech.plotting import raster, voltage_traces

    args.out.mkdir(parents=True, exist_ok=True)
    model = stg()
    table = pd.read_csv(args.population)
    g = model.conductances(table)
    start = time.perf_counter()
    result = simulate(
        model, g, duration=model.duration, transient=model.transient, ids=table["id"].to_numpy(),
        record="voltage", progress=True,
    )
    elapsed = time.perf_counter() - start
    result.to_frame().to_csv(args.out / "spikes.csv", index=False)
    features = features_table(result.trains, ids=result.ids)
    features.to_csv(args.out / "features.csv", index=False)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    raster(result.trains, ids=result.ids, ax=top)
    top.set_title(f"{len(g)} STG models (Liu 1998), {model.duration / 1000:g} s simulated, last 3 s shown")
    shown = slice(0, 3)
    voltage_traces(result.time, result.voltage[shown], labels=result.ids[shown], ax=bottom, offset=120.0)
    bottom.set_ylabel("V (mV), offset by 120 mV")
    fig.tight_layout()
    fig.savefig(args.out / "demo.png", dpi=120)

    print(f"simulated {len(g)} STG models x {model.duration:g} ms in {elapsed:.1f} s (incl. compilation)")
    print(features[["id", "pattern", "n_spikes", "spiking_frequency", "spikes_per_burst", "interburst_frequency"]]
          .to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(f"wrote {args.out / 'spikes.csv'}, {args.out / 'features.csv'}, {args.out / 'demo.png'}")
    _populate(args, model, table)
    return 0


def _populate(args, model, truth_table):
    """Stage 2: spike times → predicted DICs → populations, verified by simulation."""
    import matplotlib.pyplot as plt
    import numpy as np

    from neuromech.cbm import simulate
    from neuromech.dics import dics, populate
    from neuromech.io import read_recorded_trains
    from neuromech.plotting import raster, voltage_traces

    trains, problems = read_recorded_trains(args.spikes)
    start = time.perf_counter()
    summary, pops = populate(trains, "stg", n=100, seed=0, verify=True, problems=problems)
    elapsed = time.perf_counter() - start
    pops.to_csv(args.out / "pops.csv", index=False)
    summary.to_csv(args.out / "summary.csv", index=False)
    true = dics(model, model.conductances(truth_table))
    truth = dict(zip(truth_table["id"], zip(true.g_s, true.g_u)))

    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    raster([trains[i] for i in summary["id"]], ids=summary["id"].to_numpy(), ax=axes[0, 0])
    axes[0, 0].set_title(f"input: {len(trains)} spike trains ({args.spikes.name})")
    for k, (name, ax) in enumerate((("g_s", axes[0, 1]), ("g_u", axes[1, 0]))):
        x = np.array([truth[i][k] for i in summary["id"]])
        ax.errorbar(x, summary[f"{name}_hat"], yerr=summary[f"{name}_std"], fmt="o", capsize=3)
        lim = [min(x.min(), summary[f"{name}_hat"].min()) - 3, max(x.max(), summary[f"{name}_hat"].max()) + 3]
        ax.plot(lim, lim, "k--", lw=0.8)
        ax.set_xlabel(f"true {name} (DIC of the simulated model)")
        ax.set_ylabel(f"predicted {name} ± 1 std")
    first = summary["id"].iloc[0]
    members = pops[pops["id"] == first].head(3)
    res = simulate(model, model.conductances(members.drop(columns=["id", "member"])), duration=4500.0,
                   transient=3000.0, record="voltage")
    voltage_traces(res.time, res.voltage, labels=[f"{first} #{m}" for m in members["member"]], ax=axes[1, 1],
                   offset=120.0)
    axes[1, 1].set_title(f"3 generated models for {first} (of 100)")
    axes[1, 1].set_ylabel("V (mV), offset by 120 mV")
    fig.tight_layout()
    fig.savefig(args.out / "populate.png", dpi=120)

    print(f"\nspike times → DICs → {len(pops)} models and their verification in {elapsed:.1f} s (incl. compilation)")
    shown = summary[["id", "pattern", "g_s_hat", "g_s_std", "g_u_hat", "g_u_std", "pattern_match"]].copy()
    shown.insert(3, "g_s_true", [truth[i][0] for i in shown["id"]])
    shown.insert(6, "g_u_true", [truth[i][1] for i in shown["id"]])
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(f"wrote {args.out / 'pops.csv'}, {args.out / 'summary.csv'}, {args.out / 'populate.png'}")


if __name__ == "__main__":
    raise SystemExit(main())
