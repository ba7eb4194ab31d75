"""A known circuit for tests: a modelled neuron (leak + K) driven through a graded synapse by a
recorded presynaptic neuron whose voltage is a slow random wave from −75 to −45 mV, 10 kHz."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from neuromech import rmm
from neuromech.recordings import Recording, ou_current

CELL = rmm.ModelSettings(
    filters=rmm.FilterSettings(tau_min=0.5, tau_max=30.0, n=8),
    currents=(rmm.CurrentSettings("leak", kind="leak"),
              rmm.CurrentSettings("K", activation_taus=(1.0, 30.0), reversal=-80.0, reversal_std=0.0)),
)
SYNAPSE_FILTERS = rmm.FilterSettings(tau_min=2.0, tau_max=100.0, n=6)


def settings(pre: str, post: str) -> rmm.CircuitSettings:
    """``post`` modelled, ``pre`` recorded only, one synapse pre → post."""
    synapse = rmm.SynapseSettings(pre, post, filters=SYNAPSE_FILTERS, hidden=(4,))
    return rmm.CircuitSettings((post,), exogenous=(pre,), model=CELL, synapses=(synapse,))


def _noise_recording(n, seed):
    return Recording(-60.0 + 10.0 * ou_current(n, seed=seed, tau=20.0), ou_current(n, seed=seed + 1), dt=0.1)


def driven_circuit(pre: str, post: str, n: int, noise: float):
    """``(teacher, recording)``: the teacher circuit (C 1 nF, leak 0.1 µS at −60 mV, K 0.1 µS,
    synapse 0.3 µS) and ``n`` samples of it with ``noise`` mV on both voltages; the post neuron's
    truth holds its clean voltage and synaptic current."""
    seed_data = rmm.CircuitRecording({pre: _noise_recording(4000, 1), post: _noise_recording(4000, 3)})
    teacher = rmm.init_circuit(seed_data, settings(pre, post), seed=7)
    dtype = teacher.neurons[0].capacitance.dtype
    teacher = eqx.tree_at(
        lambda c: (c.neurons[0].capacitance, c.neurons[0].holding, c.neurons[0].currents[0].g,
                   c.neurons[0].currents[0].E, c.neurons[0].currents[1].g, c.synapses[0].current.g),
        teacher, tuple(jnp.asarray(x, dtype) for x in (1.0, 0.0, 0.1, -60.0, [0.1], [0.3])))
    v_pre = -60.0 + 15.0 * np.tanh(ou_current(n, seed=4, tau=100.0))
    i_post = ou_current(n, seed=5, sigma=1.0)
    v, i_syn = rmm.simulate_circuit(teacher, i_post[None], [-60.0, v_pre[0]], v_exo=v_pre[None])
    rng = np.random.default_rng(6)
    return teacher, rmm.CircuitRecording({
        pre: Recording(v_pre + noise * rng.standard_normal(n), np.zeros(n), dt=0.1),
        post: Recording(v[0] + noise * rng.standard_normal(n), i_post, dt=0.1,
                        truth={"voltage_clean": v[0], f"syn {pre}->{post}": i_syn[0]}),
    })
