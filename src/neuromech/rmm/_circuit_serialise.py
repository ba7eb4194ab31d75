"""Saving and loading trained circuit RMMs: Equinox leaves + the settings that rebuild the structure.

The same two files as a single neuron (:func:`~neuromech.rmm.save_model`): ``model.eqx`` with every
array and ``model.json`` with the :class:`CircuitConfig`, dt, the float precision and each neuron's
voltage bounds; loading rebuilds the circuit's structure from the settings and reads the arrays
into it strictly (shapes and dtypes checked, no bytes left over, finite values only).
"""

from __future__ import annotations

import os
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._build import skeleton
from ._circuit import Circuit, Gap
from ._circuit_build import _synapse
from ._circuit_settings import CircuitConfig, circuit_config_from_dict
from ._serialise import CIRCUIT_FORMAT, read_meta, read_weights, write_model_files
from ._settings import config_to_dict


def save_circuit(directory: str | os.PathLike, circuit: Circuit, config: CircuitConfig) -> Path:
    """Write ``model.eqx`` (weights) and ``model.json`` (settings, dt, bounds) of a circuit into
    ``directory`` (created if needed; both files written atomically).

    Raises:
        ValueError: when ``config`` does not describe ``circuit`` (other neurons, exogenous
            channels or synapses): it could not be loaded back.

    Example:
        >>> save_circuit("models/hco", circuit, config)          # doctest: +SKIP
        >>> circuit, config = load_circuit("models/hco")         # doctest: +SKIP
    """
    settings = config.settings
    described = (settings.neurons, settings.exogenous, tuple(s.name for s in settings.synapses),
                 tuple((g.a, g.b) for g in settings.gaps))
    actual = (tuple(circuit.names), tuple(circuit.exogenous), tuple(s.name for s in circuit.synapses),
              tuple((circuit.names[g.a], circuit.names[g.b]) for g in circuit.gaps))
    if described != actual:
        raise ValueError(f"the config describes neurons, exogenous channels, synapses and gaps {described}, but the "
                         f"circuit has {actual}; save the circuit with the config it was built from")
    meta = {"format": CIRCUIT_FORMAT, "dt": circuit.dt, "dtype": str(circuit.neurons[0].bank.A.dtype),
            "names": list(circuit.names), "exogenous": list(circuit.exogenous),
            "synapses": [s.name for s in circuit.synapses],
            "v_bounds": {n: list(m.v_bounds) for n, m in zip(circuit.names, circuit.neurons)},
            "config": config_to_dict(config)}
    return write_model_files(directory, circuit, meta)


def circuit_skeleton(config: CircuitConfig, dt: float, v_bounds: dict) -> Circuit:
    """A circuit with the structure ``config`` gives (arbitrary values; the neurons' arrays as shapes
    only): the template into which saved weights are loaded. ``v_bounds``: neuron name → (low,
    high) mV."""
    settings = config.settings
    missing = [n for n in settings.neurons if n not in v_bounds]
    if missing:
        raise ValueError(f"model.json has no voltage bounds for neuron(s) {missing}")
    neurons = tuple(eqx.filter_eval_shape(skeleton, settings.model, dt, tuple(v_bounds[n])) for n in settings.neurons)
    fake = [np.linspace(-70.0, -50.0, 16)]
    key = jax.random.PRNGKey(0)
    synapses = tuple(_synapse(ss, settings.channels.index(ss.pre), settings.neurons.index(ss.post), dt, fake, fake,
                              1.0, jax.random.fold_in(key, k)) for k, ss in enumerate(settings.synapses))
    dtype = jnp.asarray(1.0).dtype
    gaps = tuple(Gap(jnp.asarray(0.0, dtype), settings.neurons.index(g.a), settings.neurons.index(g.b))
                 for g in settings.gaps)
    return Circuit(neurons, synapses, gaps, settings.neurons, settings.exogenous)


def load_circuit(directory: str | os.PathLike) -> tuple[Circuit, CircuitConfig]:
    """Load a circuit saved by :func:`save_circuit` (or ``neuromech fit`` with a ``[circuit]``
    table), strictly: every array must match the structure its settings describe, with nothing
    left over and no non-finite value.

    Returns:
        ``(circuit, config)``.

    Raises:
        ValueError: for a missing or foreign ``model.json`` (a single-neuron model says to use
            :func:`~neuromech.rmm.load_model`), or weights that do not match (another model's file,
            a truncated one, NaN or infinite values).
    """
    meta = read_meta(directory, CIRCUIT_FORMAT)
    try:
        config = circuit_config_from_dict(meta["config"])
    except (KeyError, ValueError) as err:
        raise ValueError(f"{Path(directory) / 'model.json'}: its circuit settings do not load: {err}") from err
    like = circuit_skeleton(config, float(meta["dt"]), meta.get("v_bounds", {}))
    return read_weights(directory, like), config
