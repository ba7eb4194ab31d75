"""Spike times → predicted DICs → populations of models that fire like each recorded neuron.

Reads recorded spike trains (Spike2Pop format ID,spiking_times with "[t1, ...]" in ms, or a long
table id,spike_time; CSV or Parquet), predicts each train's slow and ultraslow DICs with the shipped
network, and generates N degenerate conductance-based models per train by compensation. One bad
row or train is reported in the summary; the others keep their results.

Example:
  neuromech populate spikes.csv --model stg -n 1000 --seed 0 --out pops.csv --summary summary.csv --verify
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "populate"
HELP = "spike trains → predicted DICs and populations of N models per train"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spikes", type=Path, metavar="SPIKES", help="spike table (.csv or .parquet), times in ms")
    parser.add_argument("--model", required=True, choices=["stg", "da"], help="the neuron model")
    parser.add_argument("-n", type=int, default=100, help="models per population (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", required=True, type=Path, metavar="POPS", help="populations (.csv or .parquet)")
    parser.add_argument("--summary", type=Path, metavar="SUMMARY", help="per-train summary (.csv or .parquet)")
    parser.add_argument("--verify", action="store_true", help="simulate the populations and report agreement")
    parser.add_argument("--verify-noise", type=float, default=0.0, metavar="SIGMA",
                        help="σ (µA/cm²) of the noisy current of the --verify runs, as the input was recorded "
                             "under (default 0: none)")
    parser.add_argument("--spontaneous", action="store_true",
                        help="draw only models without a stable equilibrium, which cannot rest")
    parser.add_argument("--time-unit", choices=["ms", "s"], default="ms", help="unit of the input times (default ms)")


def run(args) -> int:
    from ..analysis import looks_like_seconds
    from ..dics import populate
    from ..io import read_recorded_trains, write_population as write_table
    from ..io._atomic import check_writable

    outs = [check_writable(p) for p in (args.out, args.summary) if p is not None]
    trains, problems = read_recorded_trains(args.spikes)
    if not trains and not problems:
        raise ValueError(f"{args.spikes}: no spike trains in the file")
    if args.time_unit == "s":
        trains = {k: v * 1000.0 for k, v in trains.items()}
    elif looks_like_seconds(trains.values()):
        print("neuromech: warning: the spike times look like seconds (median inter-spike interval < 2 ms); "
              "if so, rerun with --time-unit s", file=sys.stderr)
    summary, populations = populate(trains, args.model, args.n, seed=args.seed, verify=args.verify,
                                    verify_noise=args.verify_noise, problems=problems,
                                    spontaneous=args.spontaneous, progress=args.verify)
    write_table(outs[0], populations)
    if args.summary is not None:
        write_table(outs[1], summary)
    counts = summary["status"].value_counts().to_dict()
    print(f"{len(summary)} trains: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"; {len(populations)} models written to {args.out}", file=sys.stderr)
    return 0
