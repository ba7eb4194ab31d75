"""Training circuit RMMs: teacher forcing, multiple shooting and generalised teacher forcing.

- Teacher forcing: every filter bank is driven by the *measured* voltages; each neuron's dv/dt is a
  static regression target (the single-neuron scheme of :func:`~neuromech.rmm.fit`, summed over
  neurons, each normalised by its target's variance). As in the single-neuron fit, by default the
  samples are weighted against fast voltage changes (:func:`~neuromech.rmm.derivative_weights`,
  per neuron), the modelled voltages enter as :func:`~neuromech.rmm.centred_voltage`, a penalty
  keeps the free run's one-step map from overshooting (:func:`overshoot_penalty`) and a ridge on
  the currents keeps synapses and intrinsic currents from growing against each other
  (:func:`current_penalty`). Then 100 ms windows from teacher-forced states run in closed loop
  with generalised teacher forcing (:data:`CIRCUIT_ROLLOUT`); with validation data the best free
  run of the rollout epochs and the end of teacher forcing is kept
  (:func:`circuit_selection_score`: voltage, spikes and, for bursting circuits, burst period and
  phase).
- Multiple shooting: short shots (10–40 samples) run in closed loop from trainable start states,
  with a continuity penalty between consecutive shots (as :func:`~neuromech.rmm.fit_shooting`).
- Generalised teacher forcing (GTF): windows run with ``v̂ = γ v_meas + (1 − γ) v_model`` feeding
  the model and the loss on the model's voltage; γ follows a schedule from ``gamma_start`` to
  ``gamma_end`` (SCIENCE.md §5: γ ∈ [0, 0.2] at the end).

Methods of Burghi, Schapiro et al., Front. Comput. Neurosci. 19:1515194 (2025) and Burghi et al.,
PNAS 122(32) e2426916122 (2025).
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._circuit import Circuit, circuit_derivative, run_circuit, synaptic_currents
from ._circuit_build import check_channels
from ._circuit_clamp import check_free, clamp_masks, clamped_synapses, freeze
from ._build import centred_voltage, sweep_states
from ._filters import filter_signal, warm_states
from ._fit import run_epochs, derivative_weights
from ._model import membrane_currents
from ._params import constrain, unconstrain
from ._settings import RolloutSettings

METHODS = ("teacher forcing", "shooting", "gtf")

#: The rollout stage after a circuit's teacher forcing: 100 ms windows (a burst and the pause
#: after it) with generalised teacher forcing, γ from 0.2 to 0.1, 15 epochs of 16 windows at a
#: learning rate of 1e-3. Teacher forcing alone fits each sample's dv/dt better the longer it
#: runs, while its free run gets worse: on a single STG burster (60 s of data, fitted as a
#: one-neuron circuit) the validation burst period was within 8 % at epoch 30 and off by 14–100 %
#: (0.2 mV noise) or 38–100 % (noiseless) at every check from epoch 100 to 300. Yet a circuit's
#: synapses need those epochs (see ``epochs``). In the windows the model meets its own
#: trajectories through whole bursts; γ > 0 keeps each window near the data.
CIRCUIT_ROLLOUT = RolloutSettings(length=1000, epochs=15, batch_size=16, learning_rate=1e-3, gamma_start=0.2,
                                  gamma_end=0.1)


@dataclasses.dataclass(frozen=True)
class CircuitTrainingSettings:
    """How :func:`fit_circuit` trains.

    Attributes:
        method: ``"teacher forcing"``, ``"shooting"`` or ``"gtf"``.
        epochs, batch_size (samples for teacher forcing, windows otherwise), learning_rate (Adam),
        weight_decay, seed. Teacher forcing needs its 300 epochs (SCIENCE.md §5: 200–600): on the
            half-centre oscillator (24 s of data, C known) its loss rests on a plateau near 1.8 for
            the first 20–40 epochs, and the split between synaptic and intrinsic currents is found
            only after it (read-out correlation with the true synaptic currents 0.33–0.78 after 30
            epochs from three initialisations, 0.75–0.96 after 100 from the same and two more data
            seeds). Over four other data seeds, teacher forcing alone with the overshoot penalty,
            scored on 4 s test windows, 300 / 200 / 100 epochs kept both burst periods within 10 %
            on 3 / 2 / 2 of them and read out both synaptic currents with correlation ≥ 0.9 on
            3 / 3 / 1 (``benchmarks/bench_online.py --only hco --rollout none``, an earlier run).
        schedule: ``"cosine"`` (decay to 5 % over all steps) or ``"constant"`` learning rate, for
            the default optimiser.
        window: samples per window (GTF) or shot (shooting: 10–40).
        gamma_start, gamma_end: GTF mixing γ at the first and last epoch (linear schedule).
        continuity: shooting's penalty on the mismatch between consecutive shots.
        weighting: teacher forcing: power of the per-neuron sample weights
            (:func:`~neuromech.rmm.derivative_weights`); 0 weighs every sample alike.
        centred: teacher forcing: the modelled neurons' voltage input is
            :func:`~neuromech.rmm.centred_voltage` (noise uncorrelated with the target's).
        rollout: teacher forcing: closed-loop windows from teacher-forced states after it
            (:class:`~neuromech.rmm.RolloutSettings`), or None (``rollout = false`` in TOML). The
            default, :data:`CIRCUIT_ROLLOUT`, is generalised teacher forcing on 100 ms windows.
        validate_every: teacher-forcing epochs between free-run checks on the validation data;
            only with ``validation`` given to :func:`fit_circuit`. With a rollout stage, teacher
            forcing is checked at its last epoch only and hands that epoch on, and every rollout
            epoch is checked: early teacher-forcing epochs can run free well by chance while their
            synaptic currents are still wrong (half-centre oscillator, ``bench_online.py --only
            hco --rollout none``: epoch 20 won the validation on data seed 1 and read out B→A with
            correlation 0.02; with ``--n-filters 24``, epochs 70 and 30 on seeds 2 and 4, −0.01
            and 0.25).
        stability: teacher forcing: weight of :func:`overshoot_penalty` (0: none).
        stability_jitter: std (mV) of the random offsets added to each row's voltages where the
            penalty is evaluated, so that it holds near the data, where a free run goes, and not
            only on them.
        current_penalty: teacher forcing: weight of :func:`current_penalty`, a ridge on every
            intrinsic and synaptic current (0: none). On the half-centre oscillator
            (``bench_online.py --only hco``, data seeds 1–4), without it the read-out synaptic
            currents had the right shape at the wrong size (seeds 1 and 3: correlation 0.90–0.97
            with the truth, RMSE 1.4–27 times the true current's std), the free run fired 1–97 %
            of the data's spikes, and both burst periods came within 10 % on seed 1 only. With
            0.01 the read-outs' RMSE came to 0.8–2.4 times the std (correlation 0.54–0.81), the
            free run fired 77–100 % of the spikes on seeds 1–3, and both periods came within 7 %
            on seeds 1–3 (phase 7–11 % of a cycle off); seed 4 stayed off by 29 % and 40 %.
            With 0.003 the periods of seeds 1 and 3 were 11–22 % off; with 0.03 seed 3's cell A
            fell silent. The ridge biases what is identifiable: on data from a known circuit the
            read-out correlation fell from 0.92 to 0.89 (``tests/test_rmm_circuit.py``).
        clamp_stage: where the training data hold a modelled neuron under voltage clamp
            (``Recording.command``), first fit the synapses those samples measure (the presynaptic
            voltage free while the neuron is held: :func:`~neuromech.rmm._circuit_clamp.clamped_synapses`)
            on the clamped samples alone (teacher forcing, ``epochs`` epochs, all parameters
            trained), then keep those synapses fixed through the rest of the fit, which uses
            their neurons' current-clamp samples only. Under clamp the recorded current is the
            cell's ionic current at the command plus the synaptic current, so a synapse shows apart from
            the intrinsic currents it moves with in current clamp. On the driven neuron
            (docs/circuits.md, "The synapse from voltage clamp"; data seeds 2 and 3) a joint fit of clamped
            and free samples kept the gate's shape (correlation 0.985 and 0.989 with the true
            gate on held-out data) but dropped its tonic part into the leak: read-outs 0.47 and
            0.84 (teacher forcing alone); with the clamp stage the whole fit read out 0.992 and
            0.998 (seeds 4 and 5: 0.995, 0.996). The main stage leaves the clamped samples of
            those neurons out (with them, seed 3's model fired on every other presynaptic cycle,
            period +98 %; without, +0.1 %; seed 2's phase went from 3.9 % to 14.5 % of a cycle
            off). Windows (GTF, shooting, the rollout stage) and validation free runs use
            current-clamp stretches only. On the half-centre oscillator with each cell clamped
            at −70 mV in half the blocks it read both synapses out at 0.99 (seeds 2–5), but
            the free runs lost the rhythm (docs/circuits.md).
        clamp_blank_ms: ms after each step of a clamp command whose samples are left out of the
            fit, with the sample before the step (:func:`~neuromech.rmm._circuit_clamp.clamp_masks`).
    """

    method: str = "teacher forcing"
    epochs: int = 300
    batch_size: int = 2048
    learning_rate: float = 1e-2
    weight_decay: float = 1e-5
    seed: int = 0
    schedule: str = "cosine"
    window: int = 200
    gamma_start: float = 0.5
    gamma_end: float = 0.1
    continuity: float = 1.0
    weighting: float = 1.0
    centred: bool = True
    rollout: RolloutSettings | None = CIRCUIT_ROLLOUT
    validate_every: int = 10
    stability: float = 10.0
    stability_jitter: float = 10.0
    current_penalty: float = 0.01
    clamp_stage: bool = True
    clamp_blank_ms: float = 30.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.window < 2 or self.validate_every < 1:
            raise ValueError("epochs, batch_size and validate_every must be ≥ 1 and window ≥ 2 samples")
        if self.method == "shooting" and not 10 <= self.window <= 40:
            raise ValueError(f"shooting shots must be 10–40 samples (window), got {self.window}")
        if not (0 <= self.gamma_end <= 1 and 0 <= self.gamma_start <= 1):
            raise ValueError(f"γ must lie in [0, 1], got {self.gamma_start} → {self.gamma_end}")
        if not self.clamp_blank_ms >= 0:
            raise ValueError(f"clamp_blank_ms must be ≥ 0 ms, got {self.clamp_blank_ms}")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not self.weighting >= 0:
            raise ValueError(f"weighting must be ≥ 0 (0: unweighted), got {self.weighting}")
        if not (self.stability >= 0 and self.stability_jitter >= 0 and self.current_penalty >= 0):
            raise ValueError(f"stability, stability_jitter and current_penalty must be ≥ 0, got {self.stability}, "
                             f"{self.stability_jitter} and {self.current_penalty}")

    def gamma(self, epoch: int) -> float:
        """γ at ``epoch`` (1-based): linear from gamma_start to gamma_end."""
        f = 0.0 if self.epochs == 1 else (epoch - 1) / (self.epochs - 1)
        return self.gamma_start + f * (self.gamma_end - self.gamma_start)


def _sweeps(circuit: Circuit, data, training: bool = False, warmup: int = 0):
    """Per sweep: measured voltages (T, C), currents (T, n), intrinsic and synaptic filter states,
    and the modelled neurons' voltage-clamp commands (T, n; NaN where free).

    Banks start at rest at each sweep's first voltage (causal, as a prediction does), with
    ``warmup`` (samples) at the mean of the warm-up's voltages (:func:`circuit_warm_start`:
    causal after the warm-up), or with ``training`` as the single-neuron fit starts them
    (:func:`~neuromech.rmm.sweep_states`: at the mean of the first τ_max of a long continuous
    record, so that the slow states' start transient does not set their gates' input ranges).
    """
    from ..recordings._circuit import CircuitRecording

    def states(bank, u):
        if training:
            return sweep_states(bank, u)
        return warm_states(bank, u, warmup) if warmup else filter_signal(bank, u)

    recs = [data] if isinstance(data, CircuitRecording) else list(data)
    check_channels(circuit, recs)
    for rec in recs:
        if abs(rec.dt - circuit.dt) > 1e-9 * circuit.dt:
            raise ValueError(f"recording dt {rec.dt} ms differs from the circuit's {circuit.dt} ms; resample it")
        V, I = rec.voltages(circuit.channels), rec.currents(circuit.names)
        commands = np.stack([rec[n].full_command for n in circuit.names], axis=1)
        for s in range(rec.n_sweeps):
            v = V[s]
            xs = [states(m.bank, v[i]) for i, m in enumerate(circuit.neurons)]
            ss = [states(syn.bank, v[syn.pre]) for syn in circuit.synapses]
            yield v.T, I[s].T, xs, ss, commands[s].T


def circuit_teacher_forcing_loss(circuit: Circuit, v_all, xs, ss, i_app, dvdt, scale, weight_decay=0.0,
                                 weights=None):
    """Σ over neurons of the mean squared dv/dt error over its target variance ``scale`` (n,),
    plus priors and the weight penalty, for a batch (rows of every array). ``weights`` (B, n)
    weigh each sample's error per neuron (:func:`~neuromech.rmm.derivative_weights`)."""
    pred = jax.vmap(lambda a, b, c, d: circuit_derivative(circuit, a, b, c, d))(v_all, xs, ss, i_app)
    err = (pred - dvdt) ** 2
    if weights is not None:
        err = weights * err
    return jnp.sum(jnp.mean(err, axis=0) / scale) + circuit.penalty(weight_decay) / v_all.shape[0]


def current_penalty(circuit: Circuit, v_all, xs, ss, scale, weights=None):
    """Σ over neurons of the mean over rows of Σ (I / C)² over its intrinsic and synaptic currents
    I, over the neuron's dv/dt target variance ``scale`` (n,): a ridge on the currents, in the
    units of the teacher-forcing loss. ``weights`` (B, n) as in that loss.

    Teacher forcing fits each neuron's *sum* of currents. Of the many splits of one sum it leaves
    the choice to chance, and in a half-centre oscillator, where a cell's own slow state and the
    inhibition it receives move together, it finds splits in which a synapse and an intrinsic
    current grow together against each other: with data seed 2 (``bench_online.py --only hco``,
    300 epochs, teacher forcing alone) the read-out A→B rose to twice the true current through the
    burst of A (RMSE 3.1 nA against the true current's std 1.5 nA). Of the splits that fit dv/dt
    equally well, the penalty prefers the one with the smaller currents.
    """
    sq = jnp.stack([jax.vmap(lambda a, b: jnp.sum(membrane_currents(m, a, b) ** 2))(v_all[:, q], xs[q])
                    for q, m in enumerate(circuit.neurons)], axis=1)
    if circuit.synapses:
        i_syn = jax.vmap(lambda a, b: synaptic_currents(circuit, a, b))(v_all, ss)
        post = jnp.asarray([syn.post for syn in circuit.synapses])
        sq = sq + jnp.zeros_like(sq).at[:, post].add(i_syn**2)
    sq = sq / jnp.stack([m.capacitance for m in circuit.neurons]) ** 2
    if weights is not None:
        sq = weights * sq
    return jnp.sum(jnp.mean(sq, axis=0) / scale)


def overshoot_penalty(circuit: Circuit, v_all, xs, ss, i_app):
    """Σ over neurons of the mean over rows of ``relu(−dt ∂f_i/∂v_i − 1)²``, with f_i neuron i's
    dv/dt (:func:`~neuromech.rmm.circuit_derivative`) at the rows' voltages ``v_all`` (B, C) and
    states.

    A free run is the explicit map ``v[k+1] = v[k] + dt f(v[k], x[k])``; its slope in v[k] is
    ``1 + dt ∂f/∂v``. Where that is negative the map overshoots from one sample to the next, and
    below −1 the overshoot grows until the run diverges. The exact one-step map of a membrane is
    monotone (for a chord conductance g its slope is exp(−g dt / C) > 0, its effective
    conductance C (1 − exp(−g dt / C)) / dt < C / dt), so a model of the data need not go there,
    but teacher forcing alone does not see the slope: on the half-centre oscillator it learned
    spike-peak conductances of up to 95 µS with C = 1 nF and dt = 0.1 ms (C / dt = 10 µS), and
    from its 50th epoch on every validation free run diverged within a spike (``bench_online.py
    --only hco --train-s 24 --drive-std 0.5 --known-c --epochs 150 --rollout none --stability 0``).
    """
    n = len(circuit.names)

    def own_slopes(v, x, s, i):
        J = jax.jacfwd(lambda vm: circuit_derivative(circuit, jnp.concatenate([vm, v[n:]]), x, s, i))(v[:n])
        return jnp.diagonal(J)

    d = jax.vmap(own_slopes)(v_all, xs, ss, i_app)
    return jnp.sum(jnp.mean(jax.nn.relu(-circuit.dt * d - 1.0) ** 2, axis=0))


def _teacher_forcing_arrays(circuit, data, dtype, *, centred: bool = False, weighting: float = 0.0, blank: int = 0):
    """Teacher-forcing rows of every sweep: ``(v_all, xs, ss, i, dvdt, weights, clamped)``.

    ``v_all`` (N, C) holds the measured voltages, the modelled neurons' moved to
    :func:`~neuromech.rmm.centred_voltage` with ``centred`` (their noise then no longer correlates
    with the dv/dt target's; the exogenous voltages act only through their filter states, which
    hold past samples only). ``weights`` (N, n): per neuron, :func:`derivative_weights` of its
    dv/dt with power ``weighting`` (all ones for 0): spikes hold nearly all of dv/dt's variance,
    and unweighted they leave the slow subthreshold dynamics (where the graded synaptic currents
    act) to chance. Under voltage clamp the voltage does not move: the target is 0 and the
    recorded current the clamp's; the weights are 0 on the samples :func:`clamp_masks` leaves
    out (``blank`` samples after each step of a command). ``clamped`` (N, n) marks the clamped rows.
    """
    n = len(circuit.names)
    parts = []
    for v, i, xs, ss, command in _sweeps(circuit, data, training=True):
        dvdt = np.diff(v[:, :n], axis=0) / circuit.dt
        v_in = v.copy()
        if centred:
            for q in range(n):
                v_in[:, q] = centred_voltage(v[:, q])
        clamped, left_out = clamp_masks(command, blank)
        quiet = np.where(left_out[:-1], 0.0, dvdt)  # a command's step is no spike: it must not set the weights
        w = (np.column_stack([derivative_weights(quiet[:, q], circuit.dt, power=weighting) for q in range(n)])
             if weighting else np.ones_like(dvdt))
        w = w * ~left_out[:-1]
        parts.append((v_in[:-1], i[:-1], dvdt, [x[:-1] for x in xs], [x[:-1] for x in ss], w, clamped[:-1]))
    cat = lambda get: jnp.asarray(np.concatenate([get(p) for p in parts]), dtype)  # noqa: E731
    xs = tuple(cat(lambda p, k=k: p[3][k]) for k in range(len(circuit.neurons)))
    ss = tuple(cat(lambda p, k=k: p[4][k]) for k in range(len(circuit.synapses)))
    w = np.concatenate([p[5] for p in parts])
    return (cat(lambda p: p[0]), xs, ss, cat(lambda p: p[1]), cat(lambda p: p[2]), jnp.asarray(_unit_mean(w), dtype),
            np.concatenate([p[6] for p in parts]))


def _unit_mean(w):
    """Weights scaled to mean 1 per column; an all-zero column stays 0."""
    return w / np.maximum(w.mean(axis=0), 1e-300)


def target_variance(dvdt, w):
    """(n,) each neuron's weighted variance of its dv/dt target (the teacher-forcing loss's unit)."""
    total = jnp.maximum(jnp.sum(w, 0), 1e-12)  # a neuron with no weight (not clamped, in the clamp stage)
    mean = jnp.sum(w * dvdt, 0) / total
    return jnp.maximum(jnp.sum(w * (dvdt - mean) ** 2, 0) / total, 1e-12)


def _windows(circuit, data, length, dtype, stride=None):
    """Windows of ``length`` steps every ``stride`` samples (default ``length``): v_meas (W, L+1, n),
    v_exo (W, L, e), i (W, L, n), teacher-forced start states, and the index of the next window
    of the same sweep (−1 at a sweep's end or before a gap; meaningful for non-overlapping
    windows). Windows that touch a voltage-clamp stretch are left out: a model runs free in them."""
    n = len(circuit.names)
    stride = length if stride is None else stride
    out = {"vm": [], "ve": [], "i": [], "xs": [], "ss": [], "next": []}
    for v, i, xs, ss, command in _sweeps(circuit, data, training=True):
        free = ~np.isfinite(command).any(axis=1)
        starts = [a for a in range(0, v.shape[0] - length, stride) if free[a:a + length + 1].all()]
        base = len(out["vm"])
        for w, a in enumerate(starts):
            out["vm"].append(v[a:a + length + 1, :n])
            out["ve"].append(v[a:a + length, n:])
            out["i"].append(i[a:a + length])
            out["xs"].append([x[a] for x in xs])
            out["ss"].append([x[a] for x in ss])
            out["next"].append(base + w + 1 if w + 1 < len(starts) and starts[w + 1] == a + stride else -1)
    if not out["vm"]:
        raise ValueError(f"the recordings hold no stretch of {length} samples without voltage clamp (one window)")
    arr = lambda x: jnp.asarray(np.stack(x), dtype)  # noqa: E731
    xs = tuple(arr([w[k] for w in out["xs"]]) for k in range(len(circuit.neurons)))
    ss = tuple(arr([w[k] for w in out["ss"]]) for k in range(len(circuit.synapses)))
    return arr(out["vm"]), arr(out["ve"]), arr(out["i"]), xs, ss, jnp.asarray(out["next"])


def window_loss(circuit: Circuit, v0, xs0, ss0, v_meas, v_exo, i_app, gamma, scale, measured_partners=False):
    """Mean over windows of Σ_neurons mean((v_model − v_meas)²) / scale, each window run from
    ``(v0, xs0, ss0)`` with GTF mixing ``gamma`` (0: closed loop), the neurons jointly or each
    against its partners' measured voltages (``measured_partners``). Also returns the end states."""
    def one(v, xs, ss, vm, ve, ia):
        vs, _, end = run_circuit(circuit, (v, xs, ss), ve, ia, vm[:-1], gamma, measured_partners)
        pred = jnp.concatenate([vs[1:], end[0][None]])
        return jnp.sum(jnp.mean((pred - vm[1:]) ** 2, axis=0) / scale), end

    errs, ends = jax.vmap(one)(v0, xs0, ss0, v_meas, v_exo, i_app)
    return jnp.mean(errs), ends


def fit_circuit(circuit: Circuit, train, optimizer: optax.GradientTransformation | None = None, *,
                settings: CircuitTrainingSettings = CircuitTrainingSettings(), validation=None,
                threshold: float = 0.0, warmup: float = 0.0, progress: bool = True):
    """Train a circuit RMM on one or several :class:`CircuitRecording` s.

    Main arguments:
        circuit: an initialised :class:`Circuit` (:func:`init_circuit`, or a trained one to refine).
        train: a CircuitRecording or a list of them (same dt).
        optimizer: any optax transformation; default Adam at ``settings.learning_rate`` (with
            ``settings.schedule``).

    Other arguments:
        settings: :class:`CircuitTrainingSettings` (method, epochs, batch, window, γ schedule,
            teacher forcing's weighting, centred input and rollout stage).
        validation: recording(s) for model selection: every ``validate_every`` teacher-forcing
            epochs and after every rollout or GTF/shooting epoch the circuit runs free on them
            (:func:`~neuromech.rmm.evaluate_circuit`) and the best-scoring parameters are returned
            (:func:`circuit_selection_score`); without validation the last ones are.
        threshold: spike threshold (mV) and warmup (ms) of the validation runs.
        progress: tqdm bar.

    Returns:
        ``(circuit, history)`` with per-epoch ``loss``, ``gamma`` (GTF), ``rollout_loss``,
        ``validation`` records, ``best_epoch``, ``best_stage``, ``method``, ``time_s`` and
        ``teacher_forcing_s`` (the main method's stage); ``fixed_synapses`` (names) and, where
        there are any, ``clamp_loss`` and ``clamp_stage_s`` (``CircuitTrainingSettings.clamp_stage``).

    Raises:
        ValueError: for data missing a channel, a different dt, too short for one window (of
            current clamp), or validation data under voltage clamp.
        FloatingPointError: if the loss stops being finite.

    Example:
        >>> circuit, hist = fit_circuit(init_circuit(rec, settings), rec)   # doctest: +SKIP
    """
    from ._circuit_validate import circuit_selection_score, evaluate_circuit

    start = time.perf_counter()
    s = settings
    for rec in [] if validation is None else (validation if isinstance(validation, (list, tuple)) else [validation]):
        check_free(rec, circuit.names, "validation (a free run)")
    dtype = circuit.neurons[0].bank.A.dtype
    spec = circuit.spec()
    params = unconstrain(circuit, spec)
    history = {"loss": [], "gamma": [], "method": s.method, "validation": [], "best_epoch": None,
               "best_stage": None}
    key = jax.random.PRNGKey(s.seed)
    n_syn, n_cells = len(circuit.synapses), len(circuit.neurons)
    best = [None]
    get = (lambda p: p[0]) if s.method == "shooting" else (lambda p: p)  # noqa: E731

    def checked(stage, epoch):
        """Whether this epoch's free run is validated: every rollout, GTF and shooting epoch; of
        teacher forcing the last, and every ``validate_every`` only without a rollout stage (see
        CircuitTrainingSettings)."""
        if stage != "teacher forcing" or epoch == s.epochs:
            return True
        return s.rollout is None and epoch % s.validate_every == 0

    def check(stage):
        def after(epoch, loss, p):
            if stage == s.method:
                history["gamma"].append(s.gamma(epoch) if s.method == "gtf" else 0.0)
            if validation is None or not checked(stage, epoch):
                return
            metrics, _ = evaluate_circuit(constrain(get(p), circuit, spec), validation, threshold=threshold,
                                          warmup=warmup, readout=False)
            score = circuit_selection_score(metrics["summary"])
            history["validation"].append({"epoch": epoch, "stage": stage, "score": score, **metrics["summary"]})
            if best[0] is None or score > best[0][0]:
                best[0] = (score, get(p), epoch, stage)
        return after

    def adam(rate, steps, floor):
        return optax.adam(optax.cosine_decay_schedule(rate, steps, floor) if s.schedule == "cosine" else rate)

    def split_states(rest):
        return tuple(rest[:n_cells]), tuple(rest[n_cells:n_cells + n_syn])

    fixed = clamped_synapses(circuit, train) if s.clamp_stage else ()
    if s.method == "teacher forcing" or fixed:
        v, xs, ss, i, dvdt, w, clamped = _teacher_forcing_arrays(
            circuit, train, dtype, centred=s.centred, weighting=s.weighting,
            blank=int(round(s.clamp_blank_ms / circuit.dt)))
        # Each row's fixed random offset of the modelled voltages where the overshoot penalty looks.
        offsets = s.stability_jitter * jax.random.normal(jax.random.fold_in(key, 1), dvdt.shape, dtype)
        batch = min(s.batch_size, v.shape[0])
        steps = s.epochs * max(v.shape[0] // batch, 1)

        def tf_loss(scale):
            def loss_rows(p, rows, _):
                vr, ir, dr, wr, off, *rest = rows
                xr, sr = split_states(rest)
                c = constrain(p, circuit, spec)
                loss = circuit_teacher_forcing_loss(c, vr, xr, sr, ir, dr, scale, s.weight_decay, wr)
                if s.stability:
                    loss = loss + s.stability * overshoot_penalty(c, vr.at[:, :n_cells].add(off), xr, sr, ir)
                if s.current_penalty:
                    loss = loss + s.current_penalty * current_penalty(c, vr, xr, sr, scale, wr)
                return loss
            return loss_rows

    if fixed:  # the synapses onto clamped cells, from the clamped samples alone; then fixed
        w_clamp = jnp.asarray(_unit_mean(np.asarray(w) * clamped), dtype)
        history["clamp_loss"] = []
        params = run_epochs(params, (v, i, dvdt, w_clamp, offsets, *xs, *ss), tf_loss(target_variance(dvdt, w_clamp)),
                            optimizer or adam(s.learning_rate, steps, 0.05), epochs=s.epochs, batch=batch,
                            key=jax.random.fold_in(key, 20_000), desc="clamp", progress=progress,
                            history=history["clamp_loss"])
        history["clamp_stage_s"] = time.perf_counter() - start
    history["fixed_synapses"] = [circuit.synapses[k].name for k in fixed]

    if s.method == "teacher forcing":
        if fixed:  # the clamped samples have measured the synapses; the rest is fitted on free ones
            measured = sorted({circuit.synapses[k].post for k in fixed})
            w = np.array(w)
            w[:, measured] *= ~clamped[:, measured]
            w = jnp.asarray(_unit_mean(w), dtype)
        arrays = (v, i, dvdt, w, offsets, *xs, *ss)
        optimizer = freeze(optimizer or adam(s.learning_rate, steps, 0.05), spec, fixed)
        loss_rows = tf_loss(target_variance(dvdt, w))
        trainable = params
    else:
        vm, ve, ia, xs0, ss0, nxt = _windows(circuit, train, s.window, dtype)
        scale = jnp.maximum(jnp.var(vm.reshape(-1, vm.shape[-1]), axis=0), 1e-12)
        n = vm.shape[0]
        batch = min(s.batch_size, n)
        optimizer = freeze(optimizer or adam(s.learning_rate, s.epochs * max(n // batch, 1), 0.05), spec, fixed)
        shooting = s.method == "shooting"
        x_scale = tuple(jnp.std(x, axis=0) + 1e-6 for x in xs0 + ss0)
        arrays = (jnp.arange(n), vm, ve, ia, *xs0, *ss0)
        # Shooting trains every shot's start; GTF starts each window from the teacher-forced states.
        trainable = (params, vm[:, 0], xs0, ss0) if shooting else params

        def loss_rows(p, rows, gamma):
            idx, vr, er, ir, *rest = rows
            xr, sr = split_states(rest)
            if not shooting:
                c = constrain(p, circuit, spec)
                err, _ = window_loss(c, vr[:, 0], xr, sr, vr, er, ir, gamma, scale)
                return err + c.penalty(s.weight_decay) / batch
            c = constrain(p[0], circuit, spec)
            err, (v_end, xs_end, ss_end) = window_loss(c, p[1][idx], tuple(x[idx] for x in p[2]),
                                                       tuple(x[idx] for x in p[3]), vr, er, ir, 0.0, scale)
            nx = jnp.maximum(nxt[idx], 0)
            has = nxt[idx] >= 0
            sg = jax.lax.stop_gradient
            gap = jnp.sum((v_end - sg(p[1][nx])) ** 2 / scale, axis=1)
            for a, b, sc in zip(xs_end + ss_end, p[2] + p[3], x_scale):
                gap = gap + jnp.mean(((a - sg(b[nx])) / sc) ** 2, axis=1)
            return err + s.continuity * jnp.sum(jnp.where(has, gap, 0.0)) / batch + c.penalty(s.weight_decay) / batch

    trainable = run_epochs(trainable, arrays, loss_rows, optimizer, epochs=s.epochs, batch=s.batch_size, key=key,
                           desc=s.method, progress=progress, history=history["loss"],
                           extra=s.gamma if s.method == "gtf" else (lambda epoch: 0.0),
                           after_epoch=check(s.method))
    params = best[0][1] if best[0] is not None else get(trainable)
    history["teacher_forcing_s"] = time.perf_counter() - start - history.get("clamp_stage_s", 0.0)

    if s.method == "teacher forcing" and s.rollout is not None:
        r = s.rollout
        vm, ve, ia, xs0, ss0, _ = _windows(circuit, train, r.length, dtype, r.stride)
        wscale = jnp.maximum(jnp.var(vm[:, -1] - vm[:, 0], axis=0), 1e-12)
        wbatch = min(r.batch_size, vm.shape[0])
        rate = optax.cosine_decay_schedule(r.learning_rate, r.epochs * max(vm.shape[0] // wbatch, 1), 0.1)
        history["rollout_loss"] = []

        def ro_loss(p, rows, gamma):
            vr, er, ir, *rest = rows
            xr, sr = split_states(rest)
            c = constrain(p, circuit, spec)
            err, _ = window_loss(c, vr[:, 0], xr, sr, vr, er, ir, gamma, wscale, r.partners == "measured")
            return err + c.penalty(s.weight_decay) / (vr.shape[0] * vr.shape[1])

        params = run_epochs(params, (vm, ve, ia, *xs0, *ss0), ro_loss, freeze(optax.adam(rate), spec, fixed),
                            epochs=r.epochs, batch=wbatch, key=jax.random.fold_in(key, 10_000), desc="rollout",
                            progress=progress, history=history["rollout_loss"], extra=r.gamma,
                            after_epoch=check("rollout"), stop_if_not_finite=True)
    if best[0] is not None:
        params, history["best_epoch"], history["best_stage"] = best[0][1], best[0][2], best[0][3]
    history["time_s"] = time.perf_counter() - start
    return constrain(params, circuit, spec), history


def circuit_readout(circuit: Circuit, data, *, warmup: int = 0) -> dict:
    """Teacher-forced read-out of every synaptic current (nA) from measured voltages, per sweep:
    ``{"syn A->B": (n_sweeps, T) array}``. The synapses' banks start at rest at the first voltage
    (causal), or with ``warmup`` (samples) as :func:`circuit_warm_start` starts a free run
    (causal from sample ``warmup`` on)."""
    out = {s.name: [] for s in circuit.synapses}
    f = jax.jit(jax.vmap(lambda v, ss: synaptic_currents(circuit, v, ss)))
    dtype = circuit.neurons[0].bank.A.dtype
    for v, _, _, ss, _ in _sweeps(circuit, data, warmup=warmup):
        cur = np.asarray(f(jnp.asarray(v, dtype), tuple(jnp.asarray(x, dtype) for x in ss)))
        for k, syn in enumerate(circuit.synapses):
            out[syn.name].append(cur[:, k])
    return {k: np.stack(v) for k, v in out.items()}


def circuit_warm_start(circuit: Circuit, voltages, n: int):
    """The circuit's state after ``n`` samples of *measured* voltages (causal teacher-forced warm-up).

    ``voltages`` (n_channels, ≥ n+1) mV in the order of ``circuit.channels``. A free run started
    with every bank at rest begins off the attractor when the cells are mid-cycle; following the
    measured voltages first puts the slow states where the data say. Each bank starts at rest at
    the mean of its input over the warm-up, as the single-neuron evaluation does (``warmup`` of
    :func:`~neuromech.rmm.evaluate`): the first sample of a window cut out of ongoing activity
    may sit on a spike (+40 mV), and half of that offset would be left in a 1.5 s state after a
    1 s warm-up. Returns ``(v, xs, ss)`` at sample ``n``, to pass as ``start`` to
    :func:`simulate_circuit`.
    """
    v = np.asarray(voltages, np.float64)
    if v.ndim != 2 or v.shape[0] != len(circuit.channels) or v.shape[1] < n + 1:
        raise ValueError(f"warm-up needs voltages ({len(circuit.channels)}, ≥ {n + 1}) for channels "
                         f"{list(circuit.channels)}, got {v.shape}")
    dtype = circuit.neurons[0].bank.A.dtype
    seg = v[:, : n + 1]
    xs = tuple(jnp.asarray(warm_states(m.bank, seg[i])[-1], dtype) for i, m in enumerate(circuit.neurons))
    ss = tuple(jnp.asarray(warm_states(s.bank, seg[s.pre])[-1], dtype) for s in circuit.synapses)
    return jnp.asarray(seg[: len(circuit.names), -1], dtype), xs, ss
