"""Generate training data for the spike-train → DIC network (chunked, resumable, optionally on Dask).

Draws targets (g_s, g_u) over the published ranges, generates degenerate models per target by
compensation, simulates them with the published protocol and noisy current, and writes one Parquet
part per chunk into DIR. Rerun the same command to resume; add --scheduler to use a Dask cluster.

Example (the STG data of the shipped network):
  neuromech training-data --model stg --targets 6250 --dt 0.05 --seed 0 --out data/stg
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "training-data"
HELP = "simulate spike trains with known DICs (training data for the network)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=["stg", "da"], help="the neuron model")
    parser.add_argument("--targets", type=int, required=True, help="number of (g_s, g_u) targets; rerun with more to grow a set")
    parser.add_argument("--models-per-target", type=int, default=16, help="models per target (default 16)")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 3.0, 5.0],
                        help="noise levels σ (µA/cm²) cycled over members (default 0 3 5)")
    parser.add_argument("--dt", type=float, default=None, help="integration step (ms; default the model's)")
    parser.add_argument("--chunk-targets", type=int, default=64, help="targets per part file (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--max-chunks", type=int, default=None, metavar="N",
                        help="stop after N new chunks, in order (rerun to go on; default all)")
    parser.add_argument("--scheduler", default=None, help="Dask scheduler address (default: run here)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="data-set folder")


def run(args) -> int:
    from ..jobs import TrainingDataSettings, generate_training_data

    settings = TrainingDataSettings(args.model, n_targets=args.targets, models_per_target=args.models_per_target,
                                    noise=tuple(args.noise), dt=args.dt, chunk_targets=args.chunk_targets,
                                    seed=args.seed)
    summary = generate_training_data(args.out, settings, scheduler=args.scheduler, max_chunks=args.max_chunks)
    print(f"{summary.n_trains} trains in {summary.path} ({summary.resumed} of {summary.n_chunks} chunks resumed, "
          f"{summary.unreachable_targets} unreachable targets, {summary.seconds:.0f} s)", file=sys.stderr)
    return 0
