"""Synthetic circuit recordings with ground truth: conductance-based neurons coupled by graded
chemical synapses (a driven neuron; a half-centre oscillator of two STG neurons).

The population simulator of ``neuromech.cbm`` integrates uncoupled models, so circuits have their own
small integrator here, built from the same pieces: every cell advances by its model's exponential
midpoint step (``ConductanceBasedModel.exponential_step``) with the synaptic current it receives
added to its injected current, and every synaptic gate relaxes exactly towards s∞(V_pre) with the
presynaptic voltage held over the step. The coupling is therefore *explicit* over one step (the
synaptic current is taken at the start of the step): first order in the coupling, at the cell
model's validated step of 0.025 ms (tests/test_rmm_circuit.py checks it against scipy's
``solve_ivp`` on a short window).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._circuit import CircuitRecording
from ._recording import Recording
from ._synthetic import STG_FIXTURE


@dataclasses.dataclass(frozen=True)
class GradedSynapse:
    """A graded chemical synapse ``I = g · s · (V_post − E)`` with ``ds/dt = (s∞(V_pre) − s) / τ``.

    ``s∞(V) = 1 / (1 + exp((V_half − V) / k))``. Units: ``g`` mS/cm² (of the postsynaptic
    membrane), ``E``, ``v_half``, ``k`` mV, ``tau`` ms. Graded inhibition in the stomatogastric
    ganglion reverses near −80 mV (Marder & Bucher 2007).
    """

    pre: str
    post: str
    g: float = 0.5
    E: float = -80.0
    v_half: float = -45.0
    k: float = 5.0
    tau: float = 50.0

    def __post_init__(self):
        if not (self.g >= 0 and self.k > 0 and self.tau > 0):
            raise ValueError(f"synapse {self.pre}->{self.post}: need g ≥ 0 mS/cm², k > 0 mV and tau > 0 ms, "
                             f"got g={self.g}, k={self.k}, tau={self.tau}")

    @property
    def name(self) -> str:
        return f"syn {self.pre}->{self.post}"


#: The driven neuron's CaS conductance, as a fraction of the STG fixture's. At 0.65 the cell alone
#: bursts irregularly and faster than the presynaptic burster (median burst interval about 103 ms
#: against 154 ms, data seed 2) and the synapse entrains it 1:1 (154 ms on seeds 2–4), as a
#: follower neuron is entrained by its pacemaker (LP by PD in the pyloric rhythm). A copy of the
#: presynaptic cell (CaS ×0.95, the HCO's second cell) is instead mode-locked 5:6 by the synapse:
#: burst intervals of 171–217 ms against the presynaptic 154 ms (data seeds 2 and 3).
DRIVEN_CAS = 0.65


def _s_inf(v, syn_vh, syn_k):
    return jax.nn.sigmoid((v - syn_vh) / syn_k)


def circuit_derivatives(models, g, syn, y, s, i_inj):
    """Continuous right-hand side (for reference solvers): d(y_cell)/dt per cell and ds/dt.

    ``y`` (n_cells, n_states), ``s`` (n_syn,), ``i_inj`` (n_cells,) µA/cm²; ``syn`` a tuple of
    arrays (pre, post, g, E, v_half, k, tau).
    """
    pre, post, gs, E, vh, k, tau = syn
    v = y[:, 0]
    i_syn = gs * s * (v[post] - E)
    i_total = i_inj - jnp.zeros_like(v).at[post].add(i_syn)
    dy = jnp.stack([models.derivatives(y[c], g[c], i_total[c]) for c in range(y.shape[0])])
    ds = (_s_inf(v[pre], vh, k) - s) / tau
    return dy, ds


def _syn_arrays(synapses, names):
    idx = {n: k for k, n in enumerate(names)}
    for s in synapses:
        for end in (s.pre, s.post):
            if end not in idx:
                raise ValueError(f"{s.name}: unknown cell {end!r}; the circuit's cells are {list(names)}")
    cols = [[idx[s.pre] for s in synapses], [idx[s.post] for s in synapses]]
    vals = [[getattr(s, f) for s in synapses] for f in ("g", "E", "v_half", "k", "tau")]
    return tuple(jnp.asarray(c, jnp.int32) for c in cols) + tuple(jnp.asarray(v, float) for v in vals)


def _make_step(model, g, syn, dt):
    pre, post, gs, E, vh, k, tau = syn

    def step(y, s, i_inj):
        v = y[:, 0]
        i_syn = gs * s * (v[post] - E)  # explicit: held over the step
        i_total = i_inj - jnp.zeros_like(v).at[post].add(i_syn)
        y_new = jax.vmap(lambda yc, gc, ic: model.exponential_step(yc, gc, ic, dt))(y, g, i_total)
        s_inf = _s_inf(v[pre], vh, k)
        s_new = s_inf + (s - s_inf) * jnp.exp(-dt / tau)
        return y_new, s_new, i_syn

    return step


def simulate_circuit(model, conductances, synapses: Sequence[GradedSynapse], names: Sequence[str], i_inj,
                     *, dt_out: float = 0.1, dt: float | None = None, y0=None, s0=None):
    """Integrate identical-model cells coupled by graded synapses, driven by sampled currents.

    Args:
        model: a :class:`~neuromech.cbm.ConductanceBasedModel` (all cells share it).
        conductances: (n_cells, n_channels) mS/cm².
        synapses: :class:`GradedSynapse` list naming cells of ``names``.
        i_inj: (n_cells, T) injected current densities (µA/cm²) sampled every ``dt_out`` ms,
            linearly interpolated at the midpoint of each integration step.
        dt: integration step (ms), default the model's; ``dt_out`` must be a multiple of it.
        y0, s0: initial states (default: each cell's ``initial_state``, gates closed).

    Returns:
        ``(v, i_syn, y_end, s_end)``: (n_cells, T) voltage (mV) and (n_syn, T) synaptic current
        densities (µA/cm², outward positive) at the sample times, and the final states (to go on).
    """
    names = tuple(names)
    g = jnp.asarray(np.atleast_2d(conductances), float)
    i_inj = np.atleast_2d(np.asarray(i_inj, float))
    if i_inj.shape[0] != len(names) or g.shape[0] != len(names):
        raise ValueError(f"{len(names)} cells {list(names)} need (n_cells, …) conductances and currents; got "
                         f"{g.shape} and {i_inj.shape}")
    dt = float(model.dt if dt is None else dt)
    n_inner = int(round(dt_out / dt))
    if n_inner < 1 or abs(n_inner * dt - dt_out) > 1e-9:
        raise ValueError(f"dt_out {dt_out} ms must be a multiple of the integration step {dt} ms")
    syn = _syn_arrays(synapses, names)
    step = _make_step(model, g, syn, dt)
    y = jnp.stack([model.initial_state(gc) for gc in g]) if y0 is None else jnp.asarray(y0, float)
    s = jnp.zeros(len(synapses)) if s0 is None else jnp.asarray(s0, float)
    # Current at the midpoints of the inner steps of every output sample (linear interpolation).
    nxt = np.concatenate([i_inj[:, 1:], i_inj[:, -1:]], axis=1)
    w = (np.arange(n_inner) + 0.5) / n_inner
    drive = i_inj[:, :, None] * (1 - w) + nxt[:, :, None] * w  # (cells, T, n_inner)
    drive = jnp.asarray(np.transpose(drive, (1, 2, 0)))  # (T, n_inner, cells)

    @jax.jit
    def run(y, s, drive):
        def sample(carry, d):
            y, s = carry
            out = (y[:, 0], s)

            def inner(c, i):
                y2, s2, _ = step(c[0], c[1], i)
                return (y2, s2), None

            (y, s), _ = jax.lax.scan(inner, (y, s), d)
            return (y, s), out

        return jax.lax.scan(sample, (y, s), drive)

    (y_end, s_end), (v, s_trace) = run(y, s, drive)
    v, s_trace = np.asarray(v).T, np.asarray(s_trace).T
    pre, post, gs, E = (np.asarray(a) for a in syn[:4])
    i_syn = gs[:, None] * s_trace * (v[post] - E[:, None])
    return v, i_syn, y_end, s_end


def _ou(rng, n, mean, sigma, tau, dt):
    decay = np.exp(-dt / tau)
    out = np.empty(n)
    out[0] = mean + sigma * rng.standard_normal()
    shocks = rng.standard_normal(n) * sigma * np.sqrt(1 - decay**2)
    for k in range(1, n):
        out[k] = mean + (out[k - 1] - mean) * decay + shocks[k]
    return out


def synthetic_circuit(
    kind: str = "hco",
    duration: float = 20_000.0,
    *,
    g_syn: float | None = None,
    drive: tuple[float, float, float] = (0.0, 0.1, 20.0),
    holding: Sequence[float] = (),
    holding_ms: float = 2000.0,
    holding_until: float = float("inf"),
    holding_cells: Sequence[str] | None = None,
    noise: float = 0.2,
    dt: float = 0.1,
    area: float = 1e-3,
    transient: float = 2000.0,
    seed: int = 0,
    conductances=None,
) -> CircuitRecording:
    """A circuit of STG neurons (Liu et al. 1998) with graded chemical synapses, like a recording.

    Main arguments:
        kind: ``"hco"``: a half-centre oscillator, cells ``"A"`` and ``"B"`` with reciprocal graded
            inhibition (E = −80 mV), each driven by its own noisy current; ``"driven"``: cell
            ``"post"``, a follower (:data:`DRIVEN_CAS`), receives a graded inhibitory synapse from a
            recorded presynaptic STG burster ``"pre"`` that entrains it 1:1 (both driven by noise;
            ``"pre"`` is the exogenous channel of the circuit).
        duration: recorded time (ms) after a discarded ``transient``.

    Other arguments:
        g_syn: synaptic conductance (mS/cm²); default 0.3 (hco) or 0.5 (driven) — strong enough to
            lock the HCO in anti-phase, weak enough to leave each cell bursting.
        drive: each cell's Ornstein–Uhlenbeck current (mean, std µA/cm², correlation time ms).
        holding: holding-current levels (µA/cm²) added to the drive: each cell independently holds
            a level drawn from these for every ``holding_ms`` block (empty: none). The STG
            burster alone keeps bursting, slower, at −2 and −5 µA/cm² and falls silent at −10.
            ``holding_until``: the recorded time (ms) where the holding blocks end; after it the
            cells run on their drives alone (held-out windows of the free rhythm after a training
            protocol with holding steps). ``holding_cells``: the cells that receive the holding
            blocks (default all; e.g. ``("pre",)`` for the driven neuron's presynaptic cell).
        noise: voltage measurement noise (mV). dt: sampling period (ms). area: cm² per cell
            (1e-3: 1 µA/cm² ↔ 1 nA, 1 mS/cm² ↔ 1 µS). conductances: (2, 8) mS/cm² (default: the
            STG fixture for both, the second cell's CaS ×0.95 in the HCO so the cells are not
            identical, ×:data:`DRIVEN_CAS` for the driven neuron, a follower).

    Returns:
        A :class:`CircuitRecording`; each postsynaptic channel's ``truth`` holds its true synaptic
        current ``"syn PRE->POST"`` (nA, outward positive) and ``"voltage_clean"``; ``metadata``
        lists the synapses.

    Example:
        >>> rec = synthetic_circuit("hco", 200.0, transient=100.0)   # doctest: +SKIP
        >>> rec.names, sorted(rec["B"].truth)                         # doctest: +SKIP
        (('A', 'B'), ['syn A->B', 'voltage_clean'])
    """
    from ..cbm import get_model

    if kind not in ("hco", "driven"):
        raise ValueError(f"unknown circuit kind {kind!r}; choose 'hco' or 'driven'")
    model = get_model("stg")
    names = ("A", "B") if kind == "hco" else ("pre", "post")
    g_syn = (0.3 if kind == "hco" else 0.5) if g_syn is None else g_syn
    synapses = ([GradedSynapse("A", "B", g_syn), GradedSynapse("B", "A", g_syn)] if kind == "hco"
                else [GradedSynapse("pre", "post", g_syn)])
    if conductances is None:
        second = np.array(STG_FIXTURE)
        second[model.channel_index("CaS")] *= 0.95 if kind == "hco" else DRIVEN_CAS
        conductances = np.stack([np.array(STG_FIXTURE), second])
    rng = np.random.default_rng(seed)
    n = int(round((duration + transient) / dt)) + 1
    i_inj = np.stack([_ou(rng, n, *drive, dt) for _ in names])
    if len(holding):
        if not holding_ms > 0:
            raise ValueError(f"holding_ms must be > 0 ms, got {holding_ms}")
        block = max(1, int(round(holding_ms / dt)))
        levels = np.random.default_rng([seed, 1]).choice(np.asarray(holding, float), size=(len(names), -(-n // block)))
        held = np.repeat(levels, block, axis=1)[:, :n]
        if holding_cells is not None:
            unknown = set(holding_cells) - set(names)
            if unknown:
                raise ValueError(f"holding_cells names {sorted(unknown)}, not cells of the {kind!r} circuit "
                                 f"{list(names)}")
            held[[c not in holding_cells for c in names]] = 0.0
        if np.isfinite(holding_until):
            held[:, max(0, int(round((transient + holding_until) / dt))):] = 0.0
        i_inj = i_inj + held
    v, i_syn, _, _ = simulate_circuit(model, conductances, synapses, names, i_inj, dt_out=dt)
    skip, count = int(round(transient / dt)), int(round(duration / dt))
    v, i_syn, i_inj = v[:, skip:skip + count], i_syn[:, skip:skip + count], i_inj[:, skip:skip + count]
    to_na = area * 1e3
    channels = {}
    for c, name in enumerate(names):
        truth = {"voltage_clean": v[c]}
        for k, s in enumerate(synapses):
            if s.post == name:
                truth[s.name] = i_syn[k] * to_na
        meta = {"source": f"synthetic circuit {kind}, cell {name}", "units": {"time": "ms", "voltage": "mV",
                "current": "nA"}, "conductances": np.asarray(conductances)[c].tolist(), "noise_mV": noise,
                "synapses": [dataclasses.asdict(s) for s in synapses], "area_cm2": area, "seed": seed,
                "capacitance_nF": float(model.capacitance) * area * 1e3}
        channels[name] = Recording(v[c] + noise * rng.standard_normal(count), i_inj[c] * to_na, dt=dt,
                                   metadata=meta, truth=truth)
    return CircuitRecording(channels)
