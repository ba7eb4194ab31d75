"""Synthetic circuit recordings with ground truth: conductance-based neurons coupled by graded
chemical synapses (a driven neuron; a half-centre oscillator of two STG neurons).

The population simulator of ``neuromech.cbm`` integrates uncoupled models, so circuits have their own
small integrator here, built from the same pieces: every cell advances by its model's exponential
midpoint step (``ConductanceBasedModel.exponential_step``) with the synaptic current it receives
added to its injected current, and every synaptic gate relaxes exactly towards s∞(V_pre) with the
presynaptic voltage held over the step. The coupling is therefore *explicit* over one step (the
synaptic current is taken at the start of the step): first order in the coupling, at the cell
model's validated step of 0.025 ms (tests/test_rmm_circuit.py checks it against scipy's
``solve_ivp`` on a short window). A cell can be held by an ideal voltage clamp instead, as an
experimenter measures a synaptic current: its recorded current is then the clamp's.
"""

from __future__ import annotations

import dataclasses
import functools
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


def _make_clamped_step(model, g, syn, dt):
    """The step with each cell whose command (mV) is finite held at it (an ideal voltage clamp):
    its gates and calcium move at the command voltage, its voltage stays there, and the current
    the clamp supplies is its ionic current (at the step's midpoint state) plus the synaptic
    current it receives. Cells with a NaN command step as in :func:`_make_step`."""
    free_step = _make_step(model, g, syn, dt)
    post = syn[1]

    def step(y, s, i_inj, command):
        clamped = jnp.isfinite(command)
        y = y.at[:, 0].set(jnp.where(clamped, command, y[:, 0]))
        y_new, s_new, i_syn = free_step(y, s, i_inj)
        y_new = y_new.at[:, 0].set(jnp.where(clamped, command, y_new[:, 0]))
        ionic = jax.vmap(lambda a, b, gc: jnp.sum(model.currents(gc, 0.5 * (a + b))))(y, y_new, g)
        received = jnp.zeros(y.shape[0]).at[post].add(i_syn)
        return y_new, s_new, i_syn, jnp.where(clamped, ionic + received, i_inj)

    return step


def simulate_circuit(model, conductances, synapses: Sequence[GradedSynapse], names: Sequence[str], i_inj,
                     *, dt_out: float = 0.1, dt: float | None = None, y0=None, s0=None, v_clamp=None):
    """Integrate identical-model cells coupled by graded synapses, driven by sampled currents.

    Args:
        model: a :class:`~neuromech.cbm.ConductanceBasedModel` (all cells share it).
        conductances: (n_cells, n_channels) mS/cm².
        synapses: :class:`GradedSynapse` list naming cells of ``names``.
        i_inj: (n_cells, T) injected current densities (µA/cm²) sampled every ``dt_out`` ms,
            linearly interpolated at the midpoint of each integration step.
        dt: integration step (ms), default the model's; ``dt_out`` must be a multiple of it.
        y0, s0: initial states (default: each cell's ``initial_state``, gates closed).
        v_clamp: (n_cells, T) command voltages (mV) of an ideal voltage clamp, NaN where a cell
            runs free (default: all free). A clamped cell's gates move at the command, its
            voltage stays there, and its recorded current is what the clamp supplies.

    Returns:
        ``(v, i_syn, i_rec, y_end, s_end)``: (n_cells, T) voltage (mV), (n_syn, T) synaptic current
        densities (µA/cm², outward positive) and (n_cells, T) the current each cell receives as a
        recording shows it (µA/cm²: ``i_inj`` where it runs free; under clamp its ionic plus
        received synaptic current, the mean over the sample's steps; a jump of the voltage to a
        new command adds its charge C ΔV / dt_out to the sample before it), at the sample times,
        and the final states (to go on).
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

    if v_clamp is None:
        (y_end, s_end), (v, s_trace) = run(y, s, drive)
        v, s_trace, i_rec = np.asarray(v).T, np.asarray(s_trace).T, i_inj
    else:
        v_clamp = np.asarray(v_clamp, float)
        if v_clamp.shape != i_inj.shape:
            raise ValueError(f"v_clamp must be (n_cells, T) = {i_inj.shape} like i_inj, NaN where a cell runs free; "
                             f"got {v_clamp.shape}")
        (y_end, s_end), (v, v_free, s_trace, i_clamp) = _run_clamped(_make_clamped_step(model, g, syn, dt), y, s, drive,
                                                                     jnp.asarray(v_clamp.T))
        v, v_free, s_trace, i_clamp = (np.asarray(a).T for a in (v, v_free, s_trace, i_clamp))
        i_rec = np.where(np.isfinite(v_clamp), i_clamp, i_inj)
        i_rec[:, :-1] += float(model.capacitance) * (v[:, 1:] - v_free[:, 1:]) / dt_out
    pre, post, gs, E = (np.asarray(a) for a in syn[:4])
    i_syn = gs[:, None] * s_trace * (v[post] - E[:, None])
    return v, i_syn, i_rec, y_end, s_end


@functools.partial(jax.jit, static_argnums=0)
def _run_clamped(step, y, s, drive, command):
    """Scan the clamped step over samples: per sample the recorded voltage (the command where
    clamped), the voltage before the clamp sets it, the gates and the mean clamp current."""
    def sample(carry, inp):
        y, s = carry
        d, cmd = inp
        v_rec = jnp.where(jnp.isfinite(cmd), cmd, y[:, 0])

        def inner(c, i):
            y2, s2, _, current = step(c[0], c[1], i, cmd)
            return (y2, s2), current

        (y_new, s_new), current = jax.lax.scan(inner, (y, s), d)
        return (y_new, s_new), (v_rec, y[:, 0], s, jnp.mean(current, axis=0))

    return jax.lax.scan(sample, (y, s), (drive, command))


def _blocks(rng, levels, names, cells, what, kind, n, block_ms, dt, transient, until, off):
    """(n_cells, n) per cell a level drawn from ``levels`` for every ``block_ms`` block; ``off``
    for cells not in ``cells`` (None: all are in) and from the recorded time ``until`` on."""
    if not block_ms > 0:
        raise ValueError(f"holding_ms must be > 0 ms, got {block_ms}")
    block = max(1, int(round(block_ms / dt)))
    out = np.repeat(rng.choice(np.asarray(levels, float), size=(len(names), -(-n // block))), block, axis=1)[:, :n]
    if cells is not None:
        unknown = set(cells) - set(names)
        if unknown:
            raise ValueError(f"{what} names {sorted(unknown)}, not cells of the {kind!r} circuit {list(names)}")
        out[[c not in cells for c in names]] = off
    if np.isfinite(until):
        out[:, max(0, int(round((transient + until) / dt))):] = off
    return out


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
    clamp: Sequence[float] = (),
    clamp_cells: Sequence[str] | None = None,
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
        clamp: voltage-clamp levels (mV; NaN: not clamped): each of the ``clamp_cells`` (default
            all) is held, in blocks of ``holding_ms`` up to ``holding_until``, at a level drawn
            from these by an ideal voltage clamp; its recorded voltage is the command (plus the
            measurement noise) and its recorded current the clamp's (see
            :func:`simulate_circuit`). The command is the channel's ``command`` (NaN where free).
            Under clamp a synaptic current shows in the recorded current directly. A clamped
            cell releases transmitter as its command says: s∞ = 0.27 at −50 mV, 0.047 at
            −60 mV, 0.007 at −70 mV for the default synapse, so a cell clamped at −70 mV
            silences its outgoing synapses.
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
        i_inj = i_inj + _blocks(np.random.default_rng([seed, 1]), holding, names, holding_cells, "holding_cells", kind,
                                n, holding_ms, dt, transient, holding_until, 0.0)
    command = None
    if len(clamp):
        command = _blocks(np.random.default_rng([seed, 2]), clamp, names, clamp_cells, "clamp_cells", kind, n,
                          holding_ms, dt, transient, holding_until, np.nan)
    v, i_syn, i_rec, _, _ = simulate_circuit(model, conductances, synapses, names, i_inj, dt_out=dt,
                                             v_clamp=command)
    skip, count = int(round(transient / dt)), int(round(duration / dt))
    v, i_syn, i_rec = v[:, skip:skip + count], i_syn[:, skip:skip + count], i_rec[:, skip:skip + count]
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
        channels[name] = Recording(v[c] + noise * rng.standard_normal(count), i_rec[c] * to_na, dt=dt,
                                   metadata=meta, truth=truth,
                                   command=None if command is None else command[c, skip:skip + count])
    return CircuitRecording(channels)
