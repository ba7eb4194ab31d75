"""Models, stimuli and the population simulator (fast tests; accuracy vs BDF is in test_accuracy.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuromech.cbm import (
    Constant,
    Noise,
    OrnsteinUhlenbeck,
    Ramp,
    Sampled,
    Step,
    da,
    get_model,
    hh,
    simulate,
    simulate_reference,
    stg,
)
from neuromech.cbm._model import check_conductances

FIXTURE = [8228.904834, 88.877566, 3.970819, 54.642893, 164.678951, 472.321169, 0.610392, 0.012287]
HH = [120.0, 36.0, 0.3]
DA = [30.0, 8.0, 0.045, 0.01, 0.08, 0.012, 0.013]


@pytest.mark.parametrize("factory", [hh, stg, da])
def test_layout_names(factory):
    model = factory()
    assert model.state_names[0] == "V"
    assert len(model.conductance_names) == len(model.channels)
    assert model.initial_state(None).shape == (model.n_states,)


def test_stg_and_da_conductance_order_matches_science():
    assert stg().conductance_names == ("g_Na", "g_Kd", "g_CaT", "g_CaS", "g_KCa", "g_A", "g_H", "g_leak")
    assert da().conductance_names == ("g_Na", "g_Kd", "g_CaL", "g_CaN", "g_ERG", "g_NMDA", "g_leak")


@pytest.mark.parametrize("factory,g", [(hh, HH), (stg, FIXTURE), (da, DA)])
def test_steady_state_is_a_fixed_point(factory, g):
    """At the steady state of a clamped voltage, gates and calcium do not move, and dV/dt = 0 once the
    clamp current equals the total ionic current. Float64: the check is exact up to rounding."""
    model = factory()
    with jax.enable_x64(True):
        g = jnp.asarray(g, jnp.float64)
        for v in (-80.0, -51.0, -20.0):
            y = model.steady_state(g, v)
            clamp = jnp.sum(model.currents(g, y))
            dy = model.derivatives(y, g, clamp)
            np.testing.assert_allclose(np.asarray(dy), 0.0, atol=1e-9)


@pytest.mark.parametrize("factory,g", [(hh, HH), (stg, FIXTURE), (da, DA)])
def test_exponential_step_is_consistent_with_the_equations(factory, g):
    """(step(y, dt) − y)/dt → dy/dt as dt → 0: the error of a first-order consistent step shrinks
    linearly, so at dt = 1e-6 ms it is ~1e-6 relative (float64)."""
    model = factory()
    with jax.enable_x64(True):
        g = jnp.asarray(g, jnp.float64)
        y = model.steady_state(g, -45.0).at[0].set(-40.0)  # off equilibrium: everything moves
        dt = 1e-6
        finite = (model.exponential_step(y, g, 1.5, dt) - y) / dt
        exact = model.derivatives(y, g, 1.5)
        np.testing.assert_allclose(np.asarray(finite), np.asarray(exact), rtol=1e-4, atol=1e-6)


def test_da_sodium_time_constant_has_no_pole():
    """The published τ_mNa of the DA model has a spurious pole near −38.73 mV (SCIENCE.md §1.2);
    the removable form must be finite, positive and smooth there."""
    gate = da().channels[0].gates[0]
    with jax.enable_x64(True):
        v = jnp.linspace(-38.8, -38.6, 2001)
        tau = np.asarray(gate.tau(v))
    assert np.all(np.isfinite(tau)) and np.all(tau > 0)
    assert np.max(np.abs(np.diff(tau))) < 1e-4


def test_hh_rheobase_and_rate():
    """Classic HH (6.3 °C): no repetitive firing at 5 µA/cm², regular firing at 10 µA/cm² near 68 Hz,
    rate increasing with current."""
    rates = {}
    for amp in (5.0, 10.0, 20.0):
        res = simulate(hh(), HH, Constant(amp), duration=1000.0, transient=200.0)
        rates[amp] = len(res.trains[0]) / 0.8
    assert rates[5.0] == 0
    assert 60 < rates[10.0] < 75
    assert rates[20.0] > rates[10.0]


def test_hh_matches_reference_spike_times():
    """HH at dt = 0.01 ms against BDF at rtol 1e-10: spike times within 0.05 ms over 200 ms (the
    exponential scheme's error per spike is O(dt) and accumulates slowly over ~14 spikes)."""
    ref, _ = simulate_reference(hh(), HH, Constant(10.0), duration=200.0, rtol=1e-10, atol=1e-10)
    fast = simulate(hh(), HH, Constant(10.0), duration=200.0).trains[0]
    assert len(fast) == len(ref)
    np.testing.assert_allclose(fast, ref, atol=0.05)


def test_stg_fixture_bursts():
    """SCIENCE.md §2: the fixture bursts with about 5 spikes per burst at about 6.5 Hz."""
    from neuromech.analysis import firing_features

    train = simulate(stg(), FIXTURE, duration=6000.0, transient=3000.0).trains[0]
    feats = firing_features(train)
    assert feats.pattern == "bursting"
    assert feats.spikes_per_burst == pytest.approx(5, abs=0.5)
    assert feats.interburst_frequency == pytest.approx(6.5, rel=0.05)


def test_chunking_batching_and_devices_do_not_change_results():
    """Splitting the population (batches, key offsets) and the time axis (chunks) must not change
    a noisy simulation: the noise streams are identical and only rounding may differ, because
    batch shapes compile to differently fused programs. In float64 rounding moves spike times by
    far less than 1e-6 ms, while a wrong noise stream moves them by 0.05–2 ms."""
    g = np.array(HH) * np.linspace(0.9, 1.1, 6)[:, None]
    kw = dict(duration=120.0, seed=3)
    with jax.enable_x64(True):
        whole = simulate(hh(), g, Constant(8.0) + Noise(4.0), **kw)
        parts = simulate(hh(), g, Constant(8.0) + Noise(4.0), batch_size=4, chunk_samples=333, **kw)
        tail = simulate(hh(), g[3:], Constant(8.0) + Noise(4.0), key_offset=3, **kw)
        other = simulate(hh(), g, Constant(8.0) + Noise(4.0), duration=120.0, seed=4)
    np.testing.assert_array_equal(whole.offsets, parts.offsets)
    np.testing.assert_allclose(whole.spike_times, parts.spike_times, atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.concatenate(whole.trains[3:]), tail.spike_times, atol=1e-6, rtol=0)
    assert not np.array_equal(whole.spike_times, other.spike_times)


def test_records_and_transient():
    res = simulate(hh(), [HH, HH], Constant(10.0), duration=50.0, transient=10.0, record=("states", "currents"))
    assert res.voltage.shape == (2, 400) and res.time[0] == pytest.approx(10.0)
    assert res.states.shape == (2, 400, 4) and res.currents.shape == (2, 400, 3)
    assert np.all(res.spike_times >= 10.0)
    np.testing.assert_array_equal(res.voltage, res.states[..., 0])
    frame = res.to_frame()
    assert list(frame.columns) == ["id", "spike_time"] and len(frame) == res.spike_counts.sum()


def test_stimuli_values():
    t = jnp.asarray([0.0, 5.0, 10.0, 15.0, 20.0])
    np.testing.assert_allclose(Step(2.0, start=5.0, stop=15.0).at(t), [0, 2, 2, 0, 0])
    np.testing.assert_allclose(Ramp(0.0, 4.0, 0.0, 20.0).at(t), [0, 1, 2, 3, 0])
    np.testing.assert_allclose(Sampled(jnp.asarray([0.0, 10.0, 0.0]), dt=10.0).at(t), [0, 5, 10, 5, 0])
    np.testing.assert_allclose((Constant(1.0) + Step(1.0, start=10.0)).at(t), [1, 1, 2, 2, 2])


def _draw(stimulus, n, dt_out=0.1, seed=0):
    stim = stimulus.prepare(dt_out)
    key = jax.random.PRNGKey(seed)

    def body(state, k):
        return stim.sample(state, jax.random.fold_in(key, k))

    _, x = jax.lax.scan(body, stim.init(key), jnp.arange(n))
    return np.asarray(x)


def test_noise_is_lowpass_filtered_white_noise():
    """Filtered std: a 4th-order Butterworth at 1 kHz on a 10 kHz grid passes a fraction
    2·ENBW/fs of white noise power, ENBW = fc·(π/8)/sin(π/8) = 1.026 fc, so std = σ·√0.2052.
    200k samples give the std to ≈ 1 % (correlated samples), tolerance 3 %."""
    x = _draw(Noise(5.0), 200_000)
    assert np.std(x) == pytest.approx(5.0 * np.sqrt(2 * 1026.0 / 10_000), rel=0.03)
    assert abs(np.mean(x)) < 0.05
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1e-4)
    assert spectrum[f > 2500].mean() < 1e-2 * spectrum[f < 500].mean()  # ≥ 4 octaves·24 dB roll-off


def test_ornstein_uhlenbeck_statistics():
    """Stationary mean/std and autocorrelation e^{-lag/τ} at lag τ; 400k samples of τ = 5 ms
    (8000 correlation times) give std and correlation to ≈ 2 %."""
    x = _draw(OrnsteinUhlenbeck(mean=1.0, sigma=2.0, tau=5.0), 400_000)
    assert np.mean(x) == pytest.approx(1.0, abs=0.1)
    assert np.std(x) == pytest.approx(2.0, rel=0.05)
    lag = 50  # 5 ms at 0.1 ms
    r = np.corrcoef(x[:-lag], x[lag:])[0, 1]
    assert r == pytest.approx(np.exp(-1.0), abs=0.03)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(duration=-1.0), "duration"),
        (dict(duration=10.0, dt=0.0), "dt"),
        (dict(duration=10.0, dt=1.0), "too large"),
        (dict(duration=10.0, dt=0.03), "multiple"),
        (dict(duration=10.0, transient=20.0), "transient"),
        (dict(duration=10.0, record="everything"), "record"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate(hh(), HH, **kwargs)


@pytest.mark.parametrize(
    "g,match",
    [
        ([120.0, 36.0], "shape"),
        ([120.0, -36.0, 0.3], "≥ 0"),
        ([120.0, np.nan, 0.3], "finite"),
        (np.zeros((0, 3)), "empty"),
    ],
)
def test_bad_conductances(g, match):
    with pytest.raises(ValueError, match=match):
        simulate(hh(), g, duration=10.0)


@pytest.mark.parametrize("run", [simulate, simulate_reference])
@pytest.mark.parametrize(
    "g,kwargs,match",
    [
        (HH, dict(duration=-1.0), "duration"),
        (HH, dict(duration=10.0, transient=20.0), "transient"),
        ([120.0, -36.0, 0.3], dict(duration=10.0), "≥ 0"),
        ({"g_Na": 120.0, "g_K": 36.0}, dict(duration=10.0), "missing: g_leak"),
    ],
)
def test_both_solvers_check_arguments_alike(run, g, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run(hh(), g, **kwargs)


def test_allow_negative_keeps_the_other_checks():
    # The DIC code evaluates intermediate compensation results, which may be negative.
    assert hh().conductances(g_Na=-1.0, g_K=36.0, g_leak=0.3, allow_negative=True).tolist() == [-1.0, 36.0, 0.3]
    with pytest.raises(ValueError, match="≥ 0"):
        hh().conductances(g_Na=-1.0, g_K=36.0, g_leak=0.3)
    with pytest.raises(ValueError, match="finite"):
        check_conductances(hh(), [np.nan, 36.0, 0.3], allow_negative=True)
    with pytest.raises(ValueError, match="shape"):
        check_conductances(hh(), [-1.0, 36.0], allow_negative=True)


def test_named_conductances_and_unknown_model():
    assert simulate(hh(), {"g_Na": 120.0, "g_K": 36.0, "g_leak": 0.3}, duration=5.0).conductances.shape == (1, 3)
    with pytest.raises(ValueError, match="missing: g_leak"):
        hh().conductances(g_Na=1.0, g_K=1.0)
    with pytest.raises(ValueError, match="unknown: g_X"):
        hh().conductances(g_Na=1.0, g_K=1.0, g_leak=1.0, g_X=2.0)
    with pytest.raises(ValueError, match="unknown model"):
        get_model("lobster")
