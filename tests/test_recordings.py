"""Recordings: the Recording type, unit handling, loaders (synthetic files and the real ones in
../shared/data, skipped when absent), preprocessing and splits, and clear errors for bad input."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from neuromech.recordings import (
    Recording,
    UnitWarning,
    parse_sweeps,
    read_abf,
    read_mat,
    read_npz,
    read_nwb,
    read_recording,
    read_text,
    synthetic_recording,
    to_internal,
    write_npz,
)

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "recordings"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="no ../shared/data (real recordings)")


def _rec(n_sweeps=2, n=1000, dt=0.1):
    rng = np.random.default_rng(0)
    return Recording(-60 + rng.normal(size=(n_sweeps, n)), rng.normal(size=(n_sweeps, n)), dt=dt)


# ----------------------------------------------------------------------------------- the type
def test_recording_shapes_and_time():
    rec = _rec()
    assert rec.n_sweeps == 2 and rec.n_samples == 1000 and rec.duration == pytest.approx(100.0)
    assert rec.time[1] - rec.time[0] == pytest.approx(0.1)
    assert rec.sweeps == (0, 1)
    with pytest.raises(ValueError):  # arrays are read-only: a Recording never changes
        rec.voltage[0, 0] = 1.0


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match=r"same shape.*voltage \(1, 10\).*current \(1, 9\)"):
        Recording(np.zeros(10), np.zeros(9), dt=0.1)


def test_nan_is_an_error_naming_sweep_and_time():
    v = np.zeros((2, 10))
    v[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"voltage has 1 NaN.*sweep 1 at t = 0.3 ms"):
        Recording(v, np.zeros((2, 10)), dt=0.1)


def test_bad_dt_is_an_error():
    with pytest.raises(ValueError, match="dt must be a positive"):
        Recording(np.zeros(10), np.zeros(10), dt=0.0)


def test_units_convert_at_the_boundary_and_unknown_units_fail():
    assert float(to_internal(250.0, "pA", "current")) == pytest.approx(0.25)
    assert float(to_internal(-0.065, "volts", "voltage")) == pytest.approx(-65.0)
    with pytest.raises(ValueError, match=r"unknown current unit 'furlongs'.*A, mA"):
        to_internal(1.0, "furlongs", "current")


def test_select_window_and_splits():
    rec = _rec(n_sweeps=5)
    assert rec.select("1-2,4").sweeps == (1, 2, 4)
    with pytest.raises(ValueError, match=r"sweep\(s\) \[7\] not in this recording, which has sweeps 0-4"):
        rec.select([7])
    train, val, test = rec.split_time((0.6, 0.2, 0.2))
    assert (train.n_samples, val.n_samples, test.n_samples) == (600, 200, 200)
    assert val.t0 == pytest.approx(60.0)
    np.testing.assert_array_equal(test.voltage, rec.voltage[:, 800:])
    a, b = rec.split_sweeps("0-2", "3,4")
    assert a.sweeps == (0, 1, 2) and b.sweeps == (3, 4)
    with pytest.raises(ValueError, match="overlap"):
        rec.split_sweeps("0-2", "2-3")
    assert parse_sweeps("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(ValueError, match="cannot read sweep selection"):
        parse_sweeps("3-1")


def test_lowpass_zero_phase_has_no_delay_and_causal_lags():
    dt = 0.1
    t = np.arange(20_000) * dt
    v = np.sin(2 * np.pi * t / 20.0)  # 50 Hz, well inside a 500 Hz pass band
    rec = Recording(v, np.zeros_like(v), dt=dt)
    zero = rec.lowpass(500.0).voltage[0]
    causal = rec.lowpass(500.0, zero_phase=False).voltage[0]
    mid = slice(5000, 15000)
    # Zero-phase: gain |H|² ≈ 1 − 1e-8 at f/fc = 0.1 for a 4th-order Butterworth: 1e-3 is loose.
    assert np.max(np.abs(zero[mid] - v[mid])) < 1e-3
    # Causal: the group delay of a 4th-order Butterworth at f ≪ fc is ≈ 2.61/(2π fc) ≈ 0.83 ms.
    lag = np.argmax(np.correlate(causal[mid], v[mid][:-40], mode="valid")) * dt
    assert 0.6 < lag < 1.1
    with pytest.raises(ValueError, match="Nyquist"):
        rec.lowpass(6000.0)


def test_resample_halves_the_rate_and_keeps_a_slow_signal():
    dt = 0.05
    t = np.arange(4000) * dt
    v = np.sin(2 * np.pi * t / 50.0)
    rec = Recording(v, v, dt=dt).resample(0.1)
    assert rec.dt == pytest.approx(0.1) and rec.n_samples == 2000
    # Polyphase filtering passes a 20 Hz sine unchanged but for edge effects (ends excluded).
    np.testing.assert_allclose(rec.voltage[0, 100:-100], np.sin(2 * np.pi * rec.time[100:-100] / 50.0), atol=1e-3)


# ------------------------------------------------------------------------------------ loaders
def test_csv_with_units_in_header(tmp_path):
    path = tmp_path / "rec.csv"
    t = np.arange(6) * 0.1
    rows = ["sweep,t_ms,v_mV,i_pA"] + [f"{s},{tk:.1f},{-60 + k},{100 * s}" for s in (0, 1) for k, tk in enumerate(t)]
    path.write_text("\n".join(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all units are stated: no warning
        rec = read_recording(path)
    assert rec.n_sweeps == 2 and rec.dt == pytest.approx(0.1)
    assert rec.current[1, 0] == pytest.approx(0.1)  # 100 pA = 0.1 nA
    assert rec.metadata["units"] == {"time": "ms", "voltage": "mV", "current": "pA"}


def test_csv_without_units_warns_what_it_assumed(tmp_path):
    path = tmp_path / "rec.csv"
    path.write_text("t,v,i\n0,-60,0\n0.1,-60,0\n0.2,-59,1\n")
    with pytest.warns(UnitWarning, match=r"assumed time in ms, voltage in mV, current in nA"):
        rec = read_text(path)
    assert rec.metadata["units_assumed"] == ["time", "voltage", "current"]


def test_csv_gap_and_nan_are_clear_errors(tmp_path):
    gap = tmp_path / "gap.csv"
    gap.write_text("t_ms,v_mV,i_nA\n0,-60,0\n0.1,-60,0\n0.5,-60,0\n0.6,-60,0\n")
    with pytest.raises(ValueError, match=r"a gap in the time column at t = 0.1 ms"):
        read_text(gap)
    nan = tmp_path / "nan.csv"
    nan.write_text("t_ms,v_mV,i_nA\n0,-60,0\n0.1,,0\n0.2,-60,0\n")
    with pytest.raises(ValueError, match=r"voltage column has 1 missing.*line 3"):
        read_text(nan)
    unit = tmp_path / "unit.csv"
    unit.write_text("t_ms,v_mV,i_nA\n0,-60,0\n0.1,-60,0\n")
    with pytest.raises(ValueError, match="unknown current unit"):
        read_text(unit, current_unit="amperage")


def test_npz_round_trip_keeps_truth(tmp_path):
    rec = synthetic_recording("hh", 50.0, seed=2, transient=10.0)
    path = write_npz(tmp_path / "hh.npz", rec)
    back = read_npz(path)
    np.testing.assert_array_equal(back.voltage, rec.voltage)
    np.testing.assert_array_equal(back.truth["Na"], rec.truth["Na"])
    assert back.dt == rec.dt and back.metadata["units_assumed"] == []


def test_mat_keys_V_I(tmp_path):
    import scipy.io

    path = tmp_path / "circuit.mat"
    v = np.linspace(-0.07, -0.05, 100)[:, None]  # volts, one column per sweep
    scipy.io.savemat(path, {"V1": v, "I1": np.full((100, 1), 2e-10), "V2": v, "I2": v * 0, "fs": 10_000.0})
    rec = read_mat(path, voltage_unit="V", current_unit="A")
    assert rec.dt == pytest.approx(0.1)  # fs 10 kHz → 0.1 ms
    assert rec.voltage[0, 0] == pytest.approx(-70.0) and rec.current[0, 0] == pytest.approx(0.2)
    with pytest.raises(ValueError, match=r"expected keys V3 and I3.*found \['I1', 'I2', 'V1', 'V2', 'fs'\]"):
        read_mat(path, neuron=3)


def test_nwb_honours_conversion(tmp_path):
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.icephys import CurrentClampSeries, CurrentClampStimulusSeries

    nwb = NWBFile("test", "id", datetime(2024, 1, 1, tzinfo=timezone.utc))
    device = nwb.create_device("amp")
    electrode = nwb.create_icephys_electrode(name="e", description="", device=device)
    raw_v = np.arange(-700, -690, dtype=np.int16)  # stored in units of 0.1 mV
    nwb.add_acquisition(CurrentClampSeries(name="v0", data=raw_v, electrode=electrode, rate=20_000.0, gain=1.0,
                                           conversion=1e-4, sweep_number=np.uint32(0)))
    nwb.add_stimulus(CurrentClampStimulusSeries(name="i0", data=np.full(10, 50, dtype=np.int16), electrode=electrode,
                                                rate=20_000.0, gain=1.0, conversion=1e-12, sweep_number=np.uint32(0)))
    path = tmp_path / "cell.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    rec = read_nwb(path)
    assert rec.dt == pytest.approx(0.05)
    np.testing.assert_allclose(rec.voltage[0], raw_v * 0.1)  # × 1e-4 V = 0.1 mV
    np.testing.assert_allclose(rec.current[0], 0.05)  # 50 × 1 pA = 0.05 nA


@needs_data
def test_abf_cell_A_ramps_and_steps():
    ramps = read_abf(DATA / "pyabf" / "171116sh_0016.abf")
    assert (ramps.n_sweeps, ramps.n_samples, ramps.dt) == (11, 20_000, pytest.approx(0.05))
    assert ramps.metadata["units"]["current"] == "pA"
    # README: ramps 0→10 … 90→100 pA; the last sweep ends near 100 pA = 0.1 nA.
    assert ramps.current[-1].max() == pytest.approx(0.1, abs=0.005)
    steps = read_recording(DATA / "pyabf" / "171116sh_0018.abf")
    assert steps.n_sweeps == 17 and steps.duration == pytest.approx(3000.0)
    assert steps.current.min() == pytest.approx(-0.1)  # −100 pA test pulse
    assert -80 < np.median(steps.voltage) < -50


@needs_data
def test_efel_text_files_with_their_units():
    rec = read_text(DATA / "efel" / "current.txt", columns=("t_s", "i_pA", "v_mV"))
    assert rec.dt == pytest.approx(0.25)  # 4 kHz
    assert 0.1 < rec.current.max() < 0.15  # step of ≈ +125 pA
    imp = read_text(DATA / "efel" / "impedance.txt", columns=("t_ms", "v_V", "i_A"))
    assert imp.dt == pytest.approx(0.1) and -80 < imp.voltage[0, 0] < -60


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match=r"unknown recording format '.xyz'"):
        read_recording(tmp_path / "a.xyz")
    with pytest.raises(FileNotFoundError):
        read_recording(tmp_path / "a.abf")


def test_synthetic_recording_has_truth_and_noise():
    rec = synthetic_recording("hh", 100.0, noise=0.5, seed=0, transient=20.0)
    assert set(rec.truth) == {"Na", "K", "leak", "voltage_clean"}
    resid = rec.voltage[0] - rec.truth["voltage_clean"][0]
    # 1000 samples of N(0, 0.5²): the sample std is within 10 % of 0.5 with overwhelming odds.
    assert abs(resid.std() - 0.5) < 0.05
    with pytest.raises(ValueError, match="unknown model 'squid'"):
        synthetic_recording("squid", 10.0)


def test_voltage_clamp_command_travels_with_the_recording(tmp_path):
    """A recording's voltage-clamp command (NaN where free) is checked, cut, stacked, resampled
    (nearest sample: a command switches, it is not filtered) and written with the recording."""
    from neuromech.recordings._circuit import CircuitRecording, read_circuit_recording, write_circuit_npz
    from neuromech.recordings._recording import concatenate

    command = np.full((1, 400), np.nan)
    command[0, 100:300] = -50.0
    rec = Recording(np.full((1, 400), -60.0), np.zeros((1, 400)), dt=0.1, command=command)
    assert rec.clamped.sum() == 200 and not Recording(rec.voltage, rec.current, dt=0.1).clamped.any()
    assert rec.window(5.0, 15.0).clamped.sum() == 50 and rec.select([0]).clamped.sum() == 200
    half = rec.resample(0.2)
    assert half.command.shape == (1, 200) and half.clamped.sum() == 100 and np.nanmax(half.command) == -50.0
    assert np.array_equal(rec.lowpass(500.0).command, command, equal_nan=True)
    stacked = concatenate([rec, Recording(rec.voltage, rec.current, dt=0.1)])
    assert stacked.clamped.sum(axis=1).tolist() == [200, 0]
    with pytest.raises(ValueError, match="command has shape"):
        Recording(rec.voltage, rec.current, dt=0.1, command=command[:, :10])
    with pytest.raises(ValueError, match="infinite"):
        Recording(rec.voltage, rec.current, dt=0.1, command=np.where(np.isnan(command), np.inf, command))
    path = write_circuit_npz(tmp_path / "c.npz", CircuitRecording({"a": rec, "b": Recording(rec.voltage, rec.current,
                                                                                              dt=0.1)}))
    back = read_circuit_recording(path)
    assert np.array_equal(back["a"].command, command, equal_nan=True) and back["b"].command is None
