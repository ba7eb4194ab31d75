"""Training circuit RMMs: teacher forcing, multiple shooting and generalised teacher forcing.

- Teacher forcing: every filter bank is driven by the *measured* voltages; each neuron's dv/dt is a
  static regression target (the single-neuron scheme of :func:`~neuromech.rmm.fit`, summed over
  neurons, each normalised by its target's variance).
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

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ._circuit import Circuit, circuit_derivative, run_circuit
from ._circuit_build import check_channels
from ._filters import filter_signal
from ._params import constrain, unconstrain

METHODS = ("teacher forcing", "shooting", "gtf")


@dataclasses.dataclass(frozen=True)
class CircuitTrainingSettings:
    """How :func:`fit_circuit` trains.

    Attributes:
        method: ``"teacher forcing"``, ``"shooting"`` or ``"gtf"``.
        epochs, batch_size (samples for teacher forcing, windows otherwise), learning_rate (Adam),
        weight_decay, seed.
        window: samples per window (GTF) or shot (shooting: 10–40).
        gamma_start, gamma_end: GTF mixing γ at the first and last epoch (linear schedule).
        continuity: shooting's penalty on the mismatch between consecutive shots.
    """

    method: str = "teacher forcing"
    epochs: int = 30
    batch_size: int = 2048
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    seed: int = 0
    window: int = 200
    gamma_start: float = 0.5
    gamma_end: float = 0.1
    continuity: float = 1.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.window < 2:
            raise ValueError("epochs and batch_size must be ≥ 1 and window ≥ 2 samples")
        if self.method == "shooting" and not 10 <= self.window <= 40:
            raise ValueError(f"shooting shots must be 10–40 samples (window), got {self.window}")
        if not (0 <= self.gamma_end <= 1 and 0 <= self.gamma_start <= 1):
            raise ValueError(f"γ must lie in [0, 1], got {self.gamma_start} → {self.gamma_end}")

    def gamma(self, epoch: int) -> float:
        """γ at ``epoch`` (1-based): linear from gamma_start to gamma_end."""
        f = 0.0 if self.epochs == 1 else (epoch - 1) / (self.epochs - 1)
        return self.gamma_start + f * (self.gamma_end - self.gamma_start)


def _sweeps(circuit: Circuit, data):
    """Per sweep: measured voltages (T, C), currents (T, n), intrinsic and synaptic filter states."""
    from ..recordings._circuit import CircuitRecording

    recs = [data] if isinstance(data, CircuitRecording) else list(data)
    check_channels(circuit, recs)
    for rec in recs:
        if abs(rec.dt - circuit.dt) > 1e-9 * circuit.dt:
            raise ValueError(f"recording dt {rec.dt} ms differs from the circuit's {circuit.dt} ms; resample it")
        V, I = rec.voltages(circuit.channels), rec.currents(circuit.names)
        for s in range(rec.n_sweeps):
            v = V[s]
            xs = [filter_signal(m.bank, v[i]) for i, m in enumerate(circuit.neurons)]
            ss = [filter_signal(syn.bank, v[syn.pre]) for syn in circuit.synapses]
            yield v.T, I[s].T, xs, ss


def circuit_teacher_forcing_loss(circuit: Circuit, v_all, xs, ss, i_app, dvdt, scale, weight_decay=0.0):
    """Σ over neurons of the mean squared dv/dt error over its target variance ``scale`` (n,),
    plus priors and the weight penalty, for a batch (rows of every array)."""
    pred = jax.vmap(lambda a, b, c, d: circuit_derivative(circuit, a, b, c, d))(v_all, xs, ss, i_app)
    return jnp.sum(jnp.mean((pred - dvdt) ** 2, axis=0) / scale) + circuit.penalty(weight_decay) / v_all.shape[0]


def _teacher_forcing_arrays(circuit, data, dtype):
    parts = list(_sweeps(circuit, data))
    cat = lambda get: jnp.asarray(np.concatenate([get(p) for p in parts]), dtype)  # noqa: E731
    v = cat(lambda p: p[0][:-1])
    i = cat(lambda p: p[1][:-1])
    dvdt = cat(lambda p: np.diff(p[0][:, : len(circuit.names)], axis=0) / circuit.dt)
    xs = tuple(cat(lambda p, k=k: p[2][k][:-1]) for k in range(len(circuit.neurons)))
    ss = tuple(cat(lambda p, k=k: p[3][k][:-1]) for k in range(len(circuit.synapses)))
    return v, xs, ss, i, dvdt


def _windows(circuit, data, length, dtype):
    """Windows of ``length`` steps: v_meas (W, L+1, n), v_exo (W, L, e), i (W, L, n), start states,
    and the index of the next window of the same sweep (−1 at a sweep's end)."""
    n = len(circuit.names)
    out = {"vm": [], "ve": [], "i": [], "xs": [], "ss": [], "next": []}
    for v, i, xs, ss in _sweeps(circuit, data):
        count = (v.shape[0] - 1) // length
        base = len(out["vm"])
        for w in range(count):
            a = w * length
            out["vm"].append(v[a:a + length + 1, :n])
            out["ve"].append(v[a:a + length, n:])
            out["i"].append(i[a:a + length])
            out["xs"].append([x[a] for x in xs])
            out["ss"].append([x[a] for x in ss])
            out["next"].append(base + w + 1 if w + 1 < count else -1)
    if not out["vm"]:
        raise ValueError(f"the recordings are shorter than one window of {length} samples")
    arr = lambda x: jnp.asarray(np.stack(x), dtype)  # noqa: E731
    xs = tuple(arr([w[k] for w in out["xs"]]) for k in range(len(circuit.neurons)))
    ss = tuple(arr([w[k] for w in out["ss"]]) for k in range(len(circuit.synapses)))
    return arr(out["vm"]), arr(out["ve"]), arr(out["i"]), xs, ss, jnp.asarray(out["next"])


def window_loss(circuit: Circuit, v0, xs0, ss0, v_meas, v_exo, i_app, gamma, scale):
    """Mean over windows of Σ_neurons mean((v_model − v_meas)²) / scale, each window run from
    ``(v0, xs0, ss0)`` with GTF mixing ``gamma`` (0: closed loop). Also returns the end states."""
    def one(v, xs, ss, vm, ve, ia):
        vs, _, end = run_circuit(circuit, (v, xs, ss), ve, ia, vm[:-1], gamma)
        pred = jnp.concatenate([vs[1:], end[0][None]])
        return jnp.sum(jnp.mean((pred - vm[1:]) ** 2, axis=0) / scale), end

    errs, ends = jax.vmap(one)(v0, xs0, ss0, v_meas, v_exo, i_app)
    return jnp.mean(errs), ends


def fit_circuit(circuit: Circuit, train, optimizer: optax.GradientTransformation | None = None, *,
                settings: CircuitTrainingSettings = CircuitTrainingSettings(), progress: bool = True):
    """Train a circuit RMM on one or several :class:`CircuitRecording` s.

    Main arguments:
        circuit: an initialised :class:`Circuit` (:func:`init_circuit`, or a trained one to refine).
        train: a CircuitRecording or a list of them (same dt).
        optimizer: any optax transformation; default Adam at ``settings.learning_rate``.

    Other arguments:
        settings: :class:`CircuitTrainingSettings` (method, epochs, batch, window, γ schedule).
        progress: tqdm bar.

    Returns:
        ``(circuit, history)`` with per-epoch ``loss``, ``gamma`` (GTF), ``method`` and ``time_s``.

    Raises:
        ValueError: for data missing a channel, a different dt, or too short for one window.
        FloatingPointError: if the loss stops being finite.

    Example:
        >>> circuit, hist = fit_circuit(init_circuit(rec, settings), rec)   # doctest: +SKIP
    """
    start = time.perf_counter()
    s = settings
    optimizer = optimizer or optax.adam(s.learning_rate)
    dtype = circuit.neurons[0].bank.A.dtype
    spec = circuit.spec()
    params = unconstrain(circuit, spec)
    history = {"loss": [], "gamma": [], "method": s.method}
    key = jax.random.PRNGKey(s.seed)

    if s.method == "teacher forcing":
        v, xs, ss, i, dvdt = _teacher_forcing_arrays(circuit, train, dtype)
        scale = jnp.maximum(jnp.var(dvdt, axis=0), 1e-12)
        n = v.shape[0]
        batch = min(s.batch_size, n)
        n_batches = n // batch

        def loss_rows(p, rows):
            c = constrain(p, circuit, spec)
            sub = lambda t: tuple(a[rows] for a in t)  # noqa: E731
            return circuit_teacher_forcing_loss(c, v[rows], sub(xs), sub(ss), i[rows], dvdt[rows], scale,
                                                s.weight_decay)
        trainable = params
    else:
        vm, ve, ia, xs0, ss0, nxt = _windows(circuit, train, s.window, dtype)
        scale = jnp.maximum(jnp.var(vm.reshape(-1, vm.shape[-1]), axis=0), 1e-12)
        n = vm.shape[0]
        batch = min(s.batch_size, n)
        n_batches = max(n // batch, 1)
        shooting = s.method == "shooting"
        x_scale = tuple(jnp.std(x, axis=0) + 1e-6 for x in xs0 + ss0)
        # Shooting trains every shot's start; GTF starts each window from the teacher-forced states.
        trainable = (params, vm[:, 0], xs0, ss0) if shooting else params

        def loss_rows(p, rows, gamma):
            if not shooting:
                c = constrain(p, circuit, spec)
                err, _ = window_loss(c, vm[rows, 0], tuple(x[rows] for x in xs0), tuple(x[rows] for x in ss0),
                                     vm[rows], ve[rows], ia[rows], gamma, scale)
                return err + c.penalty(s.weight_decay) / batch
            c = constrain(p[0], circuit, spec)
            err, (v_end, xs_end, ss_end) = window_loss(c, p[1][rows], tuple(x[rows] for x in p[2]),
                                                       tuple(x[rows] for x in p[3]), vm[rows], ve[rows], ia[rows],
                                                       0.0, scale)
            nx = jnp.maximum(nxt[rows], 0)
            has = nxt[rows] >= 0
            sg = jax.lax.stop_gradient
            gap = jnp.sum((v_end - sg(p[1][nx])) ** 2 / scale, axis=1)
            for a, b, sc in zip(xs_end + ss_end, p[2] + p[3], x_scale):
                gap = gap + jnp.mean(((a - sg(b[nx])) / sc) ** 2, axis=1)
            return err + s.continuity * jnp.sum(jnp.where(has, gap, 0.0)) / batch + c.penalty(s.weight_decay) / batch

    opt_state = optimizer.init(trainable)

    @eqx.filter_jit
    def epoch_step(trainable, opt_state, key, gamma):
        order = jax.random.permutation(key, n)[: n_batches * batch].reshape(n_batches, batch)

        def step(carry, rows):
            p, o = carry
            fn = (lambda q: loss_rows(q, rows)) if s.method == "teacher forcing" else (lambda q: loss_rows(q, rows, gamma))
            loss, grads = jax.value_and_grad(fn)(p)
            updates, o = optimizer.update(grads, o, p)
            return (optax.apply_updates(p, updates), o), loss

        (p, o), losses = jax.lax.scan(step, (trainable, opt_state), order)
        return p, o, jnp.mean(losses)

    bar = tqdm(range(1, s.epochs + 1), disable=not progress, desc=s.method, unit="epoch")
    for epoch in bar:
        gamma = s.gamma(epoch) if s.method == "gtf" else 0.0
        trainable, opt_state, loss = epoch_step(trainable, opt_state, jax.random.fold_in(key, epoch),
                                                jnp.asarray(gamma, dtype))
        loss = float(loss)
        history["loss"].append(loss)
        history["gamma"].append(gamma)
        bar.set_postfix(loss=f"{loss:.4g}")
        if not np.isfinite(loss):
            raise FloatingPointError(f"the {s.method} loss became {loss} at epoch {epoch}; lower the learning rate")
    bar.close()
    params = trainable[0] if s.method == "shooting" else trainable
    history["time_s"] = time.perf_counter() - start
    return constrain(params, circuit, spec), history


def circuit_readout(circuit: Circuit, data) -> dict:
    """Teacher-forced read-out of every synaptic current (nA) from measured voltages, per sweep:
    ``{"syn A->B": (n_sweeps, T) array}``."""
    from ._circuit import synaptic_currents

    out = {s.name: [] for s in circuit.synapses}
    f = jax.jit(jax.vmap(lambda v, ss: synaptic_currents(circuit, v, ss)))
    dtype = circuit.neurons[0].bank.A.dtype
    for v, _, _, ss in _sweeps(circuit, data):
        cur = np.asarray(f(jnp.asarray(v, dtype), tuple(jnp.asarray(x, dtype) for x in ss)))
        for k, syn in enumerate(circuit.synapses):
            out[syn.name].append(cur[:, k])
    return {k: np.stack(v) for k, v in out.items()}


def circuit_warm_start(circuit: Circuit, voltages, n: int):
    """The circuit's state after ``n`` samples of *measured* voltages (causal teacher-forced warm-up).

    ``voltages`` (n_channels, ≥ n+1) mV in the order of ``circuit.channels``. A free run started
    with every bank at rest begins off the attractor when the cells are mid-cycle; following the
    measured voltages first puts the slow states where the data say. Returns ``(v, xs, ss)`` at
    sample ``n``, to pass as ``start`` to :func:`simulate_circuit`.
    """
    v = np.asarray(voltages, np.float64)
    if v.ndim != 2 or v.shape[0] != len(circuit.channels) or v.shape[1] < n + 1:
        raise ValueError(f"warm-up needs voltages ({len(circuit.channels)}, ≥ {n + 1}) for channels "
                         f"{list(circuit.channels)}, got {v.shape}")
    dtype = circuit.neurons[0].bank.A.dtype
    seg = v[:, : n + 1]
    xs = tuple(jnp.asarray(filter_signal(m.bank, seg[i])[-1], dtype) for i, m in enumerate(circuit.neurons))
    ss = tuple(jnp.asarray(filter_signal(s.bank, seg[s.pre])[-1], dtype) for s in circuit.synapses)
    return jnp.asarray(seg[: len(circuit.names), -1], dtype), xs, ss
