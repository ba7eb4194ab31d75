"""Compute the dynamic input conductances (DICs) of every model of a population.

Writes id,v_th,g_f,g_s,g_u (g_leak-normalised, dimensionless) at the published
fixed threshold voltage of the model (-51 mV STG, -55.5 mV DA), a voltage you
give, or each model's own threshold (--v-th auto: first + to - crossing of g_t).
--rest adds can_rest (a stable equilibrium exists) and v_rest (the lowest stable
equilibrium, mV; empty where none), from the steady-state I-V curve and the
Jacobian, without simulating.

Example:
  neuromech dics --model stg --conductances pop.csv --v-th auto --rest --out dics.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "dics"
HELP = "compute the DICs (g_f, g_s, g_u) of a population at its threshold voltage"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, choices=["stg", "da"], help="the neuron model")
    parser.add_argument("--conductances", required=True, type=Path, metavar="POP",
                        help="population table (.csv or .parquet): id + one column per conductance (mS/cm²)")
    parser.add_argument("--v-th", default=None, metavar="MV|auto",
                        help="voltage (mV) or 'auto' (each model's own threshold); default: the published value")
    parser.add_argument("--calcium-path", default="python", choices=["python", "ultraslow"],
                        help="STG KCa calcium-path convention (default: python)")
    parser.add_argument("--rest", action="store_true",
                        help="add can_rest and v_rest (mV): whether each model has a stable equilibrium, and where")
    parser.add_argument("--out", required=True, type=Path, metavar="DICS", help="table to write (.csv or .parquet)")


def run(args) -> int:
    from ..cbm import get_model
    from ..dics import dics
    from ..io import read_population
    from ..io._atomic import check_writable
    from ..io._atomic import atomic_path

    out = check_writable(args.out)
    model = get_model(args.model)
    table = read_population(args.conductances)
    g = model.conductances(table)
    if args.v_th is None:
        v = None
    elif args.v_th == "auto":
        v = "auto"
    else:
        try:
            v = float(args.v_th)
        except ValueError:
            raise ValueError(f"--v-th must be a voltage in mV or 'auto', got {args.v_th!r}") from None
    frame = dics(model, g, v, calcium_path=args.calcium_path).to_frame(ids=table["id"].to_numpy())
    frame = frame[["id", "v_th", "g_f", "g_s", "g_u"]]
    if args.rest:
        from ..cbm import equilibria

        eq = equilibria(model, g)
        frame["can_rest"], frame["v_rest"] = eq.can_rest, eq.v_rest
    with atomic_path(out) as tmp:
        frame.to_parquet(tmp, index=False) if out.suffix == ".parquet" else frame.to_csv(tmp, index=False)
    return 0
