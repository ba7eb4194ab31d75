"""The spike-train → DIC network: encoding of spike trains and the Equinox model.

Architecture (and why). A spike train enters as its inter-spike intervals (ISIs), one token per
ISI with three features: the standardised log-ISI, its change from the previous ISI, and its offset
from the train's median log-ISI (scale-free burst structure). A stack of residual dilated 1-D
convolutions (dilations 1, 2, 4: a receptive field of 15 ISIs, a burst and its neighbours) sees the local burst structure at a cost linear in the train's length, so trains of
3 to thousands of spikes run in one pass; masked attention pooling (several heads) and a masked
mean give a length-independent summary, joined with summary statistics of the log-ISIs. An MLP trunk
feeds four heads: the means of (g_s, g_u), their log standard deviations (heteroscedastic
uncertainty), the firing class (tonic / bursting) and the standardised firing features.

The published network (Brandoit et al. 2025) is a small transformer over log-ISIs; the convolution
stack replaces attention between tokens with a fixed receptive field, which costs O(L) rather than
O(L²) and runs fast on a CPU, while pooling keeps the global view. It has 7.9·10⁴ parameters
(the published network: ≈ 1.2·10⁵).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..analysis import CV_TONIC, FEATURES

CLASSES = ("tonic", "bursting")
N_TOKEN = 3
N_STATS = {1: 8, 2: 9}  # summary statistics per input encoding
CV_BOUNDARY_SCALE = 0.01  # CV units per unit of encoding 2's boundary statistic (see encode_trains)
LOG_ISI_CENTER = np.log(50.0)  # ms: ISIs of the training data span ~2 ms to seconds
LOG_ISI_SCALE = 1.5


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Sizes and input encoding of a :class:`DICNet` (saved with its weights, so a file rebuilds
    exactly its network).

    ``encoding`` 1: eight statistics of the window read; 2: nine statistics of the whole train (a
    long train read in windows gives each window the train's statistics), the ninth saying how far
    the train's CV(ISI) lies from the tonic/bursting threshold of the firing-pattern rule.
    """

    width: int = 48
    dilations: tuple[int, ...] = (1, 2, 4)
    heads: int = 4
    hidden: int = 128
    encoding: int = 2

    def __post_init__(self):
        if self.encoding not in N_STATS:
            raise ValueError(f"encoding must be one of {sorted(N_STATS)}; got {self.encoding!r}")


def _bucket(n: int) -> int:
    """Padded length for n ISIs: a power of two ≥ 16, so few compiled shapes serve all lengths."""
    return max(16, 1 << int(np.ceil(np.log2(max(n, 1)))))


def train_statistics(isis: list[np.ndarray], encoding: int = 2) -> np.ndarray:
    """(B, N_STATS[encoding]) summary statistics of each train's ISIs (ms), vectorised over the batch."""
    raw = np.full((len(isis), max(len(i) for i in isis)), np.nan)
    for b, isi in enumerate(isis):
        raw[b, :len(isi)] = isi
    z = (np.log(np.maximum(raw, 1e-3)) - LOG_ISI_CENTER) / LOG_ISI_SCALE  # NaN where padded
    ordered = np.sort(z, axis=1)  # NaN last
    last = np.sum(~np.isnan(z), axis=1) - 1
    rows = np.arange(len(isis))
    q = []
    for level in (0.0, 0.1, 0.5, 0.9, 1.0):  # linear interpolation, as np.quantile
        pos = level * last
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, last)
        q.append(ordered[rows, lo] + (pos - lo) * (ordered[rows, hi] - ordered[rows, lo]))
    cv = np.nanstd(raw, axis=1) / np.nanmean(raw, axis=1)
    columns = [*q, np.nanmean(z, axis=1), np.nanstd(z, axis=1), np.log1p(cv)]
    if encoding == 2:  # sharp near the rule's threshold, saturated away from it
        columns.append(np.clip((cv - CV_TONIC) / CV_BOUNDARY_SCALE, -3.0, 3.0))
    return np.column_stack(columns).astype(np.float32)


def encode_trains(trains, length: int | None = None, *, encoding: int = 2, stats=None):
    """Tokens, mask and summary statistics of spike trains (each ≥ 3 spikes, sorted, ms).

    ``stats``: per train, the statistics to pass on (encoding 2: those of the whole train it is a
    window of, from :func:`train_statistics`); default those of the trains themselves (encoding 1:
    of the part within ``length``).

    Returns ``(tokens (B, L, 3), mask (B, L), stats (B, N_STATS[encoding]))`` as float32 NumPy
    arrays, L the padded length (``length`` or a power of two covering the longest train's ISIs).
    """
    isis = [np.diff(np.asarray(t, dtype=np.float64)) for t in trains]
    n_max = max(len(i) for i in isis)
    length = _bucket(n_max) if length is None else length
    raw = np.full((len(isis), length), np.nan)
    for b, isi in enumerate(isis):
        raw[b, : min(len(isi), length)] = isi[:length]
    present = ~np.isnan(raw)
    z = (np.log(np.maximum(raw, 1e-3)) - LOG_ISI_CENTER) / LOG_ISI_SCALE  # NaN where padded
    if stats is None:
        stats = train_statistics([i[:length] for i in isis] if encoding == 1 else isis, encoding)
    median = np.nanmedian(z, axis=1)[:, None]
    tokens = np.zeros((len(isis), length, N_TOKEN), np.float32)
    tokens[..., 0] = np.where(present, z, 0.0)
    tokens[:, 1:, 1] = np.where(present[:, 1:], np.diff(z, axis=1), 0.0)
    tokens[..., 2] = np.where(present, z - median, 0.0)
    return tokens, present.astype(np.float32), stats


class _ConvBlock(eqx.Module):
    """Pre-norm residual block: dilated 3-tap convolution along the ISIs, GELU, linear mix.

    The convolution is written as three shifted matrix products (zeros beyond the ends), which XLA
    runs as plain matmuls: several times faster on a CPU than a batched convolution primitive.
    """

    norm: eqx.nn.LayerNorm
    taps: jax.Array  # (3, W, W): weights for x[t − d], x[t], x[t + d]
    bias: jax.Array
    mix: eqx.nn.Linear
    dilation: int = eqx.field(static=True)

    def __init__(self, width, dilation, key):
        k1, k2 = jax.random.split(key)
        self.norm = eqx.nn.LayerNorm(width)
        self.taps = jax.random.normal(k1, (3, width, width)) / np.sqrt(3 * width)
        self.bias = jnp.zeros(width)
        self.mix = eqx.nn.Linear(width, width, key=k2)
        self.dilation = dilation

    def __call__(self, x, mask):  # x (L, W)
        d = self.dilation
        h = jax.vmap(self.norm)(x)
        padded = jnp.pad(h, ((d, d), (0, 0)))
        h = padded[:-2 * d] @ self.taps[0] + h @ self.taps[1] + padded[2 * d:] @ self.taps[2] + self.bias
        return (x + jax.vmap(self.mix)(jax.nn.gelu(h))) * mask[:, None]


class DICNet(eqx.Module):
    """Spike train → (g_s, g_u) at V_th with uncertainty, firing class and features.

    Call on one encoded train: ``net(tokens (L, 3), mask (L,), stats (N_STATS[encoding],))`` returns
    ``(mean (2,), log_std (2,), class_logits (2,), features (6,))`` in the standardised units of
    the training (see :func:`neuromech.dics.infer_dics` for physical units).
    """

    config: NetworkConfig = eqx.field(static=True)
    embed: eqx.nn.Linear
    blocks: tuple[_ConvBlock, ...]
    query: jax.Array
    norm: eqx.nn.LayerNorm
    trunk: eqx.nn.MLP
    head: eqx.nn.Linear

    def __init__(self, config: NetworkConfig = NetworkConfig(), *, key):
        keys = jax.random.split(key, 4 + len(config.dilations))
        w = config.width
        self.config = config
        self.embed = eqx.nn.Linear(N_TOKEN, w, key=keys[0])
        self.blocks = tuple(_ConvBlock(w, d, k) for d, k in zip(config.dilations, keys[4:]))
        self.query = 0.1 * jax.random.normal(keys[1], (config.heads, w))
        self.norm = eqx.nn.LayerNorm(w)
        pooled = w * config.heads + w + N_STATS[config.encoding]
        self.trunk = eqx.nn.MLP(pooled, config.hidden, config.hidden, depth=1, activation=jax.nn.gelu,
                                final_activation=jax.nn.gelu, key=keys[2])
        self.head = eqx.nn.Linear(config.hidden, 2 + 2 + len(CLASSES) + len(FEATURES), key=keys[3])

    def __call__(self, tokens, mask, stats):
        x = jax.vmap(self.embed)(tokens) * mask[:, None]
        for block in self.blocks:
            x = block(x, mask)
        x = jax.vmap(self.norm)(x)
        scores = jnp.where(mask[:, None] > 0, x @ self.query.T / np.sqrt(x.shape[1]), -1e9)  # (L, H)
        attention = jax.nn.softmax(scores, axis=0)
        pooled = (attention.T @ x).reshape(-1)
        mean = (x * mask[:, None]).sum(0) / jnp.maximum(mask.sum(), 1.0)
        h = self.trunk(jnp.concatenate([pooled, mean, stats]))
        out = self.head(h)
        return out[:2], jnp.clip(out[2:4], -7.0, 3.0), out[4:6], out[6:]


def batched(net: DICNet, tokens, mask, stats):
    """Apply ``net`` to a batch (B, L, 3), (B, L), (B, N_STATS)."""
    return jax.vmap(net)(tokens, mask, stats)
