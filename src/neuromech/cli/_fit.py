"""Fit a recurrent mechanistic model (RMM) to current-clamp recordings.

RECORDING files: .abf, .nwb, .mat (V1/I1), .npz, or .csv/.txt with columns t_ms, v_mV, i_nA (units
in the header, else assumed and announced). Sweeps can be chosen with --sweeps (e.g. 0-8), applied
to every file. Without a config the defaults fit a generic spiking neuron (leak, Na-, K-like and a
slow outward current); --config takes a TOML file with tables [data], [model], [model.filters],
[[model.currents]] and [training] (see neuromech.rmm.RMMConfig; unknown keys are errors).

Data: each sweep is split in time into train/validation/test (70/15/15 %) unless [data]
validation_sweeps / test_sweeps name held-out sweeps. The model with the best free-run validation
score is kept; metrics are reported on the test data.

Writes into MODEL_DIR: model.eqx + model.json (load with neuromech.rmm.load_model), report.json
(metrics, training history) and figures (prediction.png, iv.png, gates.png).

Example:
  neuromech fit cellA_ramps.abf cellA_steps.abf --sweeps 0-10 --out models/cellA
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

NAME = "fit"
HELP = "fit a recurrent mechanistic model to current-clamp recordings"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    main = parser.add_argument_group("main arguments")
    main.add_argument("recordings", nargs="+", type=Path, metavar="RECORDING", help="recording file(s)")
    main.add_argument("--out", required=True, type=Path, metavar="MODEL_DIR", help="directory to write the model into")
    other = parser.add_argument_group("other options")
    other.add_argument("--config", type=Path, default=None, metavar="RMM.TOML", help="settings (TOML)")
    other.add_argument("--sweeps", default=None, metavar="SEL", help="sweeps to use from every file, e.g. 0-8 or 0-3,7")
    other.add_argument("--epochs", type=int, default=None, help="override training.epochs")
    other.add_argument("--seed", type=int, default=None, help="override training.seed")
    other.add_argument("--no-figures", action="store_true", help="do not draw figures")
    other.add_argument("--no-progress", action="store_true", help="no progress bar")


def load_config(path: Path | None):
    """The :class:`RMMConfig` in a TOML file (defaults without one)."""
    import tomllib

    from ..rmm import RMMConfig, config_from_dict

    if path is None:
        return RMMConfig()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from err
    try:
        return config_from_dict(raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def prepare(paths, config, sweeps: str | None):
    """Read, select, resample and filter the recordings; split into train, validation, test lists."""
    from ..recordings import parse_sweeps, read_recording

    d = config.data
    recs = []
    for path in paths:
        rec = read_recording(path)
        if sweeps:
            rec = rec.select(sweeps)
        if d.dt:
            rec = rec.resample(d.dt)
        if d.lowpass_hz:
            rec = rec.lowpass(d.lowpass_hz, current=False)
        recs.append(rec)
    if len({round(r.dt, 12) for r in recs}) != 1:
        raise ValueError(f"the recordings have different sampling periods {[r.dt for r in recs]} ms; set [data] dt")
    train, val, test = [], [], []
    if d.validation_sweeps or d.test_sweeps:
        held_val = set(parse_sweeps(d.validation_sweeps)) if d.validation_sweeps else set()
        held_test = set(parse_sweeps(d.test_sweeps)) if d.test_sweeps else set()
        for rec in recs:
            groups = {"train": [s for s in rec.sweeps if s not in held_val | held_test],
                      "val": [s for s in rec.sweeps if s in held_val], "test": [s for s in rec.sweeps if s in held_test]}
            for name, target in (("train", train), ("val", val), ("test", test)):
                if groups[name]:
                    target.append(rec.select(groups[name]))
        if not train:
            raise ValueError("every sweep is held out for validation or test; leave some for training")
    else:
        for rec in recs:
            a, b, c = rec.split_time(d.split)
            train.append(a), val.append(b), test.append(c)
    return train, val or None, test or None


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np

    from ..io import atomic_path
    from ..rmm import evaluate, fit, init_rmm, save_model
    from ..rmm._settings import config_to_dict, json_ready

    config = load_config(args.config)
    tr = config.training
    if args.epochs is not None:
        tr = dataclasses.replace(tr, epochs=args.epochs)
    if args.seed is not None:
        tr = dataclasses.replace(tr, seed=args.seed)
    config = dataclasses.replace(config, training=tr)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a directory")
    train, val, test = prepare(args.recordings, config, args.sweeps)
    model = init_rmm(train, config.model, seed=tr.seed)
    threshold = config.data.spike_threshold
    model, history = fit(model, train, settings=tr, validation=val, threshold=threshold,
                         progress=not args.no_progress)
    report = {"recordings": [str(p) for p in args.recordings], "sweeps": args.sweeps,
              "config": config_to_dict(config), "training_time_s": history["time_s"],
              "best_epoch": history["best_epoch"], "loss": history["loss"], "validation": history["validation"],
              "capacitance_nF": float(model.capacitance), "holding_nA": float(model.holding)}
    for name, data in (("validation_metrics", val), ("test_metrics", test)):
        if data:
            metrics, summary, preds = evaluate(model, data, threshold=threshold, warmup=tr.warmup)
            report[name] = {"summary": summary, "sweeps": [m.as_dict() for m in metrics]}
            if name == "test_metrics":
                test_preds = preds
    save_model(args.out, model, config)
    if not args.no_figures:
        report["figures"] = _figures(args.out, model, test or val or train, test_preds if test else None, tr.warmup)
    with atomic_path(args.out / "report.json") as tmp:
        tmp.write_text(json.dumps(json_ready(report), indent=2, default=float))
    summary = report.get("test_metrics", {}).get("summary")
    said = "" if summary is None else (
        f"; test: RMSE {summary['rmse']:.2f} mV, inner product {summary['inner_product']:.3f}, "
        f"coincidence {summary['coincidence']:.3f}, spike-count error {summary['spike_count_error']:.3f}")
    print(f"neuromech: fitted in {history['time_s']:.1f} s, wrote {args.out}{said}", file=sys.stderr)
    return 0


def _figures(out: Path, model, recs, preds, model_warmup: float = 0.0) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..io import atomic_path
    from ..rmm import evaluate, gate_curves, iv_curves, plot_gates, plot_iv, plot_prediction

    written = []
    if preds is None:
        _, _, preds = evaluate(model, recs, warmup=model_warmup)
    rec, pred = recs[0], preds[0]
    fig, axes = plt.subplots(2, 1, figsize=(9, 4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    plot_prediction(rec.time, rec.voltage[0], pred[0], ax=axes[0], title=f"held-out sweep {rec.sweeps[0]}")
    axes[1].plot(rec.time, rec.current[0], color="0.3", lw=0.7)
    axes[1].set_ylabel("I (nA)")
    axes[1].set_xlabel("time (ms)")
    written.append(_save(fig, out / "prediction.png"))
    lo, hi = model.v_bounds
    v = np.linspace(max(lo, -100.0), min(hi, 40.0), 141)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    curves = iv_curves(model, v, v_hold=float(np.median(rec.voltage)))
    plot_iv(curves, ax=axes[0])
    plot_iv(curves, kind="instantaneous", ax=axes[1])
    written.append(_save(fig, out / "iv.png"))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    plot_gates(v, gate_curves(model, v), ax=ax)
    written.append(_save(fig, out / "gates.png"))
    return written


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path.name
