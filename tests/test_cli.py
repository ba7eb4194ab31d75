"""End-to-end tests of the ``neuromech`` command line on a tiny HH population.

Truth: the same population simulated by one in-memory ``simulate`` call. Every bad input must
give exit status 2, one ``neuromech: error:`` line naming the problem, and no output file (nor a
leftover work directory).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neuromech
from neuromech.cbm import Constant, Noise, get_model, simulate
from neuromech.cli import main
from neuromech.io import read_spikes, read_traces, read_trains

# The protocol and population shapes of test_jobs.py, so that both reuse the same compiled programs.
DURATION, TRANSIENT, SEED, DT, CURRENT, NOISE = 200.0, 50.0, 5, 0.025, 10.0, 2.0
IDS = [101, 102, 103, 104, 105, 106]
G = [[120.0, 36.0, 0.3], [0.0, 36.0, 0.3], [100.0, 30.0, 0.3], [140.0, 40.0, 0.25],  # 102 is silent
     [120.0, 36.0, 0.35], [110.0, 34.0, 0.3]]
# Resumed runs use chunks of 2 models: other batch shapes, so float32 results may differ in the last
# bits (≤ 2.2e-4 ms measured over 200 ms, see test_jobs.py) while a wrong noise stream moves spikes
# by ≥ 0.05 ms.
TIME_TOL = 1e-2  # ms


@pytest.fixture(scope="module")
def reference():
    stimulus = Constant(CURRENT) + Noise(NOISE)
    return simulate(get_model("hh"), np.array(G), stimulus, duration=DURATION, transient=TRANSIENT, dt=DT,
                    seed=SEED, ids=np.array(IDS), record="voltage")


@pytest.fixture
def pop(tmp_path):
    path = tmp_path / "pop.csv"
    table = pd.DataFrame(G, columns=["g_Na", "g_K", "g_leak"])
    table.insert(0, "id", IDS)
    table.to_csv(path, index=False)
    return path


def _args(pop, out, *extra):
    return [
        "simulate", "--model", "hh", "--conductances", str(pop), "--duration", str(DURATION),
        "--transient", str(TRANSIENT), "--dt", str(DT), "--current", str(CURRENT), "--noise", str(NOISE),
        "--seed", str(SEED), "--out", str(out), "--no-progress", *extra,
    ]


def _names(path: Path):
    return sorted(p.name for p in path.iterdir())


def test_reference_is_informative(reference):
    assert reference.spike_counts[1] == 0 and np.all(np.delete(reference.spike_counts, 1) >= 5)


def test_simulate_long_csv_and_traces(reference, pop, tmp_path, capsys):
    out, traces = tmp_path / "spikes.csv", tmp_path / "v.npz"
    assert main(_args(pop, out, "--traces", str(traces))) == 0
    table = read_spikes(out)
    expected = reference.to_frame()
    assert table["id"].tolist() == expected["id"].tolist()
    # One chunk holds the whole population: the very computation of the reference, bit for bit.
    np.testing.assert_array_equal(table["spike_time"], expected["spike_time"])
    assert table["spike_time"].min() >= TRANSIENT
    got = read_traces(traces)
    assert got.ids.tolist() == IDS
    np.testing.assert_array_equal(got.voltage, reference.voltage)
    assert f"wrote {len(expected)} spikes of 6 models" in capsys.readouterr().err
    assert _names(tmp_path) == ["pop.csv", "spikes.csv", "v.npz"]


def test_simulate_spike2pop_parquet_lists_every_id(reference, pop, tmp_path):
    out = tmp_path / "spikes.parquet"
    assert main(_args(pop, out, "--format", "spike2pop")) == 0
    assert pd.read_parquet(out).columns.tolist() == ["ID", "spiking_times"]
    trains = read_trains(out)
    assert list(trains) == IDS and trains[102].size == 0
    for got, expected in zip(trains.values(), reference.trains):
        np.testing.assert_array_equal(got, expected)


def test_interrupted_run_resumes_with_the_same_command(reference, pop, tmp_path, monkeypatch, capsys):
    import neuromech.jobs._run as run_module

    out = tmp_path / "spikes.csv"
    original, calls = run_module._simulate_chunk, []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(run_module, "_simulate_chunk", interrupt_second)
    assert main(_args(pop, out, "--chunk-size", "2")) == 130
    assert "rerun the same command to resume" in capsys.readouterr().err
    assert _names(tmp_path) == [".spikes.csv.parts", "pop.csv"]  # no output, one finished part kept

    # Other settings are refused while the unfinished job is there.
    assert main(_args(pop, out, "--chunk-size", "2", "--seed", "6")) == 2
    assert "--restart" in capsys.readouterr().err and not out.exists()

    monkeypatch.setattr(run_module, "_simulate_chunk", original)
    assert main(_args(pop, out, "--chunk-size", "2")) == 0
    assert "(1 of 3 chunks resumed)" in capsys.readouterr().err
    table, expected = read_spikes(out), reference.to_frame()
    assert table["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(table["spike_time"], expected["spike_time"], rtol=0, atol=TIME_TOL)
    assert _names(tmp_path) == ["pop.csv", "spikes.csv"]


def test_simulate_on_a_dask_cluster(reference, pop, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "spikes.csv"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        assert main(_args(pop, out, "--scheduler", cluster.scheduler_address)) == 0
    # One chunk, the same computation as the reference (on the worker thread).
    np.testing.assert_array_equal(read_spikes(out)["spike_time"], reference.to_frame()["spike_time"])


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"neuromech {neuromech.__version__}"


def test_no_command_shows_help(capsys):
    assert main([]) == 2
    assert "simulate" in capsys.readouterr().err


GOOD_POPULATION = "id,g_Na,g_K,g_leak\n1,120,36,0.3\n"


def _refused(tmp_path, capsys, population: str | None, extra=()):
    """Run ``simulate`` on a population file holding ``population`` (None: no file) with the options
    ``extra``; check it exits 2 with one error line and writes nothing; return stderr."""
    pop = tmp_path / "pop.csv"
    if population is not None:
        pop.write_bytes(population.encode("utf-8", "surrogateescape"))
    before = _names(tmp_path)
    args = ["simulate", "--model", "hh", "--conductances", str(pop), "--duration", "100",
            "--out", str(tmp_path / "spikes.csv"), "--no-progress"]
    for flag, value in zip(extra[::2], extra[1::2]):
        if flag in ("--out", "--traces"):
            value = str(tmp_path / value)
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("neuromech: error: ")
    assert _names(tmp_path) == before  # no output file, no work directory, no temporary file
    return err


@pytest.mark.parametrize(
    "population, message",
    [
        pytest.param("id,g_Na,g_K,g_leak\n1,120,36,0.3\n2,120,,0.3\n",
                     "g_K is missing (NaN) for model id 2 at row 2 (line 3)", id="nan"),
        pytest.param("id,g_Na,g_K,g_leak\n1,120,-36,0.3\n",
                     "g_K is -36 for model id 1 at row 1 (line 2); conductances must be finite numbers ≥ 0",
                     id="negative"),
        pytest.param("id,g_Na,g_K,g_leak\n1,120,abc,0.3\n", "g_K is 'abc' for model id 1", id="text"),
        pytest.param("id,g_Na,g_K\n1,120,36\n", "needs exactly the conductances g_Na, g_K, g_leak; missing: g_leak",
                     id="missing"),
        pytest.param("id,g_Na,g_K,g_leak,g_CaT\n1,120,36,0.3,1\n", "unknown: g_CaT", id="extra"),
        pytest.param("", "is empty", id="empty"),
        pytest.param("id,g_Na,g_K,g_leak\n", "has no models", id="header"),
        pytest.param("id,g_Na,g_K,g_leak\n1,120,36,0.3\n1,100,30,0.3\n", "ids must be unique; duplicated: 1",
                     id="duplicate"),
        pytest.param("\udcff\udcfe\x00", "cannot parse population file", id="binary"),
        pytest.param(None, "No such file or directory", id="absent"),
    ],
)
def test_bad_population_file_exits_2_with_a_message_and_no_output(tmp_path, capsys, population, message):
    assert message in _refused(tmp_path, capsys, population)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "xyz"], "argument --model: invalid choice: 'xyz'"),
        # Not positive, or not a number: the message names the value as read.
        *[([f"--{name}", value], f"{name} must be a positive number of ms, got {float(value)!r}")
          for name, values in (("duration", ("0", "-100", "nan")), ("dt", ("0", "-0.01"))) for value in values],
        (["--dt", "0.5"], "dt = 0.5 ms is too large"),
        (["--transient", "500"], "transient must be in [0, duration)"),
        (["--noise", "-1"], "--noise must be a standard deviation ≥ 0"),
        (["--chunk-size", "0"], "argument --chunk-size: must be a positive whole number"),
        (["--out", "spikes.txt"], "unsupported table file type '.txt'"),
        (["--out", "nowhere/spikes.csv"], "the directory"),
        (["--out", "pop.csv"], "would overwrite the --conductances file"),
        (["--traces", "v.csv"], "name the file *.npz"),
        (["--traces", "v.npz", "--duration", "6000000"], "voltage samples in memory"),
        (["--scheduler", "nonsense"], "cannot connect to the Dask scheduler at 'nonsense'"),
        (["--format", "wide"], "argument --format: invalid choice"),
    ],
)
def test_bad_option_exits_2_with_a_message_and_no_output(tmp_path, capsys, extra, message):
    assert message in _refused(tmp_path, capsys, GOOD_POPULATION, extra)


def test_console_script_exit_status(tmp_path):
    script = shutil.which("neuromech", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the neuromech console script is not installed next to this Python")
    done = subprocess.run(
        [script, "simulate", "--model", "hh", "--conductances", str(tmp_path / "missing.csv"),
         "--duration", "10", "--out", str(tmp_path / "s.csv")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"neuromech: error: cannot open {tmp_path / 'missing.csv'}: No such file or directory"
    assert _names(tmp_path) == []
