"""neuromech demo: simulate a bundled population of STG models and summarise how they fire.

Writes, under --out: spikes.csv (id, spike_time in ms), features.csv (firing pattern and features
per model) and demo.png (spike raster and voltage traces).

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
