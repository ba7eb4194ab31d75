"""Linear filter banks: the state-space part of a recurrent mechanistic model.

A bank maps a voltage v[k] (mV) to filter states x[k] by ``x[k+1] = A x[k] + B v[k]``, with poles
λ = exp(−dt/τ) from time constants τ (ms). Two realisations (Burghi et al., PNAS 2025, and
SCIENCE.md §5):

- **diagonal**: independent unit-gain low-pass filters, ``x⁺ = λ x + (1 − λ) v``; DC gain 1.
- **orthonormal**: a Takenaka–Malmquist (generalised orthonormal basis function) cascade of
  first-order all-pass sections; ``A`` is lower triangular and the impulse responses of the states
  are orthonormal in ℓ² (the bank's controllability Gramian is the identity). State k has the
  transfer function ``√(1−λ_k²)/(z−λ_k) · Π_{j<k} (1 − λ_j z)/(z − λ_j)`` and DC gain
  ``√((1+λ_k)/(1−λ_k))``.

A diagonal bank may filter a *release* of the voltage instead of the voltage itself: state k is
driven by ``σ((v − θ_k)/δ)`` (a logistic function, 0 to 1), so that its value is a first-order
kinetic variable of a transmitter released above θ_k, as in a graded chemical synapse
(``ds/dt = (s∞(V_pre) − s)/τ``, Abbott & Marder 1998). Every function below applies it.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

KINDS = ("diagonal", "orthonormal")


def geometric_taus(tau_min: float = 0.05, tau_max: float = 1500.0, n: int = 36) -> np.ndarray:
    """``n`` time constants (ms) spaced geometrically from ``tau_min`` to ``tau_max``.

    The default spans 0.05 ms to 1.5 s in 36 steps (ratio ≈ 1.34), the grid of SCIENCE.md §5.

    Example:
        >>> geometric_taus(1.0, 100.0, 3).tolist()
        [1.0, 10.0, 100.0]
    """
    if not (0 < tau_min <= tau_max) or n < 1:
        raise ValueError(f"need 0 < tau_min ≤ tau_max (ms) and n ≥ 1; got {tau_min}, {tau_max}, {n}")
    return np.geomspace(tau_min, tau_max, n)


class FilterBank(eqx.Module):
    """A discrete-time linear filter bank ``x[k+1] = A x[k] + B v[k]`` (fixed, not trained).

    Attributes:
        A: (n, n) state matrix (diagonal or lower triangular).
        B: (n,) input vector (per mV).
        taus: (n,) time constants (ms) of the poles.
        dt: sampling period (ms).
        kind: ``"diagonal"`` or ``"orthonormal"``.

    Build one with :func:`filter_bank`.
    """

    A: jnp.ndarray
    B: jnp.ndarray
    taus: np.ndarray = eqx.field(static=True, converter=lambda t: tuple(float(x) for x in t))
    dt: float = eqx.field(static=True)
    kind: str = eqx.field(static=True)
    release: tuple[float, ...] | None = eqx.field(static=True, default=None)
    release_slope: float = eqx.field(static=True, default=5.0)

    @property
    def size(self) -> int:
        return len(self.taus)

    def input(self, v):
        """What drives the states: ``v`` (mV), or with ``release`` the (…, n) releases
        ``σ((v − θ_k)/δ)``, one per state (``v`` broadcasts against the thresholds)."""
        if self.release is None:
            return v
        theta = np.asarray(self.release)
        if isinstance(v, np.ndarray) or np.isscalar(v):
            import scipy.special

            return scipy.special.expit((np.asarray(v, np.float64)[..., None] - theta) / self.release_slope)
        return jax.nn.sigmoid((jnp.asarray(v)[..., None] - jnp.asarray(theta, self.A.dtype)) / self.release_slope)

    @property
    def poles(self) -> np.ndarray:
        return np.exp(-self.dt / np.asarray(self.taus))


def filter_bank(taus, dt: float, kind: str = "diagonal", release=None, release_slope: float = 5.0) -> FilterBank:
    """A filter bank with poles ``exp(−dt/τ)`` for the time constants ``taus`` (ms).

    Args:
        taus: time constants (ms), positive; for ``"orthonormal"`` they must be distinct.
        dt: sampling period (ms).
        kind: ``"diagonal"`` (unit-gain low-pass filters) or ``"orthonormal"`` (Takenaka–Malmquist
            cascade, lower-triangular A).
        release: diagonal banks: per state, the threshold θ_k (mV) of the release
            ``σ((v − θ_k)/release_slope)`` that drives it in place of ``v``; None: ``v``.
        release_slope: δ (mV) of the release, > 0.

    Raises:
        ValueError: for an unknown kind, non-positive τ or dt, repeated τ in an orthonormal bank,
            or a release on an orthonormal bank, with a threshold per state missing, or with δ ≤ 0.

    Example:
        >>> bank = filter_bank([1.0, 10.0], dt=0.1)
        >>> np.allclose(dc_gain(bank), 1.0)
        True
    """
    taus = np.asarray(taus, dtype=np.float64).ravel()
    if kind not in KINDS:
        raise ValueError(f"unknown filter bank kind {kind!r}; choose one of {KINDS}")
    if taus.size == 0 or not np.all(np.isfinite(taus) & (taus > 0)):
        raise ValueError(f"time constants must be positive numbers of ms, got {taus.tolist()}")
    if not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive sampling period in ms, got {dt!r}")
    lam = np.exp(-dt / taus)
    if kind == "diagonal":
        A, B = np.diag(lam), 1.0 - lam
    else:
        if len(np.unique(lam)) != lam.size:
            raise ValueError("an orthonormal bank needs distinct time constants (repeated poles are not supported)")
        A, B = _takenaka_malmquist(lam)
    if release is not None:
        release = tuple(float(x) for x in np.ravel(release))
        if kind != "diagonal" or len(release) != taus.size or not release_slope > 0:
            raise ValueError(f"a release needs a diagonal bank, one threshold (mV) per time constant and a slope > 0 mV; "
                             f"got kind {kind!r}, {len(release)} thresholds for {taus.size} states, slope {release_slope}")
    dtype = jnp.asarray(1.0).dtype
    return FilterBank(jnp.asarray(A, dtype), jnp.asarray(B, dtype), taus, float(dt), kind, release,
                      float(release_slope))


def _takenaka_malmquist(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) of the all-pass cascade: u₁ = v, x_k⁺ = λ_k x_k + s_k u_k, u_{k+1} = s_k x_k − λ_k u_k.

    The all-pass output of section k is ``(1 − λ z)/(z − λ) u = −λ u + (1 − λ²)/(z − λ) u``, i.e.
    ``s_k x_k − λ_k u_k`` with ``s_k = √(1 − λ_k²)``; unrolling u_k as a combination of the earlier
    states and v gives a lower-triangular A and a dense B.
    """
    n = lam.size
    s = np.sqrt(1.0 - lam**2)
    A, B = np.zeros((n, n)), np.zeros(n)
    c, d = np.zeros(n), 1.0  # u_k = c · x + d · v
    for k in range(n):
        A[k] = s[k] * c
        A[k, k] = lam[k]
        B[k] = s[k] * d
        c, d = -lam[k] * c, -lam[k] * d
        c[k] += s[k]
    return A, B


def filter_step(bank: FilterBank, x, v):
    """One step of the bank: ``A x + B v`` for state ``x`` (n,) and voltage ``v`` (mV) (``B ∘ σ(…)``
    with a release)."""
    if bank.kind == "diagonal":
        return jnp.diagonal(bank.A) * x + bank.B * bank.input(v)
    return bank.A @ x + bank.B * v


def dc_gain(bank: FilterBank) -> np.ndarray:
    """(n,) steady-state gain of each state per mV, ``(I − A)⁻¹ B`` (float64)."""
    A, B = np.asarray(bank.A, np.float64), np.asarray(bank.B, np.float64)
    return np.linalg.solve(np.eye(len(B)) - A, B)


def rest_state(bank: FilterBank, v0):
    """The filter states at rest at voltage ``v0`` (mV): ``dc_gain · v0`` (the causal start;
    ``dc_gain ∘ σ((v0 − θ)/δ)`` with a release)."""
    return jnp.asarray(dc_gain(bank), bank.A.dtype) * bank.input(v0)


def frequency_response(bank: FilterBank, freqs_hz) -> np.ndarray:
    """(n_freqs, n) complex response ``(zI − A)⁻¹ B`` at ``z = exp(i 2π f dt)`` for ``freqs_hz`` (Hz)."""
    A, B = np.asarray(bank.A, np.float64), np.asarray(bank.B, np.float64)
    z = np.exp(2j * np.pi * np.asarray(freqs_hz, float) * bank.dt / 1000.0)
    eye = np.eye(len(B))
    return np.stack([np.linalg.solve(zk * eye - A, B) for zk in np.atleast_1d(z)])


def gramian(bank: FilterBank) -> np.ndarray:
    """The Gram matrix of the states' impulse responses, Σ_k h_k h_kᵀ, solving P = A P Aᵀ + B Bᵀ."""
    import scipy.linalg

    A, B = np.asarray(bank.A, np.float64), np.asarray(bank.B, np.float64)
    return scipy.linalg.solve_discrete_lyapunov(A, np.outer(B, B))


def filter_signal(bank: FilterBank, v, x0=None) -> np.ndarray:
    """Filter states along a whole voltage record, fast (float64, NumPy/SciPy).

    Args:
        v: (T,) voltage (mV).
        x0: (n,) state at sample 0; default the rest state of ``v[0]`` (causal: no future data).

    Returns:
        (T, n) states ``x[0..T-1]``, with ``x[k]`` depending on ``v[0..k-1]`` only.

    Every state is an exact first-order recursion (``scipy.signal.lfilter``): for the diagonal bank
    directly, for the orthonormal bank section by section along the all-pass cascade — O(n·T)
    work instead of a T-step matrix recursion.

    Example:
        >>> bank = filter_bank([2.0], dt=0.1)
        >>> x = filter_signal(bank, np.full(50, -60.0))
        >>> bool(np.allclose(x, -60.0))
        True
    """
    import scipy.signal

    v = np.asarray(v, np.float64)
    if v.ndim != 1:
        raise ValueError(f"filter_signal takes one record (T,), got shape {v.shape}")
    lam = bank.poles
    x0 = np.asarray(rest_state(bank, v[0]) if x0 is None else x0, np.float64)
    n = lam.size
    out = np.empty((v.size, n))
    if bank.kind == "diagonal":
        u = bank.input(v)  # (T,) voltage, or (T, n) releases, once
        for k in range(n):
            # x[t] = λ x[t−1] + (1−λ) v[t−1]: numerator [0, 1−λ] delays v by one sample, and in
            # lfilter's transposed form the initial condition zi is then exactly x[0].
            out[:, k], _ = scipy.signal.lfilter([0.0, 1.0 - lam[k]], [1.0, -lam[k]], u if u.ndim == 1 else u[:, k],
                                                zi=[x0[k]])
        return out
    s = np.sqrt(1.0 - lam**2)
    u = v.copy()
    for k in range(n):
        xk, _ = scipy.signal.lfilter([0.0, s[k]], [1.0, -lam[k]], u, zi=[x0[k]])
        out[:, k] = xk
        u = s[k] * xk - lam[k] * u  # all-pass output feeding the next section
    return out


def warm_states(bank: FilterBank, v, warmup: int | None = None) -> np.ndarray:
    """(T, n) :func:`filter_signal` states along ``v`` from rest at the mean of its first
    ``warmup`` + 1 samples (default: all of ``v``): the start of a warm-up on a window cut out of
    ongoing activity, whose first sample may sit on a spike. Causal from sample ``warmup`` on."""
    m = len(v) if warmup is None else warmup + 1
    return filter_signal(bank, v, x0=np.asarray(rest_state(bank, float(np.mean(np.asarray(v)[:m])))))


def filter_signal_scan(bank: FilterBank, v, x0=None):
    """Reference: the same states as :func:`filter_signal` by stepping ``filter_step`` (lax.scan)."""
    v = jnp.asarray(v, bank.A.dtype)
    x0 = rest_state(bank, v[0]) if x0 is None else jnp.asarray(x0, bank.A.dtype)

    def step(x, vk):
        return filter_step(bank, x, vk), x

    _, xs = jax.lax.scan(step, x0, v)
    return xs
