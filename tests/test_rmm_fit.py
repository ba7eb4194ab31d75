"""Training against truth: an RMM fitted by teacher forcing to a recording generated *by an RMM*
recovers its behaviour (held-out free-run error at the measurement-noise floor); multiple shooting
keeps it there; the real cell A fit runs end to end (skipped without ../shared/data)."""

from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from neuromech import rmm
from neuromech.recordings import Recording, ou_current, synthetic_recording

from gradcheck import assert_grad_matches_fd

SETTINGS = rmm.ModelSettings(
    filters=rmm.FilterSettings(tau_min=0.2, tau_max=30.0, n=10),
    currents=(rmm.CurrentSettings("leak", kind="leak"),
              rmm.CurrentSettings("K", activation_taus=(1.0, 30.0), reversal=-80.0),
              rmm.CurrentSettings("Na", activation_taus=(0.2, 2.0), reversal=50.0, reversal_std=0.0)),
)
NOISE = 0.02  # mV, measurement noise of the teacher's recording


@pytest.fixture(scope="module")
def teacher_data():
    """A teacher RMM (leak, K-like outward and Na-like inward conductance currents) and its
    noisy recording: 6 s train, 1 s validation, 1 s test at 10 kHz."""
    dt = 0.1
    seed_rec = synthetic_recording("hh", 400.0, seed=5, transient=50.0, drive=(0.0, 2.0, 5.0))
    teacher = rmm.init_rmm(seed_rec, SETTINGS, seed=11)
    # Physiological-looking values: τ_m = C/g_leak = 10 ms at rest near −65 mV, active currents of
    # the same order, so that a 1 nA drive swings the voltage by ~10 mV through the gates' range.
    teacher = eqx.tree_at(
        lambda m: (m.capacitance, m.holding, m.currents[0].g, m.currents[0].E, m.currents[1].g, m.currents[2].g),
        teacher, tuple(jnp.asarray(x, teacher.capacitance.dtype) for x in (1.0, 0.0, 0.1, -65.0, [0.2], [0.05])),
    )
    n = 80_000
    i = ou_current(n, seed=1, sigma=1.0, tau=10.0, dt=dt)
    v = rmm.simulate(teacher, i, -65.0)
    noisy = v + NOISE * np.random.default_rng(2).standard_normal(n)
    rec = Recording(noisy, i, dt=dt, truth={"voltage_clean": v})
    return teacher, rec.window(0, 6000), rec.window(6000, 7000), rec.window(7000, 8000)


def test_teacher_data_is_not_trivial(teacher_data):
    _, train, _, _ = teacher_data
    v = train.truth["voltage_clean"][0]
    assert v.std() > 2.0  # the current moves the voltage by several mV: something to learn


def test_rmm_recovers_an_rmm_to_the_noise_floor(teacher_data):
    teacher, train, val, test = teacher_data
    student = rmm.init_rmm(train, SETTINGS, seed=0)  # another initialisation than the teacher's
    settings = rmm.TrainingSettings(epochs=20, batch_size=1024, validate_every=5, seed=0)
    optimizer = optax.adam(optax.cosine_decay_schedule(1e-2, 20 * (train.n_samples // 1024), 0.05))
    model, history = rmm.fit(student, train, optimizer, settings=settings, validation=val, progress=False)

    # 1. Teacher forcing reaches the noise floor on held-out data: the teacher itself, the true
    # model, cannot do better than the measurement noise lets it (its loss is that floor).
    data = rmm.teacher_forcing_data(model.bank, test)
    arrays = [jnp.asarray(a) for a in (data.v, data.x, data.i, data.dvdt)]
    scale = float(np.var(data.dvdt))
    floor = float(rmm.teacher_forcing_loss(teacher, *arrays, scale))
    learned = float(rmm.teacher_forcing_loss(model, *arrays, scale))
    assert learned < 1.03 * floor, (learned, floor)  # within 3 % of the floor (seeded run: ~0.1 %)

    # 2. Free-running on the held-out current, it reproduces the teacher's voltage: error a few %
    # of the voltage's own fluctuation (what remains is the errors-in-variables bias of derivative
    # regression with noisy inputs). An untrained student is off by far more.
    clean = test.truth["voltage_clean"][0]
    pred = rmm.simulate(model, test.current[0], test.voltage[0, 0])
    err = rmm.voltage_rmse(clean, pred)
    assert err < 0.1 * clean.std(), (err, clean.std())
    untrained = rmm.voltage_rmse(clean, rmm.simulate(student, test.current[0], test.voltage[0, 0]))
    assert untrained > 3 * err
    assert float(model.capacitance) == pytest.approx(1.0, rel=0.1)  # the teacher's C = 1 nF
    assert history["best_epoch"] is not None and history["loss"][-1] < history["loss"][0]


def test_multiple_shooting_refines_without_losing_the_fit(teacher_data):
    teacher, train, val, test = teacher_data
    model = rmm.init_rmm(train, SETTINGS, seed=0)
    model, _ = rmm.fit(model, train, optax.adam(1e-2), settings=rmm.TrainingSettings(epochs=5, batch_size=1024),
                       progress=False)
    before = rmm.voltage_rmse(test.truth["voltage_clean"][0], rmm.simulate(model, test.current[0], test.voltage[0, 0]))
    shot = rmm.ShootingSettings(shot_length=20, epochs=4, batch_size=128, learning_rate=1e-3)
    refined, history = rmm.fit_shooting(model, train, settings=shot, validation=val, progress=False,
                                        start_score=rmm.selection_score(rmm.evaluate(model, val)[1]))
    after = rmm.voltage_rmse(test.truth["voltage_clean"][0], rmm.simulate(refined, test.current[0], test.voltage[0, 0]))
    assert len(history["loss"]) == 4 and np.all(np.isfinite(history["loss"]))
    # Model selection includes the starting model, so shooting can only keep or improve the
    # validation score; on the test data that means no large degradation (20 % slack for the
    # difference between validation and test).
    assert after < 1.2 * before + 0.01, (before, after)


DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "recordings" / "pyabf"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "171116sh_0018.abf").exists(), reason="no ../shared/data (real recordings)")
def test_real_cell_A_held_out_sweeps():
    """Cell A (ramps + steps, pyABF test data): train on most sweeps, predict held-out ones."""
    from neuromech.recordings import read_abf

    ramps = read_abf(DATA / "171116sh_0016.abf").resample(0.1)
    steps = read_abf(DATA / "171116sh_0018.abf").resample(0.1)
    held = [9, 15]
    train = [ramps.select([s for s in ramps.sweeps if s not in held]),
             steps.select([s for s in steps.sweeps if s not in held + [5, 13]])]
    val = [steps.select([5, 13])]
    test = steps.select(held)
    # The mammalian preset. The cell sags under the hyperpolarising pulse (−77 mV relaxing to
    # −73 mV over ~100 ms): an H current, which the generic neuron preset lacks (its slow current
    # is outward, E = −80 mV); without it the model's plateau under the pulse is 4–6 mV too deep
    # (measured −16 vs −10 mV). Its second adaptation current flattens the f–I curve (below).
    settings = rmm.ModelSettings(filters=rmm.FilterSettings(tau_max=500.0, n=30), preset="mammalian")
    model = rmm.init_rmm(train, settings, seed=0)
    # C from the current steps (init_rmm: step_capacitance), not the regression's 7-fold overestimate.
    assert 0.15 < float(model.capacitance) < 0.25
    n = sum(r.n_sweeps * r.n_samples for r in train)
    optimizer = optax.adam(optax.cosine_decay_schedule(1e-2, 30 * (n // 2048), 0.05))
    # fit's default training: the sample weights' floor (derivative_weights' span) serves this
    # low-noise record (with the median of the local dv/dt alone as reference scale, spike
    # samples were 90 times lighter than quiet ones and the model never fired), the steady-state
    # guard keeps free runs from locking depolarised, and selection counts spikes.
    training = rmm.TrainingSettings(epochs=30, validate_every=10)
    model, _ = rmm.fit(model, train, optimizer, settings=training, validation=val, progress=False)
    metrics, summary, pred = rmm.evaluate(model, test)
    assert summary["n_diverged"] == 0
    t = test.time
    # Passive response to the hyperpolarising pulse (1.15–1.65 s, no spikes): the deflection from
    # the level just before it (1.0–1.1 s) to its plateau (1.45–1.6 s) measures the input
    # resistance, the first thing a model of a cell must get. Measured (2026-12-02, mammalian
    # preset): data −10.2 and −8.5 mV, model −11.7 and −11.6 (seed 0), −11.1 and −11.1 (seed 1),
    # −11.2 and −11.0 (seed 2). The same code on another machine's CPU (2026-12-06): −13.3 and −13.1
    # (seed 0), −11.3 and −11.2 (seed 1), −12.5 and −12.3 (seed 2): the fit's rounding differs
    # between CPUs, and the model's input resistance comes out 11–54 % high. 60 % still fails a
    # model without a working passive membrane (≈ 0 mV as before the H current and the step
    # capacitance, or as a model locked depolarised; −16 mV without the sag, 88 % off the second
    # sweep).
    before, plateau = (t > 1000) & (t < 1100), (t > 1450) & (t < 1600)
    for k in range(test.n_sweeps):
        deflection = test.voltage[k, plateau].mean() - test.voltage[k, before].mean()
        predicted = pred[k, plateau].mean() - pred[k, before].mean()
        assert deflection < -5.0 and predicted == pytest.approx(deflection, rel=0.6), (deflection, predicted)
    # The model fires on the held-out depolarising steps like the cell does, and not between them
    # (rest, 0.8–1.1 s). Spike counts: held-out total within a factor of 2 of the data's, every
    # sweep firing, below 3 times its data count. Measured with the mammalian preset (sweeps 9,
    # 15; data 8 and 16): 11 and 20 (seed 0), 9 and 18 (seed 1), 9 and 10 (seed 2). With the
    # neuron preset plus H (one adaptation current) seed 1 gave 0 and 27 and failed the
    # every-sweep check: its f–I curve was too steep, silent near rheobase, over-firing above.
    # Without the steady-state guard a model locked at −16 mV on sweep 15 from the first step on.
    # Spike *timing* is not asserted: the coincidence factor (±2 ms) is near chance (−0.02 to
    # 0.11) after the first spike of each step, as the cell fires slowly from a −42 mV plateau
    # where timing hangs on the slow approach to threshold.
    assert 0.5 * summary["n_spikes_data"] <= summary["n_spikes_model"] <= 2 * summary["n_spikes_data"], summary
    quiet = (t > 800) & (t < 1100)
    for k, m in enumerate(metrics):
        assert m.n_spikes_data > 0 and 0 < m.n_spikes_model < 3 * m.n_spikes_data
        assert pred[k, quiet].max() < -20.0


# ------------------------------------------------------------------ rollout (multi-step) loss
@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _small_windows(length, count=6):
    from neuromech.rmm._rollout import rollout_windows

    rec = synthetic_recording("hh", 300.0, seed=4, transient=50.0)
    model = rmm.init_rmm(rec, SETTINGS, seed=1)
    win = rollout_windows(model.bank, rec, length)
    rows = np.linspace(0, win.size - 1, count).astype(int)  # spread over spikes and rest
    return model, tuple(jnp.asarray(a[rows]) for a in (win.v, win.x, win.i))


@pytest.mark.parametrize("gamma", [0.0, 0.3])
def test_rollout_loss_gradient_matches_finite_differences(x64, gamma):
    from neuromech.rmm._rollout import rollout_loss

    model, (v, x, i) = _small_windows(15)
    spec = model.spec()

    def loss(p):
        return rollout_loss(rmm.constrain(p, model, spec), v, x, i, 25.0, gamma, 1e-3)

    # float64 through 15 closed-loop steps: the runs here stay well conditioned.
    assert_grad_matches_fd(loss, rmm.unconstrain(model, spec))


def test_one_step_rollout_is_teacher_forcing(x64):
    """A window of one step is one Euler step from the measured state: its squared voltage error
    is dt² times the teacher-forcing derivative error, exactly."""
    from neuromech.rmm._rollout import rollout_loss

    model, (v, x, i) = _small_windows(1, count=50)
    dvdt = (v[:, 1] - v[:, 0]) / model.dt
    tf = rmm.teacher_forcing_loss(model, v[:, 0], x, i[:, 0], dvdt, 1.0)
    ro = rollout_loss(model, v, x, i, 1.0)
    assert float(ro) == pytest.approx(model.dt**2 * float(tf), rel=1e-12)


def test_derivative_weights_even_out_spikes():
    from neuromech.rmm._fit import derivative_weights

    rec = synthetic_recording("hh", 300.0, seed=4, transient=50.0)
    v = rec.truth["voltage_clean"][0]
    dvdt = np.diff(v) / rec.dt
    w = derivative_weights(dvdt, rec.dt)
    assert w.mean() == pytest.approx(1.0) and np.all(w > 0)
    spike = v[:-1] > 0.0
    # Samples on a spike carry less weight than quiet ones (their |dv/dt| is ~30× larger;
    # measured ratio 0.06).
    assert w[spike].mean() < 0.2 * w[~spike].mean()
    # The weights say where a sample lies, not what its own noise did: 0.2 mV of measurement noise
    # (2.8 mV/ms on each one-step derivative, more than the quiet samples' own) leaves their
    # ranking nearly unchanged, because each weight averages ±1 ms of samples.
    noisy = v + 0.2 * np.random.default_rng(0).standard_normal(v.size)
    w_noisy = derivative_weights(np.diff(noisy) / rec.dt, rec.dt)
    assert np.corrcoef(np.log(w), np.log(w_noisy))[0, 1] > 0.9


def test_centred_voltage_input_is_uncorrelated_with_the_target_noise():
    from neuromech.rmm._build import centred_voltage

    # Pure measurement noise: the raw input v[k] correlates with the target v[k+1] − v[k] at
    # −1/√2 (they share e[k]); the centred mean holds e[k] and e[k+1] equally, so its
    # correlation is 0. 200 000 samples: a sample correlation's std is 1/√N ≈ 0.0022, so 0.012
    # is > 5σ.
    e = np.random.default_rng(3).standard_normal(200_001)
    target = np.diff(e)
    assert np.corrcoef(e[:-1], target)[0, 1] == pytest.approx(-1 / np.sqrt(2), abs=0.012)
    assert abs(np.corrcoef(centred_voltage(e)[:-1], target)[0, 1]) < 0.012
    # On a noise-free ramp the input is the voltage itself (second differences vanish), and a
    # one-sample jump (a spike upstroke at 10 kHz) moves the sample before it by at most the
    # clip, 4 robust noise standard deviations, not by a third of the jump.
    ramp = np.linspace(-70.0, -50.0, 101)
    np.testing.assert_allclose(centred_voltage(ramp), ramp, atol=1e-12)
    noisy = -60.0 + 0.2 * np.random.default_rng(4).standard_normal(2001)
    noisy[1001:] += 80.0
    assert abs(centred_voltage(noisy)[1000] - noisy[1000]) < 4 * 0.2 * np.sqrt(6) / 3 * 1.2


def test_derivative_weights_strength_does_not_depend_on_the_noise_level():
    from neuromech.rmm._fit import derivative_weights

    # Spikes, then 3 s at rest: the median local dv/dt is the noise's. Without the floor
    # (span = 0) the spike samples' weight relative to resting ones follows the noise (measured
    # 0.007 at 0.02 mV, 0.065 at 0.2 mV); with the default floor at max(s)/10 it barely moves
    # (0.11 and 0.135: the noise's own share of s at rest is what remains).
    rec = synthetic_recording("hh", 300.0, seed=4, transient=50.0)
    v = np.concatenate([rec.truth["voltage_clean"][0], np.full(30_000, -65.0)])
    spike = v[:-1] > 0.0
    ratios = {}
    for span in (0.0, rmm._fit.WEIGHT_SPAN):
        for noise in (0.02, 0.2):
            d = np.diff(v + noise * np.random.default_rng(0).standard_normal(v.size)) / rec.dt
            w = derivative_weights(d, rec.dt, span=span)
            ratios[span, noise] = w[spike].mean() / w[-10_000:].mean()
    assert ratios[0.0, 0.2] > 5 * ratios[0.0, 0.02]
    span = rmm._fit.WEIGHT_SPAN
    assert ratios[span, 0.2] < 1.5 * ratios[span, 0.02] and ratios[span, 0.02] > 0.5 / (1 + span)


def test_steady_state_penalty_is_a_hinge_on_the_resting_derivative(x64):
    from neuromech.rmm._fit import steady_state_penalty

    # A leak-only membrane (C = 0.5 nF, g = 0.02 µS, E = −60 mV) at rest at v under 0.3 nA:
    # dv/dt = (0.3 − 0.02 (v + 60)) / 0.5, zero at v = −45 mV (its fixed point). On a grid above
    # −30 mV it repolarises at ≥ 0.6 mV/ms: no penalty for rate 0.5, the analytic hinge for rate 2.
    m = rmm.RMM(rmm.filter_bank([1.0, 10.0], 0.1), (rmm.Leak(jnp.asarray(0.02), jnp.asarray(-60.0)),),
                jnp.asarray(0.5), jnp.asarray(0.0), ("leak",))
    grid = np.linspace(-30.0, 20.0, 11)
    dvdt = (0.3 - 0.02 * (grid + 60.0)) / 0.5
    assert float(steady_state_penalty(m, grid, 0.3, 1.0, rate=0.5)) == 0.0
    expected = np.mean(np.maximum(dvdt + 2.0, 0.0) ** 2) / 4.0
    assert float(steady_state_penalty(m, grid, 0.3, 4.0, rate=2.0)) == pytest.approx(expected, rel=1e-12)
    # A grid that holds the fixed point (−45 mV) is penalised even at rate 0.
    assert float(steady_state_penalty(m, np.linspace(-50.0, -40.0, 5), 0.3, 1.0, rate=0.0)) > 0.0


def test_the_guard_inside_the_teacher_forcing_batch_equals_the_separate_penalty(x64):
    # fit evaluates the steady-state guard in the same pass of the model as the batch; the value
    # must be exactly the loss plus strength × the separate penalty (float64: agreement to
    # rounding, 1e-12 relative), with and without sample weights.
    from neuromech.rmm._fit import steady_state_penalty

    rec = synthetic_recording("hh", 300.0, seed=4, transient=50.0)
    model = rmm.init_rmm(rec, SETTINGS, seed=1)
    d = rmm.teacher_forcing_data(model.bank, rec)
    rows = tuple(jnp.asarray(a[:300]) for a in (d.v, d.x, d.i, d.dvdt))
    # From −90 mV (where 5 nA depolarises: a penalty) to +40 mV (where it repolarises: none).
    grid, i_max = np.linspace(-90.0, 40.0, 14), 5.0
    w = jnp.linspace(0.5, 1.5, 300)
    for weights in (None, w):
        plain = rmm.teacher_forcing_loss(model, *rows, 3.0, 1e-3, 0.0, weights)
        guarded = rmm.teacher_forcing_loss(model, *rows, 3.0, 1e-3, 0.0, weights, guard=(grid, i_max, 0.25))
        separate = plain + 0.25 * steady_state_penalty(model, grid, i_max, 3.0)
        assert float(separate) > float(plain)
        assert float(guarded) == pytest.approx(float(separate), rel=1e-12)


def test_selection_prefers_a_model_that_fires_when_timing_is_at_chance():
    # Equal inner products, chance-level coincidence: the silent model must not win.
    base = {"n_diverged": 0, "inner_product": 0.6, "coincidence": 0.0, "n_spikes_data": 14}
    silent = rmm.selection_score({**base, "spike_count_error": 1.0})
    firing = rmm.selection_score({**base, "spike_count_error": 0.1})
    assert firing > silent
    assert rmm.selection_score({**base, "n_spikes_data": 0, "coincidence": float("nan"),
                                "spike_count_error": 0.0}) == pytest.approx(0.6)


def test_a_refinement_stage_whose_loss_stops_being_finite_keeps_its_last_good_parameters():
    """run_epochs: a loss that turns NaN raises in a first stage; in a refinement stage
    (``stop_if_not_finite``, the rollouts) it ends the stage with a warning and returns the
    parameters of the last finite epoch, so a long fit is not lost to one bad step."""
    from neuromech.rmm._fit import run_epochs

    def loss_rows(p, rows, epoch):  # finite for epochs 1 and 2, NaN from epoch 3
        return jnp.mean((rows[0] - p) ** 2) * jnp.where(epoch >= 3, jnp.nan, 1.0)

    arrays = (jnp.arange(8.0),)
    kw = dict(epochs=5, batch=4, key=jax.random.PRNGKey(0), desc="rollout", progress=False, extra=float)
    with pytest.raises(FloatingPointError, match="rollout loss became nan at epoch 3"):
        run_epochs(jnp.asarray(0.0), arrays, loss_rows, optax.sgd(0.1), history=[], **kw)
    history, kept = [], []
    with pytest.warns(RuntimeWarning, match="keeps the parameters of epoch 2"):
        p = run_epochs(jnp.asarray(0.0), arrays, loss_rows, optax.sgd(0.1), history=history,
                       after_epoch=lambda e, loss, q: kept.append(q), stop_if_not_finite=True, **kw)
    assert len(history) == 3 and np.isfinite(history[:2]).all() and np.isnan(history[2])
    assert float(p) == float(kept[-1]) and 0.0 < float(p) < 3.5  # epoch 2's step towards the mean 3.5


def test_single_neuron_fit_refuses_voltage_clamp_stretches():
    """A single-neuron fit reads every sample as current clamp: a recording with a finite
    voltage-clamp command is an error that says what to do, not a silently wrong fit."""
    n = 30_000
    command = np.full((1, n), np.nan)
    command[0, :100] = -50.0
    rec = Recording(np.full((1, n), -60.0), np.zeros((1, n)), dt=0.1, command=command)
    with pytest.raises(ValueError, match="voltage-clamp stretches"):
        rmm.teacher_forcing_data(rmm.init_rmm(rec.replace(command=None)).bank, rec)
