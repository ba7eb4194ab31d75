"""Synthetic current-clamp recordings with ground truth, from the conductance-based simulator."""

from __future__ import annotations

import numpy as np

from ._recording import Recording

# Default drives: chosen so that the neuron explores its repertoire (subthreshold fluctuations,
# irregular spiking; for the STG fixture, bursts that the current perturbs but does not abolish).
# Means and standard deviations in µA/cm², correlation times in ms.
DRIVES = {"hh": (6.0, 4.0, 5.0), "stg": (0.0, 0.15, 20.0)}
# The STG regression fixture of SCIENCE.md §2 (bursting, ≈ 6.5 Hz bursts of ≈ 5 spikes).
STG_FIXTURE = (8228.904834, 88.877566, 3.970819, 54.642893, 164.678951, 472.321169, 0.610392, 0.012287)
HH_CLASSIC = (120.0, 36.0, 0.3)


def ou_current(n: int, *, seed: int, sigma: float = 1.0, tau: float = 10.0, dt: float = 0.1) -> np.ndarray:
    """``n`` samples of an Ornstein–Uhlenbeck process (std ``sigma``, correlation time ``tau`` ms)
    on a grid of ``dt`` ms, started at 0 and updated exactly: a test or benchmark drive.

    Example:
        >>> ou_current(4, seed=0).shape
        (4,)
    """
    rng = np.random.default_rng(seed)
    a = np.exp(-dt / tau)
    shocks = sigma * np.sqrt(1 - a * a) * rng.standard_normal(max(n - 1, 0))
    out = np.zeros(n)
    for k in range(1, n):
        out[k] = a * out[k - 1] + shocks[k - 1]
    return out


def synthetic_recording(
    model: str = "hh",
    duration: float = 10_000.0,
    *,
    conductances=None,
    drive: tuple[float, float, float] | None = None,
    noise: float = 0.5,
    dt: float = 0.1,
    area: float = 1e-3,
    transient: float = 500.0,
    seed: int = 0,
) -> Recording:
    """A neuron of the CBM library driven by an Ornstein–Uhlenbeck current, sampled like a recording.

    The injected current is an exact OU process sampled every ``dt`` (linearly interpolated
    between samples by the simulator); the recorded voltage is the model's plus white Gaussian
    measurement noise. Currents are densities in the model (µA/cm²) and are converted to nA for a
    membrane of ``area`` cm² (default 1e-3 cm²: 1 µA/cm² ↔ 1 nA, capacitance 1 nF; Liu et al. 1998
    used 0.628e-3 cm² for STG neurons).

    Main arguments:
        model: ``"hh"`` (Hodgkin & Huxley 1952, classic conductances) or ``"stg"`` (Liu et al. 1998,
            the bursting fixture of SCIENCE.md).
        duration: recorded time (ms), after a discarded ``transient``.

    Other arguments:
        conductances: override the default conductances (mS/cm², the model's order).
        drive: OU current (mean, std in µA/cm², correlation time in ms); default per model.
        noise: std of the measurement noise added to the voltage (mV).
        dt: sampling period (ms), also the simulator's output grid (10 kHz by default).
        area: membrane area (cm²) converting densities to currents.
        transient: simulated time dropped at the start (ms), so the record starts on the attractor.
        seed: seeds the drive and the measurement noise.

    Returns:
        A one-sweep :class:`Recording` whose ``truth`` holds each channel's true current (nA) and
        ``"voltage_clean"`` the noise-free voltage (mV, stored as a truth channel for tests).

    Example:
        >>> rec = synthetic_recording("hh", 200.0, seed=1)
        >>> rec.n_samples, sorted(rec.truth)[:2]
        (2000, ['K', 'Na'])
    """
    from ..cbm import Sampled, get_model, simulate

    if model not in DRIVES:
        raise ValueError(f"unknown model {model!r}; synthetic recordings exist for {sorted(DRIVES)}")
    cbm = get_model(model)
    g = np.asarray(conductances if conductances is not None else (HH_CLASSIC if model == "hh" else STG_FIXTURE), float)
    mean, sigma, tau = drive if drive is not None else DRIVES[model]
    rng = np.random.default_rng(seed)
    n = int(round((duration + transient) / dt)) + 2
    decay = np.exp(-dt / tau)
    shocks = rng.standard_normal(n) * sigma * np.sqrt(1 - decay**2)
    ou = np.empty(n)
    ou[0] = mean + sigma * rng.standard_normal()
    for k in range(1, n):  # exact OU update on the sampling grid
        ou[k] = mean + (ou[k - 1] - mean) * decay + shocks[k]
    res = simulate(cbm, g, Sampled(ou, dt), duration=duration + transient, dt_out=dt,
                   record=("voltage", "currents"), seed=seed)
    skip = int(round(transient / dt))
    count = int(round(duration / dt))
    v_clean = np.asarray(res.voltage[0, skip:skip + count], float)
    to_na = area * 1e3  # µA/cm² × cm² = µA; × 1e3 → nA
    currents = np.asarray(res.currents[0, skip:skip + count], float) * to_na
    truth = {name: currents[:, k] for k, name in enumerate(cbm.channel_names)}
    truth["voltage_clean"] = v_clean
    v = v_clean + noise * rng.standard_normal(count)
    meta = {
        "source": f"synthetic {model}", "units": {"time": "ms", "voltage": "mV", "current": "nA"},
        "units_assumed": [], "conductances": g.tolist(), "drive": [mean, sigma, tau], "noise_mV": noise,
        "area_cm2": area, "capacitance_nF": float(cbm.capacitance) * area * 1e3, "seed": seed,
    }
    return Recording(v, ou[skip:skip + count] * to_na, dt=dt, metadata=meta, truth=truth)
