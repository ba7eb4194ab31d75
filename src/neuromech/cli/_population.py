"""Generate a population of degenerate models with prescribed DICs.

Uses the published two-stage recipe: a reference spiking population, then a
pair of conductances re-compensated to reach (g_s, g_u) at the threshold
voltage (and g_f if given). Writes id, one column per conductance (mS/cm²) and
the achieved g_f,g_s,g_u. Exactly N models, or an error saying how close the
target could be reached. --spontaneous keeps only models that cannot rest.

Example:
  neuromech population --model stg --gs -8 --gu 8 -n 1000 --seed 1 --out pop.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "population"
HELP = "generate N models with target DICs (g_s, g_u[, g_f]) by compensation"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=["stg", "da"], help="the neuron model")
    parser.add_argument("--gs", required=True, type=float, help="target slow DIC g_s (g_leak-normalised)")
    parser.add_argument("--gu", required=True, type=float, help="target ultraslow DIC g_u (g_leak-normalised)")
    parser.add_argument("--gf", type=float, default=None, help="target fast DIC g_f (default: left free)")
    parser.add_argument("-n", type=int, required=True, help="number of models")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--spontaneous", action="store_true",
                        help="only models without a stable equilibrium, which cannot rest and so fire on their own")
    parser.add_argument("--out", required=True, type=Path, metavar="POP", help="table to write (.csv or .parquet)")


def run(args) -> int:
    from ..cbm import get_model
    from ..dics import generate_population
    from ..io._atomic import check_writable

    out = check_writable(args.out)
    pop = generate_population(get_model(args.model), args.n, g_s=args.gs, g_u=args.gu, g_f=args.gf, seed=args.seed,
                              spontaneous=args.spontaneous)
    pop.save(out)
    return 0
