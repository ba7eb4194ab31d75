"""Replay a recording through a fitted RMM's online interface, one sample per call, as a real-time
loop would; report the per-sample latency and the read-out parameters' estimates.

Observer mode (measured voltage drives the model; one-step prediction and current read-out), with
recursive least squares on the linear read-out unless --no-rls. Circuits are streamed through the
Python API (``neuromech.rmm.online``); this command takes single-neuron models saved by
``neuromech fit``. With --out, writes a CSV of the parameter estimates over time (ms).

Example:
  neuromech stream models/cellA cellA_steps.abf --sweeps 12 --seconds 5 --out est.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "stream"
HELP = "replay a recording through a fitted RMM online (latency and RLS estimates)"


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


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ..io import atomic_path
    from ..recordings import read_recording
    from ..rmm import load_model, online, replay

    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.out is not None and args.out.suffix.lower() != ".csv":
        raise ValueError(f"--out {args.out}: the estimates are a CSV table; name it *.csv")
    model, _ = load_model(args.model)
    rec = read_recording(args.recording)
    if args.sweeps:
        rec = rec.select(args.sweeps)
    if abs(rec.dt - model.dt) > 1e-9 * model.dt:
        rec = rec.resample(model.dt)
    n = min(rec.n_samples, int(round(args.seconds * 1000.0 / rec.dt)))
    streamer = online(model, rls=not args.no_rls, forgetting=args.forgetting)
    res = replay(streamer, rec.voltage[0, :n], rec.current[0, :n])
    lat = res["latency_us"]
    names = res["parameter_names"][0]
    theta = res["theta"][0]
    budget = 1000.0 * rec.dt  # µs per sample in real time
    print(f"neuromech: streamed {n} samples ({n * rec.dt / 1000:g} s) of sweep {rec.sweeps[0]}: latency p50 "
          f"{np.percentile(lat, 50):.1f} µs, p99 {np.percentile(lat, 99):.1f} µs, max {lat.max():.0f} µs "
          f"(real time allows {budget:g} µs); {int(res['flagged'].sum())} flagged sample(s)", file=sys.stderr)
    if theta.size:
        first, last = theta[0], theta[-1]
        for k, name in enumerate(names):
            print(f"  {name}[{k}]: {first[k]:.4g} -> {last[k]:.4g}", file=sys.stderr)
    if args.out is not None:
        table = pd.DataFrame(theta, columns=[f"{nm}[{k}]" for k, nm in enumerate(names)])
        table.insert(0, "t_ms", res["theta_time"])
        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
    return 0
