"""Benchmark: recurrent mechanistic models (RMMs) fitted by teacher forcing on this machine's CPU.

1. Synthetic HH and STG neurons (neuromech.recordings.synthetic_recording): an Ornstein–Uhlenbeck
   current, 10 kHz sampling, measurement noise; 60 s to train, 10 s to select the model
   (validation), 10 s held out (test). Training is rmm.fit's: weighted teacher forcing, then
   closed-loop rollouts (rmm._rollout; 4 ms x 4 epochs for HH, the default; 20 ms x 20 epochs for
   the STG burster, as examples/rmm_burster.toml), the model chosen by free-run validation score.
   Reports the wall time of teacher forcing and of the whole fit (HH also that of the same fit
   again, its compiled programs read from the on-disk cache), the held-out free-run voltage
   RMSE, inner-product score, spike coincidence factor (±2 ms) and spike counts, the STG burst
   period, the learned capacitance, and the correlation of the learned conductance-based currents
   with the true ones (read out in teacher-forced mode on the test data).
2. Real cells of ../shared/data (pyABF test data): cell A (ramps 171116sh_0016.abf + steps
   171116sh_0018.abf), cell B (steps 17o05028_ic_steps.abf) and a fast-spiking interneuron (steps
   2019_07_24_0055_fsi.abf), each fitted with the "neuron" and the "mammalian" preset: train on
   most sweeps, select on one or two, report spike counts, spike-count error, coincidence and the
   inner product on held-out sweeps (cell A also the passive deflection under the hyperpolarising
   pulse), with a figure per cell. Cell A's settings are the test's (tests/test_rmm_fit.py); its
   split differs (ramp sweeps 5 and 9 held out too).

Targets (issue 5): training ≤ 60 s; HH coincidence ≥ 0.9; STG ≥ 0.7 and burst period within 5 %.
The published method trains "in seconds to minutes" on a GPU (Burghi et al., PNAS 2025).

Usage:
  nice -n 5 .venv/bin/python benchmarks/bench_rmm.py [--only hh,stg,real] [--out out/bench_rmm]
      [--real-seeds 0,1,2]  (real cells: fit each with several initialisations)
      [--cache DIR]   (keep the generated synthetic recordings between runs)
      [--known-capacitance]  (fix C at the true value for the synthetic neurons)
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax

import neuromech
from neuromech import rmm
from neuromech.analysis import detect_spikes, firing_features
from neuromech.recordings import read_npz, read_recording, synthetic_recording, write_npz

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "recordings" / "pyabf"

# Which true currents each learned current should resemble (sums of true channels).
TRUTH_MAP = {
    "hh": {"Na": ("Na",), "K": ("K",), "leak": ("leak",)},
    "stg": {"Na": ("Na",), "K": ("Kd", "A"), "Ca": ("CaT", "CaS"), "slow": ("KCa",), "H": ("H",)},
}
WARMUP = 1000.0  # ms
HORIZON = 500.0  # ms: multi-step-ahead prediction restarts from the data this often (rmm.evaluate)
SHORT = 20.0  # ms: a short horizon, a few spikes: does the model's spike mechanism fire on time?
SETUP = {
    # drive: OU mean, std (µA/cm²), correlation time (ms); fluctuation-driven firing.
    # HH: 15 epochs of 512-sample batches (17 580 steps), validated every 5. On three
    # initialisations the held-out coincidence is 0.909 / 0.906 / 0.917, against 0.921 / 0.887 /
    # 0.931 for 25 epochs of 1024 and 0.906 / 0.911 / 0.923 for 50 of 2048 (fit 47, 57 and 86 s on
    # one core). The STG burster did not take the same trade: 15 × 512 left its burst period 25 %
    # off (115.7 against 153.9 ms, 206 of 325 spikes), so it keeps 30 × 2048.
    "hh": dict(drive=(0.0, 4.0, 5.0), noise=0.2, preset="neuron", epochs=15, batch=512, validate_every=5, shots=0,
               rollout={}),
    # The burster needs longer rollouts than the default 4 ms x 4 epochs: 20 ms windows (a spike,
    # its repolarisation and the next ISI of a burst), 20 epochs, γ from 0.2 to 0. With the default
    # its free run fires one spike per burst, then sits at −20 mV (70 spikes against 325 on the
    # test window); 10 ms windows give bursts of spikes, at a period 15 % too long.
    "stg": dict(drive=(0.0, 0.15, 20.0), noise=0.2, preset="stg", epochs=30, batch=2048, validate_every=10, shots=0,
                rollout=dict(length=200, epochs=20, gamma_start=0.2, gamma_end=0.0)),
}


def synthetic(name: str, cache: Path | None) -> object:
    s = SETUP[name]
    path = None if cache is None else cache / f"{name}_80s_seed1.npz"
    if path is not None and path.exists():
        return read_npz(path)
    t = time.perf_counter()
    rec = synthetic_recording(name, 80_000.0, drive=s["drive"], noise=s["noise"], seed=1)
    print(f"  generated 80 s of {name} in {time.perf_counter() - t:.0f} s")
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        write_npz(path, rec)
    return rec


def bench_synthetic(name: str, out: Path, cache: Path | None, known_c: bool = False) -> dict:
    s = SETUP[name]
    rec = synthetic(name, cache)
    # Known C: the capacitance fixed at the true value (as from a membrane test) instead of learned.
    capacitance = rec.metadata["capacitance_nF"] if known_c else 0.0
    # Validation and test windows start 1 s early: that second only warms the filters up on the
    # measured voltage (causal), so the free runs start on the attractor; metrics cover 60–70 s
    # (validation) and 70–80 s (test) exactly.
    train, val, test = rec.window(0, 60_000), rec.window(59_000, 70_000), rec.window(69_000, 80_000)
    settings = rmm.TrainingSettings(epochs=s["epochs"], batch_size=s["batch"], validate_every=s["validate_every"],
                                    warmup=WARMUP,
                                    rollout=rmm.RolloutSettings(**s["rollout"]))
    steps = settings.epochs * (train.n_samples // settings.batch_size)
    optimizer = optax.adam(optax.cosine_decay_schedule(1e-2, steps, 0.05))
    t0 = time.perf_counter()
    start = rmm.init_rmm(train, rmm.ModelSettings(preset=s["preset"], capacitance=capacitance), seed=0)
    t_init = time.perf_counter() - t0
    model, history = rmm.fit(start, train, optimizer, settings=settings, validation=val, progress=False)
    t_fit = history["time_s"]
    warm = {}
    if name == "hh":
        # The same fit again, as the next fit of an experiment's protocol: the compiled programs
        # now come from the on-disk cache (neuromech.use_compilation_cache, set up empty in main).
        again, h2 = rmm.fit(start, train, optimizer, settings=settings, validation=val, progress=False)
        warm = {"fit_s_warm_cache": h2["time_s"], "teacher_forcing_s_warm_cache": h2["teacher_forcing_s"],
                "warm_fit_same_model": bool(all(np.array_equal(a, b) for a, b in zip(
                    jax.tree_util.tree_leaves(model), jax.tree_util.tree_leaves(again))))}
    metrics, summary, preds = rmm.evaluate(model, test, warmup=WARMUP)
    _, at_horizon, _ = rmm.evaluate(model, test, warmup=WARMUP, horizon=HORIZON)
    _, at_short, _ = rmm.evaluate(model, test, warmup=WARMUP, horizon=SHORT)
    w = int(round(WARMUP / test.dt))
    test = test.window(70_000, 80_000)
    preds = preds[:, w:]
    result = {"train_s": 60.0, "init_s": t_init, "teacher_forcing_s": history["teacher_forcing_s"], "fit_s": t_fit,
              **warm, "epochs": settings.epochs, "batch_size": settings.batch_size,
              "best_stage": history["best_stage"], "best_epoch": history["best_epoch"],
              "final_loss": history["loss"][-1], **summary,
              f"coincidence_horizon_{HORIZON:g}ms": at_horizon["coincidence"],
              f"spikes_model_horizon_{HORIZON:g}ms": at_horizon["n_spikes_model"],
              f"coincidence_horizon_{SHORT:g}ms": at_short["coincidence"],
              "ceiling": _ceiling(name, test)}
    t = test.time
    clean = test.truth["voltage_clean"][0]
    for label, v in (("data", clean), ("model", preds[0])):
        f = firing_features(detect_spikes(t, v, threshold=0.0, rearm=-10.0))
        result[f"pattern_{label}"] = str(f.pattern.value)
        result[f"spikes_per_burst_{label}"] = f.spikes_per_burst
        # Mean burst period over complete bursts, each train split by its own rule (firing_features).
        result[f"burst_period_mean_{label}_ms"] = 1000.0 / f.interburst_frequency if f.interburst_frequency > 0 \
            else float("nan")
    if name == "stg":
        # Median interval between burst onsets, the model's bursts split at the data's gap: what
        # model selection scores (summary["burst_period_error"], SweepMetrics).
        result["burst_period_data_ms"] = metrics[0].burst_period_data
        result["burst_period_model_ms"] = metrics[0].burst_period_model
        # The period of the slow wave, spikes or not (a model that bursts without crossing the
        # spike threshold has no burst period but may still oscillate at the data's rhythm).
        result["slow_wave_period_data_ms"] = _slow_period(clean, test.dt)
        result["slow_wave_period_model_ms"] = _slow_period(preds[0], test.dt)
    readout = rmm.teacher_forced(model, test.voltage[0], test.current[0])
    result["current_correlation"] = {
        learned: float(np.corrcoef(readout.currents[learned], sum(test.truth[k][0] for k in true))[0, 1])
        for learned, true in TRUTH_MAP[name].items() if learned in readout.currents
    }
    result["capacitance_nF"] = float(model.capacitance)
    _figure(out / f"rmm_{name}{'_knownC' if known_c else ''}.png", t, test.voltage[0], preds[0], test.current[0],
            f"{name.upper()}: held-out 10 s (first 1 s shown)", window=10_000)
    return result


def _ceiling(name: str, test, error: float = 0.01, copies: int = 4) -> dict:
    """What spike timing a model can hope for: the true neuron against copies of itself whose every
    conductance is off by ± ``error`` (random signs), all driven by the test window's current from
    the same initial state. Returns the median coincidence (±2 ms) over the first ``HORIZON`` ms
    after the warm-up and over the whole scored window.

    Measured 2026-12-01 (evening) on the benchmark's test windows: STG 0.43 over 0.5 s and 0.02
    over 10 s, HH 1.00 and 0.99. Separately, on the STG fixture from rest (drive std 0.15 µA/cm²,
    τ 20 ms), 1 % errors kept a median of 0.48 over 2 s and 0.22 over 2–4 s (−0.01 at drive std 3:
    a stronger drive did not help); 0.1 % errors 1.00 over 1 s and 0.66 over 2–4 s. On 10 s free
    runs of ``synthetic_recording("stg", seed=1)`` (2026-12-02) the drive's (std µA/cm², τ ms) gave
    (0.15, 20) 0.29, (3, 20) 0.13, (6, 5) 0.10, (10, 5) 0.09, (10, 2) 0.10, (20, 2) 0.22; the neuron
    kept bursting (5–8 spikes per burst) under all of them. Like any
    oscillator that the input barely entrains, the burster's spike phase drifts freely: no model
    short of exact keeps ±2 ms timing over a 10 s free run, so the burst period (and short-horizon
    timing) is what can be asked of a fitted one.
    """
    from neuromech.cbm import Sampled, get_model, simulate
    from neuromech.recordings._synthetic import HH_CLASSIC, STG_FIXTURE

    g0 = np.asarray(HH_CLASSIC if name == "hh" else STG_FIXTURE, float)
    rng = np.random.default_rng(3)
    g = np.stack([g0] + [g0 * (1 + error * rng.choice([-1.0, 1.0], g0.size)) for _ in range(copies)])
    area_scale = test.metadata.get("area_cm2", 1e-3) * 1e3  # nA → µA/cm² (1 for the default area)
    drive = np.asarray(test.current[0], float) / area_scale
    res = simulate(get_model(name), g, Sampled(drive, test.dt), duration=(len(drive) - 1) * test.dt,
                   dt_out=test.dt, record=("voltage",))
    v = np.asarray(res.voltage).reshape(len(g), -1)
    t = np.arange(v.shape[1]) * test.dt
    trains = [detect_spikes(t, vk, threshold=0.0, rearm=-10.0) for vk in v]
    out = {"conductance_error": error}
    for label, lo, hi in (("horizon", WARMUP, WARMUP + HORIZON), ("free_run", WARMUP, t[-1])):
        cut = [tr[(tr >= lo) & (tr < hi)] for tr in trains]
        out[f"coincidence_{label}"] = float(np.median([rmm.coincidence_factor(cut[0], c, hi - lo) for c in cut[1:]]))
    return out


def _slow_period(v, dt: float, low: float = 50.0, high: float = 1000.0) -> float:
    """Period (ms) of a voltage's slow wave: the highest autocorrelation peak between ``low`` and
    ``high`` ms of the voltage low-passed by a 10 ms moving average; NaN if none stands out."""
    k = int(round(10.0 / dt))
    x = np.convolve(v - np.mean(v), np.ones(k) / k, mode="same")
    n = len(x)
    f = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(f * np.conj(f))[:n]
    if ac[0] <= 0:
        return float("nan")
    ac = ac / ac[0]
    lo, hi = int(low / dt), min(int(high / dt), n - 1)
    lag = lo + int(np.argmax(ac[lo:hi]))
    return float(lag * dt) if ac[lag] > 0.2 else float("nan")


# Real cells (../shared/data/recordings/pyabf): files, validation and held-out test sweeps. Cell A:
# ramps + steps; cell B and the fast-spiking interneuron: steps. Test sweeps fire on the steps.
CELLS = {
    "cell A": (("171116sh_0016.abf", "171116sh_0018.abf"), {5, 13}, {9, 15}),
    "cell B": (("17o05028_ic_steps.abf",), {10}, {12, 14}),
    "FSI": (("2019_07_24_0055_fsi.abf",), {10}, {12, 14}),
}


def _fit_real(files, held_val, held_test, preset: str, seed: int = 0):
    """Fit one real cell with a preset (filters up to 500 ms for its 1–3 s sweeps), fit's default
    training (30 epochs of 2048, cosine-decayed Adam from 1e-2); free-run metrics on the test sweeps."""
    recs = [read_recording(DATA / f).resample(0.1) for f in files]
    split = {"train": [], "val": [], "test": []}
    for r in recs:
        for key, keep in (("train", lambda s: s not in held_val | held_test), ("val", lambda s: s in held_val),
                          ("test", lambda s: s in held_test)):
            chosen = [s for s in r.sweeps if keep(s)]
            if chosen:
                split[key].append(r.select(chosen))
    model_settings = rmm.ModelSettings(filters=rmm.FilterSettings(tau_max=500.0, n=30), preset=preset)
    settings = rmm.TrainingSettings(epochs=30, batch_size=2048, validate_every=10, seed=seed)
    n_train = sum(r.n_sweeps * r.n_samples for r in split["train"])
    optimizer = optax.adam(optax.cosine_decay_schedule(1e-2, settings.epochs * (n_train // 2048), 0.05))
    model = rmm.init_rmm(split["train"], model_settings, seed=seed)
    model, history = rmm.fit(model, split["train"], optimizer, settings=settings, validation=split["val"],
                             progress=False)
    metrics, summary, preds = rmm.evaluate(model, split["test"])
    result = {"train_samples": n_train, "fit_s": history["time_s"], "best_stage": history["best_stage"],
              "best_epoch": history["best_epoch"], "capacitance_nF": float(model.capacitance), **summary,
              "sweeps": [m.as_dict() for m in metrics]}
    return result, split["test"], metrics, preds


def bench_real(out: Path, presets=("neuron", "mammalian"), seeds=(0,)) -> dict:
    """Real cells, each fitted with each preset and seed: held-out spike counts, coincidence, voltage
    error; cell A also the passive deflection under the hyperpolarising pulse; a figure per cell
    (of its last fit)."""
    if not (DATA / "171116sh_0018.abf").exists():
        return {"skipped": f"no data at {DATA}"}
    results = {}
    for cell, (files, held_val, held_test) in CELLS.items():
        for seed in seeds:
            for preset in presets:
                result, test, metrics, preds = _fit_real(files, held_val, held_test, preset, seed)
                counts = ", ".join(f"{m.n_spikes_model}/{m.n_spikes_data}" for m in metrics)
                print(f"  {cell}, {preset}, seed {seed}: spikes model/data per held-out sweep {counts}; count "
                      f"error {result['spike_count_error']:.2f}, coincidence {result['coincidence']:.2f}, "
                      f"inner product {result['inner_product']:.2f}, fit {result['fit_s']:.0f} s", flush=True)
                if cell == "cell A":
                    _deflections(result, test, preds)
                results[f"{cell}, {preset}, seed {seed}"] = result
        _real_figure(out / f"rmm_{cell.replace(' ', '')}.png", test, metrics, preds)
    return results


def _deflections(result, tests, preds):
    """Passive deflection under the hyperpolarising pulse: plateau (1.45–1.6 s) minus the level
    before it (1.0–1.1 s), data and model, per held-out sweep of the step protocol."""
    for r, p in zip(tests, preds):
        t = r.time
        if t[-1] < 1600:
            continue
        before, plateau = (t > 1000) & (t < 1100), (t > 1450) & (t < 1600)
        for s in range(r.n_sweeps):
            for label, v in (("data", r.voltage[s]), ("model", p[s])):
                result[f"deflection_sweep{r.sweeps[s]}_{label}_mV"] = float(v[plateau].mean() - v[before].mean())


def _real_figure(path, tests, metrics, preds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, 2.2 * len(metrics)), squeeze=False)
    k = 0
    for r, p in zip(tests, preds):
        for s in range(r.n_sweeps):
            ax = axes[k, 0]
            ax.plot(r.time, r.voltage[s], "k", lw=0.7, label="data")
            ax.plot(r.time, p[s], "tab:red", lw=0.7, label="RMM free run")
            m = metrics[k]
            ax.set_title(f"{Path(r.metadata['source']).name} sweep {r.sweeps[s]}: spikes {m.n_spikes_data} vs "
                         f"{m.n_spikes_model}, coincidence {m.coincidence:.2f}", fontsize=9)
            ax.set_ylabel("V (mV)")
            k += 1
    axes[0, 0].legend(frameon=False, fontsize=8)
    axes[-1, 0].set_xlabel("time (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _figure(path, t, v, p, i, title, window):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(9, 4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    n = min(window, len(t))
    rmm.plot_prediction(t[:n], v[:n], p[:n], ax=axes[0], title=title)
    axes[1].plot(t[:n], i[:n], color="0.3", lw=0.7)
    axes[1].set_ylabel("I (nA)")
    axes[1].set_xlabel("time (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="hh,stg,real")
    parser.add_argument("--out", type=Path, default=Path("out/bench_rmm"))
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--real-seeds", default="0", help="real cells: initialisation seeds, e.g. 0,1,2")
    parser.add_argument("--known-capacitance", action="store_true",
                        help="synthetic neurons: fix C at its true value instead of learning it")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    # An empty compilation cache: the first fit compiles everything, as on a fresh machine.
    neuromech.use_compilation_cache(tempfile.mkdtemp(prefix="neuromech-bench-"))
    results = {"load_average_start": os.getloadavg()[0]}
    seeds = tuple(int(x) for x in args.real_seeds.split(","))
    for name in args.only.split(","):
        print(f"[{name}]", flush=True)
        results[name] = (bench_real(args.out, seeds=seeds) if name == "real"
                         else bench_synthetic(name, args.out, args.cache, args.known_capacitance))
        for k, v in results[name].items():
            if k != "sweeps" and not isinstance(v, dict):
                print(f"  {k}: {v:.4g}" if isinstance(v, float) else f"  {k}: {v}", flush=True)
    results["load_average_end"] = os.getloadavg()[0]
    print(f"load average (1 min) {results['load_average_start']:.1f} at the start, {results['load_average_end']:.1f} "
          "at the end (2 cores: above 2, the wall times are inflated)")
    name = "bench_rmm_knownC.json" if args.known_capacitance else "bench_rmm.json"
    (args.out / name).write_text(json.dumps(results, indent=2, default=float))
    print(f"wrote {args.out}/{name} and figures")


if __name__ == "__main__":
    main()
