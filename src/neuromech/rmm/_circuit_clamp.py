"""Voltage-clamp stretches in a circuit's training data: which samples they cover, which to leave
out, and which synapses they measure.

Where a modelled neuron is held by a voltage clamp (its channel's ``Recording.command`` is
finite) its voltage does not move and the recorded current is the clamp's: the neuron's ionic
current at the command plus the synaptic currents it receives. A synapse onto a clamped cell
shows there directly, apart from the intrinsic currents it moves with in current clamp, which is
how an experimenter measures it. :func:`~neuromech.rmm.fit_circuit` fits such synapses on the
clamped samples first and keeps them fixed after (``CircuitTrainingSettings.clamp_stage``).
"""

from __future__ import annotations

import jax
import numpy as np
import optax

from ._params import _is_transform


def clamp_masks(command, blank: int):
    """``(clamped, left_out)``, each (T, n) bool, for commands ``command`` (T, n) mV (NaN: free).

    ``left_out`` marks the samples a fit must not use: at each step of a command (a clamp's
    onset, or a change of its level) the sample before it, whose recorded current holds the
    charge C·ΔV/dt of the step, and the ``blank`` samples from the step on, whose current holds
    the fast gates' transients (a step to −50 mV from −67 mV gives hundreds of nA for about
    10 ms in the synthetic STG cell, and one from a spike's peak over 100 µA), as an amplifier's
    blanking leaves them out.
    """
    command = np.asarray(command, float)
    clamped = np.isfinite(command)
    before = np.vstack([np.full((1, command.shape[1]), np.nan), command[:-1]])
    steps = clamped & ~(before == command)  # NaN == x is False: onsets from free count as steps
    left_out = np.zeros_like(clamped)
    for t, q in zip(*np.nonzero(steps)):
        left_out[max(t - 1, 0):t + blank, q] = True
    return clamped, left_out


def clamped_synapses(circuit, data) -> tuple[int, ...]:
    """Indices of the synapses that the clamped samples of ``data`` measure: those onto a modelled
    neuron held under voltage clamp while the presynaptic voltage moves freely, for at least the
    synapse bank's slowest time constant in all.

    A presynaptic cell held too (at −70 mV it releases almost nothing) shows the clamped cell one
    constant gate, which its own current at the command takes up; fixing the synapse after such
    samples would fix it at whatever they shrank it to (the B→A synapse of a 24 s HCO record in
    which A was never clamped while B was free: read-out std 0.06 nA against 2.00 nA true). Those
    synapses are left to the main stage. Shorter free stretches than the slowest time constant
    do not span the gate's slowest input. Samples with both cells held still count in the fit:
    they show the held cell's own current with the synapse silent, which is what tells the part
    of the gate that never closes from that current (docs/circuits.md, "Refining a free fit with a clamp
    record of its own").
    """
    from ..recordings._circuit import CircuitRecording

    recs = [data] if isinstance(data, CircuitRecording) else list(data)

    def held_with_pre_free(s):  # ms
        post, pre = circuit.names[s.post], circuit.channels[s.pre]
        return sum(int(np.sum(r[post].clamped & ~r[pre].clamped)) for r in recs) * circuit.dt

    return tuple(k for k, s in enumerate(circuit.synapses) if held_with_pre_free(s) >= max(s.bank.taus))


def freeze(optimizer: optax.GradientTransformation, spec, synapses: tuple[int, ...]):
    """``optimizer`` with the trainable arrays of the given synapses left unchanged; the parameters
    it updates are the list :func:`~neuromech.rmm._params.unconstrain` makes, or a tuple of that
    list and other trainable arrays (multiple shooting's start states)."""
    if not synapses:
        return optimizer
    names = {f".synapses[{k}]." for k in synapses}  # the dot: .synapses[1] is no prefix of .synapses[10]
    labels = ["fixed" if any(jax.tree_util.keystr(path).startswith(n) for n in names) else "train"
              for path, t in jax.tree_util.tree_flatten_with_path(spec, is_leaf=_is_transform)[0]
              if t.name != "fixed"]

    def label(params):
        if isinstance(params, list):
            return labels
        return (labels, *(jax.tree.map(lambda _: "train", x) for x in params[1:]))

    return optax.multi_transform({"train": optimizer, "fixed": optax.set_to_zero()}, label)


def check_free(recording, names, what: str) -> None:
    """Raise if a modelled neuron of ``recording`` is clamped anywhere: a free run needs current clamp."""
    held = [n for n in names if recording[n].clamped.any()]
    if held:
        raise ValueError(f"{what} needs current-clamp data, but {', '.join(held)} {'is' if len(held) == 1 else 'are'} "
                         "under voltage clamp in part of it (a finite command); use a stretch without clamp, or "
                         "train on the clamped part")
