"""The spike-train → DIC network: encoding, masking, augmentation, learning, calibration, weights."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import jax
import numpy as np
import pytest

from neuromech.dics import DICNet, NetworkConfig, TrainingConfig, WeightsError, infer_dics, load_network, save_network
from neuromech.dics._network import encode_trains
from neuromech.dics._training import (Examples, Standardisation, _batch, augment, evaluate, predict, train_network,
                                      windows)

SMALL = NetworkConfig(width=16, dilations=(1, 2), heads=2, hidden=32)
UNIT = Standardisation((0.0,) * 6, (1.0,) * 6)


def _train(rng, n):
    return np.cumsum(rng.uniform(5.0, 60.0, n))


def test_padding_does_not_change_the_output():
    # The mask must make a train's output independent of how far its batch is padded: the same
    # train in a batch of length 16 and of length 128 gives the same numbers (float32 round-off).
    net = DICNet(SMALL, key=jax.random.PRNGKey(0))
    train = _train(np.random.default_rng(0), 12)
    short = [np.asarray(x) for x in net(*(a[0] for a in encode_trains([train], 16)))]
    long = [np.asarray(x) for x in net(*(a[0] for a in encode_trains([train], 128)))]
    for a, b in zip(short, long):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_encoding_of_isis():
    tokens, mask, stats = encode_trains([[0.0, 50.0, 150.0], [0.0, 10.0, 20.0, 30.0]])
    assert tokens.shape == (2, 16, 3) and mask[0].sum() == 2 and mask[1].sum() == 3
    # log(50 ms) is the centre of the standardisation: the first ISI of train 0 encodes to 0
    assert tokens[0, 0, 0] == pytest.approx(0.0, abs=1e-6)
    assert tokens[0, 1, 1] == pytest.approx(np.log(2.0) / 1.5, rel=1e-5)  # log-ISI step
    assert np.all(tokens[:, :, :][mask == 0] == 0)
    assert stats.shape == (2, 9)
    # Train 1 is perfectly regular (CV 0): its boundary statistic saturates on the tonic side;
    # train 0 (ISIs 50, 100: CV 1/3) on the bursting side.
    assert stats[1, 8] == -3.0 and stats[0, 8] == 3.0


def test_boundary_statistic_resolves_the_pattern_threshold():
    # Two trains whose CVs lie 0.005 either side of the rule's threshold (0.15) must differ by a
    # whole unit in the boundary statistic, and agree with the rule's classification.
    from neuromech.analysis import firing_features
    rng = np.random.default_rng(5)
    isi = 50.0 + rng.standard_normal(400)
    isi = 50.0 + (isi - isi.mean()) / isi.std()  # exactly mean 50, std 1
    for cv in (0.145, 0.155):
        train = np.concatenate([[0.0], np.cumsum(50.0 + (isi - 50.0) * 50.0 * cv)])
        stat = encode_trains([train])[2][0, 8]
        assert stat == pytest.approx((cv - 0.15) / 0.01, abs=1e-3)
        assert (stat > 0) == (str(firing_features(train).pattern) == "bursting")


def test_windows_of_a_long_train_get_the_whole_trains_statistics(monkeypatch):
    # predict reads a long train in windows: every window it encodes must carry the statistics of
    # the whole train (spied on at the encoder predict calls).
    import neuromech.dics._training as training
    rng = np.random.default_rng(6)
    train = _train(rng, 300)
    parts = windows(train, 64)
    _, _, whole = encode_trains([train])
    seen = []

    def spy(*args, **kwargs):
        out = encode_trains(*args, **kwargs)
        seen.append(out[2])
        return out

    monkeypatch.setattr(training, "encode_trains", spy)
    predict(DICNet(SMALL, key=jax.random.PRNGKey(0)), [train], UNIT, max_isis=64)
    per_window = np.concatenate(seen)
    np.testing.assert_allclose(per_window, np.repeat(whole, len(parts), 0), rtol=1e-6)
    _, _, own = encode_trains(parts[:1], encoding=1)  # encoding 1: the window's own statistics
    assert own.shape == (1, 8) and not np.allclose(own[0], whole[0, :8], rtol=1e-3)


def test_augmentation_keeps_valid_trains():
    rng = np.random.default_rng(1)
    config = TrainingConfig(max_isis=32)
    for _ in range(300):
        window, recording = augment(_train(rng, int(rng.integers(3, 200))), rng, config)
        assert 3 <= len(window) <= 33 and np.all(np.diff(window) >= 0)
        assert np.isin(window, recording).all() and np.all(np.diff(recording) >= 0)


def test_class_targets_are_the_pattern_of_the_train_read():
    """The class target follows the rule on the (augmented) spike times, not the stored label."""
    periodic = np.arange(30) * 40.0  # CV 0: tonic
    bursts = np.cumsum(np.tile([5.0, 5.0, 5.0, 200.0], 8))  # CV ≫ 0.15: bursting
    near = np.cumsum(np.tile([36.0, 44.0], 15))  # CV 0.1: tonic until spikes go missing
    stored = Examples([periodic, bursts, near], np.zeros((3, 2)), np.array([1, 0, 1]), np.zeros((3, 6)),
                      np.zeros(3), np.arange(3))
    clean = TrainingConfig(jitter_ms=0.0, drop_fraction=0.0, window_probability=0.0)
    batch = _batch(stored, np.arange(3), np.random.default_rng(0), clean, encoding=2)
    assert batch[4].tolist() == [0, 1, 0]
    # With spikes dropped, `near` turns bursting whenever a merged ISI pushes its CV past 0.15.
    lossy = dataclasses.replace(clean, drop_fraction=0.3)
    rng = np.random.default_rng(1)
    labels = [_batch(stored, np.array([2]), rng, lossy, encoding=2)[4][0] for _ in range(40)]
    assert 0 < sum(labels) < 40


def test_windows_cover_the_train():
    t = np.arange(200.0)
    parts = windows(t, 64)
    assert all(len(p) <= 65 for p in parts) and parts[-1][-1] == 199.0
    assert set(np.concatenate(parts).tolist()) == set(t.tolist())
    assert windows(t[:10], 64)[0] is not None and len(windows(t[:10], 64)) == 1


def _synthetic(rng, n):
    """Trains whose 'DICs' are known functions of their firing: g_s = 8·log(ISI/30 ms), g_u = burstiness."""
    trains, y, bursting = [], [], []
    for _ in range(n):
        isi = rng.uniform(10, 90)
        burst = rng.random() < 0.5
        k = int(rng.integers(20, 60))
        if burst:
            pattern = np.tile(np.r_[np.full(4, isi / 4), 4 * isi], k // 5 + 1)[:k]
        else:
            pattern = np.full(k, isi)
        trains.append(np.cumsum(pattern * rng.normal(1, 0.02, k)))
        y.append([8 * np.log(isi / 30), 10.0 * burst])
        bursting.append(int(burst))
    n_feat = np.full((n, 6), np.nan)
    return Examples(trains, np.asarray(y), np.asarray(bursting), n_feat, np.zeros(n), np.arange(n))


def test_the_network_learns_a_known_mapping_and_calibrates():
    rng = np.random.default_rng(2)
    train, val = _synthetic(rng, 1024), _synthetic(rng, 256)
    config = TrainingConfig(epochs=6, batch_size=64, learning_rate=3e-3, max_isis=32, seed=0)
    net, std, history = train_network(train, val, config, network=SMALL, progress=False,
                                      standardisation=UNIT)
    metrics = evaluate(net, val, std, max_isis=32)
    # The labels have std ≈ 7 (g_s) and 5 (g_u); a working network gets far below that. Bound: 1.5,
    # several times below the labels' spread, yet loose enough for 6 short epochs of a tiny net.
    assert metrics["mae_g_s"] < 1.5 and metrics["mae_g_u"] < 1.5, metrics
    assert metrics["class_accuracy"] > 0.95
    # Calibration is fitted on `val`: the ±1 std coverage there is 68.3 % up to ties (1/256 each).
    assert metrics["coverage_g_s"] == pytest.approx(0.683, abs=0.02)
    assert metrics["coverage_g_u"] == pytest.approx(0.683, abs=0.02)
    assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"]


def test_weights_round_trip_and_strict_loading(tmp_path):
    net = DICNet(SMALL, key=jax.random.PRNGKey(3))
    std = dataclasses.replace(UNIT, sigma_scale=(1.5, 0.5))
    path = save_network(tmp_path / "net", net, std, model="stg", v_th=-51.0, max_isis=32, record={"seed": 3})
    loaded = load_network(path)
    trains = [_train(np.random.default_rng(k), 40) for k in range(3)]
    a = predict(net, trains, std, max_isis=32)
    b = predict(loaded.net, trains, loaded.standardisation, max_isis=32)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert loaded.record == {"seed": 3} and loaded.v_th == -51.0

    meta = json.loads(path.read_text())
    meta["network"]["width"] = 24  # the file no longer describes these weights
    path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="checksum|does not fit"):
        load_network(path)
    meta["weights_sha256"] = __import__("hashlib").sha256(path.with_suffix(".eqx").read_bytes()).hexdigest()
    path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="does not fit|shape"):
        load_network(path)
    path.with_suffix(".eqx").write_bytes(path.with_suffix(".eqx").read_bytes()[:-8])
    with pytest.raises(WeightsError, match="checksum"):
        load_network(path)


def test_weights_with_bytes_after_the_last_array_are_refused(tmp_path):
    # A file longer than the architecture's arrays (here 8 stray bytes, checksum recomputed) is
    # from another network: an error, not a network loaded from its first part.
    net = DICNet(SMALL, key=jax.random.PRNGKey(3))
    path = save_network(tmp_path / "net", net, UNIT, model="stg", v_th=-51.0, max_isis=32, record={})
    eqx_path = path.with_suffix(".eqx")
    eqx_path.write_bytes(eqx_path.read_bytes() + bytes(8))
    meta = json.loads(path.read_text())
    meta["weights_sha256"] = hashlib.sha256(eqx_path.read_bytes()).hexdigest()
    path.write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="8 bytes left"):
        load_network(path)


@pytest.mark.parametrize("model", ["stg", "da"])
def test_shipped_networks_load_with_their_record(model):
    loaded = load_network(model)
    assert loaded.model == model
    record = loaded.record
    assert record["data"]["test"] > 0 and "clean" in record["test"]
    assert {"mae_g_s", "mae_g_u", "class_accuracy", "coverage_g_s"} <= set(record["test"]["clean"])


def test_infer_dics_long_short_and_silent_trains():
    rng = np.random.default_rng(4)
    long = _train(rng, 3000)  # thousands of spikes: read in windows
    table = infer_dics({"long": long, "short": long[:3], "silent": long[:2]}, "stg")
    assert table["id"].tolist() == ["long", "short", "silent"]
    assert table["n_spikes"].tolist() == [3000, 3, 2]
    assert np.isfinite(table.loc[:1, ["g_s_hat", "g_u_hat", "g_s_std", "g_u_std"]].to_numpy()).all()
    assert table.loc[2, "pattern"] == "silent" and np.isnan(table.loc[2, "g_s_hat"])
    assert (table.loc[:1, ["g_s_std", "g_u_std"]].to_numpy() > 0).all()


def test_train_statistics_match_per_train_numpy():
    # The batched statistics (sorted rows, NaN padding) against np.quantile / mean / std per train,
    # for lengths 2 to 500 ISIs in one batch; float32 output, hence 1e-6 relative.
    from neuromech.dics._network import train_statistics
    rng = np.random.default_rng(7)
    isis = [rng.lognormal(3.0, 1.0, n) for n in (2, 3, 17, 64, 500)]
    got = train_statistics(isis)
    for row, isi in zip(got, isis):
        z = (np.log(isi) - np.log(50.0)) / 1.5
        cv = isi.std() / isi.mean()
        expected = [*np.quantile(z, [0.0, 0.1, 0.5, 0.9, 1.0]), z.mean(), z.std(), np.log1p(cv),
                    np.clip((cv - 0.15) / 0.01, -3, 3)]
        np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-6)
