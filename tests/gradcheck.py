"""Autodiff against central finite differences, for the tests of training losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


def assert_grad_matches_fd(loss, params, *, picks: int = 6, seed: int = 0):
    """``jax.grad(loss)(params)`` (a list of arrays) equals central differences of ``loss`` at one
    random entry of each of ``picks`` random arrays.

    Run in float64: central differences err by O(h²) truncation plus ~1e-16/h round-off, both far
    below the 1e-5 relative tolerance at h = 1e-6 (scaled to the entry).
    """
    grads = jax.grad(loss)(params)
    rng = np.random.default_rng(seed)
    for k in rng.choice(len(params), picks, replace=False):
        flat = np.asarray(params[k]).ravel()
        j = int(rng.integers(flat.size))
        h = 1e-6 * max(1.0, abs(flat[j]))

        def shifted(d):
            p = list(params)
            p[k] = jnp.asarray(flat.copy()).at[j].add(d).reshape(params[k].shape)
            return float(loss(p))

        fd = (shifted(h) - shifted(-h)) / (2 * h)
        assert float(np.asarray(grads[k]).ravel()[j]) == pytest.approx(fd, rel=1e-5, abs=1e-8), (k, j)
