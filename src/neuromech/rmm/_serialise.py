"""Saving and loading trained RMMs: Equinox leaves + the settings that rebuild the structure.

The strict reading (:func:`read_meta`, :func:`read_weights`) serves circuits too
(``_circuit_serialise``).
"""

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

# Format 2: monotone gates carry a log-space output gain (models of format 1 predate it: refit).
FORMAT = "neuromech-rmm/2"
CIRCUIT_FORMAT = "neuromech-rmm-circuit/2"
OLD_FORMATS = ("neuromech-rmm/1", "neuromech-rmm-circuit/1")


def save_model(directory: str | os.PathLike, model: RMM, config: RMMConfig = RMMConfig()) -> Path:
    """Write ``model.eqx`` (weights) and ``model.json`` (settings, dt, bounds) into ``directory``.

    Both are written atomically; the directory is created if needed.
    """
    meta = {"format": FORMAT, "dt": model.dt, "v_bounds": list(model.v_bounds),
            "dtype": str(model.bank.A.dtype), "names": list(model.names), "config": config_to_dict(config)}
    return write_model_files(directory, model, meta)


def load_model(directory: str | os.PathLike) -> tuple[RMM, RMMConfig]:
    """Load a model saved by :func:`save_model`, strictly: every array must match the structure
    its settings describe, with nothing left over.

    Raises:
        ValueError: for a missing/foreign ``model.json``, or weights that do not match (a file from
            another model or a truncated one).
    """
    meta = read_meta(directory, FORMAT)
    config = config_from_dict(meta["config"])
    # Shapes only: a real skeleton would run (and compile) every initialiser, seconds of a first
    # load, for arrays that the file then replaces.
    like = eqx.filter_eval_shape(skeleton, config.model, meta["dt"], tuple(meta["v_bounds"]))
    return read_weights(directory, like), config


def read_meta(directory: str | os.PathLike, expected: str) -> dict:
    """``model.json`` of a saved model of format ``expected``, with the JAX precision it needs.

    Raises:
        ValueError: for no model.json, another format (a circuit where a neuron is expected, or
            the reverse: the message says which loader to use), or another float precision.
    """
    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.is_file():
        raise ValueError(f"{directory} is not a saved RMM: no model.json (save one with neuromech fit)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path} is not valid JSON: {err}") from err
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != expected:
        loaders = {FORMAT: "load_model (a single neuron)", CIRCUIT_FORMAT: "load_circuit (a circuit)"}
        hint = f"; it holds a model for {loaders[found]}" if found in loaders else ""
        if found in OLD_FORMATS:
            hint = "; it was saved by an older neuromech whose gates lack the output gain: refit it with neuromech fit"
        raise ValueError(f"{meta_path}: format {found!r}, expected {expected!r}{hint}")
    dtype = jnp.dtype(meta["dtype"])
    if jnp.asarray(1.0).dtype != dtype:
        raise ValueError(f"{directory} was saved with {dtype} arrays; enable the same JAX precision to load it")
    return meta


def read_weights(directory: str | os.PathLike, like):
    """The arrays of ``directory/model.eqx`` loaded into ``like``, strictly: every array's shape and
    dtype must match, nothing may be left over, and every value must be finite.

    Raises:
        ValueError: naming the file and what did not match.
    """
    import jax

    directory = Path(directory)
    raw = (directory / "model.eqx").read_bytes()
    stream = io.BytesIO(raw)
    try:
        model = eqx.tree_deserialise_leaves(stream, like)
    except Exception as err:  # equinox raises several types for a mismatched file
        raise ValueError(f"{directory}/model.eqx does not match its model.json settings: {err}") from err
    if stream.tell() != len(raw):
        raise ValueError(f"{directory}/model.eqx has {len(raw) - stream.tell()} unread bytes: not this model's weights")
    if not all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))):
        raise ValueError(f"{directory}/model.eqx holds non-finite weights")
    return model


def write_model_files(directory: str | os.PathLike, model, meta: dict) -> Path:
    """Write ``model.eqx`` (the arrays of ``model``) and ``model.json`` (``meta``), each atomically."""
    from ..io import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, model)
    with atomic_path(directory / "model.eqx") as tmp:
        tmp.write_bytes(buffer.getvalue())
    with atomic_path(directory / "model.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return directory


def saved_format(directory: str | os.PathLike) -> str | None:
    """The ``format`` a model directory's ``model.json`` declares (None when it has none)."""
    try:
        meta = json.loads((Path(directory) / "model.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta.get("format") if isinstance(meta, dict) else None
