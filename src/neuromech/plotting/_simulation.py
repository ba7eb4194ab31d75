"""Figures of simulations: spike rasters and voltage traces."""

from __future__ import annotations

import numpy as np


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 3))
    return ax


def raster(trains, *, ids=None, ax=None, color="k"):
    """Spike raster: one row per train.

    Args:
        trains: list of spike-time arrays (ms).
        ids: labels of the rows (default 0..n−1).
        ax: matplotlib axes to draw in (a new figure if ``None``).

    Returns:
        The axes.
    """
    ax = _axes(ax)
    ids = np.arange(len(trains)) if ids is None else np.asarray(ids)
    ax.eventplot([np.asarray(t) for t in trains], lineoffsets=np.arange(len(trains)), linelengths=0.8, colors=color)
    ax.set_yticks(np.arange(len(trains)))
    ax.set_yticklabels([str(i) for i in ids])
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("model")
    return ax


def voltage_traces(time, voltage, *, labels=None, ax=None, offset=0.0):
    """Membrane voltage traces (mV) against time (ms), optionally stacked by ``offset`` mV.

    Returns:
        The axes.
    """
    ax = _axes(ax)
    voltage = np.atleast_2d(voltage)
    for k, v in enumerate(voltage):
        ax.plot(time, v + k * offset, lw=0.6, label=None if labels is None else str(labels[k]))
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("V (mV)")
    if labels is not None:
        ax.legend(loc="upper right", fontsize="small", frameon=False)
    return ax
