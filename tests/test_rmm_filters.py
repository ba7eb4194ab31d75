"""Filter banks of RMMs against truth: orthonormality (Gram matrix), DC gains, the closed-form
Takenaka–Malmquist transfer functions, and the fast filtering path against step-by-step stepping."""

import jax
import numpy as np
import pytest

from neuromech.rmm import (
    dc_gain,
    filter_bank,
    filter_signal,
    filter_signal_scan,
    frequency_response,
    geometric_taus,
    gramian,
    rest_state,
)

TAUS = geometric_taus(0.05, 1500.0, 36)  # the SCIENCE.md §5 grid


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def test_orthonormal_bank_gram_matrix_is_identity(x64):
    bank = filter_bank(TAUS, 0.1, "orthonormal")
    A = np.asarray(bank.A)
    assert np.allclose(A, np.tril(A))  # lower triangular, as a cascade must be
    # The Gramian Σ h hᵀ of orthonormal impulse responses is I; float64 round-off over 36 sections
    # of poles up to 1 − 7e-5 stays ~1e-13, so 1e-10 is the bar with margin.
    np.testing.assert_allclose(gramian(bank), np.eye(36), atol=1e-10)


def test_orthonormal_gram_by_summing_impulse_responses(x64):
    # Independent of the Lyapunov solver: sum h_k h_kᵀ over a long impulse response (fast poles
    # only, so that 20 000 samples capture everything: λ^20000 < 1e-40 for τ ≤ 20 ms).
    bank = filter_bank(geometric_taus(0.05, 20.0, 10), 0.1, "orthonormal")
    impulse = np.zeros(20_000)
    impulse[0] = 1.0
    h = filter_signal(bank, impulse, x0=np.zeros(10))
    np.testing.assert_allclose(h.T @ h, np.eye(10), atol=1e-10)


def test_dc_gains(x64):
    diag = filter_bank(TAUS, 0.1, "diagonal")
    np.testing.assert_allclose(dc_gain(diag), 1.0, rtol=1e-12)  # unit-gain low-pass filters
    ortho = filter_bank(TAUS, 0.1, "orthonormal")
    lam = np.exp(-0.1 / TAUS)
    # All-pass sections have gain 1 at z = 1, so state k's DC gain is √(1−λ²)/(1−λ) = √((1+λ)/(1−λ)).
    np.testing.assert_allclose(dc_gain(ortho), np.sqrt((1 + lam) / (1 - lam)), rtol=1e-9)
    np.testing.assert_allclose(frequency_response(ortho, [0.0])[0].real, dc_gain(ortho), rtol=1e-9)


def test_orthonormal_transfer_functions_match_the_closed_form(x64):
    taus = np.array([0.3, 2.0, 15.0])
    bank = filter_bank(taus, 0.1, "orthonormal")
    lam = np.exp(-0.1 / taus)
    freqs = np.array([1.0, 37.0, 400.0, 2500.0])  # Hz
    z = np.exp(2j * np.pi * freqs * 0.1 / 1000)
    expected = np.empty((len(freqs), 3), complex)
    for k in range(3):
        allpass = np.prod([(1 - lam[j] * z) / (z - lam[j]) for j in range(k)], axis=0) if k else 1.0
        expected[:, k] = np.sqrt(1 - lam[k] ** 2) / (z - lam[k]) * allpass
    np.testing.assert_allclose(frequency_response(bank, freqs), expected, rtol=1e-10)


@pytest.mark.parametrize("kind", ["diagonal", "orthonormal"])
def test_fast_filtering_matches_step_by_step(kind, x64):
    bank = filter_bank(TAUS, 0.1, kind)
    v = -60 + np.cumsum(np.random.default_rng(1).normal(size=30_000)) * 0.2
    fast, slow = filter_signal(bank, v), np.asarray(filter_signal_scan(bank, v))
    # Two float64 evaluations of the same recursion differ by accumulated round-off only.
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9 * np.abs(slow).max())


@pytest.mark.parametrize("kind", ["diagonal", "orthonormal"])
def test_causal_start_at_rest(kind, x64):
    bank = filter_bank(TAUS[:12], 0.1, kind)
    x = filter_signal(bank, np.full(500, -65.0))
    # Started at the DC state of the first sample, a constant voltage leaves every state unchanged.
    np.testing.assert_allclose(x, np.broadcast_to(np.asarray(rest_state(bank, -65.0)), x.shape), rtol=1e-12)
    # Causality: x[k] does not depend on v[k] or later.
    v = np.full(500, -65.0)
    v[300:] = 0.0
    np.testing.assert_array_equal(filter_signal(bank, v)[:301], x[:301])


def test_bad_banks_are_errors():
    with pytest.raises(ValueError, match="unknown filter bank kind 'fir'"):
        filter_bank([1.0], 0.1, "fir")
    with pytest.raises(ValueError, match="positive numbers of ms"):
        filter_bank([1.0, -2.0], 0.1)
    with pytest.raises(ValueError, match="distinct time constants"):
        filter_bank([1.0, 1.0], 0.1, "orthonormal")


def test_release_bank_filters_the_release_step_by_step_and_rests_on_it(x64):
    """A bank with a release filters σ((v − θ)/δ) per state: the fast path against stepping, the
    rest state against the release's closed form, and a constant voltage that leaves the
    started-at-rest states where they are."""
    taus = np.tile([2.0, 20.0, 200.0], 2)
    bank = filter_bank(taus, 0.1, release=np.repeat([-50.0, -35.0], 3), release_slope=4.0)
    v = -60 + np.cumsum(np.random.default_rng(2).normal(size=20_000)) * 0.3
    fast, slow = filter_signal(bank, v), np.asarray(filter_signal_scan(bank, v))
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)  # round-off of one recursion
    assert 0.0 <= fast.min() and fast.max() <= 1.0  # low-passed releases stay in [0, 1]
    rest = 1.0 / (1.0 + np.exp(-(-45.0 - np.repeat([-50.0, -35.0], 3)) / 4.0))
    np.testing.assert_allclose(np.asarray(rest_state(bank, -45.0)), rest, rtol=1e-12)  # DC gain 1
    x = filter_signal(bank, np.full(300, -45.0))
    np.testing.assert_allclose(x, np.broadcast_to(rest, x.shape), rtol=1e-12)


def test_release_bank_state_is_the_graded_synapse_gate_of_the_simulator():
    """Truth from the conductance-based simulator: the HCO's synapse A→B is
    ``ds/dt = (s∞(V_A) − s)/τ`` with s∞ a logistic of half-activation −45 mV and slope 5 mV,
    τ = 50 ms. A bank state with that release and time constant, driven by the recorded V_A, is
    that gate: their difference is the discretisation of the filter (zero-order hold at 0.1 ms
    against the simulator's integration) on a gate moving by up to ~0.02 per sample at spikes
    (seen: 0.9995)."""
    from neuromech.rmm import synthetic_circuit
    from neuromech.recordings._synthetic_circuit import GradedSynapse

    rec = synthetic_circuit("hco", 3000.0, seed=1, drive=(0.0, 1.0, 20.0))
    syn = GradedSynapse("A", "B")
    bank = filter_bank([syn.tau], rec.dt, release=[syn.v_half], release_slope=syn.k)
    v_a, v_b = rec["A"].voltage[0], rec["B"].voltage[0]
    s = filter_signal(bank, v_a)[:, 0]
    true_gs = rec["B"].truth["syn A->B"][0] / (v_b - syn.E)  # g·s (µS) from the true current
    keep = np.abs(v_b - syn.E) > 5.0  # away from E, where the ratio is ill-defined
    w = slice(5000, None)  # after the 500 ms the started-at-rest state takes to forget its start
    r = np.corrcoef(s[w][keep[w]], true_gs[w][keep[w]])[0, 1]
    assert r > 0.999, r
    assert np.ptp(s[w]) > 0.3  # the gate moves: the check can fail


def test_bad_releases_are_errors():
    with pytest.raises(ValueError, match="one threshold"):
        filter_bank([1.0, 2.0], 0.1, release=[-40.0])
    with pytest.raises(ValueError, match="diagonal bank"):
        filter_bank([1.0, 2.0], 0.1, "orthonormal", release=[-40.0, -40.0])
    with pytest.raises(ValueError, match="slope > 0"):
        filter_bank([1.0], 0.1, release=[-40.0], release_slope=0.0)
