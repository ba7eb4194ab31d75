"""Saving and loading trained RMMs: Equinox leaves + the settings that rebuild the structure."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._build import skeleton
from ._model import RMM
from ._settings import RMMConfig, config_from_dict, config_to_dict

FORMAT = "neuromech-rmm/1"


def save_model(directory: str | os.PathLike, model: RMM, config: RMMConfig = RMMConfig()) -> Path:
    """Write ``model.eqx`` (weights) and ``model.json`` (settings, dt, bounds) into ``directory``.

    Both are written atomically; the directory is created if needed.
    """
    from ..io import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    meta = {"format": FORMAT, "dt": model.dt, "v_bounds": list(model.v_bounds),
            "dtype": str(model.bank.A.dtype), "names": list(model.names), "config": config_to_dict(config)}
    with atomic_path(directory / "model.eqx") as tmp:
        tmp.write_bytes(buffer.getvalue())
    with atomic_path(directory / "model.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return directory


def load_model(directory: str | os.PathLike) -> tuple[RMM, RMMConfig]:
    """Load a model saved by :func:`save_model`, strictly: every array must match the structure
    its settings describe, with nothing left over.

    Raises:
        ValueError: for a missing/foreign ``model.json``, or weights that do not match (a file from
            another model or a truncated one).
    """
    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise ValueError(f"{directory} is not a saved RMM: no model.json (save one with neuromech fit)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    config = config_from_dict(meta["config"])
    dtype = jnp.dtype(meta["dtype"])
    if jnp.asarray(1.0).dtype != dtype:
        raise ValueError(f"{directory} was saved with {dtype} arrays; enable the same JAX precision to load it")
    like = skeleton(config.model, meta["dt"], tuple(meta["v_bounds"]))
    raw = (directory / "model.eqx").read_bytes()
    stream = io.BytesIO(raw)
    try:
        model = eqx.tree_deserialise_leaves(stream, like)
    except Exception as err:  # equinox raises several types for a mismatched file
        raise ValueError(f"{directory}/model.eqx does not match its model.json settings: {err}") from err
    if stream.tell() != len(raw):
        raise ValueError(f"{directory}/model.eqx has {len(raw) - stream.tell()} unread bytes: not this model's weights")
    if not all(np.all(np.isfinite(np.asarray(x))) for x in __import__("jax").tree.leaves(eqx.filter(model, eqx.is_array))):
        raise ValueError(f"{directory}/model.eqx holds non-finite weights")
    return model, config
