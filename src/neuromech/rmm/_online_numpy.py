"""A NumPy (float64) realisation of the online step, for real-time loops.

A compiled JAX call costs tens of µs per sample on a CPU however small the computation (≈ 8 µs
for a one-kernel program, ≈ 40 µs once it has two kernels or a product, ≈ 77 µs for the online
step on a loaded 2-core machine), while the work of one sample is a few small products. This
module builds, once, from a trained circuit's arrays, packed NumPy operands that evaluate the
equations of the JAX step of :func:`~neuromech.rmm.online` with a fixed, small number of NumPy
calls, whatever the number of currents (each call on a few dozen numbers costs ≈ 0.3 µs):

- every filter bank (intrinsic and synaptic) at once: ``x⁺ = λ ∘ x + B ∘ v_in`` when all banks
  are diagonal, ``x⁺ = A_blk x + B ∘ v_in`` (block-diagonal A) otherwise;
- every network (monotone gates and lumped MLPs, of intrinsic and synaptic currents) as one
  block-diagonal MLP per depth, fed by one gather of its inputs ``[v, x[inputs], 1]``. The input
  :class:`Scaler` is folded into the first layer, ``W (z − c)/h + b = (W/h) z + (b − (W/h) c)``,
  every bias into its layer as a last column fed by a constant 1, and a gate's output gain, sign
  ``s = ±1`` and pinned rest value (``− net(−1) + rest_logit``) into the last layer, so a layer
  is one product (and a ``tanh``), a gate ``expit(y)``;
- every unit current per unit of its linear parameter as ``a · b · (v − E)`` with ``a``, ``b``
  gathered from ``[1, gate outputs, lumped outputs]`` (a leak has ``a = b = 1``; a lumped current
  ``b = 1`` and ``v − E = 0 − (−1)``; the holding entry ``v − E = 0 − 1``), so ψ = a · b · (E − v)
  and ``θ·ψ`` per neuron and every read-out current come out of one 0/±1 matrix product;
- recursive least squares on each neuron's adapted subset of θ, the operations of :func:`rls_update`.

Only the order of sums, the folded scalers, biases and gains, the closed forms of ``tanh`` and
``sigmoid`` and RLS's ``/λ`` and ``·½`` in one product differ from XLA: both agree to rounding
(``tests/test_rmm_online.py`` checks it over thousands of samples, and :func:`online` checks one
step against the model's own currents whenever it builds this backend).
"""

from __future__ import annotations

import dataclasses
from math import isfinite

import numpy as np

from ._currents import MLP, ConductanceCurrent, KineticGate, Leak, LumpedCurrent, Scaler


def _f64(a) -> np.ndarray:
    return np.array(a, dtype=np.float64)


def _block_diag(mats) -> np.ndarray:
    out = np.zeros((sum(m.shape[0] for m in mats), sum(m.shape[1] for m in mats)))
    r = c = 0
    for m in mats:
        out[r:r + m.shape[0], c:c + m.shape[1]] = m
        r, c = r + m.shape[0], c + m.shape[1]
    return out


class _Nets:
    """The circuit's networks, packed into one block-diagonal MLP per depth."""

    def __init__(self):
        self.nets = []  # (weights, biases, input indices into the work buffer, gate sign or None)

    def add(self, net, scaler, idx, sign, gain=None, rest_logit=None) -> int:
        W = [_f64(w) for w in net.weights]
        b = [_f64(x) for x in net.biases]
        if rest_logit is not None:  # logit net(z) − net(−1) + r; in the constant net(−1) the last bias cancels
            z = -np.ones(W[0].shape[1])
            for Wq, bq in zip(W[:-1], b[:-1]):
                z = np.tanh(Wq @ z + bq)
            b[-1] = -(W[-1] @ z)
        centre, half = _f64(scaler.center), _f64(scaler.halfwidth)
        W[0] = W[0] / half
        b[0] = b[0] - W[0] @ centre
        if gain is not None:  # a gate's output gain: gain·(W h + b) = (gain W) h + gain b
            g = np.broadcast_to(_f64(gain).reshape(-1), (W[-1].shape[0],))
            W[-1], b[-1] = g[:, None] * W[-1], g * b[-1]
        if sign is not None:  # the gate is sigmoid(s·y): keep s·y (s = ±1, exact)
            W[-1], b[-1] = float(sign) * W[-1], float(sign) * b[-1]
        if rest_logit is not None:
            b[-1] = b[-1] + float(rest_logit)
        self.nets.append((W, b, np.asarray(idx, np.intp), sign))
        return len(self.nets) - 1

    def width(self, k) -> int:
        return self.nets[k][0][-1].shape[0]

    def pack(self, one: int):
        """(stacks, first slot of each network's outputs in gv, size of gv): gates then lumped.

        Each layer's bias is its last column, fed by a constant 1 (index ``one`` of the work
        buffer for the first layer, the last entry of the hidden buffers after).
        """
        order = sorted(range(len(self.nets)), key=lambda k: self.nets[k][3] is None)
        slot, pos = {}, 1
        for k in order:
            slot[k] = pos
            pos += self.width(k)
        stacks = []
        for depth in sorted({len(net[0]) for net in self.nets}):
            members = [k for k in order if len(self.nets[k][0]) == depth]
            idx = np.concatenate([self.nets[k][2] for k in members] + [[one]])
            layers = [np.column_stack([_block_diag([self.nets[k][0][q] for k in members]),
                                       np.concatenate([self.nets[k][1][q] for k in members])]) for q in range(depth)]
            dest = np.concatenate([slot[k] + np.arange(self.width(k)) for k in members])
            gate = np.concatenate([np.full(self.width(k), self.nets[k][3] is not None) for k in members])
            stacks.append((idx, layers, dest, gate))
        return stacks, slot, pos


@dataclasses.dataclass(frozen=True)
class Packed:
    """The operands of one online step, packed once from a circuit (float64; shared by the NumPy
    and the compiled realisations). Indices point into the *work buffer*: the flat state followed
    by the constants 0.0 (index ``S``) and 1.0 (index ``S + 1``).

    Attributes:
        n, C, L, S: modelled neurons, channels, filter states, size of the flat state.
        offsets: where each :class:`~neuromech.rmm.OnlineState` field starts in the flat state.
        dt: sampling period (ms).
        v_in, B, A, diagonal: every bank at once, ``x⁺ = A x + B ∘ work[v_in]`` (``A`` the
            diagonal when ``diagonal``).
        release, release_slope: per state, the threshold θ (mV; NaN: none) and δ of a bank's
            release: such a state reads ``σ((work[v_in] − θ)/δ)`` in place of ``work[v_in]``.
        stacks: per network depth, ``(inputs, layers, slots, gate)``: the work-buffer indices fed to
            the block-diagonal MLP (the last one the constant 1), its layers (bias as last column),
            the slots of ``gv`` its outputs go to, and which of them are gates (logistic output).
        G: size of ``gv`` (slot 0 holds 1).
        a_idx, b_idx, d_idx, E_units: per θ entry, ψ = gv[a] · gv[b] · (E − work[d]).
        readout: rows 0..n−1 sum each neuron's θ ∘ ψ; the next give each read-out current.
        caps: capacitances (nF).
        gap_a, gap_b, gap_g, gap_inc: electrical couplings (work indices, conductances, incidence).
        rls: per neuron ``(θ start, θ stop, P offset, adapted subset or None, fixed entries or None)``,
            the subsets relative to the neuron's θ.
    """

    n: int
    C: int
    L: int
    S: int
    offsets: dict
    dt: float
    v_in: np.ndarray
    B: np.ndarray
    A: np.ndarray
    diagonal: bool
    release: np.ndarray
    release_slope: np.ndarray
    stacks: list
    G: int
    a_idx: np.ndarray
    b_idx: np.ndarray
    d_idx: np.ndarray
    E_units: np.ndarray
    readout: np.ndarray
    caps: np.ndarray
    gap_a: np.ndarray
    gap_b: np.ndarray
    gap_g: np.ndarray
    gap_inc: np.ndarray
    rls: list


def pack(layout, circuit) -> Packed:
    """The :class:`Packed` operands of ``circuit``'s online step in the flat-state ``layout``."""
    n, C, L, S = layout.n, layout.C, layout.n_states, layout.size
    off = layout.offsets
    dt = float(circuit.dt)
    # The work buffer is the flat state plus the constants 0.0 and 1.0 at indices S and S + 1.
    # Everything the networks, driving forces and banks read is gathered from it: the voltages
    # v_all as [v_prev (where this sample's own voltages are put first), v_last[n:]], and the
    # filter states.
    ZERO, ONE = S, S + 1

    def v_at(j):
        return off["v_prev"] + j if j < n else off["v_last"] + j

    x_at, q = [], off["xs"]
    for m in circuit.neurons:
        x_at.append(q)
        q += m.bank.size
    s_at = []
    for s in circuit.synapses:
        s_at.append(q)
        q += s.bank.size
    banks = [(m.bank, i) for i, m in enumerate(circuit.neurons)] + [(s.bank, s.pre) for s in circuit.synapses]
    v_in = np.concatenate([np.full(b.size, v_at(src), np.intp) for b, src in banks])
    B = np.concatenate([_f64(b.B) for b, _ in banks])
    diagonal = all(b.kind == "diagonal" for b, _ in banks)
    A = (np.concatenate([np.diagonal(_f64(b.A)) for b, _ in banks]) if diagonal
         else _block_diag([_f64(b.A) for b, _ in banks]))
    release = np.concatenate([np.full(b.size, np.nan) if b.release is None else _f64(b.release) for b, _ in banks])
    release_slope = np.concatenate([np.full(b.size, b.release_slope) for b, _ in banks])

    nets = _Nets()
    units = []  # per θ entry, in θ order: (a, b, where v is, E)

    def current_units(c, v_index, x_base):
        if isinstance(c, Leak):
            return [("one", "one", v_index, float(c.E))]
        if isinstance(c, LumpedCurrent):
            k = nets.add(c.net, c.scaler, [v_index] + [x_base + j for j in c.inputs], None)
            return [(("net", k, 0), "one", ZERO, -1.0)]
        if isinstance(c, ConductanceCurrent):
            gates = []
            for gate in (c.activation, c.inactivation):
                if isinstance(gate, KineticGate):  # a linear network: softmax(w)·x, no logistic output
                    w = _f64(gate.weights())[None, :]
                    gate = nets.add(MLP((w,), (np.zeros(1),)), Scaler(np.zeros(w.shape[1]), np.ones(w.shape[1])),
                                    [x_base + j for j in gate.inputs], None)
                elif gate is not None:
                    idx = ([v_index] if gate.with_voltage else []) + [x_base + j for j in gate.inputs]
                    gate = nets.add(gate.net, gate.scaler, idx, gate.sign, gate.gain, gate.rest_logit)
                gates.append(gate)
            E = np.atleast_1d(_f64(c.E))
            # A gate or E of size 1 is shared by every unit, as broadcasting does in the JAX step.
            return [tuple("one" if g is None else ("net", g, u if nets.width(g) > 1 else 0) for g in gates)
                    + (v_index, float(E[u if E.size > 1 else 0])) for u in range(np.atleast_1d(c.g).size)]
        raise TypeError(f"online read-out needs Leak, ConductanceCurrent or LumpedCurrent, got {type(c).__name__}")

    for i, m in enumerate(circuit.neurons):
        units.append(("one", "one", ZERO, 1.0))  # holding: ψ = 1·1·(1 − 0)
        for c in m.currents:
            units += current_units(c, v_at(i), x_at[i])
        for k in layout.incoming[i]:
            units += current_units(circuit.synapses[k].current, v_at(i), s_at[k])
    stacks, slot, G = nets.pack(ONE) if nets.nets else ([], {}, 1)

    def gv_index(ref):
        return 0 if ref == "one" else slot[ref[1]] + ref[2]

    a_idx = np.asarray([gv_index(r[0]) for r in units], np.intp)
    b_idx = np.asarray([gv_index(r[1]) for r in units], np.intp)
    d_idx = np.asarray([r[2] for r in units], np.intp)
    E_units = np.asarray([r[3] for r in units])
    P_tot = len(units)
    # Rows 0..n-1 sum each neuron's θ∘ψ (θ·ψ); the next give each read-out current as −Σ θ∘ψ over
    # its entries (intrinsic currents neuron by neuron, then the synapses in circuit order).
    starts = np.concatenate([[0], np.cumsum([len(g) for g in layout.groups])]).astype(int)
    readout = np.zeros((n + len(layout.current_names), P_tot))
    row, syn_cols = n, {}
    for i, m in enumerate(circuit.neurons):
        readout[i, starts[i]:starts[i + 1]] = 1.0
        for j in range(len(m.currents)):
            readout[row, starts[i] + np.flatnonzero(layout.groups[i] == j)] = -1.0
            row += 1
        for q, k in enumerate(layout.incoming[i]):
            syn_cols[k] = starts[i] + np.flatnonzero(layout.groups[i] == len(m.currents) + q)
    for k in range(len(circuit.synapses)):
        readout[row + k, syn_cols[k]] = -1.0
    caps = _f64([m.capacitance for m in circuit.neurons])
    gap_a = np.asarray([v_at(g.a) for g in circuit.gaps], np.intp)
    gap_b = np.asarray([v_at(g.b) for g in circuit.gaps], np.intp)
    gap_g = np.concatenate([np.atleast_1d(_f64(g.g)) for g in circuit.gaps]) if circuit.gaps else np.zeros(0)
    gap_inc = np.zeros((n, len(circuit.gaps)))
    for j, g in enumerate(circuit.gaps):
        gap_inc[g.a, j] += 1.0
        gap_inc[g.b, j] -= 1.0
    rls, q = [], off["P"]
    for i in range(n):
        sel, fixed = layout.sel[i], np.flatnonzero(~layout.masks[i])
        p = len(sel)
        rls.append((int(starts[i]), int(starts[i + 1]), q, None if p == starts[i + 1] - starts[i] else sel,
                    fixed if fixed.size else None))
        q += p * p
    return Packed(n, C, L, S, off, dt, v_in, B, A, diagonal, release, release_slope, stacks, G, a_idx, b_idx, d_idx, E_units,
                  readout, caps, gap_a, gap_b, gap_g, gap_inc, rls)


def numpy_step(packed: Packed, mode: str, rls: bool, forgetting: float):
    """Build ``step(state, v_measured, i_applied) -> (state, prediction, currents)`` in NumPy.

    ``state`` is the flat float64 array of :class:`~neuromech.rmm.OnlineState` in the packed
    layout (the JAX backend's ravelled state). Each call returns a new state array and never
    writes to its argument.
    """
    from scipy.special import expit  # the logistic function in one call: 1 / (1 + exp(−x))

    pk = packed
    n, C, L, S, off, dt = pk.n, pk.C, pk.L, pk.S, pk.offsets, pk.dt
    v_in, B, A, diagonal, G = pk.v_in, pk.B, pk.A, pk.diagonal, pk.G
    a_idx, b_idx, d_idx, E_units, readout = pk.a_idx, pk.b_idx, pk.d_idx, pk.E_units, pk.readout
    gap_a, gap_b, gap_g, gap_inc = pk.gap_a, pk.gap_b, pk.gap_g, pk.gap_inc
    P_tot, ONE = len(a_idx), S + 1
    observer = mode == "observer"

    # One persistent work buffer with every view made once: a step copies the state in, updates
    # the buffer in place (mostly with ``out=``: an allocation costs about as much as a small
    # NumPy call) and hands out a copy, so no state a caller holds is ever written to.
    work = np.zeros(S + 2)
    work[ONE] = 1.0

    def view(name, size):
        return work[off[name]:off[name] + size]

    w_state = work[:S]
    w_v, w_x, w_theta, w_psi = view("v", n), view("xs", L), view("theta", P_tot), view("psi_prev", P_tot)
    w_base, w_vprev, w_vlast = view("base_prev", n), view("v_prev", n), view("v_last", C)
    i_pv, i_fl, i_nf, i_k = off["prev_valid"], off["flagged"], off["n_flagged"], off["k"]
    rls_parts = []  # per neuron: θ, ψ, P views, adapted subset (None: all), fixed entries
    for i, (lo, hi, q, sel, fixed) in enumerate(pk.rls):
        p = hi - lo if sel is None else len(sel)
        rls_parts.append((i, w_theta[lo:hi], w_psi[lo:hi], _rls(work[q:q + p * p].reshape(p, p), float(forgetting)),
                          sel, fixed, float(pk.caps[i])))
    inputs = np.empty(C + n)
    vm, ia = inputs[:C], inputs[C:]
    first_used = 0 if observer else n  # closed loop reads the exogenous voltages only
    gv = np.ones(G)
    ab, contrib, x_new, x_in = np.empty(P_tot), np.empty(P_tot), np.empty(L), np.empty(L)
    released = np.flatnonzero(np.isfinite(pk.release))
    rel_theta, rel_slope = pk.release[released], pk.release_slope[released]
    mlps = []
    for idx, layers, dest, gate in pk.stacks:
        hidden = []  # per hidden layer: its buffer with a trailing 1 (the next bias), and a view without
        for W in layers[:-1]:
            h = np.ones(W.shape[0] + 1)
            hidden.append((W, h, h[:-1]))
        y = np.empty(layers[-1].shape[0])
        contiguous = bool(gate.all()) and np.array_equal(dest, np.arange(dest[0], dest[0] + dest.size))
        mlps.append((idx, hidden, layers[-1], y, gv[dest[0]:dest[0] + dest.size] if contiguous else None,
                       dest, gate))
    neurons = list(enumerate(pk.caps.tolist()))

    def step(state, v_measured, i_applied):
        check_inputs(inputs, v_measured, i_applied, C, n)
        w_state[:] = state
        valid = all(map(isfinite, inputs[first_used:].tolist()))
        if valid and observer:
            w_vlast[:] = vm
        elif valid:
            np.copyto(w_vlast, vm, where=np.isfinite(vm))
        else:
            ia[:] = 0.0
        # RLS first: it reads the previous sample's ψ, applied-minus-gap current and voltage.
        if rls and valid and work.item(i_pv) > 0:
            for i, th, ps, update, sel, fixed, cap in rls_parts:
                y = cap * (vm.item(i) - w_vprev.item(i)) / dt - w_base.item(i)
                if fixed is not None:
                    y = y - th[fixed].dot(ps[fixed])  # the parameters held fixed
                if sel is None:
                    update(th, ps, y)
                else:
                    t = th[sel]
                    update(t, ps[sel], y)
                    th[sel] = t
        # This sample's own voltages (measured, or the model's where it runs free or fills a gap).
        w_vprev[:] = vm[:n] if observer and valid else w_v
        for idx, hidden, W_out, y, out, dest, gate in mlps:
            z = work[idx]
            for W, h, h_units in hidden:
                W.dot(z, out=h_units)
                np.tanh(h_units, out=h_units)
                z = h
            if out is not None:  # gates only, straight into gv: sigmoid(s·y), s folded into W_out
                expit(W_out.dot(z, out=y), out=out)
                continue
            W_out.dot(z, out=y)
            y[gate] = expit(y[gate])
            gv[dest] = y
        # ψ = −a·b·(v − E) = a·b·(E − v) for every θ entry, then θ·ψ per neuron and the currents.
        np.multiply(gv[a_idx], gv[b_idx], out=ab)
        np.subtract(E_units, work[d_idx], out=w_psi)
        np.multiply(ab, w_psi, out=w_psi)
        np.multiply(w_theta, w_psi, out=contrib)
        sums = readout.dot(contrib)
        if gap_g.size:
            np.subtract(ia, gap_inc @ (gap_g * (work[gap_a] - work[gap_b])), out=w_base)
        else:
            w_base[:] = ia
        # v[k+1] = v[k] + dt (I_app − I_gap + θ·ψ) / C, in Python floats: for a few neurons a
        # NumPy call per operation would cost more than the arithmetic.
        for i, c in neurons:
            w_v[i] = w_vprev.item(i) + dt * ((w_base.item(i) + sums.item(i)) / c)
        # Banks last: they read this sample's voltages and the states before the update.
        if diagonal:
            np.multiply(A, w_x, out=x_new)
        else:
            A.dot(w_x, out=x_new)
        u = work[v_in]
        if released.size:
            u[released] = expit((u[released] - rel_theta) / rel_slope)
        np.multiply(B, u, out=x_in)
        np.add(x_new, x_in, out=w_x)
        bad = 0.0 if valid else 1.0
        work[i_pv] = 1.0 - bad
        work[i_fl] = bad
        work[i_nf] = work.item(i_nf) + bad
        work[i_k] = work.item(i_k) + 1.0
        return w_state.copy(), w_v.copy(), sums[n:]  # copies: nothing handed out aliases the state

    return step


def check_inputs(inputs: np.ndarray, v_measured, i_applied, C: int, n: int) -> None:
    """Put one sample into ``inputs`` (``[v_measured (C,), i_applied (n,)]``), or say what a step takes."""
    try:
        inputs[:C] = v_measured
        inputs[C:] = i_applied
    except (ValueError, TypeError) as err:
        raise ValueError(f"step takes v_measured ({C},) mV and i_applied ({n},) nA (or scalars); got shapes "
                         f"{np.shape(v_measured)} and {np.shape(i_applied)}") from err


def _rls(P: np.ndarray, lam: float):
    """:func:`~neuromech.rmm.rls_update` in NumPy, in place on ``theta`` and on ``P`` (a view of
    the work buffer), with its buffers made once: ``update(theta, psi, y)``.

    The operations of :func:`rls_update` in its order, except that ``/λ`` and ``·½`` of the
    symmetrisation are one product by ``½/λ`` (a rounding-level difference, one call less).
    """
    p = P.shape[0]
    Pp, k, t, M = np.empty(p), np.empty(p), np.empty(p), np.empty((p, p))
    k_col, Pp_row, PT, half_over_lam = k.reshape(p, 1), Pp.reshape(1, p), P.T, 0.5 / lam

    # ndarray.dot rather than np.dot: it skips NumPy's __array_function__ dispatch (≈ 0.15 µs a
    # call); the outer product k Ppᵀ as a (p, 1)·(1, p) product has one term per entry: exact.
    def update(theta, psi, y):
        P.dot(psi, out=Pp)
        np.divide(Pp, lam + psi.dot(Pp), out=k)
        np.multiply(k, y - psi.dot(theta), out=t)
        np.add(theta, t, out=theta)
        k_col.dot(Pp_row, out=M)
        np.subtract(P, M, out=P)
        np.add(P, PT, out=M)
        np.multiply(M, half_over_lam, out=P)

    return update
