"""Training: teacher forcing (static regression on precomputed filter states), short closed-loop
rollouts from teacher-forced states, then optional multiple shooting (Burghi et al., PNAS 2025;
Burghi, Schapiro et al., Front. Comput. Neurosci. 2025).

Every stage runs the one loop :func:`run_epochs` on a public pure loss
(:func:`teacher_forcing_loss`, :func:`~neuromech.rmm._rollout.rollout_loss`,
:func:`shooting_loss`) with any optax optimiser; model selection uses free runs on validation
recordings, across stages.

What the defaults do, and why (measured on 20 s of synthetic HH, 0.2 mV noise, held-out free-run
spike coincidence 0.49 with plain teacher forcing): teacher-forcing samples are weighted so that
spikes no longer drown the subthreshold dynamics (:func:`derivative_weights`: 0.69); the voltage
input is decorrelated from the target's noise (``centred``); four epochs of 4 ms closed-loop
rollouts then fit what the one-step regression cannot see (with weighting: 0.86–0.88).
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ._build import as_recordings, sweep_states, teacher_forcing_data
from ._filters import rest_state
from ._model import RMM, derivatives, rmm_step
from ._params import constrain, unconstrain
from ._rollout import rollout_loss, rollout_windows
from ._settings import ShootingSettings, TrainingSettings
from ._validate import evaluate, selection_score

# Quantile of the local dv/dt scale that weighs 1/2 (derivative_weights).
WEIGHT_QUANTILE = 0.5
# Largest local dv/dt scale over the reference one (derivative_weights): bounds the weights' range.
WEIGHT_SPAN = 10.0


def teacher_forcing_loss(model: RMM, v, x, i, dvdt, scale, weight_decay: float = 0.0, huber: float = 0.0,
                         weights=None, guard=None):
    """Mean squared error of the predicted dv/dt on a batch, over ``scale`` (the target's
    variance, so 1 = predicting the mean), plus priors and the L2 weight penalty.

    With ``huber > 0`` residuals beyond ``huber · √scale`` count linearly (Huber loss). With
    ``weights`` (B,) each sample's error is weighted (see :func:`derivative_weights`). With
    ``guard = (v_grid, i_max, strength)`` it adds ``strength ·`` :func:`steady_state_penalty`,
    its resting states evaluated in the same pass of the model as the batch: the same value as
    adding the penalty separately, but one copy of the model's graph to compile instead of two
    (HH preset, 60 s at 10 kHz, 2048-sample batches, one core: an epoch's compile 8.2 → 6.0 s).
    """
    n = v.shape[0]
    if guard is not None:
        v_grid, i_max, strength = guard
        vg, xg, ig = _resting_rows(model, v_grid, i_max)
        v, x, i = (jnp.concatenate([a, b.astype(a.dtype)]) for a, b in ((v, vg), (x, xg), (i, ig)))
    pred = derivatives(model, v, x, i)
    r = (pred[:n] - dvdt) / jnp.sqrt(scale)
    if huber > 0:
        a = jnp.abs(r)
        err = jnp.where(a <= huber, r**2, 2 * huber * a - huber**2)
    else:
        err = r**2
    if weights is not None:
        err = weights * err
    loss = jnp.mean(err) + model.penalty(weight_decay) / n
    if guard is not None:
        loss = loss + strength * _resting_hinge(pred[n:], scale)
    return loss


def derivative_weights(dvdt, dt: float, *, power: float = 1.0, smooth: float = 1.0,
                       quantile: float = WEIGHT_QUANTILE, span: float = WEIGHT_SPAN) -> np.ndarray:
    """(N,) teacher-forcing sample weights ``1 / (1 + s/s₀)^power``, scaled to mean 1.

    ``s`` is the RMS of the target dv/dt over a centred window of ± ``smooth`` ms and ``s₀`` its
    ``quantile`` (the median by default; a higher one spares moderate transients such as the
    charging after a current step and down-weights only the spikes), but at least ``max(s) / span``.
    Spike samples hold almost all of the variance of dv/dt (upstrokes of 100 mV/ms against
    ~1 mV/ms between spikes), so an unweighted fit spends its capacity on the spike shape and
    leaves the subthreshold dynamics, which decide *when* the next spike comes, to chance; the
    weights even that out. The window average makes them a function of where the sample lies
    (spike or not), not of its own measurement noise, which would bias the fit.

    Why the floor ``max(s) / span``: between spikes ``s`` is mostly measurement noise, so the median
    alone makes the weighting's strength depend on the recording's noise level. The fastest
    transient (a spike's upstroke, ``max(s)``) is set by the cell, not by the noise: with the floor,
    the weight of a spike sample relative to a quiet one is at least about ``1 / (1 + span)^power``
    on any record. Measured ``s`` (mV/ms, median / max): synthetic HH with 0.2 mV noise 3.5 / 112,
    synthetic STG 3.2 / 186, real cell A (pyABF 171116sh_0016/0018) 0.33 / 115. With the median
    alone, power 1 left cell A's spike samples 90 times lighter than its quiet ones and the model
    never fired (0 spikes on held-out sweeps against 24); with a floor at max(s)/30 one of three
    teacher-forcing checkpoints fired (0, 22, 3 spikes against 14 on the validation sweeps, seed 0),
    with max(s)/10 all three (23, 8, 16).
    """
    d = np.asarray(dvdt, np.float64)
    half = max(int(round(smooth / dt)), 0)
    box = np.ones(2 * half + 1) / (2 * half + 1)
    s = np.sqrt(np.convolve(d**2, box, mode="same"))
    s0 = max(float(np.quantile(s, quantile)), float(s.max()) / span if span > 0 else 0.0, 1e-12)
    w = (1.0 + s / s0) ** (-power)
    return w / w.mean()


def steady_state_grid(recordings, *, quantile: float = 0.99, margin: float = 5.0, n: int = 32):
    """Where :func:`steady_state_penalty` looks: ``(v_grid, i_max)``, ``n`` voltages (mV) from the
    training voltage's ``quantile`` plus ``margin`` up to its maximum, and the largest injected
    current (nA) of the training data (holding offset excluded; the model adds its own).

    The data spend less than 1 − ``quantile`` of their time above the grid's start (spikes), so
    the cell has no resting state there under any current it received."""
    recs = as_recordings(recordings)
    v = np.concatenate([np.asarray(r.voltage, np.float64).ravel() for r in recs])
    i_max = max(float(np.max(r.current)) for r in recs)
    lo, hi = float(np.quantile(v, quantile)) + margin, float(v.max())
    return np.linspace(lo, max(hi, lo + margin), n), i_max


def steady_state_penalty(model: RMM, v_grid, i_max, scale, rate: float = 1.0):
    """Mean over ``v_grid`` of ``relu(dv/dt + rate)² / scale``, dv/dt (mV/ms) at rest at v (every
    filter state at its DC value for v) under the current ``i_max`` (nA).

    A depolarised stable fixed point, where the voltage sits still far above anything the cell
    does between spikes, costs teacher forcing nothing (no sample lies there with settled filter
    states) but ends a free run: on real cell A one fit locked at −16 mV from the first current
    step on and stayed there through the rest of the 3 s sweep. Asking the membrane to repolarise
    at no less than ``rate`` mV/ms from every resting state above the data's range, under the
    largest current they hold, forbids such states; a hinge, it leaves a model that already
    repolarises there (any HH-like K current does, by orders of magnitude) untouched.
    """
    return _resting_hinge(derivatives(model, *_resting_rows(model, v_grid, i_max)), scale, rate)


def _resting_rows(model: RMM, v_grid, i_max):
    """(v, x, i) rows of the resting states on ``v_grid`` under ``i_max`` (steady_state_penalty)."""
    v = jnp.asarray(v_grid, model.bank.A.dtype)
    return v, rest_state(model.bank, v[:, None]), jnp.full_like(v, i_max)


def _resting_hinge(dvdt, scale, rate: float = 1.0):
    return jnp.mean(jax.nn.relu(dvdt + rate) ** 2) / scale


def _select(model, validation, threshold, best, params, epoch, history, warmup=0.0, stage="teacher forcing"):
    _, summary, _ = evaluate(model, validation, threshold=threshold, warmup=warmup)
    score = selection_score(summary)
    history["validation"].append({"epoch": epoch, "stage": stage, "score": score, **summary})
    if best is None or score > best[0]:
        return (score, params, epoch, stage)
    return best


def run_epochs(params, arrays, loss_rows, optimizer, *, epochs, batch, key, desc, progress, history,
               extra=lambda epoch: 0.0, after_epoch=None, stop_if_not_finite=False):
    """The training loop shared by teacher forcing and rollouts: shuffled mini-batches of the
    rows of ``arrays``, ``loss_rows(params, batch_arrays, extra)`` minimised by ``optimizer``.

    A loss that stops being finite raises FloatingPointError; with ``stop_if_not_finite`` (a
    refinement stage, whose starting point is already a model) it ends the stage instead, with a
    warning, and returns the parameters of the last finite epoch."""
    n = arrays[0].shape[0]
    batch = min(batch, n)
    n_batches = max(n // batch, 1)
    opt_state = optimizer.init(params)

    @eqx.filter_jit
    def epoch_step(params, opt_state, key, arrays, e):
        order = jax.random.permutation(key, n)[: n_batches * batch].reshape(n_batches, batch)

        def step(carry, rows):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_rows)(params, tuple(a[rows] for a in arrays), e)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, jnp.mean(losses)

    bar = tqdm(range(1, epochs + 1), disable=not progress, desc=desc, unit="epoch")
    for epoch in bar:
        last = params
        params, opt_state, loss = epoch_step(params, opt_state, jax.random.fold_in(key, epoch), arrays,
                                             jnp.asarray(extra(epoch), jnp.result_type(float)))
        loss = float(loss)
        history.append(loss)
        bar.set_postfix(loss=f"{loss:.4g}")
        if not np.isfinite(loss) and stop_if_not_finite:
            warnings.warn(f"the {desc} loss became {loss} at epoch {epoch}; the {desc} stage stops there and keeps "
                          f"the parameters of epoch {epoch - 1} (lower its learning rate to go further)",
                          RuntimeWarning, stacklevel=2)
            bar.close()
            return last
        if not np.isfinite(loss):
            raise FloatingPointError(f"the {desc} loss became {loss} at epoch {epoch}; lower the learning rate")
        if after_epoch is not None:
            after_epoch(epoch, loss, params)
    bar.close()
    return params


def fit(
    model: RMM,
    train,
    optimizer: optax.GradientTransformation | None = None,
    *,
    settings: TrainingSettings = TrainingSettings(),
    validation=None,
    threshold: float = 0.0,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
) -> tuple[RMM, dict]:
    """Train an RMM by teacher forcing, then by short closed-loop rollouts (``settings.rollout``),
    then (``settings.shooting``) by multiple shooting.

    Main arguments:
        model: an initialised :class:`RMM` (:func:`init_rmm`).
        train: training :class:`~neuromech.recordings.Recording` (or a sequence).
        optimizer: any optax transformation for teacher forcing; default Adam at
            ``settings.learning_rate`` with ``settings.schedule`` (cosine decay by default).

    Other arguments:
        settings: :class:`TrainingSettings`: epochs, batch size, sample weighting, centred input,
            weight decay, seed, validation interval, rollout and shooting stages.
        validation: recording(s) for model selection: every ``validate_every`` epochs (and after
            every rollout epoch) the model runs free on them and the best-scoring parameters are
            returned (see :func:`selection_score`); without validation the last ones are returned.
        threshold: spike threshold (mV) for the validation metrics.
        progress: tqdm progress bar; callback: called as ``callback(epoch, loss)`` (teacher forcing).

    Returns:
        ``(model, history)``: the selected model, and a dict with per-epoch ``loss`` (teacher
        forcing), ``rollout_loss``, the ``validation`` records, ``best_epoch``, ``best_stage``,
        the wall time ``time_s`` and that of teacher forcing alone ``teacher_forcing_s``.

    Raises:
        ValueError: for recordings shorter than the longest filter time constant, a dt different
            from the model's, or fewer samples than one batch.

    Example:
        >>> from neuromech.recordings import synthetic_recording      # doctest: +SKIP
        >>> rec = synthetic_recording("hh", 20_000.0)                 # doctest: +SKIP
        >>> train, val, test = rec.split_time()                       # doctest: +SKIP
        >>> model, history = fit(init_rmm(train), train, validation=val)  # doctest: +SKIP
    """
    start = time.perf_counter()
    weighting, rollout = settings.weighting, settings.rollout
    data = teacher_forcing_data(model.bank, train, centred=settings.centred)
    if data.size < 2:
        raise ValueError("the training data hold fewer than 2 samples")
    batch = min(settings.batch_size, data.size)
    if optimizer is None:
        steps = settings.epochs * max(data.size // batch, 1)
        rate = (optax.cosine_decay_schedule(settings.learning_rate, steps, 0.05) if settings.schedule == "cosine"
                else settings.learning_rate)
        optimizer = optax.adam(rate)
    dtype = model.bank.A.dtype
    w = derivative_weights(data.dvdt, model.dt, power=weighting) if weighting else np.ones(data.size)
    arrays = tuple(jnp.asarray(a, dtype) for a in (data.v, data.x, data.i, data.dvdt, w))
    scale = float(np.average((data.dvdt - np.average(data.dvdt, weights=w)) ** 2, weights=w)) or 1.0
    spec = model.spec()
    params = unconstrain(model, spec)
    key = jax.random.PRNGKey(settings.seed)
    history = {"loss": [], "validation": [], "best_epoch": None, "best_stage": None, "method": "teacher forcing"}
    best = [None]

    # The steady-state guard: inside each teacher-forcing batch, added to each rollout loss.
    guard = (*steady_state_grid(train), settings.steady_state) if settings.steady_state else None

    def guard_penalty(m):
        if guard is None:
            return 0.0
        v_grid, i_max, strength = guard
        return strength * steady_state_penalty(m, v_grid, i_max, scale)

    def tf_loss(p, rows, _):
        v, x, i, dvdt, wr = rows
        return teacher_forcing_loss(constrain(p, model, spec), v, x, i, dvdt, scale, settings.weight_decay,
                                    settings.huber, wr if weighting else None, guard)

    def after_tf(epoch, loss, p):
        if callback is not None:
            callback(epoch, loss)
        if validation is not None and (epoch % settings.validate_every == 0 or epoch == settings.epochs):
            best[0] = _select(constrain(p, model, spec), validation, threshold, best[0], p, epoch, history,
                              settings.warmup)

    params = run_epochs(params, arrays, tf_loss, optimizer, epochs=settings.epochs, batch=settings.batch_size,
                        key=key, desc="teacher forcing", progress=progress, history=history["loss"],
                        after_epoch=after_tf)
    if best[0] is not None:
        params = best[0][1]
    history["teacher_forcing_s"] = time.perf_counter() - start

    if rollout is not None:
        win = rollout_windows(model.bank, train, rollout.length, rollout.stride)
        warrays = tuple(jnp.asarray(a, dtype) for a in (win.v, win.x, win.i))
        wscale = float(np.var(win.v[:, -1] - win.v[:, 0])) or 1.0
        wbatch = min(rollout.batch_size, win.size)
        rate = optax.cosine_decay_schedule(rollout.learning_rate, rollout.epochs * max(win.size // wbatch, 1), 0.1)
        history["rollout_loss"] = []

        def ro_loss(p, rows, gamma):
            vm, x0, i = rows
            m = constrain(p, model, spec)
            return rollout_loss(m, vm, x0, i, wscale, gamma, settings.weight_decay) + guard_penalty(m)

        def after_ro(epoch, loss, p):
            if validation is not None:
                best[0] = _select(constrain(p, model, spec), validation, threshold, best[0], p, epoch, history,
                                  settings.warmup, "rollout")

        params = run_epochs(params, warrays, ro_loss, optax.adam(rate), epochs=rollout.epochs, batch=wbatch,
                            key=jax.random.fold_in(key, 10_000), desc="rollout", progress=progress,
                            history=history["rollout_loss"], extra=rollout.gamma, after_epoch=after_ro,
                            stop_if_not_finite=True)
    if best[0] is not None:
        params, history["best_epoch"], history["best_stage"] = best[0][1], best[0][2], best[0][3]
    model = constrain(params, model, spec)
    history["time_s"] = time.perf_counter() - start
    if settings.shooting is not None:
        model, shots = fit_shooting(model, train, None, settings=settings.shooting, validation=validation,
                                    threshold=threshold, progress=progress, seed=settings.seed,
                                    start_score=None if best[0] is None else best[0][0], warmup=settings.warmup)
        history["shooting"] = shots
        history["time_s"] = time.perf_counter() - start
    return model, history


# -------------------------------------------------------------------------------- shooting
def _shots(recordings, bank, length: int):
    """Shots of ``length`` samples: measured v and i, teacher-forced start states, next-shot links."""
    vs, is_, xs, nxt = [], [], [], []
    for rec in as_recordings(recordings):
        for v, i in zip(rec.voltage, rec.current):
            x = sweep_states(bank, v)
            n = (len(v) - 1) // length
            base = len(vs)
            for s in range(n):
                a = s * length
                vs.append(v[a:a + length + 1])
                is_.append(i[a:a + length])
                xs.append(x[a])
                nxt.append(base + s + 1 if s + 1 < n else -1)
    return np.stack(vs), np.stack(is_), np.stack(xs), np.asarray(nxt)


def shooting_loss(model: RMM, v0, x0, v_meas, i_app, v0_next, x0_next, has_next, continuity, x_scale):
    """Multiple-shooting loss of a batch of shots (mean over shots).

    Each shot runs in closed loop for L steps from its trainable start (``v0``, ``x0``); the loss is
    the mean squared error to the measured voltage ``v_meas`` (B, L+1) plus ``continuity`` × the
    squared mismatch between a shot's end state and the next shot's start (states divided by
    ``x_scale``), where ``has_next``.
    """

    def run(v, x, i_seq):
        def step(c, i):
            v, x = rmm_step(model, c[0], c[1], i)
            return (v, x), v

        (v_end, x_end), vs = jax.lax.scan(step, (v, x), i_seq)
        return jnp.concatenate([v[None], vs]), x_end

    v_sim, x_end = jax.vmap(run)(v0, x0, i_app)
    fit_err = jnp.mean((v_sim - v_meas) ** 2)
    gap = (v_sim[:, -1] - v0_next) ** 2 + jnp.mean(((x_end - x0_next) / x_scale) ** 2, axis=1)
    return fit_err + continuity * jnp.sum(jnp.where(has_next, gap, 0.0)) / v0.shape[0]


def fit_shooting(
    model: RMM,
    train,
    optimizer: optax.GradientTransformation | None = None,
    *,
    settings: ShootingSettings = ShootingSettings(),
    validation=None,
    threshold: float = 0.0,
    progress: bool = True,
    seed: int = 0,
    start_score: float | None = None,
    warmup: float = 0.0,
) -> tuple[RMM, dict]:
    """Refine a (teacher-forced) RMM by multiple shooting with trainable shot initial states.

    Shots of ``settings.shot_length`` samples (10–40) run in closed loop from their own initial
    voltage and filter states, trained jointly with the model; a continuity penalty ties each shot's
    end to the next one's start. Returns ``(model, history)`` like :func:`fit`; with
    ``validation`` the best-scoring model (including the starting one) is kept.
    """
    start = time.perf_counter()
    optimizer = optimizer or optax.adam(settings.learning_rate)
    v_shots, i_shots, x_starts, nxt = _shots(train, model.bank, settings.shot_length)
    dtype = model.bank.A.dtype
    n_shots = v_shots.shape[0]
    batch = min(settings.batch_size, n_shots)
    x_scale = jnp.asarray(np.std(x_starts, axis=0) + 1e-6, dtype)
    spec = model.spec()
    params = (unconstrain(model, spec), jnp.asarray(v_shots[:, 0], dtype), jnp.asarray(x_starts, dtype))
    vj, ij, nj = jnp.asarray(v_shots, dtype), jnp.asarray(i_shots, dtype), jnp.asarray(nxt)

    def loss_rows(p, rows, _):
        (rows,) = rows
        m = constrain(p[0], model, spec)
        nx = jnp.maximum(nj[rows], 0)
        # The next shot's start is a target here, not moved by this shot's mismatch.
        v_next, x_next = jax.lax.stop_gradient(p[1][nx]), jax.lax.stop_gradient(p[2][nx])
        return shooting_loss(m, p[1][rows], p[2][rows], vj[rows], ij[rows], v_next, x_next,
                             nj[rows] >= 0, settings.continuity, x_scale) + m.penalty() / batch

    history = {"loss": [], "validation": [], "best_epoch": None, "method": "multiple shooting"}
    best = [None if start_score is None else (start_score, params[0], 0, "start")]

    def after_epoch(epoch, loss, p):
        if validation is not None:
            best[0] = _select(constrain(p[0], model, spec), validation, threshold, best[0], p[0], epoch, history,
                              warmup, "multiple shooting")

    params = run_epochs(params, (jnp.arange(n_shots),), loss_rows, optimizer, epochs=settings.epochs, batch=batch,
                        key=jax.random.PRNGKey(seed + 1), desc="multiple shooting", progress=progress,
                        history=history["loss"], after_epoch=after_epoch)
    best = best[0]
    chosen = params[0] if best is None else best[1]
    history["best_epoch"] = None if best is None else best[2]
    history["time_s"] = time.perf_counter() - start
    return constrain(chosen, model, spec), history
