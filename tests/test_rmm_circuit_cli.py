"""Circuits through the command line and on disk: the ``[circuit]`` config table and its errors,
multi-channel recording files, strict ``save_circuit``/``load_circuit``, and ``neuromech fit`` →
``predict`` → ``stream`` end to end on a tiny circuit recording.

The recording comes from a known circuit RMM (a leak + K neuron ``post`` inhibited through a graded
synapse by a recorded neuron ``pre``), so a fit of the same structure is well posed and its free run
stays bounded after a few epochs; 1.5 s at 10 kHz keeps the module at a few seconds of training.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.io

from neuromech import rmm
from neuromech.cli import main
from neuromech.recordings import Recording, UnitWarning

from known_circuit import CELL, driven_circuit, settings

SETTINGS = settings("pre", "post")
SYNAPSE = SETTINGS.synapses[0]

HEAD = """
[data]
split = [0.6, 0.2, 0.2]

[model.filters]
tau_min = 0.5
tau_max = 30.0
n = 8

[[model.currents]]
name = "leak"
kind = "leak"

[[model.currents]]
name = "K"
activation_taus = [1.0, 30.0]
reversal = -80.0
reversal_std = 0.0
"""
CIRCUIT = """
[circuit]
neurons = ["post"]
exogenous = ["pre"]
warmup = 20.0

[[circuit.synapses]]
pre = "pre"
post = "post"
hidden = [4]
filters = { tau_min = 2.0, tau_max = 100.0, n = 6 }
"""
TRAINING = """
[[training]]
method = "teacher forcing"
epochs = 2
batch_size = 1024
learning_rate = 1e-2

[[training]]
method = "teacher forcing"
epochs = 1
batch_size = 1024
learning_rate = 1e-3
"""
CONFIG = HEAD + CIRCUIT + TRAINING


def _teacher_recording(n: int = 15_000):
    """(teacher circuit, its recording with 0.02 mV noise on both voltages)."""
    return driven_circuit("pre", "post", n, 0.02)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("circuit_cli")
    teacher, rec = _teacher_recording()
    rmm.save_circuit(root / "teacher", teacher,
                     rmm.CircuitConfig(rmm.CircuitDescription(("post",), ("pre",), synapses=(SYNAPSE,)), model=CELL))
    rmm.write_circuit_npz(root / "circuit.npz", rec)
    # The RMM authors' .mat layout; "pre" was not injected, so the file has no I1.
    scipy.io.savemat(root / "circuit.mat", {"V1": rec["pre"].voltage[0], "V2": rec["post"].voltage[0],
                                            "I2": rec["post"].current[0], "dt": 0.1})
    (root / "circuit.toml").write_text(CONFIG)
    return root, rec


@pytest.fixture(scope="module")
def fitted(files):
    root, _ = files
    out = root / "model"
    assert main(["fit", str(root / "circuit.npz"), "--config", str(root / "circuit.toml"), "--out", str(out),
                 "--no-progress"]) == 0
    return out


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("neuromech: error:")
    return lines[-1]


# ------------------------------------------------------------------------------------ config
def test_circuit_table_maps_to_typed_settings():
    cfg = rmm.circuit_config_from_dict({
        "model": {"preset": "stg"},
        "circuit": {"neurons": ["A", "B"], "synapses": ["A -> B", {"pre": "B", "post": "A", "kind": "lumped",
                                                                    "filters": {"n": 4}}], "gaps": ["A <-> B"]},
        "training": {"method": "gtf", "epochs": 5},
    })
    assert cfg.settings.channels == ("A", "B") and cfg.settings.model.preset == "stg"
    assert [s.name for s in cfg.settings.synapses] == ["syn A->B", "syn B->A"]
    assert cfg.settings.synapses[1].kind == "lumped"
    # A partial nested table keeps the synapse's own defaults for the keys it leaves out.
    assert cfg.settings.synapses[1].filters == rmm.FilterSettings(tau_min=1.0, tau_max=500.0, n=4)
    assert cfg.settings.gaps == (rmm.GapSettings("A", "B"),)
    assert cfg.training == (rmm.CircuitTrainingSettings(method="gtf", epochs=5),)  # one table = one stage
    stages = rmm.circuit_config_from_dict({"circuit": {"neurons": ["A"]}, "training": [
        {"rollout": False, "weighting": 0}, {"rollout": {"epochs": 2, "partners": "measured"}}]}).training
    assert stages[0].rollout is None and stages[0].weighting == 0.0 and stages[0].centred
    # A partial rollout table keeps the circuit's default rollout stage for the keys it leaves out.
    assert stages[1].rollout == dataclasses.replace(rmm.CIRCUIT_ROLLOUT, epochs=2, partners="measured")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) 'training\[0\].rollout.epoch'"):
        rmm.circuit_config_from_dict({"circuit": {"neurons": ["A"]}, "training": {"rollout": {"epoch": 2}}})
    from neuromech.rmm._settings import config_to_dict
    assert rmm.circuit_config_from_dict(config_to_dict(cfg)) == cfg  # what model.json stores reads back


@pytest.mark.parametrize("table, message", [
    ({"neurons": ["post"], "exogenous": ["pre"], "synapses": ["pre -> pots"]}, "unknown postsynaptic neuron 'pots'"),
    ({"neurons": ["post"], "exogenous": ["pre"], "synapses": ["prey -> post"]}, "unknown presynaptic neuron 'prey'"),
    ({"neurons": ["post"], "exogenous": ["pre"], "synapses": ["post -> pre"]}, "'pre' is an exogenous"),
    ({"neurons": ["post"], "exogenous": ["pre"], "synapses": ["pre -> post", "pre -> post"]}, "listed twice"),
    ({"neurons": ["post"], "exogenous": ["pre"], "channels": ["post", "X"]}, "unknown channel(s) ['pre']"),
    ({"neurons": ["post"], "synapses": ["pre => post"]}, "not of the form 'pre -> post'"),
    ({"neurons": ["A", "B"], "gaps": ["A <-> C"]}, "'C' is not a modelled neuron"),
    ({"neurons": []}, "neurons is empty"),
    ({"neurons": ["post"], "synapse": ["pre -> post"]}, "valid keys in [circuit]: neurons, exogenous"),
])
def test_bad_circuit_descriptions_are_clear_errors(table, message):
    with pytest.raises(ValueError) as err:
        rmm.circuit_config_from_dict({"circuit": table})
    assert message in str(err.value)


# -------------------------------------------------------------------------------- recordings
def test_mat_npz_and_csv_circuit_files_read_alike(files, tmp_path):
    root, rec = files
    back = rmm.read_circuit_recording(root / "circuit.npz")
    assert back.names == ("pre", "post") and back["post"].truth.keys() == rec["post"].truth.keys()
    np.testing.assert_array_equal(back.voltages(back.names), rec.voltages(rec.names))
    # .mat: V1..Vn, I1..Im; "pre" was not injected (no I1): zero current, marked as not recorded.
    mat = rmm.read_circuit_recording(root / "circuit.mat", channels=("pre", "post"), time_unit="ms",
                                     voltage_unit="mV", current_unit="nA")
    np.testing.assert_array_equal(mat.voltages(mat.names), rec.voltages(rec.names))
    assert not mat["pre"].metadata["current_recorded"] and np.all(mat["pre"].current == 0)
    assert rmm.read_circuit_recording(root / "circuit.mat", voltage_unit="mV", current_unit="nA",
                                      time_unit="ms").names == ("V1", "V2")
    table = pd.DataFrame({"t_ms": rec.time, "v_mV[pre]": rec["pre"].voltage[0], "v_mV[post]": rec["post"].voltage[0],
                          "i_pA[post]": 1e3 * rec["post"].current[0]})
    table.to_csv(tmp_path / "c.csv", index=False, float_format="%.10g")
    csv = rmm.read_circuit_recording(tmp_path / "c.csv")
    assert csv.names == ("pre", "post") and csv.dt == pytest.approx(0.1)
    np.testing.assert_allclose(csv.currents(["post"]), rec.currents(["post"]), atol=1e-9)  # pA → nA, 10 digits


def test_channel_counts_that_do_not_match_the_file_are_errors(files, tmp_path):
    root, rec = files
    scipy.io.savemat(tmp_path / "c.mat", {"V1": rec["pre"].voltage[0], "V2": rec["post"].voltage[0], "dt": 0.1})
    with pytest.raises(ValueError, match=r"holds 2 voltage channel\(s\) V1..V2, but 3 channel name\(s\)"):
        rmm.read_circuit_recording(tmp_path / "c.mat", channels=("a", "b", "c"), voltage_unit="mV",
                                   current_unit="nA", time_unit="ms")
    with pytest.raises(ValueError, match=r"names its 2 channel\(s\) \['pre', 'post'\], but 1"):
        rmm.read_circuit_recording(root / "circuit.npz", channels=("post",))


def test_evaluate_circuit_scores_the_true_circuit_at_the_noise_floor(files):
    root, rec = files
    teacher, _ = rmm.load_circuit(root / "teacher")
    metrics, ((v, i_syn),) = rmm.evaluate_circuit(teacher, rec.window(500, 1000), warmup=300.0)
    post = metrics["neurons"]["post"]["summary"]
    # The data are the teacher's free run plus 0.02 mV noise; the teacher re-run on the noisy
    # presynaptic voltage (filtered by synaptic banks of τ ≥ 2 ms) adds far less than that. The
    # window is cut out of the run, so the warm-up (3 τ_max of the synapse's bank, 10 of the
    # cell's) starts the banks at rest at its mean voltages, not at the true states.
    assert post["rmse"] < 0.03 and post["inner_product"] > 0.99 and post["n_diverged"] == 0
    syn = metrics["synapses"]["syn pre->post"]
    assert syn["correlation_free_run"] > 0.999 and syn["correlation_readout"] > 0.999
    assert syn["rmse_free_run"] < 0.01  # nA, against currents of ~0.5 nA std
    # The read-out's spread is the truth's: |std a − std b| ≤ RMSE(a − b), read-out RMSE 0.0035 nA
    # against a std of 0.40 nA (seen: stds equal to 3e-5 relative); 2 % leaves room for the noise draw.
    assert syn["std_readout"] == pytest.approx(syn["std_true"], rel=0.02) and syn["std_true"] > 0.3
    assert v.shape == (1, 1, 5000) and i_syn.shape == (1, 1, 5000)


# ---------------------------------------------------------------------------- save and load
def test_save_load_round_trip_is_exact_and_strict(files, tmp_path):
    _, rec = files
    # Two stages, the first without its rollout stage: `rollout = false` must survive the round trip.
    stages = (rmm.CircuitTrainingSettings(rollout=None, weighting=0.0),
              rmm.CircuitTrainingSettings(method="gtf", rollout=rmm.RolloutSettings(epochs=2)))
    # The synapse's gate pinned at rest: a static setting that must come back from model.json.
    synapse = dataclasses.replace(SYNAPSE, open_at_rest=0.02)
    config = rmm.CircuitConfig(rmm.CircuitDescription(("post",), ("pre",), synapses=(synapse,)), model=CELL,
                               training=stages)
    circuit = rmm.init_circuit(rec.window(0, 300), config.settings, seed=3)
    rmm.save_circuit(tmp_path / "c", circuit, config)
    back, cfg = rmm.load_circuit(tmp_path / "c")
    assert repr(cfg) == repr(config) and back.channels == circuit.channels  # repr: NaN reversal ≠ NaN
    for a, b in zip(jax.tree.leaves(circuit), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    short = rec.window(0, 50)
    v_exo, i_app = short.voltages(["pre"])[0], short.currents(["post"])[0]
    v0 = short.voltages(back.channels)[0, :, 0]
    np.testing.assert_array_equal(rmm.simulate_circuit(back, i_app, v0, v_exo=v_exo)[0],
                                  rmm.simulate_circuit(circuit, i_app, v0, v_exo=v_exo)[0])

    weights = (tmp_path / "c" / "model.eqx").read_bytes()
    (tmp_path / "c" / "model.eqx").write_bytes(weights + b"\0" * 8)
    with pytest.raises(ValueError, match="8 unread bytes"):
        rmm.load_circuit(tmp_path / "c")
    (tmp_path / "c" / "model.eqx").write_bytes(weights[:-40])
    with pytest.raises(ValueError, match="does not match its model.json"):
        rmm.load_circuit(tmp_path / "c")
    bad = eqx.tree_at(lambda c: c.gaps, circuit, ())  # same structure, one weight NaN
    bad = eqx.tree_at(lambda c: c.neurons[0].holding, bad, jnp.asarray(jnp.nan, circuit.neurons[0].holding.dtype))
    rmm.save_circuit(tmp_path / "c", bad, config)
    with pytest.raises(ValueError, match="non-finite weights"):
        rmm.load_circuit(tmp_path / "c")
    rmm.save_circuit(tmp_path / "c", circuit, config)
    meta = json.loads((tmp_path / "c" / "model.json").read_text())
    del meta["config"]["circuit"]["synapses"][0]["open_at_rest"]  # a file from before the setting
    (tmp_path / "c" / "model.json").write_text(json.dumps(meta))
    old, cfg = rmm.load_circuit(tmp_path / "c")
    assert cfg.circuit.synapses[0].open_at_rest is None and old.synapses[0].current.activation.rest_logit is None
    meta["config"]["circuit"]["synapses"][0]["filters"]["n"] = 7  # another synapse bank than the weights'
    (tmp_path / "c" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match its model.json"):
        rmm.load_circuit(tmp_path / "c")
    with pytest.raises(ValueError, match="load_circuit"):
        rmm.load_model(tmp_path / "c")
    other = rmm.CircuitConfig(rmm.CircuitDescription(("pre", "post")), model=CELL)
    with pytest.raises(ValueError, match="save the circuit with the config it was built from"):
        rmm.save_circuit(tmp_path / "d", circuit, other)


# ------------------------------------------------------------------------------------- CLI
def test_fit_writes_a_circuit_model_dir(fitted):
    assert {"model.eqx", "model.json", "report.json", "prediction.png"} <= {p.name for p in fitted.iterdir()}
    report = json.loads((fitted / "report.json").read_text())
    assert [s["method"] for s in report["stages"]] == ["teacher forcing", "teacher forcing"]
    assert len(report["stages"][0]["loss"]) == 2 and report["selected_stage"] in (0, 1)
    test = report["test_metrics"]
    post = test["neurons"]["post"]["summary"]
    assert post["n_sweeps"] == 1 and post["n_diverged"] == 0 and np.isfinite(post["rmse"])
    assert "coincidence" in post  # NaN here: the teacher's leak + K neuron does not spike
    # The read-out synaptic current follows the truth (0.92 measured with these seeds; a synapse
    # that learned nothing would correlate near 0).
    assert test["synapses"]["syn pre->post"]["correlation_readout"] > 0.7
    profile = report["synapse_profile"]
    assert profile["scales"] == [0.0, 0.5, 1.0, 1.5, 2.0] and len(profile["syn pre->post"]) == 5
    assert all(np.isfinite(profile["syn pre->post"]))
    circuit, config = rmm.load_circuit(fitted)
    assert circuit.names == ("post",) and circuit.exogenous == ("pre",) and config.circuit.warmup == 20.0


def test_predict_writes_one_row_per_sample_and_matches_the_api(files, fitted, capsys):
    root, rec = files
    out = root / "pred.csv"
    assert main(["predict", str(fitted), str(root / "circuit.npz"), "--out", str(out)]) == 0
    assert "post RMSE" in capsys.readouterr().err
    table = pd.read_csv(out)
    assert list(table.columns) == ["sweep", "t_ms", "i_applied[post]", "v_measured[post]", "v_predicted[post]",
                                   "v_measured[pre]", "i_syn_predicted[pre->post]"]
    assert len(table) == rec.n_samples
    # The CLI's prediction is the API's free run of the loaded circuit after the causal warm-up.
    circuit, _ = rmm.load_circuit(fitted)
    w = 200  # 20 ms at 0.1 ms
    V = rec.voltages(circuit.channels)[0]
    start = rmm.circuit_warm_start(circuit, V, w)
    v, i_syn = rmm.simulate_circuit(circuit, rec.currents(["post"])[0, :, w:], None, v_exo=V[1:, w:], start=start)
    np.testing.assert_allclose(table["v_predicted[post]"][w:], v[0], rtol=1e-5, atol=1e-3)  # 6 printed digits
    np.testing.assert_array_equal(table["v_predicted[post]"][:w], table["v_measured[post]"][:w])
    np.testing.assert_allclose(table["i_syn_predicted[pre->post]"][w:], i_syn[0], rtol=1e-5, atol=1e-5)
    readout = rmm.circuit_readout(circuit, rec)["syn pre->post"][0, :w]  # warm-up: read out, causal
    np.testing.assert_allclose(table["i_syn_predicted[pre->post]"][:w], readout, rtol=1e-5, atol=1e-5)
    metrics = json.loads((root / "pred.metrics.json").read_text())
    assert metrics["neurons"]["post"]["sweeps"][0]["sweep"] == 0 and "syn pre->post" in metrics["synapses"]
    # The prediction table reads back as a circuit recording (measured voltages and currents).
    again = rmm.read_circuit_recording(out, voltage_unit="mV", current_unit="nA")
    assert again.names == ("post", "pre")
    np.testing.assert_allclose(again["post"].voltage, rec["post"].voltage, atol=1e-3)


def test_predict_reports_a_diverging_circuit_and_writes_nothing(files, fitted, tmp_path, capsys):
    root, _ = files
    circuit, config = rmm.load_circuit(fitted)
    # 10 µA of holding current drives the free run out of its voltage bounds within a few samples.
    pushed = eqx.tree_at(lambda c: c.neurons[0].holding, circuit, jnp.asarray(1e4, circuit.neurons[0].holding.dtype))
    rmm.save_circuit(tmp_path / "pushed", pushed, config)
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path / "pushed"), str(root / "circuit.npz"), "--out", str(out)]) == 1
    assert "diverged on sweep 0" in _error(capsys)
    assert not out.exists() and not (tmp_path / "p.metrics.json").exists()


def test_stream_replays_a_circuit(files, fitted, capsys):
    root, _ = files
    out = root / "est.csv"
    assert main(["stream", str(fitted), str(root / "circuit.npz"), "--seconds", "0.05", "--out", str(out)]) == 0
    assert "streamed 500 samples" in capsys.readouterr().err
    table = pd.read_csv(out)
    assert list(table.columns) == ["t_ms", "post.holding[0]", "post.leak[1]", "post.K[2]", "post.syn pre->post[3]"]
    assert len(table) == 5 and np.all(np.isfinite(table.to_numpy()))  # θ kept every 100 samples


@pytest.mark.parametrize("circuit, message", [
    ('neurons = ["post"]\nexogenous = ["pre"]\nsynapses = ["post -> pre"]', "'pre' is an exogenous"),
    ('neurons = ["post"]\nexogenous = ["pre"]\nsynapses = ["pre -> post", "pre -> post"]', "listed twice"),
    ('neurons = ["post"]\nexogenous = ["pre"]\nsynapses = ["pre -> B"]', "unknown postsynaptic neuron 'B'"),
    ('neurons = ["post", "B"]\nexogenous = ["pre"]', "names channel(s) ['B'] that the recording does not have"),
    ('neurons = ["post"]\nexogenous = ["pre"]\nchannels = ["pre", "post", "extra"]', "3 channel name(s)"),
    ('neurons = ["post", "pre"]\nchannels = ["pre", "post"]', "modelled neuron(s) ['pre'] have no injected-current"),
    ('neurons = ["post"]\nexogenous = ["pre"]', "names channel(s) ['post', 'pre'] that the recording does not have; "
                                              "its 2 channel(s) are ['V1', 'V2']"),
    ('neurons = ["post"]\nexogenous = ["pre"]\nwarm_up = 3', "'circuit.warm_up'"),
])
def test_bad_circuit_input_through_the_cli(files, capsys, circuit, message):
    root, _ = files
    out = root / "m_bad"
    config = root / "bad.toml"
    config.write_text(HEAD + "\n[circuit]\n" + circuit + "\n" + TRAINING)
    data = root / ("circuit.mat" if "'V1'" in message or "injected" in message else "circuit.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnitWarning)  # the .mat does not state its units
        assert main(["fit", str(data), "--config", str(config), "--out", str(out)]) == 2
    assert message in _error(capsys)
    assert not out.exists()


def test_single_neuron_and_circuit_dirs_are_told_apart(files, fitted, capsys, tmp_path):
    root, _ = files
    bad = tmp_path / "bad.toml"
    bad.write_text("[circut]\nneurons = ['post']\n")
    assert main(["fit", str(root / "circuit.npz"), "--config", str(bad), "--out", str(tmp_path / "m")]) == 2
    assert "unknown table(s) 'circut'" in _error(capsys)
    # A circuit dir with a recording missing its channels: the error names what the circuit needs.
    rec = Recording(np.full((1, 500), -60.0), np.zeros((1, 500)), dt=0.1)
    rmm.write_circuit_npz(tmp_path / "other.npz", rmm.CircuitRecording({"A": rec}))
    assert main(["predict", str(fitted), str(tmp_path / "other.npz"), "--out", str(tmp_path / "p.csv")]) == 2
    assert "['post', 'pre'] that the recording does not have; its 1 channel(s) are ['A']" in _error(capsys)
    assert not (tmp_path / "p.csv").exists()


def test_fit_measures_synapses_on_the_clamped_part_of_an_npz(files, tmp_path, capsys):
    """A `command` array in the .npz (NaN where free) reaches the fit: the synapse onto the
    clamped cell is fitted on those samples first and kept (the report says which); a clamp
    reaching into the validation part is an error that says what to do."""
    root, rec = files
    n = rec.n_samples
    command = np.full((1, n), np.nan)
    command[0, n // 10:n // 5] = -50.0  # inside the training part (the first 60 %)
    clamped = rmm.CircuitRecording({"pre": rec["pre"], "post": rec["post"].replace(command=command)})
    rmm.write_circuit_npz(tmp_path / "clamped.npz", clamped)
    assert main(["fit", str(tmp_path / "clamped.npz"), "--config", str(root / "circuit.toml"), "--out",
                 str(tmp_path / "m"), "--no-progress", "--no-figures"]) == 0
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert [s["fixed_synapses"] for s in report["stages"]] == [["syn pre->post"]] * 2
    assert [len(s["clamp_loss"]) for s in report["stages"]] == [2, 1]  # each stage's epochs
    command[0, int(0.65 * n):int(0.7 * n)] = -50.0  # now in the validation part too
    rmm.write_circuit_npz(tmp_path / "clamped.npz", rmm.CircuitRecording(
        {"pre": rec["pre"], "post": rec["post"].replace(command=command)}))
    assert main(["fit", str(tmp_path / "clamped.npz"), "--config", str(root / "circuit.toml"), "--out",
                 str(tmp_path / "m2"), "--no-progress", "--no-figures"]) == 2
    assert "needs current-clamp data" in _error(capsys)
