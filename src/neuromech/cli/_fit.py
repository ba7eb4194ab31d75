"""Fit a recurrent mechanistic model (RMM) to current-clamp recordings.

RECORDING files: .abf, .nwb, .mat (V1/I1), .npz, or .csv/.txt with columns t_ms, v_mV, i_nA (units
in the header, else assumed and announced; a file without header needs [data] columns, e.g.
["t_s", "i_pA", "v_mV"], in the config). Sweeps can be chosen with --sweeps (e.g. 0-8), applied
to every file. Without a config the defaults fit a generic spiking neuron (leak, Na-, K-like and a
slow outward current); for slice recordings of mammalian cells, [model] preset = "mammalian" adds
an H current and a second adaptation current (closer spike counts on three real cells). --config
takes a TOML file with tables [data], [model], [model.filters], [[model.currents]] and [training]
(see neuromech.rmm.RMMConfig; unknown keys are errors).

Data: each sweep is split in time into train/validation/test (70/15/15 %) unless [data]
validation_sweeps / test_sweeps name held-out sweeps. The model with the best free-run validation
score is kept; metrics are reported on the test data.

Writes into MODEL_DIR: model.eqx + model.json (load with neuromech.rmm.load_model), report.json
(metrics, training history) and figures (prediction.png, iv.png, gates.png).

Circuits: a config with a [circuit] table fits a circuit RMM to multi-channel recordings (.mat
with V1..Vn/I1..Im, an .npz written by write_circuit_npz, or a .csv with t_ms, v_mV[NAME],
i_nA[NAME] columns): [circuit] neurons (modelled channels), exogenous (recorded-only channels),
synapses ("pre -> post" or [[circuit.synapses]] tables), gaps ("a <-> b"), channels (names of a
.mat file's V1..Vn), warmup (ms); every neuron takes the [model] settings; [training] (or several
[[training]] stages run in order) holds neuromech.rmm.CircuitTrainingSettings. The stage that runs
best on the validation data is kept. MODEL_DIR then holds a circuit (neuromech.rmm.load_circuit),
report.json with per-neuron test metrics (and synaptic-current correlations when the recording
carries the true currents) and prediction.png.

Example:
  neuromech fit cellA_ramps.abf cellA_steps.abf --sweeps 0-10 --out models/cellA
  neuromech fit lp_pd.mat --config circuit.toml --out models/lp_pd
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
    """The settings in a TOML file: a :class:`~neuromech.rmm.CircuitConfig` when it has a
    ``[circuit]`` table, else an :class:`~neuromech.rmm.RMMConfig` (the defaults without a file)."""
    import tomllib

    from ..rmm import RMMConfig, circuit_config_from_dict, config_from_dict

    if path is None:
        return RMMConfig()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML: {err}") from err
    unknown = sorted(set(raw) - {"data", "model", "training", "circuit"})
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {', '.join(repr(k) for k in unknown)}; valid tables: data, model, "
                         "training, and circuit (for a circuit of several neurons)")
    try:
        return circuit_config_from_dict(raw) if "circuit" in raw else config_from_dict(raw)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def _sweep_numbers(rec) -> tuple[int, ...]:
    return rec.sweeps if hasattr(rec, "sweeps") else rec[rec.names[0]].sweeps


def split(recs, d) -> tuple[list, list | None, list | None]:
    """Train, validation and test lists from recordings (one neuron's or circuits'), by held-out
    sweeps (``d.validation_sweeps``, ``d.test_sweeps``) or else by time (``d.split``)."""
    from ..recordings import parse_sweeps

    if len({round(r.dt, 12) for r in recs}) != 1:
        raise ValueError(f"the recordings have different sampling periods {[r.dt for r in recs]} ms; set [data] dt")
    train, val, test = [], [], []
    if d.validation_sweeps or d.test_sweeps:
        held_val = set(parse_sweeps(d.validation_sweeps)) if d.validation_sweeps else set()
        held_test = set(parse_sweeps(d.test_sweeps)) if d.test_sweeps else set()
        for rec in recs:
            numbers = _sweep_numbers(rec)
            groups = {"train": [s for s in numbers if s not in held_val | held_test],
                      "val": [s for s in numbers if s in held_val], "test": [s for s in numbers if s in held_test]}
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


def read_single(path, columns=()):
    """One single-neuron recording file; ``columns`` name a header-less text file's columns."""
    from ..recordings import read_recording
    from ..recordings._load import TEXT_SUFFIXES

    text = Path(path).suffix.lower() in TEXT_SUFFIXES
    return read_recording(path, **({"columns": tuple(columns)} if columns and text else {}))


def prepare(paths, config, sweeps: str | None):
    """Read, select, resample and filter the recordings; split into train, validation, test lists."""
    d = config.data
    recs = []
    for path in paths:
        rec = read_single(path, d.columns)
        if sweeps:
            rec = rec.select(sweeps)
        if d.dt:
            rec = rec.resample(d.dt)
        if d.lowpass_hz:
            rec = rec.lowpass(d.lowpass_hz, current=False)
        recs.append(rec)
    return split(recs, d)


def read_neuron(path, sweeps: str | None = None, dt: float = 0.0, columns=()):
    """One single-neuron recording with ``sweeps`` selected, resampled to ``dt`` (ms, 0: as recorded);
    ``columns`` name a header-less text file's columns (the fit config's ``[data] columns``).

    Raises:
        ValueError: when the recording cannot be resampled exactly to ``dt``.
    """
    return select_at(read_single(path, columns), path, sweeps, dt)


def select_at(rec, path, sweeps: str | None, dt: float):
    """``rec`` (a recording or circuit recording) with ``sweeps`` selected, resampled to ``dt`` (ms)."""
    if sweeps:
        rec = rec.select(sweeps)
    if dt and abs(rec.dt - dt) > 1e-9 * dt:
        rec = rec.resample(dt)
        if abs(rec.dt - dt) > 1e-6 * dt:
            raise ValueError(f"cannot resample {path} (dt {rec.dt} ms) exactly to the model's {dt} ms")
    return rec


def read_circuit(path, config, sweeps: str | None = None, dt: float = 0.0):
    """One multi-channel recording for a circuit ``config``: read (channels named by the file or by
    ``[circuit] channels``), checked against the circuit, sweeps selected, resampled to ``dt`` (ms,
    0: as recorded) and low-pass filtered as ``[data]`` says.

    Raises:
        ValueError: for a circuit naming channels the file does not have, or a modelled neuron whose
            injected current the file does not hold.
    """
    from ..recordings._circuit import read_circuit_recording

    description = config.circuit
    rec = read_circuit_recording(path, channels=description.channels)
    wanted = description.neurons + description.exogenous
    missing = [c for c in wanted if c not in rec.names]
    if missing:
        raise ValueError(
            f"{path}: the [circuit] table names channel(s) {missing} that the recording does not have; its "
            f"{len(rec.names)} channel(s) are {list(rec.names)} — use those names in neurons/exogenous"
            + ("" if description.channels else " (or name a .mat file's V1..Vn with [circuit] channels)")
        )
    silent = [n for n in description.neurons if not rec[n].metadata.get("current_recorded", True)]
    if silent:
        raise ValueError(
            f"{path}: modelled neuron(s) {silent} have no injected-current record (I column or Ik key); a modelled "
            "neuron is driven by its recorded current — add it (zeros if nothing was injected) or make the "
            "channel exogenous"
        )
    rec = select_at(rec, path, sweeps, dt)
    if config.data.lowpass_hz:
        rec = rec.lowpass(config.data.lowpass_hz, current=False)
    return rec


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ..io import atomic_path
    from ..rmm import RMMConfig, evaluate, fit, init_rmm, save_model
    from ..rmm._settings import config_to_dict, json_ready

    config = load_config(args.config)
    if not isinstance(config, RMMConfig):
        return run_circuit(args, config)
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


def run_circuit(args: argparse.Namespace, config) -> int:
    """``neuromech fit`` for a config with a ``[circuit]`` table: every training stage in order, the
    stage with the best free-run validation score kept, metrics on the test data."""
    import dataclasses

    from ..io import atomic_path
    from ..rmm import (PROFILE_SCALES, circuit_selection_score, evaluate_circuit, fit_circuit, init_circuit,
                       save_circuit, synapse_profile)
    from ..rmm._settings import config_to_dict, json_ready

    changes = {k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None}
    config = dataclasses.replace(config, training=tuple(dataclasses.replace(t, **changes) for t in config.training))
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} exists and is not a directory")
    recs = [read_circuit(p, config, args.sweeps, config.data.dt) for p in args.recordings]
    train, val, test = split(recs, config.data)
    d, warmup = config.data, config.circuit.warmup
    circuit = init_circuit(train, config.settings, seed=config.training[0].seed)
    stages, candidates = [], []
    for k, stage in enumerate(config.training):
        circuit, history = fit_circuit(circuit, train, settings=stage, validation=val, threshold=d.spike_threshold,
                                       warmup=warmup, progress=not args.no_progress)
        record = {"stage": k, "method": stage.method, "loss": history["loss"], "time_s": history["time_s"]}
        if history["method"] == "gtf":
            record["gamma"] = history["gamma"]
        if history["fixed_synapses"]:  # measured on the voltage-clamped samples, then kept
            record.update(fixed_synapses=history["fixed_synapses"], clamp_loss=history["clamp_loss"])
        if val:
            metrics, _ = evaluate_circuit(circuit, val, threshold=d.spike_threshold, warmup=warmup)
            record["validation"] = metrics["summary"]
            candidates.append((circuit_selection_score(metrics["summary"]), -k, circuit))
        stages.append(record)
    selected = len(stages) - 1
    if candidates:  # the stage whose circuit runs best on the validation data (ties: the earlier)
        _, neg_k, circuit = max(candidates, key=lambda c: (c[0], c[1]))
        selected = -neg_k
    unused = sorted({c for r in recs for c in r.names} - set(config.settings.channels))
    report = {"recordings": [str(p) for p in args.recordings], "sweeps": args.sweeps, "config": config_to_dict(config),
              "channels": list(circuit.channels), "channels_unused": unused,
              "training_time_s": sum(r["time_s"] for r in stages), "stages": stages, "selected_stage": selected,
              "capacitance_nF": {n: float(m.capacitance) for n, m in zip(circuit.names, circuit.neurons)},
              "holding_nA": {n: float(m.holding) for n, m in zip(circuit.names, circuit.neurons)}}
    if circuit.synapses:  # teacher forcing's loss along each synapse's size (a minimum at 0: not identified)
        tf = next((t for t in config.training if t.method == "teacher forcing"), config.training[0])
        profile = synapse_profile(circuit, train, settings=tf)
        report["synapse_profile"] = {"scales": list(PROFILE_SCALES), "data": "training",
                                     **{name: losses.tolist() for name, losses in profile.items()}}
    preds = None
    for name, data in (("validation_metrics", val), ("test_metrics", test)):
        if data:
            metrics, p = evaluate_circuit(circuit, data, threshold=d.spike_threshold, warmup=warmup)
            report[name] = metrics
            preds = p if name == "test_metrics" else preds
    save_circuit(args.out, circuit, config)
    if not args.no_figures:
        shown = test or val or train
        if preds is None:
            _, preds = evaluate_circuit(circuit, shown, threshold=d.spike_threshold, warmup=warmup)
        report["figures"] = [_circuit_figure(args.out / "prediction.png", circuit, shown[0], preds[0])]
    with atomic_path(args.out / "report.json") as tmp:
        tmp.write_text(json.dumps(json_ready(report), indent=2, default=float))
    said = ""
    if "test_metrics" in report:
        per = report["test_metrics"]["neurons"]
        said = "; test: " + ", ".join(f"{n} RMSE {m['summary']['rmse']:.2f} mV, coincidence "
                                      f"{m['summary']['coincidence']:.3f}" for n, m in per.items())
        for syn, m in report["test_metrics"]["synapses"].items():
            said += f"; {syn} current correlation {m['correlation_readout']:.3f} (read-out)"
    print(f"neuromech: fitted a circuit of {len(circuit.names)} neuron(s) in {report['training_time_s']:.1f} s, "
          f"wrote {args.out}{said}", file=sys.stderr)
    return 0


def _circuit_figure(path: Path, circuit, rec, pred) -> str:
    """Measured and free-run voltage of each modelled neuron (first held-out sweep), the exogenous
    voltages, true and free-run synaptic currents where the recording has the truth, and the
    injected currents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..rmm import plot_prediction

    v, i_syn = pred
    truths = [(k, s.name, rec[circuit.names[s.post]].truth[s.name]) for k, s in enumerate(circuit.synapses)
              if s.name in (rec[circuit.names[s.post]].truth or {})]
    n, rows = len(circuit.names), len(circuit.names) + len(circuit.exogenous) + len(truths) + 1
    fig, axes = plt.subplots(rows, 1, figsize=(9, 1.2 + 1.8 * rows), sharex=True, squeeze=False)
    axes = axes[:, 0]
    t = rec.time
    for i, name in enumerate(circuit.names):
        plot_prediction(t, rec[name].voltage[0], v[0, i], ax=axes[i], title=f"{name} (held-out sweep "
                        f"{rec[name].sweeps[0]})")
    for j, name in enumerate(circuit.exogenous):
        axes[n + j].plot(t, rec[name].voltage[0], color="0.4", lw=0.7)
        axes[n + j].set_ylabel(f"{name} V (mV)")
        axes[n + j].set_title(f"{name} (exogenous, recorded)")
    for row, (k, name, truth) in enumerate(truths, start=n + len(circuit.exogenous)):
        axes[row].plot(t, truth[0], color="k", lw=0.8, label="true")
        axes[row].plot(t, i_syn[0, k], color="tab:red", lw=0.8, alpha=0.8, label="RMM (free run)")
        axes[row].set_ylabel("I_syn (nA)")
        axes[row].set_title(name)
        axes[row].legend(loc="upper right", frameon=False, fontsize=7)
    for name in circuit.names:
        axes[-1].plot(t, rec[name].current[0], lw=0.7, label=name)
    axes[-1].set_ylabel("I (nA)")
    axes[-1].set_xlabel("time (ms)")
    axes[-1].legend(loc="upper right", frameon=False, fontsize=7)
    return _save(fig, path)


def _figures(out: Path, model, recs, preds, model_warmup: float = 0.0) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

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
