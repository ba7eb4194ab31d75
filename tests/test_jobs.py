"""Tests of neuromech.jobs: chunked, resumable and distributed simulation jobs.

The truth is one in-memory ``simulate`` call on the whole population: a job split into chunks,
interrupted and resumed, or run on a Dask cluster must give the same spikes, because every model
keeps its own noise stream (key_offset) whatever the chunking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuromech.cbm import Constant, Noise, get_model, simulate
from neuromech.io import read_spikes, read_traces, read_trains
from neuromech.jobs import JobLockedError, JobMismatchError, run_simulation

DURATION, TRANSIENT, SEED = 200.0, 50.0, 3
DT = 0.025  # ms: coarser than HH's default (0.01) only to compile faster; the same in every run
# A chunk evaluates the same per-model arithmetic as one call, but XLA compiles a different program
# for another batch shape per device (tests/conftest.py exposes two CPU devices), so float32 results
# may differ in the last bits; over 200 ms of firing this moved spike times by at most 2.2e-4 ms
# (measured). A wrong noise stream (wrong key_offset or seed) moves every spike by 0.05–2 ms. The
# tolerance sits between the two; spike counts and ids must match exactly.
TIME_TOL = 1e-2  # ms


@pytest.fixture(scope="module")
def case():
    """Six HH models: tonic firing at different rates, one silent (no sodium), noisy drive."""
    model = get_model("hh")
    g = np.array([
        [120.0, 36.0, 0.3],
        [100.0, 30.0, 0.3],
        [140.0, 40.0, 0.25],
        [0.0, 36.0, 0.3],  # silent
        [120.0, 36.0, 0.35],
        [110.0, 34.0, 0.3],
    ])
    ids = np.array([10, 11, 12, 13, 14, 15])
    stimulus = Constant(10.0) + Noise(2.0)
    ref = simulate(model, g, stimulus, duration=DURATION, transient=TRANSIENT, dt=DT, seed=SEED, ids=ids)
    return model, g, ids, stimulus, ref


def _run(case, out, **kw):
    model, g, ids, stimulus, _ = case
    options = dict(duration=DURATION, transient=TRANSIENT, dt=DT, seed=SEED, chunk_size=2, progress=False)
    options.update(kw)
    return run_simulation(model, g, ids, stimulus, out, **options)


def _assert_same_spikes(table: pd.DataFrame, ref):
    expected = ref.to_frame()
    assert table["id"].tolist() == expected["id"].tolist()
    np.testing.assert_allclose(table["spike_time"], expected["spike_time"], rtol=0, atol=TIME_TOL)


def _leftovers(tmp_path, keep=()):
    return sorted(p.name for p in tmp_path.iterdir() if p.name not in keep)


def test_case_is_informative(case):
    *_, ref = case
    counts = ref.spike_counts
    assert counts[3] == 0 and np.all(np.delete(counts, 3) >= 3)
    assert np.all(ref.spike_times >= TRANSIENT)


def test_local_job_matches_one_simulate_call(case, tmp_path):
    out = tmp_path / "spikes.csv"
    job = _run(case, out)
    assert (job.n_models, job.n_chunks, job.resumed) == (6, 3, 0)
    assert job.n_spikes == case[-1].spike_times.size
    _assert_same_spikes(read_spikes(out), case[-1])
    assert _leftovers(tmp_path) == ["spikes.csv"]  # work directory removed


def test_interrupted_job_resumes_and_matches(case, tmp_path):
    out = tmp_path / "spikes.parquet"
    calls = []

    def stop_after_two(i, finished, total):
        calls.append(i)
        if finished == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(case, out, on_chunk=stop_after_two)
    assert not out.exists()  # partial results never reach the output
    work = tmp_path / ".spikes.parquet.parts"
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json", "part-00000.parquet", "part-00001.parquet"]

    resumed_calls = []
    job = _run(case, out, on_chunk=lambda i, finished, total: resumed_calls.append(i))
    assert resumed_calls == [2] and job.resumed == 2  # only the missing chunk was simulated
    _assert_same_spikes(read_spikes(out), case[-1])
    assert _leftovers(tmp_path) == ["spikes.parquet"]


def test_rerun_with_other_settings_refuses_then_restarts(case, tmp_path):
    out = tmp_path / "spikes.csv"

    def stop(i, finished, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        _run(case, out, on_chunk=stop)
    with pytest.raises(JobMismatchError, match=r"seed 3 → 4.*--restart"):
        _run(case, out, seed=4)
    assert not out.exists()
    job = _run(case, out)  # the original settings resume the interrupted job
    assert job.resumed == 1
    _assert_same_spikes(read_spikes(out), case[-1])


@pytest.mark.parametrize("seed", [SEED, 4])
def test_restart_discards_earlier_parts(case, tmp_path, seed):
    out = tmp_path / "spikes.csv"

    def stop(i, finished, total):
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        _run(case, out, seed=seed, on_chunk=stop)
    job = _run(case, out, restart=True)
    assert job.resumed == 0
    _assert_same_spikes(read_spikes(out), case[-1])


def test_dask_cluster_matches_and_writes_spike2pop(case, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "spikes.csv"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        job = _run(case, out, scheduler=cluster.scheduler_address, format="spike2pop")
    assert job.n_chunks == 3
    trains = read_trains(out)
    _, _, ids, _, ref = case
    assert list(trains) == ids.tolist()  # every id, the silent one included
    assert trains[13].size == 0 and '13,"[]"' in out.read_text()
    for train, expected in zip(trains.values(), ref.trains):
        np.testing.assert_allclose(train, expected, rtol=0, atol=TIME_TOL)


def test_traces_are_merged_in_population_order(case, tmp_path):
    model, g, ids, stimulus, ref = case
    out, traces = tmp_path / "spikes.csv", tmp_path / "v.npz"
    _run(case, out, traces=traces)
    got = read_traces(traces)
    assert got.ids.tolist() == ids.tolist() and got.state_names == ("V",)
    np.testing.assert_allclose(got.time, np.arange(TRANSIENT, DURATION, 0.1), atol=1e-9)
    # Chunk by chunk with the job's batch shapes the arithmetic is identical: exact equality.
    parts = [
        simulate(model, g[a:a + 2], stimulus, duration=DURATION, transient=TRANSIENT, dt=DT, seed=SEED,
                 key_offset=a, record="voltage").voltage
        for a in (0, 2, 4)
    ]
    np.testing.assert_array_equal(got.voltage, np.concatenate(parts))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(ids=[1, 1, 2, 3, 4, 5]), "ids must be unique; duplicated: 1"),
        (dict(ids=[1, 2]), "one entry per model"),
        (dict(chunk_size=0), "chunk_size must be a positive"),
        (dict(duration=-5.0), "duration must be a positive"),
        (dict(dt=0.0), "dt must be a positive"),
        (dict(dt=1.0), "dt = 1.0 ms is too large"),  # found by simulate() in the first chunk
        (dict(transient=DURATION), "transient must be in"),
        (dict(format="wide"), "unknown spike table format"),
        (dict(out="spikes.txt"), "unsupported table file type"),
        (dict(traces="v.csv"), r"name the file \*.npz"),
        (dict(g=[[120.0, -1.0, 0.3]] * 6), "conductances must be ≥ 0"),
        (dict(g=[[120.0, 36.0]] * 6), "shape"),
    ],
)
def test_bad_input_fails_and_leaves_nothing(case, tmp_path, change, message):
    model, g, ids, stimulus, _ = case
    change = dict(change)
    out = tmp_path / change.pop("out", "spikes.csv")
    if "traces" in change:
        change["traces"] = tmp_path / change["traces"]
    g = change.pop("g", g)
    ids = change.pop("ids", ids)
    options = dict(duration=DURATION, transient=TRANSIENT, dt=DT, seed=SEED, chunk_size=2, progress=False)
    options.update(change)
    with pytest.raises(ValueError, match=message):
        run_simulation(model, g, ids, stimulus, out, **options)
    assert _leftovers(tmp_path) == []


def test_traces_of_a_large_population_are_refused(case, tmp_path, monkeypatch):
    import neuromech.jobs._run as run_module

    monkeypatch.setattr(run_module, "MAX_TRACE_SAMPLES", 1000)
    with pytest.raises(ValueError, match="voltage samples in memory"):
        _run(case, tmp_path / "s.csv", traces=tmp_path / "v.npz")
    assert _leftovers(tmp_path) == []


def test_unreachable_scheduler_is_an_os_error(case, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    import neuromech.jobs._dask as dask_module

    monkeypatch.setattr(dask_module, "SCHEDULER_TIMEOUT", 1.0)
    with pytest.raises(OSError, match="cannot connect to the Dask scheduler"):
        _run(case, tmp_path / "s.csv", scheduler="tcp://127.0.0.1:9")
    assert _leftovers(tmp_path) == []


def test_a_second_concurrent_run_of_the_same_output_is_refused(case, tmp_path):
    out = tmp_path / "spikes.csv"
    refused = []

    def start_another(i, finished, total):
        if not refused:
            with pytest.raises(JobLockedError, match="another process is running a job"):
                _run(case, out)
            refused.append(i)

    _run(case, out, on_chunk=start_another)
    assert refused and _leftovers(tmp_path) == ["spikes.csv"]  # lock file removed at the end
