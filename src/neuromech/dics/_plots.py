"""Optional figures: DIC curves of a model, conductance distributions and DIC scatter of a population.

matplotlib is imported inside the functions, so the DIC code never needs it.
"""

from __future__ import annotations

import numpy as np

from ..cbm import ConductanceBasedModel
from ._dics import dics
from ._population import Population

_COLOURS = {"g_f": "tab:red", "g_s": "tab:blue", "g_u": "tab:green", "g_t": "black"}


def plot_dics(
    model: ConductanceBasedModel,
    conductances,
    *,
    v_range: tuple[float, float] = (-90.0, -20.0),
    n_points: int = 281,
    calcium_path: str = "python",
    show_threshold: bool = True,
    ax=None,
):
    """Plot g_f, g_s, g_u and g_t (dimensionless) of one model against V (mV).

    Args:
        model, conductances: one model, (n,) mS/cm².
        v_range, n_points: the voltage grid (mV). calcium_path: DIC convention.
        show_threshold: mark the model's threshold (first + → − crossing of g_t) and the published V_th.
        ax: a matplotlib Axes, or None for a new figure.

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    from ._dics import threshold_voltage

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    grid = np.linspace(v_range[0], v_range[1], n_points)
    d = dics(model, np.asarray(conductances, dtype=float), grid, calcium_path=calcium_path)
    if np.ndim(d.g_f) != 1:
        raise ValueError("plot_dics draws one model: pass conductances of shape (n_channels,)")
    for name in ("g_f", "g_s", "g_u", "g_t"):
        ax.plot(grid, getattr(d, name), color=_COLOURS[name], label=name, lw=2 if name == "g_t" else 1.5)
    ax.axhline(0.0, color="grey", lw=0.8)
    if show_threshold:
        v_th = threshold_voltage(model, conductances, calcium_path=calcium_path)
        if np.isfinite(v_th):
            ax.axvline(v_th, color="black", ls="--", lw=0.8, label=f"V_th = {v_th:.1f} mV")
        if model.v_th is not None:
            ax.axvline(model.v_th, color="grey", ls=":", lw=0.8, label=f"published V_th = {model.v_th:g} mV")
    ax.set_xlabel("V (mV)")
    ax.set_ylabel("DIC (normalised by g_leak)")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_population(population: Population, *, axes=None, bins: int = 30):
    """Conductance histograms (one panel per conductance, mS/cm²) and the (g_s, g_u) scatter of the
    achieved DICs with the targets.

    Args:
        population: the population. axes: a sequence of n_channels + 1 Axes, or None for a new figure.
        bins: histogram bins.

    Returns:
        The array of Axes.
    """
    import matplotlib.pyplot as plt

    names = population.model.conductance_names
    n = len(names) + 1
    if axes is None:
        cols = 3
        rows = int(np.ceil(n / cols))
        _, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
        for extra in axes.ravel()[n:]:
            extra.set_visible(False)
    flat = np.asarray(axes).ravel()
    if flat.size < n:
        raise ValueError(f"plot_population needs {n} axes (one per conductance and one scatter); got {flat.size}")
    for k, name in enumerate(names):
        flat[k].hist(population.conductances[:, k], bins=bins, color="tab:grey")
        flat[k].set_xlabel(f"{name} (mS/cm²)")
    ax = flat[len(names)]
    ax.scatter(population.achieved[:, 1], population.achieved[:, 2], s=6, color="tab:blue", label="achieved")
    targets = population.targets[np.isfinite(population.targets[:, 1:]).all(axis=1)]
    if len(targets):
        ax.scatter(targets[:, 1], targets[:, 2], marker="x", s=40, color="black", label="target")
    ax.set_xlabel("g_s")
    ax.set_ylabel("g_u")
    ax.legend(frameon=False, fontsize="small")
    return np.asarray(axes)
