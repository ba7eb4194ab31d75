"""One call from a training data set to a trained, calibrated and tested spike-train → DIC network."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from ._inference import LoadedNetwork
from ._network import NetworkConfig
from ._training import Examples, TrainingConfig, evaluate, split_by_target, train_network


def train_dic_network(
    frame,
    *,
    model: str,
    config: TrainingConfig = TrainingConfig(),
    network: NetworkConfig = NetworkConfig(),
    init: LoadedNetwork | None = None,
    progress: bool = True,
) -> tuple[LoadedNetwork, dict]:
    """Train (or fine-tune ``init``) a spike-train → DIC network and test it on held-out targets.

    Main arguments:
        frame: training data, one row per simulated model (:func:`neuromech.jobs.read_training_data`).
        model: ``"stg"`` or ``"da"``.

    Other arguments:
        config: a :class:`TrainingConfig` (seed, epochs, augmentation, splits).
        network: architecture for a new network (ignored when fine-tuning).
        init: a trained network to fine-tune (e.g. the STG network for DA, as the published DA
            network adapts the STG one).
        progress: show a progress bar.

    Returns:
        ``(network, record)``: the record holds the data size, seed, settings, training time, the
        per-epoch history and the test metrics — overall, per pattern, with calibrated-uncertainty
        coverage — on clean held-out trains, on those simulated with σ = 5 noise, and with 2 ms jitter.
    """
    started = time.perf_counter()
    examples = Examples.from_frame(frame)
    train, val, test = split_by_target(examples, config)
    net, std, history = train_network(train, val, config, net=None if init is None else init.net,
                                      network=network, progress=progress)
    conditions = {"clean": (test, 0.0), "jitter_2ms": (test, 2.0)}
    for level in sorted(set(np.unique(test.sigma).tolist())):
        conditions[f"sigma_{level:g}"] = (test.take(np.flatnonzero(test.sigma == level)), 0.0)
    metrics = {name: evaluate(net, ex, std, max_isis=config.max_isis, jitter_ms=jit, seed=config.seed)
               for name, (ex, jit) in conditions.items() if len(ex)}
    v_th = float(np.median(frame["v_th"]))
    record = {
        "model": model,
        "fine_tuned_from": None if init is None else init.model,
        "data": {"rows": int(len(frame)), "trains_with_3_spikes": len(examples),
                 "targets": int(frame["target"].nunique()), "train": len(train), "validation": len(val),
                 "test": len(test)},
        "config": dataclasses.asdict(config),
        "seconds": round(time.perf_counter() - started, 1),
        "history": history,
        "test": metrics,
    }
    loaded = LoadedNetwork(net, std, model, v_th, config.max_isis, record)
    return loaded, record
