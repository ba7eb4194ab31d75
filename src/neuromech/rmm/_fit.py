"""Training: teacher forcing (static regression on precomputed filter states), then optional
multiple shooting (Burghi et al., PNAS 2025; Burghi, Schapiro et al., Front. Comput. Neurosci. 2025).

Both loops are built from public pure steps (:func:`teacher_forcing_loss`, :func:`shooting_loss`)
and take any optax optimiser; model selection uses free runs on validation recordings.
"""

from __future__ import annotations

import time
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ._build import as_recordings, teacher_forcing_data
from ._model import RMM, derivative, rmm_step
from ._params import constrain, unconstrain
from ._settings import ShootingSettings, TrainingSettings
from ._validate import evaluate, selection_score


def teacher_forcing_loss(model: RMM, v, x, i, dvdt, scale, weight_decay: float = 0.0, huber: float = 0.0):
    """Mean squared error of the predicted dv/dt on a batch, over ``scale`` (the target's
    variance, so 1 = predicting the mean), plus priors and the L2 weight penalty.

    With ``huber > 0`` residuals beyond ``huber · √scale`` count linearly (Huber loss): the few
    spike samples, where misfits are large, then weigh less against the subthreshold samples that
    set the capacitance and the timing of the next spike.
    """
    pred = jax.vmap(lambda a, b, c: derivative(model, a, b, c))(v, x, i)
    r = (pred - dvdt) / jnp.sqrt(scale)
    if huber > 0:
        a = jnp.abs(r)
        err = jnp.where(a <= huber, r**2, 2 * huber * a - huber**2)
    else:
        err = r**2
    return jnp.mean(err) + model.penalty(weight_decay) / v.shape[0]


def _select(model, validation, threshold, best, params, epoch, history, warmup=0.0):
    _, summary, _ = evaluate(model, validation, threshold=threshold, warmup=warmup)
    score = selection_score(summary)
    history["validation"].append({"epoch": epoch, "score": score, **summary})
    if best is None or score > best[0]:
        return (score, params, epoch)
    return best


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
    """Train an RMM by teacher forcing, then (``settings.shooting``) by multiple shooting.

    Main arguments:
        model: an initialised :class:`RMM` (:func:`init_rmm`).
        train: training :class:`~neuromech.recordings.Recording` (or a sequence).
        optimizer: any optax transformation; default Adam at ``settings.learning_rate`` with
            ``settings.schedule`` (cosine decay by default).

    Other arguments:
        settings: epochs, batch size, weight decay, seed, validation interval, shooting.
        validation: recording(s) for model selection: every ``validate_every`` epochs the model
            runs free on them and the best-scoring parameters are returned (see
            :func:`selection_score`); without validation the last parameters are returned.
        threshold: spike threshold (mV) for the validation metrics.
        progress: tqdm progress bar; callback: called as ``callback(epoch, loss)``.

    Returns:
        ``(model, history)``: the selected model, and a dict with per-epoch ``loss``, the
        ``validation`` records, ``best_epoch`` and the wall time ``time_s``.

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
    data = teacher_forcing_data(model.bank, train)
    batch = min(settings.batch_size, data.size)
    if optimizer is None:
        steps = settings.epochs * max(data.size // batch, 1)
        rate = (optax.cosine_decay_schedule(settings.learning_rate, steps, 0.05) if settings.schedule == "cosine"
                else settings.learning_rate)
        optimizer = optax.adam(rate)
    if data.size < 2:
        raise ValueError("the training data hold fewer than 2 samples")
    dtype = model.bank.A.dtype
    arrays = tuple(jnp.asarray(a, dtype) for a in (data.v, data.x, data.i, data.dvdt))
    scale = float(np.var(data.dvdt)) or 1.0
    spec = model.spec()
    params = unconstrain(model, spec)
    opt_state = optimizer.init(params)
    n_batches = data.size // batch

    @eqx.filter_jit
    def epoch_step(params, opt_state, key, arrays):
        order = jax.random.permutation(key, arrays[0].shape[0])[: n_batches * batch].reshape(n_batches, batch)

        def step(carry, rows):
            params, opt_state = carry

            def loss_fn(p):
                m = constrain(p, model, spec)
                return teacher_forcing_loss(m, *(a[rows] for a in arrays), scale, settings.weight_decay,
                                            settings.huber)

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, jnp.mean(losses)

    history = {"loss": [], "validation": [], "best_epoch": None, "method": "teacher forcing"}
    key = jax.random.PRNGKey(settings.seed)
    best = None
    bar = tqdm(range(1, settings.epochs + 1), disable=not progress, desc="teacher forcing", unit="epoch")
    for epoch in bar:
        params, opt_state, loss = epoch_step(params, opt_state, jax.random.fold_in(key, epoch), arrays)
        loss = float(loss)
        history["loss"].append(loss)
        bar.set_postfix(loss=f"{loss:.4g}")
        if callback is not None:
            callback(epoch, loss)
        if not np.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss} at epoch {epoch}; lower the learning rate")
        if validation is not None and (epoch % settings.validate_every == 0 or epoch == settings.epochs):
            best = _select(constrain(params, model, spec), validation, threshold, best, params, epoch, history,
                           settings.warmup)
    bar.close()
    if best is not None:
        params, history["best_epoch"] = best[1], best[2]
    model = constrain(params, model, spec)
    history["time_s"] = time.perf_counter() - start
    if settings.shooting is not None:
        model, shots = fit_shooting(model, train, None, settings=settings.shooting, validation=validation,
                                    threshold=threshold, progress=progress, seed=settings.seed,
                                    start_score=None if best is None else best[0], warmup=settings.warmup)
        history["shooting"] = shots
        history["time_s"] = time.perf_counter() - start
    return model, history


# -------------------------------------------------------------------------------- shooting
def _shots(recordings, bank, length: int):
    """Shots of ``length`` samples: measured v and i, teacher-forced start states, next-shot links."""
    from ._filters import filter_signal

    vs, is_, xs, nxt = [], [], [], []
    for rec in as_recordings(recordings):
        for v, i in zip(rec.voltage, rec.current):
            x = filter_signal(bank, v)
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
    opt_state = optimizer.init(params)
    vj, ij, nj = jnp.asarray(v_shots, dtype), jnp.asarray(i_shots, dtype), jnp.asarray(nxt)
    n_batches = max(n_shots // batch, 1)

    @eqx.filter_jit
    def epoch_step(params, opt_state, key):
        order = jax.random.permutation(key, n_shots)[: n_batches * batch].reshape(n_batches, batch)

        def step(carry, rows):
            params, opt_state = carry

            def loss_fn(p):
                m = constrain(p[0], model, spec)
                nx = jnp.maximum(nj[rows], 0)
                # The next shot's start is a target here, not moved by this shot's mismatch.
                v_next, x_next = jax.lax.stop_gradient(p[1][nx]), jax.lax.stop_gradient(p[2][nx])
                return shooting_loss(m, p[1][rows], p[2][rows], vj[rows], ij[rows], v_next, x_next,
                                     nj[rows] >= 0, settings.continuity, x_scale) + m.penalty() / batch

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
        return params, opt_state, jnp.mean(losses)

    history = {"loss": [], "validation": [], "best_epoch": None, "method": "multiple shooting"}
    best = None if start_score is None else (start_score, params[0], 0)
    key = jax.random.PRNGKey(seed + 1)
    bar = tqdm(range(1, settings.epochs + 1), disable=not progress, desc="multiple shooting", unit="epoch")
    for epoch in bar:
        params, opt_state, loss = epoch_step(params, opt_state, jax.random.fold_in(key, epoch))
        loss = float(loss)
        history["loss"].append(loss)
        bar.set_postfix(loss=f"{loss:.4g}")
        if not np.isfinite(loss):
            raise FloatingPointError(f"the shooting loss became {loss} at epoch {epoch}; lower the learning rate")
        if validation is not None:
            best = _select(constrain(params[0], model, spec), validation, threshold, best, params[0], epoch, history,
                           warmup)
    bar.close()
    chosen = params[0] if best is None else best[1]
    history["best_epoch"] = None if best is None else best[2]
    history["time_s"] = time.perf_counter() - start
    return constrain(chosen, model, spec), history
