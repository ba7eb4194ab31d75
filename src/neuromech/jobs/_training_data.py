"""Training data for the spike-train → DIC network: spike trains of compensated models with their DICs.

Layout of a data set (a folder)::

    DATA/manifest.json          the settings and their digest; a rerun must match them, except
                                that asking for more targets grows the set
    DATA/part-00000.parquet     one part per chunk of targets, written atomically when it completes
    DATA/.lock                  held while a run writes (POSIX flock)

Read it with :func:`read_training_data` (one row per simulated model).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ..analysis import FEATURES, firing_features
from ..cbm import Noise, get_model, simulate
from ..dics import PROTOCOLS, UnreachableTargetError, generate_population
from ..io import atomic_path
from ._dask import dask_map
from ._manifest import describe_differences, job_digest, read_manifest, tree_digest, write_manifest
from ._run import JobMismatchError, _exclusive

# The published simulation protocol (SCIENCE.md §1.4) and training target ranges (§3), per model.
DEFAULTS = {
    name: dict(duration=PROTOCOLS[name][0], transient=PROTOCOLS[name][1], g_s_range=g_s, g_u_range=(0.0, 20.0))
    for name, g_s in (("stg", (-20.0, 20.0)), ("da", (-10.0, 15.0)))
}



@dataclasses.dataclass(frozen=True)
class TrainingDataSettings:
    """What a training data set contains; two runs with equal settings produce identical files.

    Attributes:
        model: ``"stg"`` or ``"da"``.
        n_targets: number of (g_s, g_u) targets, drawn uniformly over the ranges.
        models_per_target: degenerate models generated per target (published: 16).
        noise: noise levels σ (µA/cm², SCIENCE.md §1.4) cycled over the members of each target.
        duration, transient: simulated and discarded time (ms); default the published protocol.
        dt: integration step (ms); None for the model's validated default.
        g_s_range, g_u_range: target ranges (default the published ones).
        chunk_targets: targets per part file (the unit of work, resumption and distribution).
        seed: seed of targets, populations and noise.
    """

    model: str = "stg"
    n_targets: int = 1000
    models_per_target: int = 16
    noise: tuple[float, ...] = (0.0, 3.0, 5.0)
    duration: float | None = None
    transient: float | None = None
    dt: float | None = None
    g_s_range: tuple[float, float] | None = None
    g_u_range: tuple[float, float] | None = None
    chunk_targets: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.model not in DEFAULTS:
            raise ValueError(f"model must be one of {sorted(DEFAULTS)}; got {self.model!r}")
        defaults = DEFAULTS[self.model]
        for name in ("duration", "transient", "g_s_range", "g_u_range"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, defaults[name])
        object.__setattr__(self, "noise", tuple(float(s) for s in self.noise))
        for name in ("n_targets", "models_per_target", "chunk_targets"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if not self.noise or min(self.noise) < 0:
            raise ValueError(f"noise must list levels σ ≥ 0 (µA/cm²); got {self.noise!r}")
        if not 0 <= self.transient < self.duration:
            raise ValueError(f"need 0 ≤ transient < duration (ms); got {self.transient}, {self.duration}")
        for name in ("g_s_range", "g_u_range"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"{name} must be (low, high) with low < high; got {(lo, hi)}")

    @property
    def n_chunks(self) -> int:
        return -(-self.n_targets // self.chunk_targets)

    def chunk_bounds(self, i: int) -> tuple[int, int]:
        return i * self.chunk_targets, min(self.n_targets, (i + 1) * self.chunk_targets)


def _targets(settings: TrainingDataSettings) -> np.ndarray:
    """(n_targets, 2) targets (g_s, g_u); drawn once from the seed so chunks agree on them."""
    rng = np.random.default_rng([settings.seed, 0xD1C5])
    lo = [settings.g_s_range[0], settings.g_u_range[0]]
    hi = [settings.g_s_range[1], settings.g_u_range[1]]
    return rng.uniform(lo, hi, size=(settings.n_targets, 2))


def make_chunk(settings: TrainingDataSettings, i: int) -> pa.Table:
    """Generate, simulate and describe the models of chunk ``i`` (pure: same inputs, same table)."""
    model = get_model(settings.model)
    start, stop = settings.chunk_bounds(i)
    targets = _targets(settings)[start:stop]
    rows: dict[str, list] = {k: [] for k in ("target", "member", "target_g_s", "target_g_u", "compensated")}
    g, achieved, v_th, unreachable = [], [], [], 0
    for t, (g_s, g_u) in enumerate(targets, start=start):
        try:
            pop = generate_population(model, settings.models_per_target, g_s=float(g_s), g_u=float(g_u),
                                      seed=int(np.random.default_rng([settings.seed, t]).integers(2**31)))
        except UnreachableTargetError:
            unreachable += 1
            continue
        g.append(pop.conductances)
        achieved.append(pop.achieved)
        v_th.append(pop.v_th)
        rows["target"] += [t] * len(pop)
        rows["member"] += list(range(len(pop)))
        rows["target_g_s"] += [float(g_s)] * len(pop)
        rows["target_g_u"] += [float(g_u)] * len(pop)
        rows["compensated"] += list(pop.compensated)
    if not g:
        return pa.table({"target": pa.array([], pa.int64())})
    g, achieved, v_th = np.concatenate(g), np.concatenate(achieved), np.concatenate(v_th)
    member = np.asarray(rows["member"])
    target = np.asarray(rows["target"])
    sigma = np.asarray(settings.noise)[(member + target) % len(settings.noise)]
    trains: list[np.ndarray | None] = [None] * len(g)
    # One simulation per noise level, each padded to the same number of models so that every group
    # of every chunk runs one compiled program (σ = 0 as a zero-amplitude Noise for the same reason).
    size = -(-settings.chunk_targets * settings.models_per_target // len(settings.noise))
    for j, level in enumerate(settings.noise):
        which = np.flatnonzero(sigma == level)
        if which.size == 0:
            continue
        rows_padded = np.concatenate([which, np.full(max(0, size - which.size), which[-1])])
        noise_seed = int(np.random.default_rng([settings.seed, i, j]).integers(2**31))  # own stream per group
        res = simulate(model, g[rows_padded], Noise(float(level)), duration=settings.duration,
                       transient=settings.transient, dt=settings.dt, seed=noise_seed)
        for k, train in zip(which, res.trains[: which.size]):
            trains[k] = np.asarray(train, dtype=np.float64)
    feats = [firing_features(train) for train in trains]
    columns = {
        "target": pa.array(target, pa.int64()),
        "member": pa.array(member, pa.int32()),
        "sigma": pa.array(sigma, pa.float32()),
        "target_g_s": pa.array(rows["target_g_s"]),
        "target_g_u": pa.array(rows["target_g_u"]),
        "g_f": pa.array(achieved[:, 0]),
        "g_s": pa.array(achieved[:, 1]),
        "g_u": pa.array(achieved[:, 2]),
        "v_th": pa.array(v_th),
        "compensated": pa.array(rows["compensated"], pa.string()),
        **{name: pa.array(g[:, j]) for j, name in enumerate(model.conductance_names)},
        "n_spikes": pa.array([f.n_spikes for f in feats], pa.int32()),
        "pattern": pa.array([str(f.pattern) for f in feats], pa.string()),
        **{name: pa.array([getattr(f, name) for f in feats], pa.float64()) for name in FEATURES},
        "n_bursts": pa.array([f.n_bursts for f in feats], pa.int32()),
        "spike_times": pa.array([t.tolist() for t in trains], pa.list_(pa.float64())),
    }
    table = pa.table(columns)
    return table.replace_schema_metadata({"unreachable_targets": str(unreachable)})


def read_training_data(path, columns=None):
    """The training data at ``path`` as a DataFrame, one row per simulated model; ``columns``
    selects some.

    ``path`` is a folder made by :func:`generate_training_data`, or a list of them (for instance
    two runs with different seeds): their ``target`` numbers are then offset so that each folder's
    targets stay distinct, and splits by target never mix degenerate siblings across folders.
    """
    import pandas as pd

    paths = [path] if isinstance(path, (str, Path)) else list(path)
    frames, offset = [], 0
    for folder in paths:
        parts = sorted(Path(folder).glob("part-*.parquet"))
        if not parts:
            raise FileNotFoundError(f"no training data parts (part-*.parquet) in {folder}; generate them first")
        frame = pd.concat([pd.read_parquet(p, columns=columns) for p in parts], ignore_index=True)
        if "target" in frame and len(paths) > 1:
            frame["target"] = frame["target"] + offset
            offset = int(frame["target"].max()) + 1
        frames.append(frame)
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


@dataclasses.dataclass(frozen=True)
class TrainingDataSummary:
    """What :func:`generate_training_data` did: the folder, trains written, chunks run and resumed."""

    path: Path
    n_trains: int
    n_chunks: int
    resumed: int
    unreachable_targets: int
    seconds: float


def generate_training_data(
    out,
    settings: TrainingDataSettings = TrainingDataSettings(),
    *,
    scheduler=None,
    progress: bool = True,
    max_chunks: int | None = None,
) -> TrainingDataSummary:
    """Generate spike trains of compensated models with known DICs, for the spike-train → DIC network.

    Targets (g_s, g_u) are drawn uniformly over the published ranges; for each, a degenerate
    population is generated by the two-stage compensation recipe (:func:`neuromech.dics.
    generate_population`, Fyon et al. 2024; Brandoit et al. 2025), simulated with the published
    protocol (STG 6 s, DA 12 s, first 3 s dropped) with noisy current σ cycled over the members, and
    each model's spike train is stored with its achieved DICs (recomputed, not the target), V_th,
    conductances, firing pattern and features (SCIENCE.md §1.4). Parts are written atomically as they
    complete; a rerun with the same settings resumes, one with a larger ``n_targets`` grows the set
    (its first targets are those already made); a cluster is used when ``scheduler`` is given.

    Main arguments:
        out: the data-set folder (created).
        settings: a :class:`TrainingDataSettings`.

    Other arguments:
        scheduler: Dask scheduler address or ``distributed.Client``; None runs here.
        progress: show a progress bar.
        max_chunks: stop after this many new chunks (the rest on a later run).

    Returns:
        A :class:`TrainingDataSummary`.

    Raises:
        JobMismatchError: ``out`` holds parts made with other settings.
        JobLockedError: another process is writing ``out``.

    Example:
        >>> import tempfile
        >>> s = TrainingDataSettings("stg", n_targets=1, models_per_target=2, duration=600.0,
        ...                          transient=100.0)
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = generate_training_data(d, s, progress=False)
        ...     len(read_training_data(d))
        2
    """
    started = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"job": "neuromech-training-data", **dataclasses.asdict(settings),
                "model_sha256": tree_digest(get_model(settings.model))}
    manifest = {k: list(v) if isinstance(v, tuple) else v for k, v in manifest.items()}
    # The targets are drawn as a prefix-stable sequence and every chunk is a pure function of its
    # own targets, so a data set grows by asking for more targets: n_targets is left out of the
    # fingerprint, and the parts already written are the first parts of the larger set.
    fixed = lambda m: {k: v for k, v in m.items() if k not in ("digest", "n_targets")}  # noqa: E731
    digest = job_digest(fixed(manifest))
    with _exclusive(out / ".lock", out):
        old = read_manifest(out / "manifest.json")
        if old is not None and fixed(old) != fixed(manifest):
            raise JobMismatchError(
                f"{out} holds training data made with other settings ({describe_differences(fixed(old), fixed(manifest))}); "
                "use another folder or delete it"
            )
        have = int(old["n_targets"]) if old is not None else 0
        if settings.n_targets > have and have % settings.chunk_targets:
            raise JobMismatchError(
                f"{out} holds {have} targets, not a whole number of chunks of {settings.chunk_targets}, so its "
                f"last part cannot grow to {settings.n_targets} targets; put the new targets in another folder "
                "(same settings, another --seed) and train on both")
        write_manifest(out / "manifest.json", {**manifest, "n_targets": max(have, settings.n_targets), "digest": digest})
        part = lambda i: out / f"part-{i:05d}.parquet"  # noqa: E731
        done = [i for i in range(settings.n_chunks) if part(i).exists()]
        pending = [i for i in range(settings.n_chunks) if not part(i).exists()][:max_chunks]
        bar = tqdm(total=settings.n_chunks, initial=len(done), unit="chunk",
                   desc=f"training data {settings.model}", disable=not progress)

        def record(i, table):
            with atomic_path(part(i)) as tmp:
                pq.write_table(table, tmp)
            bar.update(1)

        try:
            if scheduler is None:
                for i in pending:
                    record(i, make_chunk(settings, i))
            else:
                dask_map(scheduler, make_chunk, ((i, (settings, i)) for i in pending),
                         key=f"neuromech-training-{digest[:12]}", record=record)
        finally:
            bar.close()
    n_trains, unreachable = 0, 0
    for i in range(settings.n_chunks):
        if part(i).exists():
            meta = pq.read_metadata(part(i))
            n_trains += meta.num_rows
            unreachable += int((meta.metadata or {}).get(b"unreachable_targets", b"0"))
    return TrainingDataSummary(path=out, n_trains=n_trains, n_chunks=settings.n_chunks, resumed=len(done),
                               unreachable_targets=unreachable, seconds=time.perf_counter() - started)
