"""Demo: fit a recurrent mechanistic model (RMM) to a synthetic current-clamp recording.

A Hodgkin–Huxley neuron driven by an Ornstein–Uhlenbeck current is simulated (deterministically,
seed 0) and sampled at 10 kHz with 0.2 mV measurement noise: 12 s to train, 2 s to select the
model, 2 s held out. The RMM (leak + Na-, K-like and slow conductance-based currents on a bank of
36 first-order filters, Burghi et al., PNAS 2025) is trained by rmm.fit's default (weighted
teacher forcing, then short closed-loop rollouts), then run free on the held-out current. Writes into --out: rmm_prediction.png (prediction against data), rmm_iv.png,
rmm_gates.png and rmm_demo.json (metrics). About a minute on two CPU cores.

    python examples/demo_rmm.py --out out/demo
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from neuromech import rmm  # noqa: E402
from neuromech.recordings import synthetic_recording  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/demo"))
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    rec = synthetic_recording("hh", 16_000.0, drive=(0.0, 4.0, 5.0), noise=0.2, seed=0)
    train, val, test = rec.window(0, 12_000), rec.window(12_000, 14_000), rec.window(14_000, 16_000)
    print(f"simulated 16 s of an HH neuron in {time.perf_counter() - t0:.0f} s")

    model = rmm.init_rmm(train, rmm.ModelSettings(preset="neuron"), seed=0)
    settings = rmm.TrainingSettings(epochs=args.epochs, batch_size=1024, validate_every=10)
    schedule = optax.cosine_decay_schedule(1e-2, args.epochs * (train.n_samples // 1024), 0.05)
    model, history = rmm.fit(model, train, optax.adam(schedule), settings=settings, validation=val)
    metrics, summary, preds = rmm.evaluate(model, test)
    print(f"trained in {history['time_s']:.1f} s (best epoch {history['best_epoch']}); held-out 2 s: "
          f"RMSE {summary['rmse']:.1f} mV, inner product {summary['inner_product']:.2f}, coincidence "
          f"{summary['coincidence']:.2f}, spikes {summary['n_spikes_data']} data vs {summary['n_spikes_model']} model")

    fig, axes = plt.subplots(2, 1, figsize=(9, 4.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    rmm.plot_prediction(test.time, test.voltage[0], preds[0], ax=axes[0],
                        title=f"held-out data vs RMM free run (coincidence {summary['coincidence']:.2f})")
    axes[1].plot(test.time, test.current[0], color="0.3", lw=0.7)
    axes[1].set_ylabel("I (nA)")
    axes[1].set_xlabel("time (ms)")
    fig.tight_layout()
    fig.savefig(args.out / "rmm_prediction.png", dpi=110)
    plt.close(fig)

    v = np.linspace(-90, 30, 121)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    curves = rmm.iv_curves(model, v, v_hold=-65.0)
    rmm.plot_iv(curves, ax=axes[0])
    rmm.plot_iv(curves, kind="instantaneous", ax=axes[1])
    fig.tight_layout()
    fig.savefig(args.out / "rmm_iv.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    rmm.plot_gates(v, rmm.gate_curves(model, v), ax=ax)
    fig.tight_layout()
    fig.savefig(args.out / "rmm_gates.png", dpi=110)
    plt.close(fig)

    readout = rmm.teacher_forced(model, test.voltage[0], test.current[0])
    corr = {n: float(np.corrcoef(readout.currents[n], test.truth[n][0])[0, 1]) for n in ("Na", "K")}
    print("correlation of learned with true currents (teacher-forced read-out): "
          + ", ".join(f"{k} {v:.2f}" for k, v in corr.items()))
    (args.out / "rmm_demo.json").write_text(json.dumps({"training_s": history["time_s"], **summary,
                                                        "current_correlation": corr}, indent=2))
    print(f"wrote {args.out}/rmm_prediction.png, rmm_iv.png, rmm_gates.png, rmm_demo.json "
          f"({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
