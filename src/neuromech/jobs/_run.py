"""Large simulation jobs: a population split into chunks, run locally or on a Dask cluster, resumable.

Layout while a job runs (``OUT`` is the requested output file)::

    .OUT.parts/manifest.json        the job's settings and their hash
    .OUT.parts/part-00000.parquet   spikes of chunk 0 (columns index, spike_time), when finished
    .OUT.parts/part-00000.npz       its voltage traces, only when traces were asked for
    .OUT.lock                       held (flock) by the running process: one run per output at a time

Every part is written atomically as its chunk completes, so an existing part is a finished part. When
all are done they are merged, chunk by chunk, into ``OUT`` (atomically) and the work directory is
removed; ``OUT`` never holds partial results. A rerun with the same settings finds the manifest and
simulates only the missing chunks; a rerun with other settings refuses; ``restart=True`` discards
the old parts and starts over. Noise streams depend on a model's index in the whole population
(``simulate(..., key_offset=chunk start)``), so chunked, resumed and distributed runs give the same
spikes as one ``simulate`` call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
from pathlib import Path
from typing import Callable

import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from ..cbm import ConductanceBasedModel, Stimulus, simulate
from ..cbm._simulate import _check_times  # checked before the work directory exists
from ..io import SpikeWriter, atomic_path, table_kind, write_traces
from ..io._atomic import check_writable
from ..io._tables import check_unique, normalise_ids
from ._dask import dask_map
from ._manifest import (
    MANIFEST_VERSION,
    array_digest,
    describe_differences,
    job_digest,
    read_manifest,
    tree_digest,
    write_manifest,
)

MAX_TRACE_SAMPLES = 50_000_000  # ≈ 200 MB of float32 voltage held in memory before it is written


class JobMismatchError(ValueError):
    """An unfinished job with different settings occupies the work directory of the output."""


class JobLockedError(OSError):
    """Another process is running a job for the same output right now."""


@dataclasses.dataclass(frozen=True)
class JobSummary:
    """What :func:`run_simulation` did.

    Attributes:
        path: the spike table written. traces: the traces file, or ``None``.
        n_models, n_spikes: models simulated and spikes written (after the transient).
        n_chunks: chunks in the job; resumed: chunks found finished by an earlier run.
    """

    path: Path
    traces: Path | None
    n_models: int
    n_spikes: int
    n_chunks: int
    resumed: int


@dataclasses.dataclass(frozen=True)
class _Protocol:
    """Everything a worker needs, besides the model, stimulus and conductances, to simulate a chunk."""

    duration: float
    transient: float
    dt: float
    dt_out: float
    seed: int
    batch_size: int
    record_voltage: bool


def _simulate_chunk(model, g, stimulus, start: int, protocol: _Protocol) -> dict:
    """Simulate models ``start .. start + len(g)`` of the population (runs on a worker)."""
    res = simulate(
        model, g, stimulus,
        duration=protocol.duration, transient=protocol.transient, dt=protocol.dt, dt_out=protocol.dt_out,
        record="voltage" if protocol.record_voltage else (), seed=protocol.seed,
        batch_size=protocol.batch_size, key_offset=start, progress=False,
    )
    return {
        "index": np.repeat(np.arange(start, start + len(g), dtype=np.int64), res.spike_counts),
        "spike_time": np.asarray(res.spike_times, dtype=np.float64),
        "time": res.time,
        "voltage": res.voltage,
    }


def run_simulation(
    model: ConductanceBasedModel,
    conductances,
    ids,
    stimulus: Stimulus | None,
    out_path: str | os.PathLike,
    *,
    duration: float,
    transient: float = 0.0,
    dt: float | None = None,
    seed: int = 0,
    chunk_size: int = 10_000,
    scheduler=None,
    progress: bool = True,
    format: str = "long",
    traces: str | os.PathLike | None = None,
    restart: bool = False,
    dt_out: float = 0.1,
    batch_size: int = 4096,
    on_chunk: Callable[[int, int, int], None] | None = None,
) -> JobSummary:
    """Simulate a (large) population chunk by chunk into a spike table; resumable and distributable.

    Main arguments:
        model: the model (e.g. ``get_model("stg")``).
        conductances: (N, n_channels) array (mS/cm², order ``model.conductance_names``) or a
            DataFrame with those columns (an ``id`` column is ignored: pass ``ids``).
        ids: (N,) unique identifiers written with the spikes, or ``None`` for 0..N−1.
        stimulus: injected current (µA/cm²) shared by all models, or ``None``.
        out_path: the spike table, ``*.csv`` or ``*.parquet``.
        duration: simulated time (ms).

    Other arguments:
        transient: spikes before this time (ms) are dropped; times stay absolute.
        dt: integration step (ms), default ``model.dt``. dt_out: output and noise grid (ms).
        seed: noise seed; model k uses stream k of the whole population whatever the chunking.
        chunk_size: models per chunk (one part file each, the unit of resumption and of Dask tasks).
        scheduler: ``None`` to run in this process, a Dask scheduler address (``"tcp://host:8786"``)
            or a ``distributed.Client``. Workers need neuromech installed; results come back to this
            process, which writes the parts, so no shared file system is needed.
        progress: show a progress bar (models done) on stderr.
        format: ``"long"`` (``id,spike_time``) or ``"spike2pop"`` (``ID,spiking_times``, every id).
        traces: also write voltage traces to this ``*.npz`` file (small populations only: at most
            ``MAX_TRACE_SAMPLES`` samples in all).
        restart: discard the parts of an unfinished earlier run (whatever its settings) and start
            over; by default a run with the same settings resumes and one with other settings is
            refused.
        batch_size: models integrated at once within a chunk (memory bound).
        on_chunk: called as ``on_chunk(chunk_index, finished, n_chunks)`` after each part is written.

    Returns:
        A :class:`JobSummary`.

    Raises:
        ValueError: invalid conductances, ids, times, suffixes or sizes (before anything is written);
            :class:`JobMismatchError` for an unfinished job with other settings.
        OSError: the output directory is missing or the scheduler cannot be reached.
        Exceptions of a chunk propagate; finished parts are kept for a rerun to resume.

    Example:
        >>> import tempfile, pathlib
        >>> from neuromech.cbm import hh, Constant
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "spikes.csv"
        >>> job = run_simulation(hh(), [[120.0, 36.0, 0.3]], None, Constant(10.0), out,
        ...                      duration=50.0, progress=False)
        >>> job.n_spikes > 0, out.exists()
        (True, True)
    """
    out = check_writable(out_path)
    table_kind(out)
    if format not in ("long", "spike2pop"):
        raise ValueError(f"unknown spike table format {format!r}; choose long or spike2pop")
    traces = None if traces is None else check_writable(traces)
    if traces is not None:
        if traces.suffix.lower() != ".npz":
            raise ValueError(f"{traces}: traces are stored as NumPy archives; name the file *.npz")
        if traces.resolve() == out.resolve():
            raise ValueError("the traces file and the spike table must be different files")
    g = _conductances(model, conductances)
    n_models = g.shape[0]
    ids = np.arange(n_models) if ids is None else normalise_ids(ids)
    if ids.shape != (n_models,):
        raise ValueError(f"ids must have one entry per model ({n_models}), got shape {ids.shape}")
    check_unique(ids, what="the population")
    chunk_size = _positive_int(chunk_size, "chunk_size")
    batch_size = _positive_int(batch_size, "batch_size")
    dt = model.dt if dt is None else dt
    _check_times(duration, transient, dt, dt_out)
    if traces is not None:
        samples = n_models * math.ceil((duration - transient) / dt_out)
        if samples > MAX_TRACE_SAMPLES:
            raise ValueError(
                f"traces of {n_models} models × {duration - transient:g} ms at {dt_out} ms would hold "
                f"{samples:,} voltage samples in memory (limit {MAX_TRACE_SAMPLES:,}); save traces for a "
                "smaller population or a shorter kept window"
            )
    stimulus = stimulus if stimulus is not None else Stimulus()
    protocol = _Protocol(float(duration), float(transient), float(dt), float(dt_out), int(seed), batch_size,
                         traces is not None)

    from .. import __version__

    settings = {
        "neuromech": __version__,
        "model": model.name,
        "model_sha256": tree_digest(model),
        "stimulus_sha256": tree_digest(stimulus),
        "conductances_sha256": array_digest(g),
        "n_models": n_models,
        "chunk_size": chunk_size,
        "duration": protocol.duration,
        "transient": protocol.transient,
        "dt": protocol.dt,
        "dt_out": protocol.dt_out,
        "seed": protocol.seed,
        "traces": protocol.record_voltage,
        "float": str(jnp.asarray(1.0).dtype),  # float32, or float64 with jax x64
    }
    n_chunks = math.ceil(n_models / chunk_size)
    job = _Job(
        model=model, g=g, ids=ids, stimulus=stimulus, protocol=protocol, out=out, traces=traces,
        format=format, settings=settings, digest=job_digest(settings),
        bounds=tuple((i * chunk_size, min(n_models, (i + 1) * chunk_size)) for i in range(n_chunks)),
    )
    with _exclusive(out.parent / f".{out.name}.lock", out):
        return _run(job, restart=restart, scheduler=scheduler, progress=progress, on_chunk=on_chunk)


@dataclasses.dataclass(frozen=True)
class _Job:
    """A validated job: what to simulate, where to write it, and its fingerprint."""

    model: ConductanceBasedModel
    g: np.ndarray
    ids: np.ndarray
    stimulus: Stimulus
    protocol: _Protocol
    out: Path
    traces: Path | None
    format: str
    settings: dict
    digest: str
    bounds: tuple[tuple[int, int], ...]  # [start, stop) of each chunk

    @property
    def work(self) -> Path:
        return self.out.parent / f".{self.out.name}.parts"


def _run(job: _Job, *, restart, scheduler, progress, on_chunk) -> JobSummary:
    n_models, n_chunks, work = job.g.shape[0], len(job.bounds), job.work
    created = _prepare_workdir(work, job.out, job.digest, job.settings, n_chunks, restart)
    parts = _Parts(work, job.digest, record_voltage=job.protocol.record_voltage)
    done = [i for i in range(n_chunks) if parts.finished(i)]
    pending = sorted(set(range(n_chunks)) - set(done))

    bar = tqdm(total=n_models, initial=sum(b - a for a, b in (job.bounds[i] for i in done)), unit="model",
               desc=f"simulate {job.model.name}", disable=not progress)
    finished = len(done)

    def record(i, result):
        nonlocal finished
        parts.write(i, job.bounds[i], result)
        finished += 1
        bar.update(job.bounds[i][1] - job.bounds[i][0])
        if on_chunk is not None:
            on_chunk(i, finished, n_chunks)

    try:
        tasks = [(i, job.g[a:b], a) for i, (a, b) in ((i, job.bounds[i]) for i in pending)]
        if scheduler is None:
            for i, g_chunk, start in tasks:
                record(i, _simulate_chunk(job.model, g_chunk, job.stimulus, start, job.protocol))
        else:
            _run_dask(scheduler, tasks, job, record)
    except BaseException:
        bar.close()
        if created and not any(work.glob("part-*.parquet")):
            shutil.rmtree(work, ignore_errors=True)  # nothing to resume: leave nothing behind
        raise
    bar.close()

    n_spikes = _merge(parts, job.bounds, job.ids, job.out, job.format, job.traces)
    shutil.rmtree(work, ignore_errors=True)
    return JobSummary(path=job.out, traces=job.traces, n_models=n_models, n_spikes=n_spikes,
                      n_chunks=n_chunks, resumed=len(done))


@contextlib.contextmanager
def _exclusive(lock: Path, out: Path):
    """Hold an exclusive lock on ``lock`` for the job (POSIX ``flock``; no locking elsewhere).

    Two runs writing the same parts would corrupt each other's work. The kernel drops the lock when
    its process dies, so a killed run never blocks the next one.
    """
    if fcntl is None:
        yield
        return
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JobLockedError(
                f"another process is running a job for {out} right now (lock {lock}); wait for it to "
                "finish or stop it"
            ) from None
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file after we opened it: lock the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def _conductances(model, conductances) -> np.ndarray:
    if isinstance(conductances, pd.DataFrame) or hasattr(conductances, "keys"):
        return np.atleast_2d(model.conductances(conductances))
    g = np.asarray(conductances, dtype=float)
    names = model.conductance_names
    if g.ndim != 2 or g.shape[1] != len(names):
        raise ValueError(
            f"conductances for model {model.name!r} must have shape (N, {len(names)}) in the order "
            f"{', '.join(names)}; got shape {g.shape}"
        )
    return np.atleast_2d(model.conductances(dict(zip(names, g.T))))


def _positive_int(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive whole number of models, got {value!r}")
    return int(value)


def _prepare_workdir(work: Path, out: Path, job: str, settings: dict, n_chunks: int, restart: bool) -> bool:
    """Reuse, refuse or (re)create the work directory; return whether this call created it."""
    if work.exists() and not work.is_dir():
        raise FileExistsError(f"{work} is in the way of the job's work directory; move it away")
    if work.is_dir() and restart:
        shutil.rmtree(work)
    if work.is_dir():
        manifest = read_manifest(work / "manifest.json")
        if manifest is not None and manifest["job"] == job:
            return False
        n_parts = len(list(work.glob("part-*.parquet")))
        if manifest is None and n_parts == 0:
            shutil.rmtree(work)  # an empty leftover of a run that stopped before its first part
        else:
            changes = (
                describe_differences(manifest.get("settings", {}), settings) if manifest else "no manifest"
            )
            raise JobMismatchError(
                f"{work} holds an unfinished job for {out.name} with different settings ({n_parts} of "
                f"{manifest.get('n_chunks', '?') if manifest else '?'} chunks done; {changes}). Rerun with "
                "the original settings to resume it, or restart (--restart; restart=True in Python) to "
                "discard it and start over"
            )
    work.mkdir()
    write_manifest(work / "manifest.json", {
        "version": MANIFEST_VERSION, "job": job, "settings": settings, "n_chunks": n_chunks,
        "output": out.name,
    })
    return True


class _Parts:
    """The part files of one job: finished-ness, writing (atomic) and reading."""

    def __init__(self, work: Path, job: str, *, record_voltage: bool):
        self.work, self.job, self.record_voltage = work, job, record_voltage

    def spikes(self, i) -> Path:
        return self.work / f"part-{i:05d}.parquet"

    def voltage(self, i) -> Path:
        return self.work / f"part-{i:05d}.npz"

    def finished(self, i) -> bool:
        import pyarrow.parquet as pq

        path = self.spikes(i)
        if not path.exists():
            return False
        try:
            meta = pq.read_schema(path).metadata or {}
        except Exception:  # unreadable (should not happen: parts are written atomically)
            meta = {}
        ok = meta.get(b"neuromech.job", b"").decode() == self.job
        if ok and self.record_voltage:
            ok = self.voltage(i).exists()
        if not ok:
            path.unlink(missing_ok=True)
        return ok

    def write(self, i, bounds, result) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.record_voltage:  # before the spikes: the spike part marks the chunk finished
            with atomic_path(self.voltage(i)) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, time=result["time"], voltage=result["voltage"])
        table = pa.table({"index": pa.array(result["index"], pa.int64()),
                          "spike_time": pa.array(result["spike_time"], pa.float64())})
        table = table.replace_schema_metadata({
            "neuromech.job": self.job, "neuromech.start": str(bounds[0]), "neuromech.stop": str(bounds[1]),
        })
        with atomic_path(self.spikes(i)) as tmp:
            pq.write_table(table, tmp)

    def read(self, i, bounds):
        import pyarrow.parquet as pq

        table = pq.read_table(self.spikes(i))
        index = table.column("index").to_numpy()
        times = table.column("spike_time").to_numpy()
        counts = np.bincount(index - bounds[0], minlength=bounds[1] - bounds[0])
        return times, np.concatenate([[0], np.cumsum(counts)])


def _merge(parts: _Parts, bounds, ids, out: Path, format: str, traces: Path | None) -> int:
    """Merge the parts, in population order, into the output (and traces) atomically."""
    n_spikes = 0
    with SpikeWriter(out, format=format) as writer:
        for i, (a, b) in enumerate(bounds):
            times, offsets = parts.read(i, (a, b))
            writer.write(ids[a:b], times, offsets)
            n_spikes += times.size
        if traces is not None:
            voltages, time = [], None
            for i in range(len(bounds)):
                with np.load(parts.voltage(i), allow_pickle=False) as data:
                    time = data["time"]
                    voltages.append(data["voltage"])
            write_traces(traces, time, np.concatenate(voltages, axis=0), ids=ids)
    return n_spikes


def _run_dask(scheduler, tasks, job: _Job, record) -> None:
    """Submit the chunks to a Dask cluster; record each result as it completes."""
    dask_map(scheduler, _simulate_chunk,
             ((i, (job.model, g_chunk, job.stimulus, start, job.protocol)) for i, g_chunk, start in tasks),
             key=f"neuromech-simulate-{job.digest[:12]}", record=record)
