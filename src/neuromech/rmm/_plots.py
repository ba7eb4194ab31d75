"""Figures for RMMs (optional: matplotlib is imported inside the functions only)."""

from __future__ import annotations

import numpy as np


def plot_prediction(t, measured, predicted, *, current=None, ax=None, title: str = ""):
    """Measured and predicted voltage (mV) against time (ms); the injected current (nA) below if given.

    Returns the voltage axes (a new figure when ``ax`` is None).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        rows = 2 if current is not None else 1
        fig, axes = plt.subplots(rows, 1, figsize=(9, 4 if rows == 2 else 3), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1][:rows]}, squeeze=False)
        ax = axes[0, 0]
        if current is not None:
            axes[1, 0].plot(t, current, color="0.3", lw=0.7)
            axes[1, 0].set_ylabel("I (nA)")
            axes[1, 0].set_xlabel("time (ms)")
    ax.plot(t, measured, color="k", lw=0.8, label="data")
    ax.plot(t, predicted, color="tab:red", lw=0.8, alpha=0.8, label="RMM (free run)")
    ax.set_ylabel("V (mV)")
    ax.legend(loc="upper right", frameon=False)
    if title:
        ax.set_title(title)
    return ax


def plot_iv(curves: dict, *, kind: str = "steady", ax=None):
    """I–V curves from :func:`iv_curves` (``kind`` ``"steady"`` or ``"instantaneous"``)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for name, i in curves[kind].items():
        ax.plot(curves["v"], i, lw=2 if name == "total" else 1, color="k" if name == "total" else None, label=name)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.set_xlabel("V (mV)")
    ax.set_ylabel("I (nA)")
    ax.set_title(f"{kind} I–V")
    ax.legend(frameon=False, fontsize=8)
    return ax


def plot_gates(v_grid, gates: dict, *, ax=None):
    """Learned steady-state activation (solid) and inactivation (dashed) curves from :func:`gate_curves`."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for k, (name, g) in enumerate(gates.items()):
        color = f"C{k}"
        for key, style in (("activation", "-"), ("inactivation", "--")):
            if g[key] is not None:
                ax.plot(v_grid, np.asarray(g[key]), style, color=color, label=f"{name} {key[:3]}")
    ax.set_xlabel("V (mV)")
    ax.set_ylabel("gate (steady state)")
    ax.legend(frameon=False, fontsize=8)
    return ax
