"""Populations: many conductance sets of one model with their target and achieved DICs."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

from ..cbm import ConductanceBasedModel

DIC_NAMES = ("g_f", "g_s", "g_u")


@dataclasses.dataclass(frozen=True, eq=False)
class Population:
    """A population of conductance-based models sharing one model description.

    Feeds the simulator directly: ``simulate(pop.model, pop.conductances, ...)``.

    Attributes:
        model: the model (``stg()``, ``da()``, ...).
        conductances: (N, n_channels) conductances (mS/cm²), columns ``model.conductance_names``.
        ids: (N,) identifiers.
        targets: (N, 3) target (g_f, g_s, g_u); NaN where a DIC was left free.
        achieved: (N, 3) achieved (g_f, g_s, g_u) at ``v_th``.
        v_th: (N,) voltage (mV) at which the DICs were set and evaluated.
        residuals: (N,) largest |achieved − target| over the targeted DICs (0 when none targeted).
        compensated: (N,) the compensated conductances of each model, e.g. ``"g_A,g_H"``.
        calcium_path: KCa calcium-path convention of the DICs (see :func:`~neuromech.dics.dics`).
    """

    model: ConductanceBasedModel
    conductances: np.ndarray
    ids: np.ndarray
    targets: np.ndarray
    achieved: np.ndarray
    v_th: np.ndarray
    residuals: np.ndarray
    compensated: np.ndarray
    calcium_path: str = "python"

    def __post_init__(self):
        n = len(self.model.channels)
        g = np.asarray(self.conductances, dtype=float)
        if g.ndim != 2 or g.shape[1] != n:
            raise ValueError(f"conductances must have shape (N, {n}); got {g.shape}")
        size = g.shape[0]
        for name, shape in (("ids", (size,)), ("targets", (size, 3)), ("achieved", (size, 3)),
                            ("v_th", (size,)), ("residuals", (size,)), ("compensated", (size,))):
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"Population.{name} must have shape {shape}; got {np.shape(getattr(self, name))}")

    def __len__(self) -> int:
        return self.conductances.shape[0]

    @property
    def valid(self) -> np.ndarray:
        """(N,) whether each model has finite, non-negative conductances."""
        g = self.conductances
        return np.isfinite(g).all(axis=1) & (g >= 0).all(axis=1)

    def subset(self, index) -> "Population":
        """The models selected by ``index`` (boolean mask, integer indices or a slice)."""
        pick = lambda a: np.asarray(a)[index]
        return dataclasses.replace(
            self, conductances=pick(self.conductances), ids=pick(self.ids), targets=pick(self.targets),
            achieved=pick(self.achieved), v_th=pick(self.v_th), residuals=pick(self.residuals),
            compensated=pick(self.compensated),
        )

    def to_frame(self, *, details: bool = False):
        """Table with ``id``, one column per conductance (mS/cm²) and the achieved ``g_f, g_s, g_u``.

        With ``details=True`` also ``target_g_f, target_g_s, target_g_u, v_th`` (mV), ``residual`` and
        ``compensated``.
        """
        import pandas as pd

        cols = {"id": self.ids}
        for k, name in enumerate(self.model.conductance_names):
            cols[name] = self.conductances[:, k]
        for k, name in enumerate(DIC_NAMES):
            cols[name] = self.achieved[:, k]
        if details:
            for k, name in enumerate(DIC_NAMES):
                cols[f"target_{name}"] = self.targets[:, k]
            cols["v_th"] = self.v_th
            cols["residual"] = self.residuals
            cols["compensated"] = self.compensated
        return pd.DataFrame(cols)

    def save(self, path, *, details: bool = False) -> Path:
        """Write :meth:`to_frame` to ``path`` (``.csv`` or ``.parquet``), atomically.

        The table goes to a temporary file in the same folder, then is renamed over ``path``, so a
        reader never sees a half-written file. Returns the path.
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet", ".pq"):
            raise ValueError(f"save a population as .csv or .parquet; got {path.name!r}")
        frame = self.to_frame(details=details)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            if suffix == ".csv":
                frame.to_csv(tmp, index=False, float_format="%.17g")
            else:
                frame.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def population_from_frame(
    model: ConductanceBasedModel, frame, *, v_th=None, calcium_path: str = "python"
) -> Population:
    """A :class:`Population` from a table with ``id`` (optional) and one column per conductance.

    Other columns (e.g. the ``g_f, g_s, g_u`` written by :meth:`Population.save`) are ignored: the
    achieved DICs are recomputed at ``v_th`` (mV; default the model's published value), and targets
    are NaN (unknown).
    """
    from ._dics import dics, published_v_th

    names = model.conductance_names
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise ValueError(
            f"the table lacks the conductance column(s) {', '.join(missing)} of model {model.name!r}; "
            f"it has {', '.join(map(str, frame.columns))}"
        )
    g = model.conductances(frame[list(names)])
    g = np.atleast_2d(g)
    ids = np.asarray(frame["id"]) if "id" in frame.columns else np.arange(g.shape[0])
    v = published_v_th(model) if v_th is None else v_th
    d = dics(model, g, v, calcium_path=calcium_path)
    v_used = np.broadcast_to(np.asarray(d.v, dtype=float), (g.shape[0],)).copy()
    n = g.shape[0]
    return Population(
        model=model, conductances=g, ids=ids, targets=np.full((n, 3), np.nan), achieved=d.as_array(),
        v_th=v_used, residuals=np.zeros(n), compensated=np.full(n, ""), calcium_path=calcium_path,
    )


def load_population(path, model: ConductanceBasedModel, *, v_th=None, calcium_path: str = "python") -> Population:
    """Read a population written by :meth:`Population.save` (or any CSV/Parquet table with one column
    per conductance) and recompute its DICs; see :func:`population_from_frame`."""
    import pandas as pd

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"read a population from .csv or .parquet; got {path.name!r}")
    return population_from_frame(model, frame, v_th=v_th, calcium_path=calcium_path)
