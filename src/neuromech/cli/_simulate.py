"""Simulate a population of conductance-based models and write their spike times.

The population file (CSV or Parquet) has a column `id` (optional: row numbers
otherwise) and one column per conductance of the model in mS/cm², named as in
SCIENCE.md (g_Na, g_Kd, ...). The output is a long table id,spike_time (ms,
absolute simulation time, only spikes after the transient) or, with
--format spike2pop, one row per model ID,spiking_times with "[t1, t2, ...]"
("[]" when silent). CSV, or Parquet when the name ends in .parquet.

Large populations run in chunks (--chunk-size), locally or on a Dask cluster
(--scheduler). Each finished chunk is kept in a hidden directory .OUT.parts next
to the output, so an interrupted run resumes when the same command is run
again. The output file appears only when complete.

Example:
  neuromech simulate --model stg --conductances pop.csv --duration 6000 \
      --transient 3000 --noise 3 --out spikes.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

NAME = "simulate"
HELP = "simulate a population of conductance-based models; write spike times"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cbm import MODELS

    main = parser.add_argument_group("main arguments")
    main.add_argument("--model", required=True, choices=list(MODELS), help="the neuron model")
    main.add_argument("--conductances", required=True, type=Path, metavar="POP",
                      help="population table (.csv or .parquet): id + one column per conductance (mS/cm²)")
    main.add_argument("--duration", required=True, type=float, metavar="MS", help="simulated time (ms)")
    main.add_argument("--out", required=True, type=Path, metavar="SPIKES",
                      help="spike table to write (.csv or .parquet)")

    other = parser.add_argument_group("other options")
    other.add_argument("--transient", type=float, default=0.0, metavar="MS",
                       help="drop spikes before this time (ms; default 0); times stay absolute")
    other.add_argument("--dt", type=float, default=None, metavar="MS",
                       help="integration step (ms; default: the model's validated step)")
    other.add_argument("--current", type=float, default=0.0, metavar="AMP",
                       help="constant injected current (µA/cm²; default 0)")
    other.add_argument("--noise", type=float, default=0.0, metavar="SIGMA",
                       help="std of the filtered noisy current (µA/cm², SCIENCE.md §1.4; default 0: none)")
    other.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    other.add_argument("--format", choices=("long", "spike2pop"), default="long",
                       help="long: id,spike_time (default); spike2pop: ID,spiking_times with every id")
    other.add_argument("--traces", type=Path, default=None, metavar="FILE.npz",
                       help="also save voltage traces after the transient (small populations only)")
    other.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="Dask scheduler address (tcp://host:8786) to run the chunks on")
    other.add_argument("--chunk-size", type=_positive_int, default=10_000, metavar="N",
                       help="models per chunk: the unit of resumption and of Dask tasks (default 10000)")
    other.add_argument("--restart", action="store_true",
                       help="discard the finished chunks of an interrupted earlier run and start over")
    other.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..cbm import Constant, Noise, get_model
    from ..io import read_population, table_kind
    from ..jobs import run_simulation

    model = get_model(args.model)
    for name in ("conductances", "traces"):
        path = getattr(args, name)
        if path is not None and path.resolve() == args.out.resolve():
            raise ValueError(f"--out {args.out} would overwrite the --{name} file; choose another name")
    if not args.noise >= 0:
        raise ValueError(f"--noise must be a standard deviation ≥ 0 µA/cm², got {args.noise}")
    if not np.isfinite(args.current):
        raise ValueError(f"--current must be a finite current in µA/cm², got {args.current}")

    table = read_population(args.conductances)
    try:
        g = model.conductances(table)
    except ValueError as err:
        # Name the offending model by its id and its line in the file, which the array-level
        # message (a 0-based row of the conductance array) cannot.
        bad = _first_bad_value(table, model, table_kind(args.conductances))
        raise ValueError(f"{args.conductances}: {bad or err}") from err

    parts = ([Constant(args.current)] if args.current else []) + ([Noise(args.noise)] if args.noise else [])
    stimulus = sum(parts[1:], parts[0]) if parts else None
    job = run_simulation(
        model, g, table["id"].to_numpy(), stimulus, args.out,
        duration=args.duration, transient=args.transient, dt=args.dt, seed=args.seed,
        chunk_size=args.chunk_size, scheduler=args.scheduler, progress=not args.no_progress,
        format=args.format, traces=args.traces, restart=args.restart,
    )
    resumed = f" ({job.resumed} of {job.n_chunks} chunks resumed)" if job.resumed else ""
    traces = f" and traces to {job.traces}" if job.traces else ""
    print(f"neuromech: wrote {job.n_spikes} spikes of {job.n_models} models to {job.path}{traces}{resumed}",
          file=sys.stderr)
    return 0


def _first_bad_value(table, model, kind: str) -> str | None:
    """A message for the first missing, non-numeric or negative conductance, or ``None``."""
    import pandas as pd

    from ..io._tables import row_label

    columns = [c for c in model.conductance_names if c in table.columns]
    if len(columns) != len(model.conductance_names):
        return None  # a column problem: the model's own message says which
    values = table[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(values) & (values >= 0)
    if ok.all():
        return None
    row, col = (int(k) for k in np.argwhere(~ok)[0])
    raw, model_id = (_plain(table[name].iloc[row]) for name in (columns[col], "id"))
    value = "missing (NaN)" if isinstance(raw, float) and np.isnan(raw) else repr(raw)
    return (
        f"{columns[col]} is {value} for model id {model_id!r} at {row_label(kind, row)}; conductances "
        "must be finite numbers ≥ 0 mS/cm²"
    )


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value
