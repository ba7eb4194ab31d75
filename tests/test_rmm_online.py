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
    assert main(["stream", str(tmp_path / "model"), str(tmp_path / "rec.npz"), "--seconds", "0"]) == 2
