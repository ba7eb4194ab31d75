"""A compiled (Numba) realisation of the online step: the NumPy step's equations as one machine-code
call per sample, so that its cost no longer follows the interpreter's speed.

The NumPy step (:mod:`._online_numpy`) is about thirty NumPy calls on a few dozen numbers each, so
each call's interpreter overhead, not its arithmetic, sets its latency (14.2 µs per sample for one
36-state neuron on this project's 2-core CPU, 31.1 µs on an earlier one whose Python ran 2.5×
slower). Here the same :class:`~._online_numpy.Packed` operands are flattened into one float64
and one int64 array, and one compiled kernel runs the whole sample: 5.3 µs per sample in the same
run (8.2 µs on the earlier machine), of which the arithmetic is a few µs and the rest the call
(``benchmarks/bench_online.py --only latency``, 2026-12-07).

The kernel is generic: the circuit's shape (neurons, channels, networks and their layers, banks,
RLS subsets) is data in the int array, read through the header positions below, so one compiled
kernel serves every model. It follows the NumPy step operation by operation (same order of
updates, same folded operands), with sums in loop order: the two agree to rounding, and both to
the JAX reference (``tests/test_rmm_online.py``).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from ._online_numpy import Packed, check_inputs

# Header of the int array: sizes, flags, offsets of the state's fields, and pointers to the tables
# (into the int array, or into the float array for the float operands).
(_N, _C, _L, _S, _P, _G, _ROWS, _OBSERVER, _RLS, _DIAGONAL, _NGAP, _NSTACK,
 _V, _XS, _THETA, _PSI, _BASE, _VPREV, _VLAST, _PV, _FL, _NF, _K,
 _VIN, _B, _A, _AIDX, _BIDX, _DIDX, _E, _READOUT, _CAPS, _GAPA, _GAPB, _GAPG, _GAPINC,
 _STACKS, _RLSTAB, _REL, _RELSLOPE, _HEADER) = range(41)
_STACK_FIELDS = 7  # per stack: n inputs, inputs, n layers, layer table, n outputs, slots, gate flags
_LAYER_FIELDS = 4  # per layer: rows, columns, weights (column-major, in the float array), row ranges
_RLS_FIELDS = 6  # per neuron: θ start, P offset, n adapted, adapted, n fixed, fixed
_FLOAT_HEADER = 2  # dt (ms), forgetting factor λ


class _Blob:
    """Append-only float and int arrays; ``add`` returns where an array starts."""

    def __init__(self, int_header: int, float_header: int):
        self.f, self.i = [np.zeros(float_header)], [np.zeros(int_header, np.int64)]
        self.nf, self.ni = float_header, int_header

    def add(self, values, kind: str) -> int:
        if kind == "f":
            a = np.ascontiguousarray(values, dtype=np.float64).ravel()
            start, self.nf = self.nf, self.nf + a.size
            self.f.append(a)
        else:
            a = np.ascontiguousarray(values, dtype=np.int64).ravel()
            start, self.ni = self.ni, self.ni + a.size
            self.i.append(a)
        return start

    def arrays(self):
        return np.concatenate(self.f), np.concatenate(self.i)


def _reach(W: np.ndarray) -> np.ndarray:
    """Per column of ``W``, the first and one past the last row where it is nonzero (0, 0 if none)."""
    out = np.zeros((W.shape[1], 2), np.int64)
    for b in range(W.shape[1]):
        rows = np.flatnonzero(W[:, b])
        if rows.size:
            out[b] = rows[0], rows[-1] + 1
    return out


def flatten(pk: Packed, mode: str, rls: bool, forgetting: float) -> tuple[np.ndarray, np.ndarray]:
    """The float and int arrays the kernel reads: ``pk``'s operands and the step's settings."""
    blob = _Blob(_HEADER, _FLOAT_HEADER)
    head = {_N: pk.n, _C: pk.C, _L: pk.L, _S: pk.S, _P: len(pk.a_idx), _G: pk.G, _ROWS: pk.readout.shape[0],
            _OBSERVER: int(mode == "observer"), _RLS: int(rls), _DIAGONAL: int(pk.diagonal),
            _NGAP: len(pk.gap_g), _NSTACK: len(pk.stacks)}
    for field, name in ((_V, "v"), (_XS, "xs"), (_THETA, "theta"), (_PSI, "psi_prev"), (_BASE, "base_prev"),
                        (_VPREV, "v_prev"), (_VLAST, "v_last"), (_PV, "prev_valid"), (_FL, "flagged"),
                        (_NF, "n_flagged"), (_K, "k")):
        head[field] = pk.offsets[name]
    for field, values, kind in ((_VIN, pk.v_in, "i"), (_B, pk.B, "f"), (_A, pk.A, "f"), (_AIDX, pk.a_idx, "i"),
                                (_BIDX, pk.b_idx, "i"), (_DIDX, pk.d_idx, "i"), (_E, pk.E_units, "f"),
                                (_READOUT, pk.readout, "f"), (_CAPS, pk.caps, "f"), (_GAPA, pk.gap_a, "i"),
                                (_GAPB, pk.gap_b, "i"), (_GAPG, pk.gap_g, "f"), (_GAPINC, pk.gap_inc, "f"),
                                (_REL, pk.release, "f"), (_RELSLOPE, pk.release_slope, "f")):
        head[field] = blob.add(values, kind)
    stacks = []
    for idx, layers, dest, gate in pk.stacks:
        # Column-major: a layer is summed input by input into all its rows at once, every row in
        # the order of its inputs (as a dot product), with no chain of dependent additions; and
        # only over the rows an input reaches (its network's block: the layers are block-diagonal).
        table = [x for W in layers for x in (W.shape[0], W.shape[1], blob.add(W.T, "f"), blob.add(_reach(W), "i"))]
        stacks += [len(idx), blob.add(idx, "i"), len(layers), blob.add(table, "i"), len(dest), blob.add(dest, "i"),
                   blob.add(gate, "i")]
    head[_STACKS] = blob.add(np.asarray(stacks, np.int64), "i")
    table = []
    for lo, hi, q, sel, fixed in pk.rls:
        sel = np.arange(hi - lo) if sel is None else sel
        fixed = np.zeros(0, np.int64) if fixed is None else fixed
        table += [lo, q, len(sel), blob.add(sel, "i"), len(fixed), blob.add(fixed, "i")]
    head[_RLSTAB] = blob.add(np.asarray(table, np.int64), "i")
    F, I = blob.arrays()
    F[0], F[1] = pk.dt, float(forgetting)
    for field, value in head.items():
        I[field] = value
    return F, I


def numba_step(pk: Packed, mode: str, rls: bool, forgetting: float):
    """Build ``step(state, v_measured, i_applied) -> (state, prediction, currents)``, compiled.

    The same contract as :func:`~._online_numpy.numpy_step`: ``state`` is the flat float64 state,
    a call returns a new one and never writes to its argument.
    """
    F, I = flatten(pk, mode, rls, forgetting)
    n, C, S, R = pk.n, pk.C, pk.S, pk.readout.shape[0] - pk.n
    size, empty, inputs = S + n + R, np.empty, np.empty(C + n)

    def step(state, v_measured, i_applied):
        check_inputs(inputs, v_measured, i_applied, C, n)
        # One buffer for the three outputs, made here and filled by the kernel: a compiled call
        # that returns new arrays spends more time handing them over (≈ 1.4 µs each) than on the
        # sample.
        out = empty(size)
        try:
            _kernel(state, inputs, F, I, out)
        except (TypeError, ValueError):  # not a contiguous float64 vector of the state's size
            state = np.ascontiguousarray(state, dtype=np.float64)
            if state.shape != (S,):
                raise ValueError(f"step takes the flat state of this streamer, shape ({S},); "
                                 f"got {state.shape}") from None
            _kernel(state, inputs, F, I, out)
        return out[:S], out[S:S + n], out[S + n:]

    return step


# One signature, compiled when this module is first imported (or read from the on-disk cache), so
# that no call ever compiles in the middle of a stream. The state is typed read-only: the kernel
# never writes to it, and a read-only array (a loaded file, a replayed record) passes as it is.
_VECTOR, _STATE = numba.float64[::1], numba.types.Array(numba.float64, 1, "C", readonly=True)


@numba.njit(numba.void(_STATE, _VECTOR, _VECTOR, numba.int64[::1], _VECTOR), cache=True)
def _kernel(state, inputs, F, I, out):  # pragma: no cover - compiled; tested through the step
    n, C, S, P, G = I[_N], I[_C], I[_S], I[_P], I[_G]
    if state.shape[0] != S:
        raise ValueError("state of another size")
    observer, dt, lam = I[_OBSERVER] == 1, F[0], F[1]
    ov, ox, oth, ops, ob, ovp, ovl = I[_V], I[_XS], I[_THETA], I[_PSI], I[_BASE], I[_VPREV], I[_VLAST]
    caps = I[_CAPS]
    work = np.empty(S + 2)  # the state, then the constants 0 and 1 that the tables point to
    work[:S] = state
    work[S] = 0.0
    work[S + 1] = 1.0
    ia = inputs[C:].copy()
    valid = True
    for j in range(0 if observer else n, C + n):  # closed loop reads the exogenous voltages only
        if not math.isfinite(inputs[j]):
            valid = False
    for j in range(C):
        if valid and (observer or math.isfinite(inputs[j])):
            work[ovl + j] = inputs[j]
    if not valid:
        ia[:] = 0.0
    # RLS first: it reads the previous sample's ψ, applied-minus-gap current and voltage.
    if I[_RLS] == 1 and valid and work[I[_PV]] > 0:
        for i in range(n):
            t = I[_RLSTAB] + _RLS_FIELDS * i
            lo, q, p, sel, n_fixed, fixed = I[t], I[t + 1], I[t + 2], I[t + 3], I[t + 4], I[t + 5]
            y = F[caps + i] * (inputs[i] - work[ovp + i]) / dt - work[ob + i]
            for f in range(n_fixed):  # the parameters held fixed
                e = lo + I[fixed + f]
                y -= work[oth + e] * work[ops + e]
            psi, th, Pp = np.empty(p), np.empty(p), np.zeros(p)
            for a in range(p):
                e = lo + I[sel + a]
                psi[a], th[a] = work[ops + e], work[oth + e]
            for a in range(p):
                for b in range(p):
                    Pp[a] += work[q + a * p + b] * psi[b]
            denom, err = lam, y
            for a in range(p):
                denom += psi[a] * Pp[a]
                err -= psi[a] * th[a]
            k = Pp / denom
            for a in range(p):
                work[oth + lo + I[sel + a]] = th[a] + k[a] * err
            M = np.empty((p, p))
            for a in range(p):
                for b in range(p):
                    M[a, b] = work[q + a * p + b] - k[a] * Pp[b]
            for a in range(p):
                for b in range(p):
                    work[q + a * p + b] = (M[a, b] + M[b, a]) * (0.5 / lam)
    # This sample's own voltages (measured, or the model's where it runs free or fills a gap).
    for i in range(n):
        work[ovp + i] = inputs[i] if observer and valid else work[ov + i]
    # Every network: one block-diagonal MLP per depth, tanh hidden layers, logistic gates.
    gv = np.ones(G)
    for s in range(I[_NSTACK]):
        t = I[_STACKS] + _STACK_FIELDS * s
        n_in, inp, n_layers, layers = I[t], I[t + 1], I[t + 2], I[t + 3]
        n_out, slots, gate = I[t + 4], I[t + 5], I[t + 6]
        z = np.empty(n_in)
        for a in range(n_in):
            z[a] = work[I[inp + a]]
        for layer in range(n_layers):
            t = layers + _LAYER_FIELDS * layer
            rows, cols, w, reach = I[t], I[t + 1], I[t + 2], I[t + 3]
            last = layer == n_layers - 1
            h = np.zeros(rows if last else rows + 1)
            for b in range(cols):
                zb, col = z[b], w + b * rows
                for a in range(I[reach + 2 * b], I[reach + 2 * b + 1]):
                    h[a] += F[col + a] * zb
            if not last:
                for a in range(rows):
                    h[a] = math.tanh(h[a])
                h[rows] = 1.0  # a hidden layer ends with the next bias's 1
            z = h
        for a in range(n_out):
            gv[I[slots + a]] = 1.0 / (1.0 + math.exp(-z[a])) if I[gate + a] == 1 else z[a]
    # ψ = a·b·(E − v) for every θ entry, then θ·ψ per neuron and every read-out current.
    contrib = np.empty(P)
    for e in range(P):
        psi = gv[I[I[_AIDX] + e]] * gv[I[I[_BIDX] + e]] * (F[I[_E] + e] - work[I[I[_DIDX] + e]])
        work[ops + e] = psi
        contrib[e] = work[oth + e] * psi
    rows = I[_ROWS]
    sums = np.zeros(rows)
    for r in range(rows):
        for e in range(P):
            sums[r] += F[I[_READOUT] + r * P + e] * contrib[e]
    n_gap = I[_NGAP]
    for i in range(n):
        gap = 0.0
        for j in range(n_gap):
            gap += F[I[_GAPINC] + i * n_gap + j] * (F[I[_GAPG] + j] * (work[I[I[_GAPA] + j]] - work[I[I[_GAPB] + j]]))
        work[ob + i] = ia[i] - gap
    for i in range(n):
        work[ov + i] = work[ovp + i] + dt * ((work[ob + i] + sums[i]) / F[caps + i])
    # Banks last: they read this sample's voltages and the states before the update.
    L, A, B, vin, rel, rel_slope = I[_L], I[_A], I[_B], I[_VIN], I[_REL], I[_RELSLOPE]
    x_new = np.empty(L)
    for a in range(L):
        if I[_DIAGONAL] == 1:
            acc = F[A + a] * work[ox + a]
        else:
            acc = 0.0
            for b in range(L):
                acc += F[A + a * L + b] * work[ox + b]
        u = work[I[vin + a]]
        theta = F[rel + a]
        if theta == theta:  # a release: σ((v − θ)/δ)
            u = 1.0 / (1.0 + math.exp(-(u - theta) / F[rel_slope + a]))
        x_new[a] = acc + F[B + a] * u
    work[ox:ox + L] = x_new
    bad = 0.0 if valid else 1.0
    work[I[_PV]] = 1.0 - bad
    work[I[_FL]] = bad
    work[I[_NF]] += bad
    work[I[_K]] += 1.0
    out[:S] = work[:S]
    out[S:S + n] = work[ov:ov + n]
    out[S + n:] = sums[n:]
