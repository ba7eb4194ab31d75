"""Tests of neuromech.analysis: spike detection, firing pattern and features.

Synthetic cases are checked against analytic truth; the real recordings in ../shared/data (read
in place, skipped cleanly when absent) check that detection works on real cells.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuromech.analysis import (
    FiringPattern,
    SpikeFeatures,
    detect_spikes,
    features_table,
    firing_features,
    isi_cv,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
RECORDINGS = DATA / "recordings"

# Exact arithmetic on spike times like 150.0 * k + 10.0 * j leaves only rounding error of a few
# ulps of ~10^3 ms (~1e-13 ms); 1e-9 is far above that and far below any feature's scale.
EXACT = 1e-9


# --------------------------------------------------------------------------------------------
# detect_spikes


def _sine_case(dt: float, phase: float):
    """v = A sin(ω t + phase) sampled at dt, with its analytic upward crossings of `thr`."""
    amplitude, period, thr = 40.0, 20.0, 10.0
    omega = 2.0 * np.pi / period
    t = np.arange(0.0, 200.0, dt)
    v = amplitude * np.sin(omega * t + phase)
    # Upward crossings: ω t + phase = arcsin(thr/A) + 2π m.
    phi = np.arcsin(thr / amplitude)
    m = np.arange(-2, 15)
    exact = (phi + 2.0 * np.pi * m - phase) / omega
    exact = exact[(exact > t[0]) & (exact <= t[-1])]
    return t, v, exact, amplitude, omega, phi, thr


@pytest.mark.parametrize("dt", [0.025, 0.1, 0.2])
def test_detect_spikes_sine_interpolated_matches_analytic_crossings(dt):
    rng = np.random.default_rng(0)
    for phase in rng.uniform(0.0, 2.0 * np.pi, size=5):
        t, v, exact, amplitude, omega, phi, thr = _sine_case(dt, phase)
        spikes = detect_spikes(t, v, threshold=thr, rearm=0.0)
        assert spikes.shape == exact.shape
        # Secant-root error: on a bracket [a, b] of width dt, v(t_s) - thr =
        # v''(ξ)/2 (t_s - a)(t_s - b), so |v(t_s) - thr| <= max|v''| dt²/8 and
        # |t_s - t*| <= max|v''| dt² / (8 min|v'|). Here max|v''| <= A ω² and on the bracket
        # |v'| >= A ω cos(φ + ω dt), φ = arcsin(thr/A). The factor 1.01 covers rounding only.
        bound = omega * dt**2 / (8.0 * np.cos(phi + omega * dt)) * 1.01
        err = np.abs(spikes - exact)
        assert err.max() <= bound, (err.max(), bound)
        # Not snapped to the grid: the bound is far below the O(dt) error of snapping.
        assert bound < 0.05 * dt


def test_detect_spikes_without_interpolation_returns_first_sample_above_threshold():
    t, v, exact, *_ = _sine_case(0.1, 0.3)
    spikes = detect_spikes(t, v, interpolate=False)
    idx = np.searchsorted(t, exact)  # first sample at or after the exact crossing
    np.testing.assert_array_equal(spikes, t[idx])


def test_detect_spikes_scalar_dt_and_t0_equal_explicit_grid():
    t, v, *_ = _sine_case(0.1, 1.0)
    explicit = detect_spikes(t + 5.0, v)
    # Same grid built two ways (5 + k*0.1 vs arange + 5) differs by rounding of ~1e-13 ms.
    np.testing.assert_allclose(detect_spikes(0.1, v, t0=5.0), explicit, rtol=0, atol=EXACT)


def test_detect_spikes_hysteresis_counts_chattering_once():
    rng = np.random.default_rng(1)
    dt = 0.05
    rest = np.full(200, -65.0)
    # Noise chattering around +10 mV (crossing it many times) but never below rearm = 0 mV,
    # then a clean spike, then down to rest: one spike.
    chatter = 10.0 + rng.uniform(-3.0, 3.0, size=400)
    assert ((chatter[:-1] < 10.0) & (chatter[1:] >= 10.0)).sum() > 50  # it does chatter
    spike = np.linspace(10.0, 30.0, 20)
    v = np.concatenate([rest, chatter, spike, rest, chatter, rest])
    spikes = detect_spikes(dt, v, threshold=10.0, rearm=0.0)
    assert spikes.size == 2
    # Each count is the first upward crossing of a chatter segment (samples 200-599 and
    # 820-1219), interpolated, so it may lie up to one sample before the segment starts.
    assert 199 * dt < spikes[0] < 600 * dt
    assert 819 * dt < spikes[1] < 1220 * dt
    # Without hysteresis the same trace counts every chattering crossing.
    assert detect_spikes(dt, v, threshold=10.0, rearm=9.999).size > 50


def test_detect_spikes_double_peak_above_rearm_counts_once():
    v = np.array([-60.0, 20.0, 5.0, 25.0, -60.0, 20.0, -60.0])
    np.testing.assert_array_equal(detect_spikes(1.0, v, interpolate=False), [1.0, 5.0])


def test_detect_spikes_at_start_of_trace():
    # Starts above threshold (mid-spike): not counted until it has gone below rearm.
    v = np.array([30.0, 20.0, -5.0, 15.0, -60.0])
    np.testing.assert_allclose(detect_spikes(1.0, v), [2.0 + 15.0 / 20.0], rtol=0, atol=EXACT)
    # Starts exactly at threshold: not armed either.
    assert detect_spikes(1.0, [10.0, 20.0, 5.0, 30.0]).size == 0
    # Starts between rearm and threshold: armed, so the rise at once counts.
    np.testing.assert_allclose(detect_spikes(1.0, [5.0, 15.0, -5.0]), [0.5], rtol=0, atol=EXACT)
    # A spike between the first two samples is interpolated between them.
    np.testing.assert_allclose(
        detect_spikes(1.0, [-60.0, 20.0, -60.0], t0=3.0), [3.0 + 70.0 / 80.0], rtol=0, atol=EXACT
    )


def test_detect_spikes_2d_equals_per_trace():
    rng = np.random.default_rng(2)
    dt = 0.1
    traces = []
    for phase in rng.uniform(0.0, 2.0 * np.pi, size=4):
        _, v, *_ = _sine_case(dt, phase)
        traces.append(v + rng.normal(0.0, 0.5, size=v.size))
    traces.append(np.full(traces[0].size, -70.0))  # a silent trace
    v2 = np.stack(traces)
    out = detect_spikes(dt, v2)
    assert isinstance(out, list) and len(out) == v2.shape[0]
    for row, spikes in zip(v2, out):
        np.testing.assert_array_equal(spikes, detect_spikes(dt, row))
    assert out[-1].size == 0
    assert all(o.size == 10 for o in out[:-1])  # 200 ms of a 20 ms-period sine


def test_detect_spikes_tiny_traces():
    assert detect_spikes(0.1, np.empty(0)).size == 0
    assert detect_spikes(0.1, [50.0]).size == 0
    assert [a.size for a in detect_spikes(0.1, np.empty((3, 0)))] == [0, 0, 0]


def test_detect_spikes_validation():
    with pytest.raises(ValueError, match=r"v holds a non-finite value \(nan\) at index 3"):
        detect_spikes(0.1, [0.0, 1.0, 2.0, np.nan])
    with pytest.raises(ValueError, match=r"index \(1, 2\)"):
        detect_spikes(0.1, [[0.0, 1.0, 2.0], [0.0, 1.0, np.nan]])
    with pytest.raises(ValueError, match=r"t of shape \(4,\) for v of shape \(5,\)"):
        detect_spikes(np.arange(4.0), np.zeros(5))
    with pytest.raises(ValueError, match="strictly increasing"):
        detect_spikes([0.0, 1.0, 1.0, 2.0], np.zeros(4))
    with pytest.raises(ValueError, match="rearm must be below threshold"):
        detect_spikes(0.1, np.zeros(4), threshold=0.0, rearm=0.0)
    with pytest.raises(ValueError, match="sample period dt"):
        detect_spikes(0.0, np.zeros(4))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2\)"):
        detect_spikes(0.1, np.zeros((2, 2, 2)))


# --------------------------------------------------------------------------------------------
# firing_features


def test_tonic_train_with_jitter():
    rng = np.random.default_rng(3)
    period = 25.0  # ms, 40 Hz
    train = period * np.arange(200) + rng.normal(0.0, 0.5, size=200)
    f = firing_features(train)
    assert f.pattern is FiringPattern.TONIC and f.pattern == "tonic"
    assert f.n_spikes == 200
    # Mean ISI = (last - first) / 199: the jitter of the two end spikes moves it by a normal
    # error of std sqrt(2) * 0.5 / 199 ≈ 0.0036 ms, 1.4e-4 of 25 ms; rel 1e-3 is 7 std.
    assert f.spiking_frequency == pytest.approx(40.0, rel=1e-3)
    # ISI std is sqrt(2) * 0.5 ms, so CV ≈ 0.028; a std estimated from 199 ISIs has relative
    # standard error ≈ 1/sqrt(2 * 199) ≈ 5 %, so rel 0.15 is 3 standard errors.
    assert f.cv_isi == pytest.approx(np.sqrt(2) * 0.5 / period, rel=0.15)
    assert np.isnan(f.burst_duration) and np.isnan(f.intraburst_frequency)
    assert np.isnan(f.interburst_frequency) and np.isnan(f.spikes_per_burst)
    assert f.n_bursts == 0


def _bursting_train(n_bursts=8, per_burst=5, isi=10.0, period=150.0, offset=3.0):
    burst = isi * np.arange(per_burst)
    return offset + np.concatenate([burst + period * k for k in range(n_bursts)])


def test_bursting_train_exact_features():
    f = firing_features(_bursting_train())
    assert f.pattern is FiringPattern.BURSTING
    assert f.n_spikes == 40
    assert f.n_bursts == 6  # 8 bursts, first and last dropped as incomplete
    assert f.spikes_per_burst == 5.0
    assert f.burst_duration == pytest.approx(40.0, abs=EXACT)
    assert f.intraburst_frequency == pytest.approx(100.0, abs=EXACT)
    assert f.interburst_frequency == pytest.approx(1000.0 / 150.0, abs=EXACT)
    # All 39 ISIs: 32 of 10 ms and 7 of 110 ms.
    isi = np.array([10.0] * 32 + [110.0] * 7)
    assert f.spiking_frequency == pytest.approx(1000.0 / isi.mean(), abs=EXACT)
    assert f.cv_isi == pytest.approx(isi.std() / isi.mean(), abs=EXACT)
    assert isi_cv(_bursting_train()) == pytest.approx(f.cv_isi, abs=EXACT)


def test_bursting_drops_incomplete_end_bursts():
    # Cut mid-burst at both ends: the partial bursts must not change the features.
    full = _bursting_train(n_bursts=6)
    cut = full[2:-3]
    f = firing_features(cut)
    assert f.n_bursts == 4 and f.spikes_per_burst == 5.0
    assert f.interburst_frequency == pytest.approx(1000.0 / 150.0, abs=EXACT)
    assert f.burst_duration == pytest.approx(40.0, abs=EXACT)


def test_bursting_with_too_few_complete_bursts():
    # Two bursts: both incomplete, so burst features are NaN, pattern still bursting.
    f = firing_features(_bursting_train(n_bursts=2))
    assert f.pattern is FiringPattern.BURSTING and f.n_bursts == 0
    assert np.isnan(f.spikes_per_burst) and np.isnan(f.interburst_frequency)
    assert np.isfinite(f.spiking_frequency) and f.cv_isi > 0.15
    # Three bursts: one complete; the burst period needs two onsets.
    f = firing_features(_bursting_train(n_bursts=3))
    assert f.n_bursts == 1 and f.spikes_per_burst == 5.0
    assert f.burst_duration == pytest.approx(40.0, abs=EXACT)
    assert np.isnan(f.interburst_frequency)


@pytest.mark.parametrize("train", [[], [12.0], [1.0, 50.0]])
def test_fewer_than_three_spikes_is_silent(train):
    f = firing_features(train)
    assert f.pattern is FiringPattern.SILENT
    assert f.n_spikes == len(train) and f.n_bursts == 0
    floats = [
        f.spiking_frequency,
        f.cv_isi,
        f.intraburst_frequency,
        f.interburst_frequency,
        f.burst_duration,
        f.spikes_per_burst,
    ]
    assert all(np.isnan(x) for x in floats)


def test_cv_threshold_boundary_and_keyword():
    # ISIs 10, 10, 13, 10, 10, ...: CV just above or below a chosen threshold.
    train = np.cumsum([0.0, 10.0, 13.0, 10.0, 13.0, 10.0, 13.0])
    cv = isi_cv(train)
    assert firing_features(train, cv_threshold=cv).pattern is FiringPattern.TONIC  # "<="
    assert firing_features(train, cv_threshold=cv * 0.999).pattern is FiringPattern.BURSTING
    with pytest.raises(ValueError, match="cv_threshold"):
        firing_features(train, cv_threshold=-1.0)


def test_features_are_frozen():
    f = firing_features(_bursting_train())
    assert isinstance(f, SpikeFeatures)
    with pytest.raises(AttributeError):
        f.n_spikes = 3  # type: ignore[misc]


def test_firing_features_validation():
    with pytest.raises(ValueError, match=r"spike 1 at 5.0 ms is followed by spike 2 at 5.0"):
        firing_features([1.0, 5.0, 5.0, 9.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        firing_features([3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match=r"finite; got nan at index 2"):
        firing_features([1.0, 2.0, np.nan])
    with pytest.raises(ValueError, match=r"1-D .* got shape \(2, 2\)"):
        firing_features([[1.0, 2.0], [3.0, 4.0]])


def test_features_table():
    trains = [_bursting_train(), 20.0 * np.arange(10), [4.0]]
    table = features_table(trains, ids=["b", "t", "s"])
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ["id"] + list(SpikeFeatures.__dataclass_fields__)
    assert table["pattern"].tolist() == ["bursting", "tonic", "silent"]
    assert table["n_spikes"].tolist() == [40, 10, 1]
    row = table.iloc[0]
    assert row["spikes_per_burst"] == 5.0 and row["n_bursts"] == 6
    assert table["spiking_frequency"].iloc[1] == pytest.approx(50.0, abs=EXACT)
    assert features_table(trains)["id"].tolist() == [0, 1, 2]
    assert len(features_table([])) == 0
    with pytest.raises(ValueError, match="one entry per train; got 2 ids for 3 trains"):
        features_table(trains, ids=["a", "b"])
    with pytest.raises(ValueError, match="train with id 'x'"):
        features_table([[2.0, 1.0, 3.0]], ids=["x"])


# --------------------------------------------------------------------------------------------
# Real recordings (read in place from ../shared/data; skipped when absent)

# These cells' spikes peak at +15 to +60 mV (the eFEL cell's only at 16-19 mV), and between
# spikes the potential falls below -50 mV; 0 mV up / -20 mV re-arm sits well inside both.
REC_THRESHOLD, REC_REARM = 0.0, -20.0


def _abf_sweeps(name: str):
    pyabf = pytest.importorskip("pyabf")
    path = RECORDINGS / "pyabf" / name
    if not path.is_file():
        pytest.skip(f"recording {path} not available")
    abf = pyabf.ABF(str(path))
    for sweep in abf.sweepList:
        abf.setSweep(sweep)
        # I/O boundary: pyabf gives time in s, voltage in mV; the API works in ms.
        yield sweep, 1000.0 * np.array(abf.sweepX), np.array(abf.sweepY)


def test_fsi_recording_spike_counts_and_tonic_pattern():
    sweeps = list(_abf_sweeps("2019_07_24_0055_fsi.abf"))
    counts = []
    for sweep, t, v in sweeps:
        spikes = detect_spikes(t, v, threshold=REC_THRESHOLD, rearm=REC_REARM)
        counts.append(spikes.size)
        # The first current step (-100 ... +300 pA in 25 pA steps) runs 146.85-646.85 ms.
        in_step = spikes[(spikes > 146.85) & (spikes < 646.85)]
        if sweep < 4:  # negative steps: no spike during the step
            assert in_step.size == 0
        if sweep == 16:  # +300 pA: fast, regular (tonic) firing during the step
            f = firing_features(in_step)
            assert f.pattern is FiringPattern.TONIC
            assert 100.0 < f.spiking_frequency < 200.0
    assert len(counts) == 17
    # README: up to about 117 spikes per sweep on the last sweeps; more drive, more spikes.
    assert 110 <= counts[-1] <= 125
    assert counts[-1] == max(counts)
    assert all(b >= a for a, b in zip(counts[4:], counts[5:]))
    # 2-D input on the same grid gives the same counts.
    v2 = np.stack([v for _, _, v in sweeps])
    out = detect_spikes(sweeps[0][1], v2, threshold=REC_THRESHOLD, rearm=REC_REARM)
    assert [o.size for o in out] == counts


def test_step_recording_spike_counts():
    counts = [
        detect_spikes(t, v, threshold=REC_THRESHOLD, rearm=REC_REARM).size
        for _, t, v in _abf_sweeps("171116sh_0018.abf")
    ]
    # README: 0-18 spikes; the sweeps up to +25 pA stay subthreshold.
    assert len(counts) == 17
    assert min(counts) == 0 and max(counts) == 18
    assert all(c == 0 for c in counts[:6])
    assert all(b >= a for a, b in zip(counts, counts[1:]))
    # The default (+10 mV) threshold finds the same spikes: these peak near +60 mV.
    assert [
        detect_spikes(t, v).size for _, t, v in _abf_sweeps("171116sh_0018.abf")
    ] == counts


def test_efel_current_recording():
    path = RECORDINGS / "efel" / "current.txt"
    if not path.is_file():
        pytest.skip(f"recording {path} not available")
    data = np.loadtxt(path)
    t, v = 1000.0 * data[:, 0], data[:, 2]  # columns t (s), I (pA), V (mV)
    spikes = detect_spikes(t, v, threshold=REC_THRESHOLD, rearm=REC_REARM)
    # README: about 25 spikes, during the step current from 0.7 to 2.7 s.
    assert 20 <= spikes.size <= 30
    assert spikes.min() > 700.0 and spikes.max() < 2700.0
    # Interpolated times lie between samples, within the recording.
    assert np.all(np.diff(spikes) > 0)
    f = firing_features(spikes)
    assert f.n_spikes == spikes.size and f.pattern is not FiringPattern.SILENT
