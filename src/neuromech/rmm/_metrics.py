"""Validation metrics of free-running predictions (NumPy; ms, mV)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..analysis import detect_spikes
from ._rhythm import burst_periods


def voltage_rmse(measured, predicted) -> float:
    """Root-mean-square voltage error (mV)."""
    d = np.asarray(measured, float) - np.asarray(predicted, float)
    return float(np.sqrt(np.mean(d**2)))


def inner_product_score(measured, predicted, *, center: bool = True) -> float:
    """The normalised inner product ⟨a, b⟩ / max(‖a‖², ‖b‖²) of Burghi et al. (PNAS 2025).

    1 for identical traces; below 1 for a wrong shape *or* a wrong amplitude (unlike a correlation,
    the max in the denominator penalises a scaled copy). With ``center`` (default) both traces are
    taken relative to the measured trace's mean: raw membrane voltages sit near −60 mV, and the
    score of any two flat traces there would be close to 1.

    Example:
        >>> inner_product_score([0.0, 1.0, 0.0, -1.0], [0.0, 0.5, 0.0, -0.5])
        0.5
    """
    a, b = np.asarray(measured, float), np.asarray(predicted, float)
    if center:
        m = a.mean()
        a, b = a - m, b - m
    denom = max(np.dot(a, a), np.dot(b, b))
    return float(np.dot(a, b) / denom) if denom > 0 else 1.0


def coincidence_factor(data_spikes, model_spikes, duration: float, *, window: float = 2.0) -> float:
    """Spike coincidence factor Γ (Kistler, Gerstner & van Hemmen 1997; Jolivet et al. 2008).

    Γ = (N_coinc − ⟨N_coinc⟩) / (½ (N_data + N_model)) / (1 − 2νΔ), where a data spike and a model
    spike coincide within ±``window`` ms (each model spike used once), ⟨N_coinc⟩ = 2νΔ N_data is
    the chance level of a Poisson train of the model's rate ν = N_model / duration. 1: every spike
    matched; 0: chance. NaN when neither train has a spike.

    Example:
        >>> coincidence_factor([10.0, 50.0], [10.5, 51.0], 100.0)
        1.0
    """
    d, m = np.sort(np.asarray(data_spikes, float)), np.sort(np.asarray(model_spikes, float))
    if d.size + m.size == 0:
        return float("nan")
    used = np.zeros(m.size, bool)
    n_coinc = 0
    for t in d:
        close = np.flatnonzero(~used & (np.abs(m - t) <= window))
        if close.size:
            used[close[np.argmin(np.abs(m[close] - t))]] = True
            n_coinc += 1
    rate = m.size / duration
    chance = 2 * rate * window * d.size
    norm = 1 - 2 * rate * window
    if norm <= 0:
        return 0.0
    return float((n_coinc - chance) / (0.5 * (d.size + m.size)) / norm)


def spike_count_error(n_data: int, n_model: int) -> float:
    """Relative spike-count error |N_model − N_data| / max(N_data, 1)."""
    return abs(n_model - n_data) / max(n_data, 1)


@dataclasses.dataclass(frozen=True)
class SweepMetrics:
    """Free-run metrics of one sweep (NaN where they do not apply; ``diverged_at`` ms or None).

    ``burst_period_data``, ``burst_period_model`` (ms): see :func:`~neuromech.rmm._rhythm.burst_periods`
    (NaN unless the data burst, with at least three bursts).
    """

    sweep: int
    rmse: float
    inner_product: float
    coincidence: float
    n_spikes_data: int
    n_spikes_model: int
    spike_count_error: float
    diverged_at: float | None = None
    burst_period_data: float = float("nan")
    burst_period_model: float = float("nan")

    @property
    def burst_period_error(self) -> float:
        """|model / data − 1| of the burst period, capped at 1 (a model that does not burst where
        the data do counts 1); NaN where the data have no burst period."""
        if not np.isfinite(self.burst_period_data):
            return float("nan")
        if not np.isfinite(self.burst_period_model):
            return 1.0
        return min(abs(self.burst_period_model / self.burst_period_data - 1.0), 1.0)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "burst_period_error": self.burst_period_error}

    def diverged(self, time: float) -> "SweepMetrics":
        """These metrics for a free run that diverged at ``time`` (ms): the worst scores (infinite
        error, inner product −1, no coincidence, no burst period), the data's figures kept."""
        return dataclasses.replace(self, rmse=float("inf"), inner_product=-1.0, coincidence=0.0,
                                   diverged_at=time, burst_period_model=float("nan"))


def sweep_metrics(sweep: int, t_ms, measured, predicted, *, threshold: float = 0.0, rearm: float | None = None,
                  window: float = 2.0) -> SweepMetrics:
    """All metrics of one sweep; spikes are upward crossings of ``threshold`` (mV)."""
    rearm = threshold - 10.0 if rearm is None else rearm
    ds = detect_spikes(t_ms, measured, threshold=threshold, rearm=rearm)
    ms = detect_spikes(t_ms, predicted, threshold=threshold, rearm=rearm)
    duration = float(t_ms[-1] - t_ms[0]) + float(t_ms[1] - t_ms[0])
    period_data, period_model = burst_periods(ds, ms)
    return SweepMetrics(sweep, voltage_rmse(measured, predicted), inner_product_score(measured, predicted),
                        coincidence_factor(ds, ms, duration, window=window), int(ds.size), int(ms.size),
                        spike_count_error(ds.size, ms.size), burst_period_data=period_data,
                        burst_period_model=period_model)


def summarise(metrics) -> dict:
    """Means over sweeps (ignoring NaN) and the number of diverged sweeps."""
    out = {"n_sweeps": len(metrics), "n_diverged": sum(m.diverged_at is not None for m in metrics)}
    for name in ("rmse", "inner_product", "coincidence", "spike_count_error", "burst_period_error"):
        vals = np.array([getattr(m, name) for m in metrics], float)
        out[name] = float(np.nanmean(vals)) if np.any(np.isfinite(vals)) else float("nan")
    out["n_spikes_data"] = int(sum(m.n_spikes_data for m in metrics))
    out["n_spikes_model"] = int(sum(m.n_spikes_model for m in metrics))
    return out
