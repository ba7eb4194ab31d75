"""Predict a recording's voltage with a fitted RMM, running free on its injected current.

Writes PRED.csv with columns sweep,t_ms,i_applied,v_measured,v_predicted (ms, nA, mV) and, beside
it, PRED.metrics.json with per-sweep metrics (voltage RMSE, inner product, coincidence factor ±2 ms,
spike-count error) and their summary. The recording is resampled to the model's sampling period
if needed. With a warm-up (--warmup, or the model's training.warmup) the model follows the
measured voltage for that long before running free. A free run that diverges is an error naming
the sweep and time; nothing is written.

A circuit (MODEL_DIR written by neuromech fit with a [circuit] table) runs all its modelled neurons
together in closed loop on a multi-channel RECORDING (read as for fit, channels named by the file or
by the saved [circuit] channels), driven by their recorded currents and the recorded exogenous
voltages. PRED.csv then has one row per sample with columns sweep, t_ms and, per modelled neuron
NAME, i_applied[NAME], v_measured[NAME], v_predicted[NAME]; per exogenous channel v_measured[NAME];
per synapse i_syn_predicted[PRE->POST] (nA; during the warm-up, read out from the measured
voltages). It reads back as a circuit recording. PRED.metrics.json holds per-neuron metrics and,
when the recording carries true synaptic currents, their correlation with and RMSE from the
free-run and read-out currents. --warmup defaults to the saved [circuit] warmup.

Example:
  neuromech predict models/cellA cellA_steps.abf --sweeps 12-16 --out pred.csv
  neuromech predict models/lp_pd lp_pd_test.mat --out pred.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "predict"
HELP = "predict a recording's voltage with a fitted RMM (free run); write CSV and metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    main = parser.add_argument_group("main arguments")
    main.add_argument("model", type=Path, metavar="MODEL_DIR", help="directory written by neuromech fit")
    main.add_argument("recording", type=Path, metavar="RECORDING", help="recording file")
    main.add_argument("--out", required=True, type=Path, metavar="PRED.csv", help="prediction table to write")
    other = parser.add_argument_group("other options")
    other.add_argument("--sweeps", default=None, metavar="SEL", help="sweeps to predict, e.g. 12-16")
    other.add_argument("--warmup", type=float, default=None, metavar="MS",
                       help="ms at the start of each sweep during which the model follows the measured voltage "
                            "before running free (default: the model's training.warmup); v_predicted equals "
                            "v_measured there and metrics exclude it")


def metrics_path(out: Path) -> Path:
    """``PRED.metrics.json`` beside ``PRED.csv``."""
    return out.with_name(out.stem + ".metrics.json")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd

    from ..io import atomic_path
    from ..io._atomic import check_writable
    from ._fit import read_neuron
    from ..rmm import evaluate, load_model
    from ..rmm._metrics import summarise
    from ..rmm._serialise import CIRCUIT_FORMAT, saved_format
    from ..rmm._settings import json_ready

    if args.out.suffix.lower() != ".csv":
        raise ValueError(f"--out {args.out}: the prediction is a CSV table; name it *.csv")
    check_writable(args.out)
    if saved_format(args.model) == CIRCUIT_FORMAT:
        return run_circuit(args)
    model, config = load_model(args.model)
    rec = read_neuron(args.recording, args.sweeps, model.dt, config.data.columns)
    if config.data.lowpass_hz:
        rec = rec.lowpass(config.data.lowpass_hz, current=False)
    warmup = config.training.warmup if args.warmup is None else args.warmup
    metrics, _, v_pred = evaluate(model, rec, threshold=config.data.spike_threshold, warmup=warmup)
    diverged = [m for m in metrics if m.diverged_at is not None]
    if diverged:
        m = diverged[0]
        raise FloatingPointError(
            f"the model's free run diverged on sweep {m.sweep} at t = {m.diverged_at + warmup:g} ms (the voltage left "
            f"{model.v_bounds} mV); it is unstable for this input — nothing written"
        )
    t = rec.time
    table = pd.DataFrame({
        "sweep": np.repeat(rec.sweeps, rec.n_samples), "t_ms": np.tile(t, rec.n_sweeps),
        "i_applied": rec.current.ravel(), "v_measured": rec.voltage.ravel(), "v_predicted": v_pred.ravel(),
    })
    report = {"model": str(args.model), "recording": str(args.recording), "units": {"t": "ms", "i": "nA", "v": "mV"},
              "summary": summarise(metrics), "sweeps": [m.as_dict() for m in metrics]}
    with atomic_path(metrics_path(args.out)) as tmp:
        tmp.write_text(json.dumps(json_ready(report), indent=2))
    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    s = report["summary"]
    print(f"neuromech: predicted {rec.n_sweeps} sweep(s) into {args.out}: RMSE {s['rmse']:.2f} mV, "
          f"coincidence {s['coincidence']:.3f}, spike-count error {s['spike_count_error']:.3f}", file=sys.stderr)
    return 0


def run_circuit(args: argparse.Namespace) -> int:
    """``neuromech predict`` for a circuit saved by ``neuromech fit`` with a ``[circuit]`` table."""
    import numpy as np
    import pandas as pd

    from ..io import atomic_path
    from ..rmm import evaluate_circuit, load_circuit
    from ..rmm._settings import json_ready
    from ._fit import read_circuit

    circuit, config = load_circuit(args.model)
    rec = read_circuit(args.recording, config, args.sweeps, circuit.dt)
    warmup = config.circuit.warmup if args.warmup is None else args.warmup
    metrics, preds = evaluate_circuit(circuit, rec, threshold=config.data.spike_threshold, warmup=warmup)
    for name, m in metrics["neurons"].items():
        for sweep in m["sweeps"]:
            if sweep.get("diverged_at") is not None:
                raise FloatingPointError(
                    f"the circuit's free run diverged on sweep {sweep['sweep']} at t = "
                    f"{sweep['diverged_at'] + warmup:g} ms (a voltage left the range its neuron was trained on); it "
                    "is unstable for this input — nothing written"
                )
    v_pred, i_syn = preds[0]
    sweeps = rec[circuit.names[0]].sweeps
    columns = {"sweep": np.repeat(sweeps, rec.n_samples), "t_ms": np.tile(rec.time, rec.n_sweeps)}
    for i, name in enumerate(circuit.names):
        columns[f"i_applied[{name}]"] = rec[name].current.ravel()
        columns[f"v_measured[{name}]"] = rec[name].voltage.ravel()
        columns[f"v_predicted[{name}]"] = v_pred[:, i].ravel()
    for name in circuit.exogenous:
        columns[f"v_measured[{name}]"] = rec[name].voltage.ravel()
    for k, syn in enumerate(circuit.synapses):
        columns[f"i_syn_predicted[{syn.name.removeprefix('syn ')}]"] = i_syn[:, k].ravel()
    report = {"model": str(args.model), "recording": str(args.recording), "warmup_ms": warmup,
              "units": {"t": "ms", "i": "nA", "v": "mV"}, **metrics}
    with atomic_path(metrics_path(args.out)) as tmp:
        tmp.write_text(json.dumps(json_ready(report), indent=2))
    with atomic_path(args.out) as tmp:
        pd.DataFrame(columns).to_csv(tmp, index=False, float_format="%.6g")
    said = "; ".join(f"{n} RMSE {m['summary']['rmse']:.2f} mV, coincidence {m['summary']['coincidence']:.3f}"
                     + _rhythm_words(m["rhythm"]) for n, m in metrics["neurons"].items())
    print(f"neuromech: predicted {rec.n_sweeps} sweep(s) of a circuit into {args.out}: {said}", file=sys.stderr)
    return 0


def _rhythm_words(r: dict) -> str:
    """A neuron's burst rhythm against the data, in words (empty where the data do not burst)."""
    import numpy as np

    if not np.isfinite(r.get("period_data", np.nan)):
        return ""
    if not np.isfinite(r.get("period_model", np.nan)):
        return ", no bursts in the free run"
    said = f", burst period {100 * r['period_error']:+.1f} %"
    if np.isfinite(r.get("phase_data", np.nan)):
        said += (f", phase {100 * r['phase_error']:.1f} % of a cycle off, locking {r['locking_model']:.2f} "
                 f"(data {r['locking_data']:.2f})")
    return said
