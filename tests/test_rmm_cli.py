"""End-to-end tests of ``neuromech fit`` and ``neuromech predict`` on a small synthetic recording:
the files they write, that the saved model reproduces the Python API's prediction, and that bad
input gives exit status 2 with one clear ``neuromech: error:`` line and no output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuromech import rmm
from neuromech.cli import main
from neuromech.recordings import read_npz, synthetic_recording, write_npz

CONFIG = """
[data]
split = [0.6, 0.2, 0.2]

[model]
preset = "neuron"

[model.filters]
tau_min = 0.1
tau_max = 20.0
n = 8

[training]
epochs = 3
batch_size = 1024
validate_every = 3
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rmm_cli")
    rec = synthetic_recording("hh", 1500.0, seed=7, transient=100.0, drive=(0.0, 4.0, 5.0))
    write_npz(root / "hh.npz", rec)
    (root / "rmm.toml").write_text(CONFIG)
    return root


@pytest.fixture(scope="module")
def fitted(files):
    out = files / "model"
    status = main(["fit", str(files / "hh.npz"), "--config", str(files / "rmm.toml"), "--out", str(out),
                   "--no-progress"])
    assert status == 0
    return out


def test_fit_writes_model_config_report_and_figures(fitted):
    names = {p.name for p in fitted.iterdir()}
    assert {"model.eqx", "model.json", "report.json", "prediction.png", "iv.png", "gates.png"} <= names
    report = json.loads((fitted / "report.json").read_text())
    test = report["test_metrics"]["summary"]
    assert test["n_sweeps"] == 1 and np.isfinite(test["rmse"])
    assert len(report["loss"]) == 3 and report["config"]["model"]["filters"]["n"] == 8
    model, config = rmm.load_model(fitted)
    assert config.training.epochs == 3 and model.names == ("leak", "Na", "K", "slow")


def test_predict_writes_the_table_and_metrics(files, fitted, capsys):
    out = files / "pred.csv"
    assert main(["predict", str(fitted), str(files / "hh.npz"), "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["sweep", "t_ms", "i_applied", "v_measured", "v_predicted"]
    rec = read_npz(files / "hh.npz")
    assert len(table) == rec.n_samples
    # The CLI's prediction is the API's free run of the saved model on the same current.
    model, _ = rmm.load_model(fitted)
    expected = rmm.simulate(model, rec.current[0], rec.voltage[0, 0])
    np.testing.assert_allclose(table["v_predicted"], expected, rtol=1e-5, atol=1e-3)  # 6 printed digits
    metrics = json.loads((files / "pred.metrics.json").read_text())
    assert metrics["sweeps"][0]["sweep"] == 0 and "coincidence" in metrics["summary"]
    assert "RMSE" in capsys.readouterr().err


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return err[-1]


def test_unknown_config_key_is_an_error(files, capsys):
    bad = files / "bad.toml"
    bad.write_text("[training]\nepoch = 3\n")
    status = main(["fit", str(files / "hh.npz"), "--config", str(bad), "--out", str(files / "m_bad")])
    assert status == 2
    message = _error(capsys)
    assert message.startswith("neuromech: error:") and "'training.epoch'" in message and "epochs" in message
    assert not (files / "m_bad").exists()


def test_recording_shorter_than_the_longest_filter_is_an_error(files, capsys):
    # Default filters reach 1.5 s; 70 % of a 1.5 s record is shorter.
    status = main(["fit", str(files / "hh.npz"), "--out", str(files / "m_short"), "--epochs", "1"])
    assert status == 2
    assert "shorter than 1500 ms" in _error(capsys)
    assert not (files / "m_short").exists()


def test_bad_sweep_selection_and_model_dir(files, fitted, capsys):
    assert main(["fit", str(files / "hh.npz"), "--sweeps", "3-4", "--out", str(files / "m_sw")]) == 2
    assert "not in this recording, which has sweeps 0" in _error(capsys)
    assert main(["predict", str(files), str(files / "hh.npz"), "--out", str(files / "p.csv")]) == 2
    assert "not a saved RMM" in _error(capsys)
    assert not (files / "p.csv").exists()


def test_headerless_text_file_with_columns_in_the_config(files, capsys):
    # The file a rig exports: no header, time in s, current in pA, voltage in mV.
    rec = read_npz(files / "hh.npz")
    text = files / "hh.txt"
    np.savetxt(text, np.column_stack([rec.time / 1000.0, rec.current[0] * 1000.0, rec.voltage[0]]), fmt="%.9g")
    assert main(["fit", str(text), "--out", str(files / "m_text"), "--epochs", "1"]) == 2
    message = _error(capsys)
    assert "no header line" in message and "[data] columns" in message
    assert not (files / "m_text").exists()
    config = files / "text.toml"
    config.write_text(CONFIG.replace("[data]\n", '[data]\ncolumns = ["t_s", "i_pA", "v_mV"]\n'))
    out = files / "m_text"
    assert main(["fit", str(text), "--config", str(config), "--out", str(out), "--no-progress"]) == 0
    model, saved = rmm.load_model(out)
    assert saved.data.columns == ("t_s", "i_pA", "v_mV")
    # predict reads the same file through the saved config: the free run of the model on the
    # current converted to nA (9 printed digits in the file; 6 in the table).
    pred = files / "pred_text.csv"
    assert main(["predict", str(out), str(text), "--out", str(pred)]) == 0
    table = pd.read_csv(pred)
    np.testing.assert_allclose(table["t_ms"], rec.time, atol=1e-6)
    np.testing.assert_allclose(table["i_applied"], rec.current[0], rtol=1e-5, atol=1e-8)
    expected = rmm.simulate(model, rec.current[0], rec.voltage[0, 0])
    np.testing.assert_allclose(table["v_predicted"], expected, rtol=1e-5, atol=1e-3)


def test_bundled_burster_config_reads():
    # The example config for bursting neurons must stay valid as the settings evolve.
    import tomllib

    from neuromech.rmm import config_from_dict

    path = Path(__file__).resolve().parents[1] / "examples" / "rmm_burster.toml"
    config = config_from_dict(tomllib.loads(path.read_text()))
    assert config.model.preset == "stg" and config.training.rollout.length == 200
    assert config.training.rollout.gamma(1) == 0.2 and config.training.rollout.gamma(20) == 0.0
