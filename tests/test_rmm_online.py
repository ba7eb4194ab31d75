"""Online use against truth: RLS equals (ridge) least squares exactly without forgetting; the
streaming step equals the batch simulation / teacher-forced read-out sample by sample; NaN samples
are flagged and never absorbed; bad arguments fail clearly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from neuromech import rmm
from neuromech.recordings import Recording
from neuromech.rmm import CircuitRecording

CELL = rmm.ModelSettings(
    filters=rmm.FilterSettings(tau_min=0.5, tau_max=30.0, n=6),
    currents=(rmm.CurrentSettings("leak", kind="leak"),
              rmm.CurrentSettings("K", activation_taus=(1.0, 30.0), reversal=-80.0, reversal_std=0.0)),
)


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    v = -60.0 + np.cumsum(rng.standard_normal(n)) * 0.3
    return Recording(v, rng.standard_normal(n), dt=0.1)


def test_rls_is_exact_least_squares_without_forgetting():
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        Psi = rng.standard_normal((400, 5))
        y = Psi @ np.array([1.0, -2.0, 0.5, 3.0, 0.1]) + 0.1 * rng.standard_normal(400)
        delta, theta0 = 1e-3, np.array([0.3, 0.0, 0.0, 1.0, 0.0])
        theta, P = jnp.asarray(theta0), jnp.eye(5) / delta
        step = jax.jit(rmm.rls_update)
        for k in range(400):
            theta, P = step(theta, P, jnp.asarray(Psi[k]), y[k], 1.0)
        ridge = np.linalg.solve(Psi.T @ Psi + delta * np.eye(5), Psi.T @ y + delta * theta0)
        lstsq = np.linalg.lstsq(Psi, y, rcond=None)[0]
    # RLS is an exact rewriting of the ridge normal equations: only float64 rounding remains.
    np.testing.assert_allclose(np.asarray(theta), ridge, rtol=0, atol=1e-8)
    # and least squares itself up to the prior δ = 1e-3 against ΨᵀΨ ≈ 400·I: ~1e-6 relative.
    np.testing.assert_allclose(np.asarray(theta), lstsq, rtol=0, atol=1e-5)


def _circuit():
    rec = CircuitRecording({"A": _data(seed=1), "B": _data(seed=2)})
    settings = rmm.CircuitSettings(("A", "B"), model=CELL,
                                   synapses=(rmm.SynapseSettings("A", "B", filters=rmm.FilterSettings(
                                       tau_min=2.0, tau_max=50.0, n=4), hidden=(3,)),),
                                   gaps=(rmm.GapSettings("A", "B"),))
    return rmm.init_circuit(rec, settings, seed=3), rec


def test_closed_loop_stream_equals_batch_simulation():
    with jax.enable_x64(True):
        circuit, rec = _circuit()
        i = rec.currents(circuit.names)[0][:, :300] * 0.1
        v0 = [-60.0, -62.0]
        v_batch, i_syn = rmm.simulate_circuit(circuit, i, v0)
        res = rmm.replay(rmm.online(circuit, mode="closed-loop"), np.full((2, 300), np.nan), i, v0=v0,
                         timing=False)
    # prediction[k] is v[k+1]; the read-out's sums are reordered, so only rounding differs (x64).
    np.testing.assert_allclose(res["prediction"][:, :-1], v_batch[:, 1:], rtol=0, atol=1e-9)
    np.testing.assert_allclose(res["currents"][-1], i_syn[0], rtol=0, atol=1e-9)
    # In closed loop without exogenous channels the measured voltages are not read: NaN is no gap.
    assert not res["flagged"].any()


def test_observer_stream_equals_teacher_forced_readout():
    with jax.enable_x64(True):
        model = rmm.init_rmm(_data(seed=4), CELL, seed=1)
        rec = _data(500, seed=5)
        res = rmm.replay(rmm.online(model), rec.voltage[0], rec.current[0], timing=False)
        ro = rmm.teacher_forced(model, rec.voltage[0], rec.current[0])
    pred = rec.voltage[0] + model.dt * ro.derivative
    np.testing.assert_allclose(res["prediction"][0], pred, rtol=0, atol=1e-9)
    np.testing.assert_allclose(res["currents"][1], ro.currents["K"], rtol=0, atol=1e-9)
    assert not res["flagged"].any()


def test_rls_recovers_a_changed_conductance_and_flags_nans():
    """Data from the model with its K conductance halved: RLS in observer mode finds the new value
    (noise-free data, so the only error is the forgetting prior's), and NaN samples are flagged and
    leave θ untouched."""
    with jax.enable_x64(True):
        model = rmm.init_rmm(_data(seed=4), CELL, seed=1)
        import equinox as eqx
        true = eqx.tree_at(lambda m: m.currents[1].g, model, model.currents[1].g * 0.5)
        i = np.random.default_rng(7).standard_normal(20000) * 2.0
        v = rmm.simulate(true, i, -60.0)
        v_gappy = v.copy()
        v_gappy[5000:5003] = np.nan
        res = rmm.replay(rmm.online(model, rls=True, forgetting=1.0, delta=1e-6), v_gappy, i, timing=False)
    k_index = res["parameter_names"][0].index("K")
    ratio = res["theta"][0][-1, k_index] / float(model.currents[1].g[0])
    assert abs(ratio - 0.5) < 0.01, ratio  # noise-free data: exact up to the tiny prior
    assert res["flagged"][5000:5003].all() and res["flagged"].sum() == 3
    # Adapting K alone finds it too, and leaves the other parameters exactly where they were.
    with jax.enable_x64(True):
        only_k = rmm.replay(rmm.online(model, rls=True, forgetting=1.0, delta=1e-6, adapt=("K",)), v, i,
                            timing=False)
    theta = only_k["theta"][0][-1]
    assert abs(theta[k_index] / float(model.currents[1].g[0]) - 0.5) < 0.01
    others = [j for j, nm in enumerate(only_k["parameter_names"][0]) if nm != "K"]
    np.testing.assert_array_equal(theta[others], only_k["theta"][0][0][others])


def test_bad_arguments():
    model = rmm.init_rmm(_data(seed=4), CELL, seed=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        rmm.online(model, mode="open")
    with pytest.raises(ValueError, match="observer"):
        rmm.online(model, mode="closed-loop", rls=True)
    with pytest.raises(ValueError, match=r"adapt names \['Kd'\]"):
        rmm.online(model, rls=True, adapt=("Kd",))
    with pytest.raises(ValueError, match=r"replay needs voltage \(1, T\)"):
        rmm.replay(rmm.online(model), np.zeros((2, 10)), np.zeros(10))


def test_stream_cli(tmp_path, capsys):
    from neuromech.cli import main
    from neuromech.recordings import write_npz

    rec = _data(4000, seed=8)
    write_npz(tmp_path / "rec.npz", rec)
    model = rmm.init_rmm(rec, CELL, seed=1)
    rmm.save_model(tmp_path / "model", model, rmm.RMMConfig(model=CELL))
    out = tmp_path / "est.csv"
    assert main(["stream", str(tmp_path / "model"), str(tmp_path / "rec.npz"), "--seconds", "0.2",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "latency p50" in err and "K[" in err
    import pandas as pd
    table = pd.read_csv(out)
    assert list(table.columns[:2]) == ["t_ms", "holding[0]"] and len(table) == 20  # 2000 samples / 100
    # The NumPy step streams the same estimates (the two float64 realisations agree to rounding,
    # amplified by RLS as in _assert_same below).
    assert main(["stream", str(tmp_path / "model"), str(tmp_path / "rec.npz"), "--seconds", "0.2",
                 "--out", str(tmp_path / "est_numpy.csv"), "--backend", "numpy"]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "est_numpy.csv").to_numpy(), table.to_numpy(),
                               rtol=1e-6, atol=1e-9)
    assert main(["stream", str(tmp_path / "model"), str(tmp_path / "rec.npz"), "--seconds", "0"]) == 2


# Every kind of current the online step handles: a leak, a conductance current with an
# instantaneous activation and an inactivation, one with two units and a deeper gate network, and
# a lumped MLP current (so the NumPy realisation packs networks of two depths, gates and lumped
# outputs mixed).
RICH = rmm.ModelSettings(
    filters=rmm.FilterSettings(tau_min=0.2, tau_max=50.0, n=8),
    currents=(rmm.CurrentSettings("leak", kind="leak"),
              rmm.CurrentSettings("Na", activation_taus=(0.2, 1.0), inactivation_taus=(1.0, 10.0), reversal=50.0,
                                  instantaneous=True, hidden=(4,)),
              rmm.CurrentSettings("K", activation_taus=(1.0, 50.0), reversal=-80.0, units=2, hidden=(4, 3)),
              rmm.CurrentSettings("lumped", kind="lumped", hidden=(5,), input_taus=(0.2, 10.0))),
)


def _rich_circuit():
    """Two modelled neurons with orthonormal banks, an exogenous voltage X, a conductance and a
    lumped synapse between them (the first with its gate pinned at rest), a synapse from X and a gap
    junction (diagonal synaptic banks, so the banks mix kinds)."""
    rec = CircuitRecording({"A": _data(seed=1), "B": _data(seed=2), "X": _data(seed=3)})
    syn = dict(filters=rmm.FilterSettings(tau_min=1.0, tau_max=40.0, n=4), hidden=(3,))
    cell = rmm.ModelSettings(filters=rmm.FilterSettings("orthonormal", 0.2, 50.0, 8), currents=RICH.currents)
    settings = rmm.CircuitSettings(("A", "B"), exogenous=("X",), model=cell, synapses=(
        rmm.SynapseSettings("A", "B", open_at_rest=0.05, **syn), rmm.SynapseSettings("B", "A", kind="lumped", **syn),
        rmm.SynapseSettings("X", "A", **syn)), gaps=(rmm.GapSettings("A", "B"),))
    return rmm.init_circuit(rec, settings, seed=5), rec


FAST = pytest.mark.parametrize("backend", ["numpy", "numba"])  # the float64 realisations


def _both(model, voltage, current, backend, **kw):
    """replay with the JAX backend and ``backend`` (float64 both: call under x64)."""
    return [rmm.replay(rmm.online(model, backend=b, **kw), voltage, current, every=10, timing=False)
            for b in ("jax", backend)]


def _assert_same(ref, fast, atol, theta_rtol=1e-9):
    """A float64 backend's replay equals the JAX backend's: predictions (mV) and currents (nA) to
    ``atol``, θ to ``theta_rtol`` (relative), flags exactly.

    Both run in float64. The NumPy realisation differs from XLA only in the order of sums, the
    input scalers and biases folded into the first layer's product, expit against XLA's logistic
    and RLS's /λ and ·½ in one product: a few ulp per sample, which stay that size where nothing
    feeds back (closed loop through a stable model: ≈ 1e-13 seen). RLS amplifies rounding by the
    condition number of its covariance: on these short, weakly exciting records JAX against itself,
    with the voltages perturbed by 1e-15 relative, moves θ by ≈ 6e-7 relative (cond P ≈ 1e5), and
    the float64 backends are as close. The compiled (Numba) backend follows the NumPy one operation
    by operation, with its sums in loop order rather than BLAS's. Each test's tolerance is ~100×
    what it sees; a wrong term (a missed current, a swapped gate, a stale state) differs by ≥ 1e-3.
    """
    for key in ("prediction", "currents"):
        np.testing.assert_allclose(fast[key], ref[key], rtol=0, atol=atol, err_msg=key)
    for t_ref, t_fast in zip(ref["theta"], fast["theta"]):
        np.testing.assert_allclose(t_fast, t_ref, rtol=theta_rtol, atol=1e-12, err_msg="theta")
    np.testing.assert_array_equal(fast["flagged"], ref["flagged"])


@FAST
def test_fast_step_equals_jax_observer_with_rls_and_gaps_in_the_data(backend):
    rec = _data(4000, seed=6)
    v = rec.voltage[0].copy()
    v[1500:1504] = np.nan  # dropped samples: flagged, not absorbed, RLS skipped
    v[2500] = np.inf
    i = rec.current[0].copy()
    i[3000] = np.nan
    with jax.enable_x64(True):
        model = rmm.init_rmm(_data(seed=4), RICH, seed=2)
        ref, fast = _both(model, v, i, backend, rls=True, forgetting=0.999)
    assert fast["flagged"].sum() == 6
    assert np.all(np.isfinite(fast["prediction"])) and np.ptp(fast["theta"][0], axis=0).max() > 1e-3  # θ moved
    _assert_same(ref, fast, atol=1e-7, theta_rtol=1e-6)  # seen: 4e-13 mV, 9e-10 nA, θ 3e-9


@FAST
def test_fast_step_equals_jax_in_a_circuit(backend):
    with jax.enable_x64(True):
        circuit, rec = _rich_circuit()
        v = rec.voltages(circuit.channels)[0][:, :3000].copy()
        i = rec.currents(circuit.names)[0][:, :3000] * 0.05
        v[2, 1000:1003] = np.nan  # the exogenous channel drops samples
        # Closed loop: the model runs on its own voltages, driven by the exogenous one.
        ref, fast = _both(circuit, v, i, backend, mode="closed-loop")
    assert fast["flagged"].sum() == 3 and np.all(np.isfinite(fast["prediction"]))
    _assert_same(ref, fast, atol=1e-10)  # seen: 6e-14 mV, 5e-13 nA
    # Observer with RLS on a subset: the others stay fixed and enter the target.
    v[0, 2000] = np.nan
    with jax.enable_x64(True):
        ref, fast = _both(circuit, v, i, backend, rls=True, adapt=("holding", "K", "syn B->A"))
    assert fast["flagged"].sum() == 4
    _assert_same(ref, fast, atol=1e-6, theta_rtol=1e-4)  # seen: 2e-9 mV, 2e-8 nA, θ 1.2e-6


@FAST
def test_fast_step_equals_jax_with_kinetic_synapses(backend):
    """Synapses with a release (bank states of σ((v_pre − θ)/δ)) and a kinetic gate (softmax
    weights, no logistic output): the float64 backends realise both by hand, so they are checked
    against the model's own JAX step in closed loop and as an observer with RLS (tolerances as in
    _assert_same)."""
    import equinox as eqx

    rec = CircuitRecording({"A": _data(seed=1), "B": _data(seed=2), "X": _data(seed=3)})
    syn = dict(filters=rmm.FilterSettings(tau_min=2.0, tau_max=100.0, n=3), release=(-62.0, -55.0), release_slope=3.0)
    settings = rmm.CircuitSettings(("A", "B"), exogenous=("X",), model=CELL, synapses=(
        rmm.SynapseSettings("A", "B", **syn), rmm.SynapseSettings("X", "A", **syn)))
    with jax.enable_x64(True):
        circuit = rmm.init_circuit(rec, settings, seed=3)
        logits = jnp.linspace(-1.0, 1.0, 6)  # unequal weights: a swapped state would show
        circuit = eqx.tree_at(lambda c: (c.synapses[0].current.activation.logits, c.synapses[1].current.activation.logits),
                              circuit, (logits, -logits))
        v = rec.voltages(circuit.channels)[0][:, :2000]
        i = rec.currents(circuit.names)[0][:, :2000] * 0.05
        ref, fast = _both(circuit, v, i, backend, mode="closed-loop")
        assert np.ptp(ref["currents"][-2:], axis=1).min() > 1e-3  # the synaptic currents move
        _assert_same(ref, fast, atol=1e-10)  # seen: 1e-14 mV, 7e-14 nA
        ref, fast = _both(circuit, v, i, backend, rls=True)
    _assert_same(ref, fast, atol=1e-5, theta_rtol=1e-4)  # seen: 2e-10 mV, 5e-7 nA (currents ~200 nA), θ 2e-7


@FAST
def test_fast_backend_runs_a_float32_model_in_float64(backend):
    """Without x64 (JAX's default) the model's arrays are float32: the JAX backend computes in
    float32, the float64 backends in float64 from the same values. They agree to float32 rounding:
    ε₃₂ ≈ 6e-8 of values up to ~60 mV and ~300 nA, over a few dozen operations (seen: 7e-6 mV,
    4e-4 nA)."""
    model = rmm.init_rmm(_data(seed=4), RICH, seed=2)
    assert model.bank.A.dtype == np.float32
    rec = _data(1000, seed=6)
    ref, fast = _both(model, rec.voltage[0], rec.current[0], backend)
    np.testing.assert_allclose(fast["prediction"], ref["prediction"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(fast["currents"], ref["currents"], rtol=0, atol=1e-5 * np.abs(ref["currents"]).max())


@pytest.mark.skipif("gain" not in getattr(rmm.MonotoneGate, "__dataclass_fields__", {}),
                    reason="MonotoneGate has no output gain in this version")
@FAST
def test_fast_step_equals_jax_with_gate_gains(backend):
    """Gates with an output gain (sigmoid(s · gain · net)): the float64 backends fold the gain into
    the last layer, a rounding-level reordering (tolerance as in _assert_same)."""
    import dataclasses

    import equinox as eqx

    rec = _data(2000, seed=6)
    with jax.enable_x64(True):
        model = rmm.init_rmm(_data(seed=4), RICH, seed=2)
        for j in (1, 2):  # Na (activation, inactivation) and K (two units)
            c = model.currents[j]
            gain = jnp.linspace(0.5, 4.0, np.size(c.g))
            model = eqx.tree_at(lambda m: m.currents[j].activation, model,
                                dataclasses.replace(c.activation, gain=gain))
        ref, fast = _both(model, rec.voltage[0], rec.current[0], backend)
    _assert_same(ref, fast, atol=1e-10)


@FAST
def test_fast_step_leaves_its_state_argument_alone_and_rejects_bad_input(backend):
    model = rmm.init_rmm(_data(seed=4), CELL, seed=1)
    s = rmm.online(model, rls=True, backend=backend)
    assert s.backend == backend
    state = s.init(-60.0)
    before = state.copy()
    new, pred, currents = s.step(state, -59.0, 0.1)
    np.testing.assert_array_equal(state, before)
    assert new is not state and pred.shape == (1,) and currents.shape == (2,)
    assert s.unpack(new).k == 1.0 and new[s.flag_index] == 0.0
    with pytest.raises(ValueError, match=r"v_measured \(1,\) mV"):
        s.step(state, [1.0, 2.0], 0.0)
    with pytest.raises(ValueError, match=r"flat state of this streamer|could not broadcast"):
        s.step(state[:-1], -59.0, 0.1)
    # A read-only state, a strided one, a list, integer and array inputs: the same numbers.
    frozen = state.copy()
    frozen.flags.writeable = False
    for args in ((frozen, -59.0, 0.1), (np.repeat(state, 2)[::2], -59, np.array([0.1])),
                 (list(state), np.array([-59.0]), 0.1)):
        np.testing.assert_allclose(s.step(*args)[1], pred, rtol=1e-12)
    if backend == "numba":  # one compiled signature: no call compiles in the middle of a stream
        from neuromech.rmm._online_numba import _kernel
        assert len(_kernel.signatures) == 1
    with pytest.raises(ValueError, match="backend must be one of"):
        rmm.online(model, backend="cython")


def test_numpy_backend_refuses_a_model_it_does_not_reproduce(monkeypatch):
    """online() checks one NumPy step against the model's own currents; a term the NumPy
    realisation does not know (here: JAX's regressors doubled) fails at construction."""
    import neuromech.rmm._online as online_module

    model = rmm.init_rmm(_data(seed=4), CELL, seed=1)
    real = online_module.regressors
    monkeypatch.setattr(online_module, "regressors", lambda *a: tuple(2.0 * p for p in real(*a)))
    with pytest.raises(NotImplementedError, match="backend='jax'"):
        rmm.online(model)
