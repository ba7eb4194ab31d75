"""The training-data generator: contents checked against independent recomputation, resumption, errors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from neuromech.analysis import firing_features
from neuromech.cbm import Noise, stg, simulate
from neuromech.dics import dics
from neuromech.jobs import JobMismatchError, TrainingDataSettings, generate_training_data, read_training_data

SETTINGS = TrainingDataSettings("stg", n_targets=3, models_per_target=3, chunk_targets=2, duration=800.0,
                                transient=200.0, seed=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("training")
    first = generate_training_data(out, SETTINGS, progress=False, max_chunks=1)
    second = generate_training_data(out, SETTINGS, progress=False)
    return out, first, second, read_training_data(out)


def test_chunks_are_written_then_resumed(data):
    out, first, second, frame = data
    assert (first.n_trains, first.resumed) == (6, 0)  # one chunk of 2 targets × 3 models
    assert (second.n_trains, second.resumed, second.n_chunks) == (9, 1, 2)
    assert sorted(p.name for p in out.glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
    assert len(frame) == 9 and frame["target"].nunique() == 3


def test_several_folders_keep_their_targets_apart(data, tmp_path):
    out, frame = data[0], data[3]
    (tmp_path / "copy").mkdir()
    for part in out.glob("part-*.parquet"):
        (tmp_path / "copy" / part.name).write_bytes(part.read_bytes())
    both = read_training_data([out, tmp_path / "copy"])
    assert len(both) == 2 * len(frame) and both["target"].nunique() == 2 * frame["target"].nunique()
    np.testing.assert_array_equal(both["g_s"].to_numpy(), np.tile(frame["g_s"].to_numpy(), 2))
    with pytest.raises(FileNotFoundError, match="no training data parts"):
        read_training_data([out, tmp_path / "missing"])


def test_stored_dics_are_those_of_the_stored_conductances(data):
    frame = data[3]
    model = stg()
    g = frame[list(model.conductance_names)].to_numpy()
    assert np.all(frame["v_th"] == -51.0)  # the published STG threshold
    recomputed = dics(model, g, -51.0)
    # Round trip: DICs recomputed from the saved conductances (float64) against the saved columns;
    # both are float64 evaluations of the same formula, so 1e-8 leaves room for summation order only.
    np.testing.assert_allclose(np.stack([recomputed.g_s, recomputed.g_u], 1), frame[["g_s", "g_u"]], atol=1e-8)
    # and the targets were reached (compensation tolerance 1e-6 by default)
    np.testing.assert_allclose(frame[["g_s", "g_u"]], frame[["target_g_s", "target_g_u"]], atol=1e-5)


def test_stored_trains_and_features_reproduce(data):
    frame = data[3]
    model = stg()
    for _, row in frame.iterrows():
        features = firing_features(np.asarray(row["spike_times"]))
        assert features.pattern == row["pattern"] and features.n_spikes == row["n_spikes"]
    noiseless = frame[frame["sigma"] == 0].iloc[0]
    g = noiseless[list(model.conductance_names)].to_numpy(dtype=float)[None]
    direct = simulate(model, g, Noise(0.0), duration=SETTINGS.duration, transient=SETTINGS.transient).trains[0]
    # Same model, same solver, same dt, no noise: identical up to float32 round-off in the batch.
    np.testing.assert_allclose(noiseless["spike_times"], direct, atol=1e-3)
    assert set(frame["sigma"]) == {0.0, 3.0, 5.0}


def test_other_settings_in_the_same_folder_are_refused(data):
    out = data[0]
    with pytest.raises(JobMismatchError, match="seed 3 → 4"):
        generate_training_data(out, TrainingDataSettings(**{**SETTINGS.__dict__, "seed": 4}), progress=False)


def test_a_set_grows_when_asked_for_more_targets(data, tmp_path):
    out, frame = data[0], data[3]
    # A folder holding only the first chunk, as a run with 2 targets leaves it (chunks are pure
    # functions of their targets, so the fixture's first part is that run's part).
    grown = tmp_path / "grown"
    fewer = dataclasses.replace(SETTINGS, n_targets=2)
    generate_training_data(grown, fewer, progress=False, max_chunks=0)
    (grown / "part-00000.parquet").write_bytes((out / "part-00000.parquet").read_bytes())
    summary = generate_training_data(grown, SETTINGS, progress=False)
    assert (summary.resumed, summary.n_chunks, summary.n_trains) == (1, 2, 9)
    # The grown set is the set made in one go, to the byte.
    assert (grown / "part-00001.parquet").read_bytes() == (out / "part-00001.parquet").read_bytes()
    assert json.loads((grown / "manifest.json").read_text())["n_targets"] == 3
    generate_training_data(grown, fewer, progress=False)  # asking for fewer keeps them all
    assert json.loads((grown / "manifest.json").read_text())["n_targets"] == 3
    # 3 targets in chunks of 2 leave a partial last part, which cannot grow in place.
    with pytest.raises(JobMismatchError, match="not a whole number of chunks of 2"):
        generate_training_data(grown, dataclasses.replace(SETTINGS, n_targets=5), progress=False)


@pytest.mark.parametrize("bad, match", [
    (dict(model="hh"), "model must be one of"),
    (dict(n_targets=0), "n_targets must be a positive integer"),
    (dict(noise=(-1.0,)), "noise must list levels"),
    (dict(duration=100.0, transient=200.0), "transient < duration"),
    (dict(g_s_range=(5.0, -5.0)), "low < high"),
])
def test_bad_settings_are_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainingDataSettings(**bad)


def test_cli_stops_after_max_chunks_and_resumes(tmp_path):
    # Chunks run in order, so --max-chunks N on a fresh folder makes exactly the first N parts:
    # the published DA data set is the first chunks of a larger run.
    from neuromech.cli import main
    args = ["training-data", "--model", "stg", "--targets", "2", "--models-per-target", "2", "--chunk-targets", "1",
            "--dt", "0.05", "--seed", "3", "--out", str(tmp_path)]
    assert main(args + ["--max-chunks", "1"]) == 0
    assert [p.name for p in tmp_path.glob("part-*.parquet")] == ["part-00000.parquet"]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.glob("part-*.parquet")) == ["part-00000.parquet", "part-00001.parquet"]
