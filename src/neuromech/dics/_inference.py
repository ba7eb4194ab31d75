"""Spike trains → DICs with the shipped networks; saving and strict loading of network weights."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pandas as pd

from ..analysis import firing_features
from ..io import atomic_path
from ._network import FEATURES, DICNet, NetworkConfig
from ._training import Standardisation, predict

WEIGHTS = Path(__file__).parent / "weights"
FORMAT = "neuromech-dicnet-1"


class WeightsError(ValueError):
    """A weights file that does not match its description (never loaded partially)."""


def save_network(stem, net: DICNet, standardisation: Standardisation, *, model: str, v_th: float,
                 max_isis: int, record: dict | None = None) -> Path:
    """Write ``stem.eqx`` (weights) and ``stem.json`` (architecture, standardisation, checksum, the
    training record) atomically; returns the JSON path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights = stem.with_suffix(".eqx")
    with atomic_path(weights) as tmp:
        eqx.tree_serialise_leaves(tmp, net)
    meta = {
        "format": FORMAT, "model": model, "v_th": v_th, "max_isis": max_isis,
        "network": dataclasses.asdict(net.config),
        "standardisation": dataclasses.asdict(standardisation),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "record": record or {},
    }
    path = stem.with_suffix(".json")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    return path


@dataclasses.dataclass(frozen=True)
class LoadedNetwork:
    """A network with everything needed to use it: weights, standardisation and metadata."""

    net: DICNet
    standardisation: Standardisation
    model: str
    v_th: float
    max_isis: int
    record: dict


def load_network(source: str | os.PathLike = "stg") -> LoadedNetwork:
    """Load a network strictly: ``"stg"``/``"da"`` (shipped) or the path of a ``.json``/``.eqx`` pair.

    Raises:
        FileNotFoundError: no such network.
        WeightsError: wrong format, checksum mismatch, or weights whose shapes differ from the
            architecture the JSON describes (the file is never loaded partially).
    """
    path = WEIGHTS / f"{source}.json" if str(source) in ("stg", "da") else Path(source).with_suffix(".json")
    if not path.exists():
        raise FileNotFoundError(f"no network description at {path}; pass 'stg', 'da' or a saved network's path")
    meta = json.loads(path.read_text())
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    weights = path.with_suffix(".eqx")
    raw = weights.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != meta["weights_sha256"]:
        raise WeightsError(f"{weights}: checksum {digest[:12]}… does not match {meta['weights_sha256'][:12]}… "
                           "recorded in its JSON; the file is corrupt or from another network")
    described = {"encoding": 1, **meta["network"]}  # files written before encoding 2 carry no field
    config = NetworkConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in described.items()})
    # Shapes only: building the network for real would run (and compile) every initialiser,
    # seconds of a first call, for arrays that the file then replaces.
    skeleton = eqx.filter_eval_shape(DICNet, config, key=jax.random.PRNGKey(0))
    stream = io.BytesIO(raw)
    try:  # equinox checks every leaf's type, shape and dtype against the skeleton
        net = eqx.tree_deserialise_leaves(stream, skeleton)
    except Exception as err:  # it raises RuntimeError/ValueError on a shape or structure mismatch
        raise WeightsError(f"{weights} does not fit the architecture in {path}: {err}") from err
    if stream.tell() != len(raw):
        raise WeightsError(f"{weights} does not fit the architecture in {path}: "
                           f"{len(raw) - stream.tell()} bytes left after its last array")
    std = meta["standardisation"]
    standardisation = Standardisation(tuple(std["feature_mean"]), tuple(std["feature_std"]), tuple(std["sigma_scale"]))
    return LoadedNetwork(net, standardisation, meta["model"], float(meta["v_th"]), int(meta["max_isis"]),
                         meta.get("record", {}))


@functools.lru_cache(maxsize=4)
def _shipped(model: str) -> LoadedNetwork:
    return load_network(model)


def infer_dics(spike_trains, model: str = "stg", *, ids=None, network: LoadedNetwork | None = None) -> pd.DataFrame:
    """Predict each spike train's slow and ultraslow DICs at V_th, with uncertainty.

    A trained network (see :mod:`neuromech.dics._network`; after Brandoit et al. 2025) reads the
    inter-spike intervals; trains of fewer than 3 spikes are silent and get no DICs.

    Main arguments:
        spike_trains: a sequence of spike-time arrays (ms, sorted, as from
            :func:`neuromech.analysis.check_train`) or a mapping ``{id: times}``.
        model: ``"stg"`` or ``"da"``: which shipped network.

    Other arguments:
        ids: labels of the trains (default the mapping's keys or 0..N−1).
        network: a :class:`LoadedNetwork` to use instead of the shipped one.

    Returns:
        A DataFrame, one row per train: ``id, n_spikes, pattern`` (rule of SCIENCE.md §1.4),
        ``g_s_hat, g_u_hat`` (g_leak-normalised DICs), ``g_s_std, g_u_std`` (calibrated: about
        68 % of truths within ±1 std on held-out data), ``v_th`` (mV), ``p_bursting`` (the network's
        class probability) and the network's predicted features ``<feature>_hat`` (Hz, ms, spikes).

    Example:
        >>> import numpy as np
        >>> table = infer_dics([np.arange(40) * 25.0, [1.0, 2.0]])
        >>> table[["n_spikes", "pattern"]].values.tolist()
        [[40, 'tonic'], [2, 'silent']]
        >>> bool(np.isnan(table.g_s_hat[1]))
        True
    """
    if hasattr(spike_trains, "keys"):
        ids = list(spike_trains.keys()) if ids is None else ids
        spike_trains = list(spike_trains.values())
    trains = [np.asarray(t, dtype=np.float64) for t in spike_trains]
    ids = list(range(len(trains))) if ids is None else list(ids)
    if len(ids) != len(trains):
        raise ValueError(f"ids must have one entry per train ({len(trains)}); got {len(ids)}")
    loaded = network if network is not None else _shipped(model)
    if loaded.model != model and network is None:
        raise WeightsError(f"the shipped {model!r} network describes model {loaded.model!r}")
    feats = [firing_features(t) for t in trains]
    usable = [k for k, f in enumerate(feats) if str(f.pattern) != "silent"]
    n = len(trains)
    mu, sd = np.full((n, 2), np.nan), np.full((n, 2), np.nan)
    p, logf = np.full(n, np.nan), np.full((n, len(FEATURES)), np.nan)
    if usable:
        m, s, pb, lf = predict(loaded.net, [trains[k] for k in usable], loaded.standardisation,
                               max_isis=loaded.max_isis)
        mu[usable], sd[usable], p[usable], logf[usable] = m, s, pb, lf
    table = pd.DataFrame({
        "id": ids, "n_spikes": [f.n_spikes for f in feats], "pattern": [str(f.pattern) for f in feats],
        "g_s_hat": mu[:, 0], "g_u_hat": mu[:, 1], "g_s_std": sd[:, 0], "g_u_std": sd[:, 1],
        "v_th": np.where(np.isnan(mu[:, 0]), np.nan, loaded.v_th), "p_bursting": p,
    })
    for j, name in enumerate(FEATURES):
        table[f"{name}_hat"] = np.exp(logf[:, j])
    return table
