"""Replay a recording through a fitted RMM's online interface, one sample per call, as a real-time
loop would; report the per-sample latency and the read-out parameters' estimates.

Observer mode (measured voltage drives the model; one-step prediction and current read-out), with
recursive least squares on the linear read-out unless --no-rls. MODEL_DIR is a single neuron or a
circuit saved by ``neuromech fit``; a circuit streams a multi-channel RECORDING (read as for fit):
every channel's measured voltage and each modelled neuron's injected current, sample by sample.
With --out, writes a CSV of the parameter estimates over time (ms): columns t_ms and PARAM[k] for
a neuron, NEURON.PARAM[k] for a circuit.

Example:
  neuromech stream models/cellA cellA_steps.abf --sweeps 12 --seconds 5 --out est.csv
  neuromech stream models/lp_pd lp_pd_test.mat --seconds 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "stream"
HELP = "replay a recording through a fitted RMM or circuit online (latency and RLS estimates)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    main = parser.add_argument_group("main arguments")
    main.add_argument("model", type=Path, metavar="MODEL_DIR", help="directory written by neuromech fit")
    main.add_argument("recording", type=Path, metavar="RECORDING", help="recording file")
    other = parser.add_argument_group("other options")
    other.add_argument("--sweeps", default=None, metavar="SEL", help="sweep to stream (the first selected), e.g. 3")
    other.add_argument("--seconds", type=float, default=5.0, metavar="S", help="streamed duration (s), default 5")
    other.add_argument("--forgetting", type=float, default=0.9999, help="RLS forgetting factor per sample")
    other.add_argument("--no-rls", action="store_true", help="do not adapt the read-out")
    other.add_argument("--out", type=Path, default=None, metavar="EST.csv", help="write the estimates over time")
    other.add_argument("--backend", choices=("numba", "numpy", "jax"), default="numba",
                       help="online step: compiled float64 (numba, default), NumPy calls, or the JAX reference")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ..io import atomic_path
    from ._fit import read_circuit, read_neuron
    from ..rmm import Circuit, load_circuit, load_model, online, replay
    from ..rmm._serialise import CIRCUIT_FORMAT, saved_format

    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.out is not None and args.out.suffix.lower() != ".csv":
        raise ValueError(f"--out {args.out}: the estimates are a CSV table; name it *.csv")
    if saved_format(args.model) == CIRCUIT_FORMAT:
        model, config = load_circuit(args.model)
        circuit = model
        rec = read_circuit(args.recording, config, args.sweeps, model.dt)
        voltage, current = rec.voltages(circuit.channels)[0], rec.currents(circuit.names)[0]
        sweep = rec[circuit.names[0]].sweeps[0]
    else:
        model, config = load_model(args.model)
        rec = read_neuron(args.recording, args.sweeps, model.dt, config.data.columns)
        voltage, current, sweep = rec.voltage[:1], rec.current[:1], rec.sweeps[0]
    n = min(rec.n_samples, int(round(args.seconds * 1000.0 / rec.dt)))
    streamer = online(model, rls=not args.no_rls, forgetting=args.forgetting, backend=args.backend)
    res = replay(streamer, voltage[:, :n], current[:, :n])
    lat = res["latency_us"]
    budget = 1000.0 * rec.dt  # µs per sample in real time
    print(f"neuromech: streamed {n} samples ({n * rec.dt / 1000:g} s) of sweep {sweep}: latency p50 "
          f"{np.percentile(lat, 50):.1f} µs, p99 {np.percentile(lat, 99):.1f} µs, max {lat.max():.0f} µs "
          f"(real time allows {budget:g} µs); {int(res['flagged'].sum())} flagged sample(s)", file=sys.stderr)
    circuit = isinstance(model, Circuit)
    columns = {}
    for q, (names, theta) in enumerate(zip(res["parameter_names"], res["theta"])):
        prefix = f"{model.names[q]}." if circuit else ""
        for k, name in enumerate(names):
            if theta.size:
                print(f"  {prefix}{name}[{k}]: {theta[0, k]:.4g} -> {theta[-1, k]:.4g}", file=sys.stderr)
                columns[f"{prefix}{name}[{k}]"] = theta[:, k]
    if args.out is not None:
        table = pd.DataFrame(columns)
        table.insert(0, "t_ms", res["theta_time"])
        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    return 0
