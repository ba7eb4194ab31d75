"""Training of the spike-train → DIC network with Optax: data, augmentation, loss, loop, calibration.

The data come from :func:`neuromech.jobs.generate_training_data` (one row per simulated model).
Splits are by *target*, so the degenerate siblings of a test model are never seen in training.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ..analysis import CV_TONIC
from ._network import CLASSES, FEATURES, DICNet, NetworkConfig, batched, encode_trains, train_statistics

DIC_SCALE = 10.0  # network outputs are DICs / 10 (the published ranges span ~±20)
ONE_SIGMA = 0.6827  # probability mass within ±1 std of a normal


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Settings of :func:`train_network` (all have working defaults).

    Attributes:
        epochs, batch_size, learning_rate, weight_decay: the AdamW schedule (warm-up then cosine).
        max_isis: longest window (ISIs) seen in training; longer trains are read in windows.
        jitter_ms: largest std of the Gaussian jitter added to spike times (ms). A jittered copy's
            std is drawn log-uniformly over the two decades below it (not uniformly), so that the
            network also sees trains whose timing is nearly exact, as recorded spikes' mostly is.
        drop_fraction: largest fraction of spikes deleted at random.
        window_probability: probability of cutting a random contiguous partial window.
        val_fraction, test_fraction: fractions of *targets* held out.
        seed: seed of the split, the initialisation, batches and augmentation.
    """

    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    max_isis: int = 64
    jitter_ms: float = 2.0
    drop_fraction: float = 0.05
    window_probability: float = 0.5
    val_fraction: float = 0.05
    test_fraction: float = 0.1
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class Standardisation:
    """Fixed transforms between physical units and the network's outputs (saved with the weights)."""

    feature_mean: tuple[float, ...]
    feature_std: tuple[float, ...]
    sigma_scale: tuple[float, float] = (1.0, 1.0)  # calibration of the predicted std on validation


def feature_targets(frame) -> np.ndarray:
    """(N, 6) log firing features (NaN where a feature does not apply)."""
    values = np.stack([frame[name].to_numpy(dtype=float) for name in FEATURES], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.where(values > 0, values, np.nan))


@dataclasses.dataclass(frozen=True)
class Examples:
    """Trains (≥ 3 spikes) with their labels, in memory."""

    trains: list
    dics: np.ndarray  # (N, 2) g_s, g_u
    bursting: np.ndarray  # (N,) 0 tonic, 1 bursting
    features: np.ndarray  # (N, 6) log features
    sigma: np.ndarray  # (N,) noise level of the simulation
    target: np.ndarray  # (N,) target index (the split unit)

    @classmethod
    def from_frame(cls, frame) -> "Examples":
        frame = frame[frame["n_spikes"] >= 3]
        return cls(
            trains=[np.asarray(t, dtype=np.float64) for t in frame["spike_times"]],
            dics=frame[["g_s", "g_u"]].to_numpy(dtype=np.float64),
            bursting=(frame["pattern"].to_numpy() == "bursting").astype(np.int32),
            features=feature_targets(frame),
            sigma=frame["sigma"].to_numpy(dtype=float),
            target=frame["target"].to_numpy(),
        )

    def __len__(self):
        return len(self.trains)

    def take(self, index) -> "Examples":
        index = np.asarray(index)
        return Examples([self.trains[i] for i in index], self.dics[index], self.bursting[index],
                        self.features[index], self.sigma[index], self.target[index])


def split_by_target(examples: Examples, config: TrainingConfig):
    """(train, validation, test) with disjoint targets."""
    targets = np.unique(examples.target)
    rng = np.random.default_rng([config.seed, 1])
    rng.shuffle(targets)
    n_test = max(1, int(round(config.test_fraction * len(targets))))
    n_val = max(1, int(round(config.val_fraction * len(targets))))
    test, val = set(targets[:n_test]), set(targets[n_test:n_test + n_val])
    which = np.array([0 if t not in test and t not in val else 1 if t in val else 2 for t in examples.target])
    return tuple(examples.take(np.flatnonzero(which == k)) for k in range(3))


def augment(train: np.ndarray, rng: np.random.Generator, config: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """A perturbed copy of a spike train as ``(window, recording)``, each ≥ 3 spikes.

    The recording is the train with dropped spikes and jitter, with probability
    ``window_probability`` cut to a short random stretch (a short recording); the window is a
    random stretch of at most ``max_isis`` of its ISIs (what the network reads at once).
    """
    t = train
    if rng.random() < 0.5 and config.drop_fraction > 0:
        keep = rng.random(len(t)) >= rng.uniform(0, config.drop_fraction)
        if keep.sum() >= 3:
            t = t[keep]
    if rng.random() < 0.5 and config.jitter_ms > 0:
        t = np.sort(t + rng.normal(0.0, config.jitter_ms * 10 ** rng.uniform(-2.0, 0.0), len(t)))
    n = len(t)
    length = min(n, config.max_isis + 1)
    if rng.random() < config.window_probability:
        length = int(rng.integers(3, length + 1))
        start = int(rng.integers(0, n - length + 1))
        t = t[start:start + length]
        return t, t
    start = int(rng.integers(0, n - length + 1))
    return t[start:start + length], t


def windows(train: np.ndarray, max_isis: int) -> list[np.ndarray]:
    """Consecutive windows of at most ``max_isis`` ISIs covering the train (the last aligned to its end)."""
    n = len(train)
    if n <= max_isis + 1:
        return [train]
    starts = list(range(0, n - max_isis - 1, max_isis)) + [n - max_isis - 1]
    return [train[s:s + max_isis + 1] for s in starts]


def _loss(net, batch, std: Standardisation):
    tokens, mask, stats, y, bursting, feats = batch
    mean, log_std, logits, feat_hat = batched(net, tokens, mask, stats)
    z = (y - mean) * jnp.exp(-log_std)
    nll = 0.5 * z**2 + log_std
    huber = optax.huber_loss(mean, y, delta=0.1) / 0.1
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, bursting)
    present = ~jnp.isnan(feats)
    target = (jnp.where(present, feats, 0.0) - jnp.asarray(std.feature_mean)) / jnp.asarray(std.feature_std)
    mse = jnp.sum(jnp.where(present, (feat_hat - target) ** 2, 0.0), axis=1) / len(FEATURES)
    return jnp.mean(nll.sum(1) + huber.sum(1) + 0.2 * ce + 0.1 * mse)


def _batch(examples: Examples, index, rng, config: TrainingConfig, encoding: int):
    """An augmented training batch, padded to the training window.

    The class target is the pattern of the augmented recording by the rule of SCIENCE.md §1.4
    (CV(ISI) above :data:`CV_TONIC`: bursting), not that of the clean train: the pattern is a
    property of the spike times read, and a dropped spike can carry a train across the rule's
    boundary. Labelled with the clean train's pattern, such copies teach the head a boundary
    smeared over a few hundredths of CV, and it misclassifies clean trains near it.
    """
    seen, recordings = zip(*(augment(examples.trains[i], rng, config) for i in index))
    isis = [np.diff(r) for r in recordings]
    stats = None if encoding == 1 else train_statistics(isis, encoding)
    tokens, mask, stats = encode_trains(seen, config.max_isis, encoding=encoding, stats=stats)
    bursting = np.array([i.std() > CV_TONIC * i.mean() for i in isis], np.int32)
    return (tokens, mask, stats, (examples.dics[index] / DIC_SCALE).astype(np.float32),
            bursting, examples.features[index].astype(np.float32))


def predict(net: DICNet, trains, std: Standardisation, *, max_isis: int, batch_size: int = 512):
    """Per train: mean (N, 2) and calibrated std (N, 2) of (g_s, g_u), P(bursting) (N,), log features (N, 6).

    Trains longer than ``max_isis`` ISIs are read in consecutive windows whose predictions are
    combined, precision-weighted for the means; the std is the windows' root-mean-square std
    (windows of one neuron are not independent evidence, so it is not shrunk by their number).
    """
    pieces, owner, trains = [], [], [np.asarray(t, dtype=np.float64) for t in trains]
    for k, t in enumerate(trains):
        for w in windows(t, max_isis):
            pieces.append(w)
            owner.append(k)
    owner = np.asarray(owner)
    encoding = net.config.encoding
    whole = train_statistics([np.diff(t) for t in trains], encoding) if encoding != 1 else None  # once per train
    order = np.argsort([len(p) for p in pieces], kind="stable")  # similar lengths share a bucket
    outs = [np.zeros((len(pieces), n)) for n in (2, 2, 2, len(FEATURES))]
    for s in range(0, len(pieces), batch_size):
        idx = order[s:s + batch_size]
        tokens, mask, stats = _pad_batch(*encode_trains([pieces[i] for i in idx], encoding=encoding,
                                                        stats=None if whole is None else whole[owner[idx]]))
        for out, value in zip(outs, _apply(net, tokens, mask, stats)):
            out[idx] = np.asarray(value)[: len(idx)]
    mean, log_std, logits, feats = outs
    sd = np.exp(log_std) * np.asarray(std.sigma_scale)
    w = 1.0 / sd**2
    n = len(trains)
    total_w = np.zeros((n, 2))
    np.add.at(total_w, owner, w)
    mu = np.zeros((n, 2))
    np.add.at(mu, owner, w * mean)
    var = np.zeros((n, 2))
    np.add.at(var, owner, sd**2)
    count = np.bincount(owner, minlength=n)[:, None]
    p = np.zeros(n)
    np.add.at(p, owner, 1.0 / (1.0 + np.exp(logits[:, 0] - logits[:, 1])))
    f = np.zeros((n, len(FEATURES)))
    np.add.at(f, owner, feats)
    log_features = f / count * np.asarray(std.feature_std) + np.asarray(std.feature_mean)
    return (mu / total_w * DIC_SCALE, np.sqrt(var / count) * DIC_SCALE, p / count[:, 0], log_features)


def _pad_batch(tokens, mask, stats):
    """Pad the batch to a power of two (empty trains) so that few compiled shapes serve every call."""
    size = 1 << int(np.ceil(np.log2(len(tokens))))
    pad = lambda a: np.concatenate([a, np.zeros((size - len(a),) + a.shape[1:], a.dtype)])  # noqa: E731
    return pad(tokens), pad(mask), pad(stats)


@eqx.filter_jit
def _apply(net, tokens, mask, stats):
    return batched(net, tokens, mask, stats)


def evaluate(net, examples: Examples, std: Standardisation, *, max_isis: int, jitter_ms: float = 0.0,
             seed: int = 0) -> dict:
    """Mean absolute errors of (g_s, g_u) overall and per pattern, class accuracy and ±1 std coverage."""
    trains = examples.trains
    if jitter_ms > 0:
        rng = np.random.default_rng(seed)
        trains = [np.sort(t + rng.normal(0, jitter_ms, len(t))) for t in trains]
    mu, sd, p, _ = predict(net, trains, std, max_isis=max_isis)
    err = np.abs(mu - examples.dics)
    out = {"n": len(examples), "mae_g_s": float(err[:, 0].mean()), "mae_g_u": float(err[:, 1].mean()),
           "class_accuracy": float(np.mean((p > 0.5) == (examples.bursting == 1))),
           "coverage_g_s": float(np.mean(err[:, 0] <= sd[:, 0])),
           "coverage_g_u": float(np.mean(err[:, 1] <= sd[:, 1]))}
    for k, name in enumerate(CLASSES):
        sel = examples.bursting == k
        if sel.any():
            out[f"{name}_mae_g_s"] = float(err[sel, 0].mean())
            out[f"{name}_mae_g_u"] = float(err[sel, 1].mean())
            out[f"{name}_n"] = int(sel.sum())
    return out


def calibrate(net, examples: Examples, std: Standardisation, *, max_isis: int) -> Standardisation:
    """Scale the predicted std so that ±1 std holds 68.3 % of the validation truths, per output."""
    unit = dataclasses.replace(std, sigma_scale=(1.0, 1.0))
    mu, sd, _, _ = predict(net, examples.trains, unit, max_isis=max_isis)
    ratio = np.abs(mu - examples.dics) / sd
    return dataclasses.replace(std, sigma_scale=tuple(float(np.quantile(ratio[:, k], ONE_SIGMA)) for k in range(2)))


def train_network(
    train: Examples,
    val: Examples,
    config: TrainingConfig = TrainingConfig(),
    *,
    net: DICNet | None = None,
    network: NetworkConfig = NetworkConfig(),
    standardisation: Standardisation | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
):
    """Fit a :class:`DICNet` (from scratch, or fine-tune ``net``) with AdamW; keep the epoch with
    the lowest validation MAE (g_s + g_u); calibrate its uncertainty on the validation split.

    Returns ``(net, standardisation, history)``; ``history`` holds per epoch the mean training loss,
    the validation metrics and the elapsed seconds.
    """
    key = jax.random.PRNGKey(config.seed)
    net = DICNet(network, key=key) if net is None else net
    if standardisation is None:
        f = train.features
        standardisation = Standardisation(tuple(np.nanmean(f, 0).tolist()), tuple((np.nanstd(f, 0) + 1e-6).tolist()))
    steps_per_epoch = max(1, len(train) // config.batch_size)
    total = steps_per_epoch * config.epochs
    schedule = optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, min(500, total // 5),
                                                  total, config.learning_rate * 0.02)
    optimiser = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=config.weight_decay))
    opt_state = optimiser.init(eqx.filter(net, eqx.is_array))
    std = standardisation

    @eqx.filter_jit
    def step(net, opt_state, batch):
        loss, grads = eqx.filter_value_and_grad(_loss)(net, batch, std)
        updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(net, eqx.is_array))
        return eqx.apply_updates(net, updates), opt_state, loss

    rng = np.random.default_rng([config.seed, 2])
    best, best_score, history = net, math.inf, []
    started = time.perf_counter()
    bar = tqdm(total=steps_per_epoch * config.epochs, desc="train DIC network", unit="step", disable=not progress)
    for epoch in range(config.epochs):
        order = rng.permutation(len(train))
        losses = []
        for s in range(steps_per_epoch):
            batch = _batch(train, order[s * config.batch_size:(s + 1) * config.batch_size], rng, config,
                           net.config.encoding)
            net, opt_state, loss = step(net, opt_state, batch)
            losses.append(float(loss))
            bar.update(1)
        metrics = evaluate(net, val, std, max_isis=config.max_isis)
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started,
                  **{f"val_{k}": v for k, v in metrics.items()}}
        history.append(record)
        bar.set_postfix(loss=f"{record['loss']:.3f}", g_s=f"{metrics['mae_g_s']:.2f}", g_u=f"{metrics['mae_g_u']:.2f}")
        if on_epoch is not None:
            on_epoch(epoch, record)
        score = metrics["mae_g_s"] + metrics["mae_g_u"]
        if score < best_score:
            best, best_score = net, score
    bar.close()
    std = calibrate(best, val, std, max_isis=config.max_isis)
    return best, std, history
