"""Padding of population batches to a few sizes, so that compiled programs are reused across N."""

from __future__ import annotations

import numpy as np


def bucket(size: int, chunk: int = 256) -> int:
    """Padded batch size for ``size`` models: a multiple of 64 up to ``chunk``, then of ``chunk``
    and of 1/8 of a power of two beyond, so that calls with different N reuse a few compilations."""
    if size <= chunk:
        return max(64, int(np.ceil(size / 64) * 64))
    step = max(chunk, 2 ** (int(np.log2(size)) - 3))
    return int(np.ceil(size / step) * step)


def pad_rows(a, size: int) -> np.ndarray:
    """``a`` with its last row repeated up to ``size`` rows (scalars are returned as they are)."""
    a = np.asarray(a)
    if a.ndim == 0 or a.shape[0] == size:
        return a
    return np.concatenate([a, np.repeat(a[-1:], size - a.shape[0], axis=0)])
