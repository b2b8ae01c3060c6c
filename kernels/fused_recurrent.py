"""Fused Triton kernels for one recurrent layer, both directions in one launch (forward, BPTT backward).

Same equations and conventions as :func:`namemodels.kernels.naive.naive_layer` (read its docstring),
applied to every direction of a layer at once: batch-first padded ``x (B, T, I)``, per-sequence
``lengths``, zero outputs at padding, final states at each sequence's own end, the reverse direction
running each sequence backwards from its own end, momentum ``v_t = mu v_{t-1} + s (W_ih x_t + b_ih)``
replacing ``W_ih x_t + b_ih``.

Layouts (``D`` directions, ``G = gates * H``; the weights of a layer stacked over directions)::

    x (B, T, I)      w_ih (D, G, I)   w_hh (D, G, H)   b_ih, b_hh (D, G)   mus (2,) fp32 = [mu, s]
    h0, c0 (D, B, H) v0 (D, B, G)     out (B, T, D*H)  h_n, c_n (D, B, H)  v_n (D, B, G)

Design (flash-linear-attention ``fused_recurrent`` style, the reference beside the kernel):

* **Host path.** A layer call is one input-projection matmul for both directions with the bias folded
  in (``addmm`` into ``gi (B, T, D, G)``) and one kernel launch whose grid is (batch blocks,
  directions). The kernel writes every element of its outputs (zeros at padding), so nothing is
  zero-filled first; lengths stay on the device (no host synchronisation); absent initial states,
  lengths and biases are compile-time flags, not zero tensors. A decode step (``T = 1``, inference)
  folds the input projection into the same launch (``FUSE_INPUT``): one launch per layer and step.
* **Weights on chip.** Each program owns ``BLOCK_B = 16`` batch rows of one direction and loops over
  time up to the longest sequence of its block. When one direction's ``W_hh`` fits in
  :data:`ON_CHIP_BYTES` (``gates * HP * HP * element size``, ``HP`` = hidden size padded to a power of
  two >= 16: bf16/fp16 up to H = 128 for every cell and H = 256 for Elman; fp32 up to H = 64, and
  H = 128 for Elman), the kernel loads it once and keeps it on chip for the whole sequence -- the
  compiler places the tiles in shared memory, where the tensor-core dot reads its weight operand
  (``namemodels bench kernel-build``: 132 KB of a block's 227 KB on sm_90 for a bf16 LSTM at
  H = 128) -- and multiplies ``h W_hh^T`` as one ``tl.dot`` per gate with ``h`` straight from
  registers (exchanged by the compiler's layout conversion, never through global memory). Larger
  weights stream from L2 in K-blocks of ``BK`` and ``h`` goes through a per-program scratch row
  block that stays in L1 (``ON_CHIP=False``). Warp counts follow what ptxas allocates for sm_90
  (``bench kernel-build``; see :func:`_config`).
* **One step per gate, written once.** Each kernel's time step loops over the cell's gates
  (``tl.static_range``, unrolled at compile time): the forward computes every gate's input side
  ``u_g`` (through the momentum scan), then every hidden side ``a_g``; the backward stores every
  gate's gradients and sums ``dA_g W_g``. Triton keeps tiles in variables, not lists, so ``_pick``
  and ``_with`` address gate ``g``'s variable at compile time; a cell's own equations are one
  ``MODE`` branch between the loops.
* **Numerics.** Accumulation is fp32. fp32 weights on CUDA follow torch.nn's RNNs: TF32 tensor cores
  while ``torch.backends.cudnn.allow_tf32`` is on (torch's default), exact fp32
  (``input_precision="ieee"``) when it is off; bf16/fp16 weights use the native tensor-core dot.
* **Training.** The forward saves what BPTT needs and nothing it can rebuild, in the input's dtype
  (fp32 for fp32; for bf16/fp16 this is what keeps memory per token at cuDNN's): the outputs (they
  are the hidden states), the activated gates (GRU: ``r, z, n`` and ``W_hn h + b_hn``; LSTM:
  ``i, f, g, o``), the cell states (LSTM) and the momentum states (momentum cells). The backward
  kernel runs both directions in reverse processing order in one launch with ``dh`` (``dc``, ``dv``)
  on chip and ``W_hh`` on chip when it fits, and writes completely: the pre-activation gradients
  ``dA (B, T, D, G)``, the gradient of the gate input ``dGI`` (GRU, momentum), the previous hidden
  state of every step ``H_prev (B, T, D, H)`` and, for learnable momentum, per-program partial sums
  of ``d mu`` and ``d s`` (the ``v`` recurrence's gradient fused into the same sweep). Parameter and
  input gradients are then a few large matmuls per layer: ``dW_hh = dA^T H_prev`` (one batched
  matmul over directions), ``dx = dGI W_ih`` and ``dW_ih = dGI^T x`` (one matmul each for both
  directions) and two sums for the biases.

Supported: modes ``rnn_tanh``, ``rnn_relu``, ``gru``, ``lstm`` (each with or without momentum);
``1 <= hidden_size <= 256``; dtypes float32, bfloat16, float16 (weights in the input's dtype); any
batch size, length and input size. CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``
(Triton's interpreter, used by the tests). Written against the Triton API common to 3.6 and 3.9
(``tl.dot(..., input_precision=)``, ``tl.debug_barrier``, ``tl.static_range``, ``do_not_specialize``).
"""

from __future__ import annotations

import collections
import os
from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

from .cells import GATES

MAX_HIDDEN = 256
BLOCK_B = 16
# One direction's W_hh is kept on chip for the whole sequence when gates * HP^2 * element size is
# at most this: it then sits in shared memory beside the kernel's other tiles, within the 227 KB a
# block may use on sm_90 (the largest, the bf16 LSTM backward at H = 128, compiles to 188 KB).
ON_CHIP_BYTES = int(os.environ.get("NAMEMODELS_ON_CHIP_BYTES", 128 * 1024))
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MODE_ID = {"rnn_tanh": 0, "rnn_relu": 1, "gru": 2, "lstm": 3}

# Kernel launches by kernel name, for tests and benchmarks that count launches per layer call.
LAUNCHES: collections.Counter = collections.Counter()


def supports(mode: str, hidden_size: int, dtype: torch.dtype) -> tuple[bool, str]:
    """Whether the fused kernels handle this configuration, and why not if they don't."""
    if mode not in _MODE_ID:
        return False, f"mode {mode!r} has no fused kernel (supported: {', '.join(_MODE_ID)})"
    if not isinstance(hidden_size, int) or hidden_size < 1 or hidden_size > MAX_HIDDEN:
        return False, (
            f"hidden_size={hidden_size} is outside the fused kernels' range 1..{MAX_HIDDEN} "
            "(the per-program state tile would not fit on chip)"
        )
    if dtype not in _DTYPES:
        return False, f"dtype {dtype} is not supported by the fused kernels (float32, bfloat16, float16)"
    return True, f"fused Triton kernels support {mode}, hidden_size={hidden_size}, {dtype}"


# ---------------------------------------------------------------------------------------------
# Triton helpers
# (The @triton.jit functions carry `type: ignore[no-untyped-def]`: Triton reads their annotations, where
# tl.constexpr marks compile-time arguments, so the other arguments stay bare.)
# ---------------------------------------------------------------------------------------------
@triton.jit
def _dot(a, w, PRECISION: tl.constexpr):  # type: ignore[no-untyped-def]
    """``a (M, K) @ w (K, N)`` with fp32 accumulation; ``a`` is fp32 (registers)."""
    if PRECISION == "native":
        out = tl.dot(a.to(w.dtype), w)
    else:  # fp32 operands, "ieee" (exact) or "tf32"
        out = tl.dot(a.to(tl.float32), w.to(tl.float32), input_precision=PRECISION)
    return out


@triton.jit
def _mm(  # type: ignore[no-untyped-def]
    acc,
    a_ptr,
    a_stride,
    rows,
    rmask,
    K,
    w_ptr,
    w_stride_k,
    w_stride_n,
    cols,
    cmask,
    BK: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """acc[b, n] += sum_k A[rows[b], k] * w_ptr[k * w_stride_k + cols[n] * w_stride_n], k < K, in
    K-blocks of BK read from memory. ``A @ W[r0:]^T`` is ``w_ptr = W + r0 * ld, w_stride_k = 1,
    w_stride_n = ld``; ``A @ W[r0:]`` is ``w_stride_k = ld, w_stride_n = 1``."""
    for k0 in range(0, K, BK):
        ks = tl.arange(0, BK).to(tl.int64) + k0
        kmask = ks < K
        a = tl.load(a_ptr + rows[:, None] * a_stride + ks[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
        w = tl.load(
            w_ptr + ks[:, None] * w_stride_k + cols[None, :] * w_stride_n,
            mask=kmask[:, None] & cmask[None, :],
            other=0.0,
        )
        if PRECISION == "native":
            acc = tl.dot(a.to(w.dtype), w, acc)
        else:
            acc = tl.dot(a.to(tl.float32), w.to(tl.float32), acc, input_precision=PRECISION)
    return acc


@triton.jit
def _w_tile(w_ptr, g, H, cols, cmask, TRANSPOSE: tl.constexpr):  # type: ignore[no-untyped-def]
    """Gate g's block of a (G, H) row-major W_hh as an (HP, HP) tile, zero outside H x H:
    ``TRANSPOSE`` (forward, ``h @ W_g^T``): tile[k, n] = W[g H + n, k]; else (backward,
    ``dA_g @ W_g``): tile[k, n] = W[g H + k, n]."""
    k = cols[:, None]
    n = cols[None, :]
    m = cmask[:, None] & cmask[None, :]
    if TRANSPOSE:
        w = tl.load(w_ptr + (g * H + n) * H + k, mask=m, other=0.0)
    else:
        w = tl.load(w_ptr + (g * H + k) * H + n, mask=m, other=0.0)
    return w


@triton.jit
def _block(pid, B, H, T, len_ptr, HAS_LEN: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr):  # type: ignore[no-untyped-def]
    """This program's batch rows and hidden columns with their masks, the rows' lengths (0 for rows
    past B; lengths are clamped to [0, T], as the host does not read them) and their maximum."""
    rows = (pid * BB + tl.arange(0, BB)).to(tl.int64)  # int64 offsets: no overflow on big B*T*G
    rmask = rows < B
    cols = tl.arange(0, HP).to(tl.int64)
    cmask = cols < H
    if HAS_LEN:
        L = tl.load(len_ptr + rows, mask=rmask, other=0).to(tl.int32)
        L = tl.minimum(tl.maximum(L, 0), T)
    else:
        L = tl.where(rmask, T, 0)
    return rows, rmask, cols, cmask, rmask[:, None] & cmask[None, :], L, tl.max(L, 0)


@triton.jit
def _tile(ptr, stride, rows, cols, mask):
    """A masked (BB, HP) tile of a tensor whose rows are ``stride`` apart, in fp32."""
    return tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _gate_tiles(base, stride, H, rows, cols, mask, NG: tl.constexpr):  # type: ignore[no-untyped-def]
    """The ``NG`` per-gate (BB, HP) fp32 tiles of a block at ``base`` whose rows are ``stride`` apart
    (gate g at column g H: a (B, G) state, or the four tiles a GRU or LSTM step saved); a cell with
    fewer than four gates gets gate 0's tile in the unused places."""
    t0 = _tile(base, stride, rows, cols, mask)
    t1 = t0
    t2 = t0
    t3 = t0
    if NG > 1:
        t1 = _tile(base + H, stride, rows, cols, mask)
        t2 = _tile(base + 2 * H, stride, rows, cols, mask)
    if NG > 3:
        t3 = _tile(base + 3 * H, stride, rows, cols, mask)
    return t0, t1, t2, t3


@triton.jit
def _pick(g: tl.constexpr, t0, t1, t2, t3):  # type: ignore[no-untyped-def]
    """Gate g's tile of four (g is known at compile time: no branch runs)."""
    return t0 if g == 0 else (t1 if g == 1 else (t2 if g == 2 else t3))


@triton.jit
def _with(g: tl.constexpr, x, t0, t1, t2, t3):  # type: ignore[no-untyped-def]
    """The four tiles with gate g's replaced by ``x`` (g known at compile time)."""
    return (x if g == 0 else t0), (x if g == 1 else t1), (x if g == 2 else t2), (x if g == 3 else t3)


@triton.jit
def _gate_weights(w_ptr, H, cols, cmask, placeholder, NG: tl.constexpr, TRANSPOSE: tl.constexpr, ON_CHIP: tl.constexpr):  # type: ignore[no-untyped-def]
    """W_hh's ``NG`` per-gate (HP, HP) tiles (see ``_w_tile``), loaded once for a whole sequence when
    ``ON_CHIP`` (unused places repeat gate 0's tile); else ``placeholder`` four times (streamed)."""
    w0 = placeholder
    w1 = placeholder
    w2 = placeholder
    w3 = placeholder
    if ON_CHIP:
        w0 = _w_tile(w_ptr, 0, H, cols, cmask, TRANSPOSE)
        w1 = w0
        w2 = w0
        w3 = w0
        if NG > 1:
            w1 = _w_tile(w_ptr, 1, H, cols, cmask, TRANSPOSE)
            w2 = _w_tile(w_ptr, 2, H, cols, cmask, TRANSPOSE)
        if NG > 3:
            w3 = _w_tile(w_ptr, 3, H, cols, cmask, TRANSPOSE)
    return w0, w1, w2, w3


@triton.jit
def _momentum_setup(  # type: ignore[no-untyped-def]
    mus_ptr, state_ptr, G, H, rows, cols, mask, zero, NG: tl.constexpr, MOMENTUM: tl.constexpr, HAS_STATE: tl.constexpr
):
    """``mu, s`` and the four per-gate tiles of a momentum state (forward: v_0; backward: dL/dv_n),
    ``zero`` where the state is absent. Without momentum ``mu``, ``s`` are unused placeholders."""
    mu = 0.0
    s = 0.0
    t0 = zero
    t1 = zero
    t2 = zero
    t3 = zero
    if MOMENTUM:
        mu = tl.load(mus_ptr).to(tl.float32)
        s = tl.load(mus_ptr + 1).to(tl.float32)
        if HAS_STATE:
            t0, t1, t2, t3 = _gate_tiles(state_ptr, G, H, rows, cols, mask, NG)
    return mu, s, t0, t1, t2, t3


@triton.jit
def _put(ptr, stride, rows, cols, value, am, m2):
    """Store a (BB, HP) tile at every valid row: ``value`` where ``am`` (active), zero elsewhere."""
    tl.store(ptr + rows[:, None] * stride + cols[None, :], tl.where(am, value, 0.0).to(ptr.dtype.element_ty), mask=m2)


@triton.jit
def _put_gates(base, stride, H, rows, cols, t0, t1, t2, t3, am, m2):
    """Store four per-gate tiles (see ``_put``) as a row's four H-wide blocks from ``base``: the
    counterpart of ``_gate_tiles`` for what a GRU or LSTM step saves for its backward."""
    _put(base, stride, rows, cols, t0, am, m2)
    _put(base + H, stride, rows, cols, t1, am, m2)
    _put(base + 2 * H, stride, rows, cols, t2, am, m2)
    _put(base + 3 * H, stride, rows, cols, t3, am, m2)


@triton.jit
def _zero(ptr, stride, rows, cols, m2, BB: tl.constexpr, HP: tl.constexpr):  # type: ignore[no-untyped-def]
    """Store zeros in a (BB, HP) tile at every valid row."""
    tl.store(
        ptr + rows[:, None] * stride + cols[None, :],
        tl.zeros((BB, HP), dtype=tl.float32).to(ptr.dtype.element_ty),
        mask=m2,
    )


@triton.jit
def _gate_in(  # type: ignore[no-untyped-def]
    gi_ptr,
    x_ptr,
    wih_ptr,
    bih_ptr,
    g,
    t,
    T,
    RS,
    H,
    I,  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
    rows,
    rmask,
    cols,
    cmask,
    am,
    FUSE_INPUT: tl.constexpr,
    HAS_BIH: tl.constexpr,
    BB: tl.constexpr,
    HP: tl.constexpr,
    BK: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Input-side pre-activation of gate g at step t: ``W_ih x_t + b_ih``, read from ``gi`` (rows
    ``RS`` apart per step) or, for a decode step, computed here from ``x``."""
    if FUSE_INPUT:
        u = tl.zeros((BB, HP), dtype=tl.float32)
        u = _mm(u, x_ptr + t * I, T * I, rows, rmask, I, wih_ptr + g * H * I, 1, I, cols, cmask, BK, PRECISION)
        if HAS_BIH:
            u += tl.load(bih_ptr + g * H + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    else:
        u = tl.load(gi_ptr + rows[:, None] * (T * RS) + t * RS + g * H + cols[None, :], mask=am, other=0.0).to(
            tl.float32
        )
    return u


@triton.jit
def _gate_hh(  # type: ignore[no-untyped-def]
    h,
    wt,
    scr_ptr,
    whh_ptr,
    bhh_ptr,
    g,
    H,
    rows,
    rmask,
    cols,
    cmask,
    HAS_BHH: tl.constexpr,
    BB: tl.constexpr,
    HP: tl.constexpr,
    BK: tl.constexpr,
    ON_CHIP: tl.constexpr,
    PRECISION: tl.constexpr,
):
    """Hidden-side pre-activation of gate g: ``h W_hh[g]^T + b_hh[g]``, from the on-chip tile ``wt``
    and ``h`` in registers, or streamed in K-blocks with ``h`` read back from the scratch rows."""
    if ON_CHIP:
        acc = _dot(h, wt, PRECISION)
    else:
        acc = tl.zeros((BB, HP), dtype=tl.float32)
        acc = _mm(acc, scr_ptr, HP, rows, rmask, H, whh_ptr + g * H * H, 1, H, cols, cmask, BK, PRECISION)
    if HAS_BHH:
        acc += tl.load(bhh_ptr + g * H + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    return acc


@triton.jit
def _momentum(u, v, mu, s, am, m2, vs_ptr, g, t, T, RS, H, rows, cols, SAVE_V: tl.constexpr):  # type: ignore[no-untyped-def]
    """The momentum scan on gate g's input: returns (effective input v_t, carried v); ``SAVE_V`` keeps
    ``v_t`` for the gradient of a learnable ``mu``."""
    vn = mu * v + s * u
    if SAVE_V:
        _put(vs_ptr + t * RS + g * H, T * RS, rows, cols, vn, am, m2)
    return vn, tl.where(am, vn, v)


@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def _direction_offsets(d, B, H, NG: tl.constexpr):  # type: ignore[no-untyped-def]
    """Element offsets of direction ``d``'s part of each buffer: ``(gate columns, hidden columns, gs
    columns, W_hh, (B, H) state, (B, G) state)``. Per (batch, step) row the directions sit side by
    side -- gate-width buffers (gi, vs, dA, dGI) hold D*G columns, hidden-width ones (out, dout,
    H_prev, cs) D*H, gs D*4H --; W_hh is (D, G, H); states are (D, B, H), and (D, B, G) for v."""
    G = NG * H
    return d * G, d * H, d * 4 * H, d * G * H, d * B * H, d * B * G


@triton.jit
def _store_states(  # type: ignore[no-untyped-def]
    h_ptr,
    c_ptr,
    v_ptr,
    h,
    c,
    v0,
    v1,
    v2,
    v3,
    H,
    rows,
    cols,
    m2,
    MODE: tl.constexpr,
    MOMENTUM: tl.constexpr,
    NG: tl.constexpr,
):
    """Write one block's final states (or their gradients): ``h`` and, for LSTM, ``c`` as (B, H)
    rows; momentum's ``v`` as (B, G) rows, one H-wide tile per gate."""
    tl.store(h_ptr + rows[:, None] * H + cols[None, :], h.to(h_ptr.dtype.element_ty), mask=m2)
    if MODE == 3:
        tl.store(c_ptr + rows[:, None] * H + cols[None, :], c.to(c_ptr.dtype.element_ty), mask=m2)
    if MOMENTUM:
        vb = v_ptr + rows[:, None] * (NG * H) + cols[None, :]
        ty = v_ptr.dtype.element_ty
        tl.store(vb, v0.to(ty), mask=m2)
        if NG > 1:
            tl.store(vb + H, v1.to(ty), mask=m2)
            tl.store(vb + 2 * H, v2.to(ty), mask=m2)
        if NG > 3:
            tl.store(vb + 3 * H, v3.to(ty), mask=m2)


# ---------------------------------------------------------------------------------------------
# Forward kernel: the whole sequence of every direction in one launch
# ---------------------------------------------------------------------------------------------
# Batch size and length vary from call to call: not specialised on (one compile serves them all).
@triton.jit(do_not_specialize=["B", "T"])
def _fwd_kernel(  # type: ignore[no-untyped-def]
    gi_ptr,
    x_ptr,
    wih_ptr,
    bih_ptr,
    whh_ptr,
    bhh_ptr,
    h0_ptr,
    c0_ptr,
    v0_ptr,
    len_ptr,
    mus_ptr,
    out_ptr,
    hn_ptr,
    cn_ptr,
    vn_ptr,
    scr_ptr,
    gs_ptr,
    cs_ptr,
    vs_ptr,
    B,
    T,
    H,
    I,  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
    MODE: tl.constexpr,
    MOMENTUM: tl.constexpr,
    SAVE: tl.constexpr,
    SAVE_V: tl.constexpr,
    FUSE_INPUT: tl.constexpr,
    HAS_BIH: tl.constexpr,
    HAS_BHH: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_V0: tl.constexpr,
    HAS_LEN: tl.constexpr,
    D: tl.constexpr,
    NG: tl.constexpr,
    BB: tl.constexpr,
    HP: tl.constexpr,
    BK: tl.constexpr,
    ON_CHIP: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    d = tl.program_id(1)  # direction: 0 forward, 1 reverse
    G = NG * H
    rows, rmask, cols, cmask, m2, L, Lmax = _block(pid, B, H, T, len_ptr, HAS_LEN, BB, HP)
    gc, hc, gsc, wo, hs, vso = _direction_offsets(d, B, H, NG)  # this direction's slices
    whh_ptr, wih_ptr, scr_ptr = whh_ptr + wo, wih_ptr + d * G * I, scr_ptr + d * B * HP
    gi_ptr, vs_ptr, bih_ptr, bhh_ptr = gi_ptr + gc, vs_ptr + gc, bih_ptr + gc, bhh_ptr + gc
    out_ptr, cs_ptr, gs_ptr = out_ptr + hc, cs_ptr + hc, gs_ptr + gsc
    h0_ptr, c0_ptr, hn_ptr, cn_ptr = h0_ptr + hs, c0_ptr + hs, hn_ptr + hs, cn_ptr + hs
    v0_ptr, vn_ptr = v0_ptr + vso, vn_ptr + vso
    OH = D * H
    GS = T * D * 4 * H  # gs row stride

    h = tl.zeros((BB, HP), dtype=tl.float32)
    c = tl.zeros((BB, HP), dtype=tl.float32)
    if HAS_H0:
        h = _tile(h0_ptr, H, rows, cols, m2)
        if MODE == 3:
            c = _tile(c0_ptr, H, rows, cols, m2)
    if not ON_CHIP:
        tl.store(scr_ptr + rows[:, None] * HP + cols[None, :], h, mask=rmask[:, None])
    mu, s, v0, v1, v2, v3 = _momentum_setup(
        mus_ptr, v0_ptr, G, H, rows, cols, m2, tl.zeros((BB, HP), dtype=tl.float32), NG, MOMENTUM, HAS_V0
    )
    # W_hh^T per gate, loaded once for the whole sequence (placeholders when streamed).
    wt0, wt1, wt2, wt3 = _gate_weights(whh_ptr, H, cols, cmask, h, NG, True, ON_CHIP)

    for i in range(0, Lmax):
        t = i + d * (Lmax - 1 - 2 * i)  # reverse: from the block's end; each row starts at its own
        am = (t < L)[:, None] & cmask[None, :]
        if not ON_CHIP:
            tl.debug_barrier()  # scratch h of the previous step is visible to every thread
        # Every gate's pre-activations: first the input sides u_g (through the momentum scan), then the
        # hidden sides a_g -- in this order the sm_90 cubins spill less than gate by gate (`namemodels
        # bench kernel-build`). Triton holds tiles in variables, not lists: _pick and _with address
        # gate g's variable at compile time; an absent gate's variables keep the placeholder h.
        u0, u1, u2, u3 = h, h, h, h
        a0, a1, a2, a3 = h, h, h, h
        for g in tl.static_range(NG):
            u = _gate_in(
                gi_ptr,
                x_ptr,
                wih_ptr,
                bih_ptr,
                g,
                t,
                T,
                D * G,
                H,
                I,
                rows,
                rmask,
                cols,
                cmask,
                am,
                FUSE_INPUT,
                HAS_BIH,
                BB,
                HP,
                BK,
                PRECISION,
            )
            if MOMENTUM:
                vg = _pick(g, v0, v1, v2, v3)
                u, vg = _momentum(u, vg, mu, s, am, m2, vs_ptr, g, t, T, D * G, H, rows, cols, SAVE_V)
                v0, v1, v2, v3 = _with(g, vg, v0, v1, v2, v3)
            u0, u1, u2, u3 = _with(g, u, u0, u1, u2, u3)
        for g in tl.static_range(NG):
            wt = _pick(g, wt0, wt1, wt2, wt3)
            a = _gate_hh(
                h,
                wt,
                scr_ptr,
                whh_ptr,
                bhh_ptr,
                g,
                H,
                rows,
                rmask,
                cols,
                cmask,
                HAS_BHH,
                BB,
                HP,
                BK,
                ON_CHIP,
                PRECISION,
            )
            a0, a1, a2, a3 = _with(g, a, a0, a1, a2, a3)
        gbase = gs_ptr + t * (D * 4 * H)
        if MODE == 0:
            h_new = _tanh(u0 + a0)
        elif MODE == 1:
            h_new = tl.maximum(u0 + a0, 0.0)
        elif MODE == 2:
            r = _sigmoid(u0 + a0)
            z = _sigmoid(u1 + a1)
            n = _tanh(u2 + r * a2)
            h_new = (1.0 - z) * n + z * h
            if SAVE:
                _put_gates(gbase, GS, H, rows, cols, r, z, n, a2, am, m2)
        else:
            ig = _sigmoid(u0 + a0)
            fg = _sigmoid(u1 + a1)
            gg = _tanh(u2 + a2)
            og = _sigmoid(u3 + a3)
            c_new = fg * c + ig * gg
            h_new = og * _tanh(c_new)
            c = tl.where(am, c_new, c)
            if SAVE:
                _put_gates(gbase, GS, H, rows, cols, ig, fg, gg, og, am, m2)
                _put(cs_ptr + t * OH, T * OH, rows, cols, c_new, am, m2)
        h = tl.where(am, h_new, h)
        _put(out_ptr + t * OH, T * OH, rows, cols, h_new, am, m2)
        if not ON_CHIP:
            tl.debug_barrier()  # every thread has read the old h before it is overwritten
            tl.store(scr_ptr + rows[:, None] * HP + cols[None, :], h, mask=rmask[:, None])
    for t in range(Lmax, T):  # past the block's longest sequence: zeros, in what is returned too
        _zero(out_ptr + t * OH, T * OH, rows, cols, m2, BB, HP)
        if SAVE:
            if MODE >= 2:
                for g in tl.static_range(4):
                    _zero(gs_ptr + t * (D * 4 * H) + g * H, GS, rows, cols, m2, BB, HP)
            if MODE == 3:
                _zero(cs_ptr + t * OH, T * OH, rows, cols, m2, BB, HP)
        if SAVE_V:
            for g in tl.static_range(NG):
                _zero(vs_ptr + t * (D * G) + g * H, T * D * G, rows, cols, m2, BB, HP)

    _store_states(hn_ptr, cn_ptr, vn_ptr, h, c, v0, v1, v2, v3, H, rows, cols, m2, MODE, MOMENTUM, NG)


# ---------------------------------------------------------------------------------------------
# Backward kernel (BPTT): every direction in one launch, steps in reverse processing order
# ---------------------------------------------------------------------------------------------
@triton.jit
def _bwd_gate(  # type: ignore[no-untyped-def]
    du,
    da,
    dvc,
    vprev,
    u,
    acc_mu,
    acc_s,
    mu,
    s,
    am,
    m2,
    da_ptr,
    dgi_ptr,
    g,
    t,
    T,
    RS,
    H,
    rows,
    cols,
    MOMENTUM: tl.constexpr,
    LEARN: tl.constexpr,
    STORE_DGI: tl.constexpr,
):
    """Store gate g's pre-activation gradient ``da`` (hidden side) and its input-side gradient: through
    the momentum scan ``dV_t = du + mu dV_{t+1}``, stored as ``s dV_t`` (the gradient of W_ih x + b_ih),
    with the partial sums ``dV_t v_{t-1}`` (d mu) and ``dV_t u_t`` (d s); returns the new carry."""
    _put(da_ptr + t * RS + g * H, T * RS, rows, cols, da, am, m2)
    if MOMENTUM:
        dv = du + dvc
        _put(dgi_ptr + t * RS + g * H, T * RS, rows, cols, s * dv, am, m2)
        dvc = tl.where(am, mu * dv, dvc)
        if LEARN:
            acc_mu += tl.where(am, dv * vprev, 0.0)
            acc_s += tl.where(am, dv * u, 0.0)
    elif STORE_DGI:
        _put(dgi_ptr + t * RS + g * H, T * RS, rows, cols, du, am, m2)
    return dvc, acc_mu, acc_s


@triton.jit
def _bwd_vu(  # type: ignore[no-untyped-def]
    vs_ptr,
    v0_ptr,
    gi_ptr,
    g,
    t,
    tp,
    T,
    RS,
    G,
    H,
    rows,
    cols,
    first,
    am,
    pm,
    m2,
    LEARN: tl.constexpr,
    HAS_V0: tl.constexpr,
):
    """For learnable momentum: gate g's ``v_{t-1}`` (``v_0``, or zero, at a sequence's first step)
    and ``u_t = W_ih x_t + b_ih``; placeholders otherwise."""
    vprev = am.to(tl.float32)
    u = vprev
    if LEARN:
        vprev = _tile(vs_ptr + tp * RS + g * H, T * RS, rows, cols, pm)
        if HAS_V0:
            vprev = tl.where(first[:, None], _tile(v0_ptr + g * H, G, rows, cols, m2), vprev)
        u = _tile(gi_ptr + t * RS + g * H, T * RS, rows, cols, am)
    return vprev, u


@triton.jit(do_not_specialize=["B", "T"])
def _bwd_kernel(  # type: ignore[no-untyped-def]
    dout_ptr,
    dhn_ptr,
    dcn_ptr,
    dvn_ptr,
    out_ptr,
    h0_ptr,
    c0_ptr,
    v0_ptr,
    gi_ptr,
    gs_ptr,
    cs_ptr,
    vs_ptr,
    whh_ptr,
    len_ptr,
    mus_ptr,
    da_ptr,
    dgi_ptr,
    hp_ptr,
    dh0_ptr,
    dc0_ptr,
    dv0_ptr,
    part_ptr,
    B,
    T,
    H,
    MODE: tl.constexpr,
    MOMENTUM: tl.constexpr,
    LEARN: tl.constexpr,
    STORE_DGI: tl.constexpr,
    HAS_DOUT: tl.constexpr,
    HAS_DHN: tl.constexpr,
    HAS_DCN: tl.constexpr,
    HAS_DVN: tl.constexpr,
    HAS_H0: tl.constexpr,
    HAS_V0: tl.constexpr,
    HAS_LEN: tl.constexpr,
    D: tl.constexpr,
    NG: tl.constexpr,
    BB: tl.constexpr,
    HP: tl.constexpr,
    BK: tl.constexpr,
    ON_CHIP: tl.constexpr,
    PRECISION: tl.constexpr,
):
    pid = tl.program_id(0)
    d = tl.program_id(1)
    G = NG * H
    rows, rmask, cols, cmask, m2, L, Lmax = _block(pid, B, H, T, len_ptr, HAS_LEN, BB, HP)
    RS = D * G  # per (batch, step) row: dA, dGI, gi, vs
    OH = D * H  # out, dout, H_prev, cs
    GS = T * D * 4 * H  # gs row stride
    gc, hc, gsc, wo, hs, vso = _direction_offsets(d, B, H, NG)  # this direction's slices
    whh_ptr, gs_ptr = whh_ptr + wo, gs_ptr + gsc
    gi_ptr, vs_ptr, da_ptr, dgi_ptr = gi_ptr + gc, vs_ptr + gc, da_ptr + gc, dgi_ptr + gc
    out_ptr, dout_ptr, hp_ptr, cs_ptr = out_ptr + hc, dout_ptr + hc, hp_ptr + hc, cs_ptr + hc
    dhn_ptr, dcn_ptr, h0_ptr, c0_ptr = dhn_ptr + hs, dcn_ptr + hs, h0_ptr + hs, c0_ptr + hs
    dh0_ptr, dc0_ptr = dh0_ptr + hs, dc0_ptr + hs
    v0_ptr, dvn_ptr, dv0_ptr = v0_ptr + vso, dvn_ptr + vso, dv0_ptr + vso

    dh = tl.zeros((BB, HP), dtype=tl.float32)
    dc = dh
    h0 = dh
    c0 = dh
    if HAS_DHN:
        dh = _tile(dhn_ptr, H, rows, cols, m2)
    if HAS_H0:
        h0 = _tile(h0_ptr, H, rows, cols, m2)
    if MODE == 3:
        if HAS_DCN:
            dc = _tile(dcn_ptr, H, rows, cols, m2)
        if HAS_H0:
            c0 = _tile(c0_ptr, H, rows, cols, m2)
    acc_mu = tl.zeros((BB, HP), dtype=tl.float32)  # partial sums of d mu and d s
    acc_s = acc_mu
    mu, s, dv0, dv1, dv2, dv3 = _momentum_setup(mus_ptr, dvn_ptr, G, H, rows, cols, m2, acc_mu, NG, MOMENTUM, HAS_DVN)
    # W_hh per gate (not transposed: dh_prev += dA_g W_g), loaded once.
    w0, w1, w2, w3 = _gate_weights(whh_ptr, H, cols, cmask, dh, NG, False, ON_CHIP)
    first_t = d * (L - 1)  # the step each row processes first: 0 forward, its own last step in reverse

    for j in range(0, Lmax):
        i = Lmax - 1 - j  # undo the forward's iteration i
        t = i + d * (Lmax - 1 - 2 * i)
        tp = t - 1 + 2 * d  # the step processed before t (its state is h_{t-1})
        active = t < L
        first = t == first_t
        am = active[:, None] & cmask[None, :]
        pm = am & (~first)[:, None]
        if HAS_DOUT:
            dh = dh + _tile(dout_ptr + t * OH, T * OH, rows, cols, am)
        hprev = tl.where(first[:, None], h0, _tile(out_ptr + tp * OH, T * OH, rows, cols, pm))
        _put(hp_ptr + t * OH, T * OH, rows, cols, hprev, am, m2)
        # For learnable momentum, every gate's v_{t-1} and u_t (placeholders otherwise), read first.
        vp0, vp1, vp2, vp3 = dh, dh, dh, dh
        uu0, uu1, uu2, uu3 = dh, dh, dh, dh
        for g in tl.static_range(NG):
            vp, u = _bwd_vu(vs_ptr, v0_ptr, gi_ptr, g, t, tp, T, RS, G, H, rows, cols, first, am, pm, m2, LEARN, HAS_V0)
            vp0, vp1, vp2, vp3 = _with(g, vp, vp0, vp1, vp2, vp3)
            uu0, uu1, uu2, uu3 = _with(g, u, uu0, uu1, uu2, uu3)
        # dh_direct: the part of dL/dh_{t-1} that skips W_hh (GRU's z h_{t-1}); -0.0 so that adding it
        # to the W_hh part is exact and free (x + -0.0 is x: the compiler drops the add).
        dh_direct = tl.full((BB, HP), -0.0, dtype=tl.float32)
        # Every gate's gradients: du_g through the input side, da_g of the hidden side's pre-activation
        # (they differ only for GRU's n gate, whose hidden side is scaled by r).
        if MODE <= 1:
            hcur = _tile(out_ptr + t * OH, T * OH, rows, cols, am)
            if MODE == 0:
                d0 = dh * (1.0 - hcur * hcur)
            else:
                d0 = tl.where(hcur > 0, dh, 0.0)
            du0, du1, du2, du3 = d0, d0, d0, d0
            da0, da1, da2, da3 = d0, d0, d0, d0
        elif MODE == 2:
            r, z, n, ghn = _gate_tiles(gs_ptr + t * (D * 4 * H), GS, H, rows, cols, am, 4)
            dan = dh * (1.0 - z) * (1.0 - n * n)
            daz = dh * (hprev - n) * z * (1.0 - z)
            dar = dan * ghn * r * (1.0 - r)
            dh_direct = dh * z
            du0, du1, du2, du3 = dar, daz, dan, dan
            da0, da1, da2, da3 = dar, daz, dan * r, dan
        else:
            cp = tl.where(first[:, None], c0, _tile(cs_ptr + tp * OH, T * OH, rows, cols, pm))
            ccur = _tile(cs_ptr + t * OH, T * OH, rows, cols, am)
            ig, fg, gg, og = _gate_tiles(gs_ptr + t * (D * 4 * H), GS, H, rows, cols, am, 4)
            tc = _tanh(ccur)
            dct = dc + dh * og * (1.0 - tc * tc)
            di = dct * gg * ig * (1.0 - ig)
            df = dct * cp * fg * (1.0 - fg)
            dg = dct * ig * (1.0 - gg * gg)
            do = dh * tc * og * (1.0 - og)
            dc = tl.where(am, dct * fg, dc)
            du0, du1, du2, du3 = di, df, dg, do
            da0, da1, da2, da3 = di, df, dg, do
        for g in tl.static_range(NG):
            vp = _pick(g, vp0, vp1, vp2, vp3)
            u = _pick(g, uu0, uu1, uu2, uu3)
            da = _pick(g, da0, da1, da2, da3)
            dv = _pick(g, dv0, dv1, dv2, dv3)
            du = _pick(g, du0, du1, du2, du3)
            dv, acc_mu, acc_s = _bwd_gate(
                du,
                da,
                dv,
                vp,
                u,
                acc_mu,
                acc_s,
                mu,
                s,
                am,
                m2,
                da_ptr,
                dgi_ptr,
                g,
                t,
                T,
                RS,
                H,
                rows,
                cols,
                MOMENTUM,
                LEARN,
                STORE_DGI,
            )
            dv0, dv1, dv2, dv3 = _with(g, dv, dv0, dv1, dv2, dv3)
        # dL/dh_{t-1} += dA_g W_g over the gates: on-chip tiles, or streamed once dA is stored.
        dhp = dh_direct
        if ON_CHIP:
            for g in tl.static_range(NG):
                dhp = dhp + _dot(_pick(g, da0, da1, da2, da3), _pick(g, w0, w1, w2, w3), PRECISION)
        else:
            tl.debug_barrier()  # this step's dA is visible to every thread of the program
            for g in tl.static_range(NG):
                dhp = _mm(
                    dhp,
                    da_ptr + t * RS + g * H,
                    T * RS,
                    rows,
                    rmask,
                    H,
                    whh_ptr + g * H * H,
                    H,
                    1,
                    cols,
                    cmask,
                    BK,
                    PRECISION,
                )
        dh = tl.where(am, dhp, dh)
    for t in range(Lmax, T):  # past the block's longest sequence: zeros in every buffer
        _zero(hp_ptr + t * OH, T * OH, rows, cols, m2, BB, HP)
        for g in tl.static_range(NG):
            _zero(da_ptr + t * RS + g * H, T * RS, rows, cols, m2, BB, HP)
            if STORE_DGI:
                _zero(dgi_ptr + t * RS + g * H, T * RS, rows, cols, m2, BB, HP)

    _store_states(dh0_ptr, dc0_ptr, dv0_ptr, dh, dc, dv0, dv1, dv2, dv3, H, rows, cols, m2, MODE, MOMENTUM, NG)
    if LEARN:  # (momentum only) this block's partial sums of d mu and d s
        k = (d * tl.num_programs(0) + pid) * 2
        tl.store(part_ptr + k, tl.sum(tl.sum(acc_mu, 1), 0))
        tl.store(part_ptr + k + 1, tl.sum(tl.sum(acc_s, 1), 0))


# ---------------------------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------------------------
def _config(H: int, dtype: torch.dtype, NG: int) -> tuple[int, int, bool, int]:
    """(HP, BK, ON_CHIP, num_warps) for hidden size H: HP is H padded to a power of two >= 16 (the
    dot's minimum), BK the K-block of the streamed matmul; weights on chip when one direction's
    padded W_hh fits :data:`ON_CHIP_BYTES`; more warps for larger on-chip tiles (fewer registers per
    thread)."""
    HP = max(16, triton.next_power_of_2(H))
    nbytes = NG * HP * HP * torch.empty((), dtype=dtype).element_size()
    on_chip = nbytes <= ON_CHIP_BYTES
    if not on_chip:  # 16 warps at HP = 256: a third fewer spilled bytes a thread than 8 (sm_90 cubins)
        warps = 4 if HP <= 64 else (8 if HP <= 128 else 16)
    else:
        warps = 4 if nbytes <= 16 * 1024 else (8 if nbytes <= 64 * 1024 else 16)
    return HP, (32 if HP >= 32 else 16), on_chip, warps


def dot_precision(dtype: torch.dtype, cuda: bool) -> str:
    """How ``tl.dot`` multiplies weights of ``dtype``: fp32 on CUDA in TF32 exactly when torch.nn's
    RNNs would (cuDNN uses TF32 while ``torch.backends.cudnn.allow_tf32`` is on, torch's default),
    else exact fp32 ("ieee"); bf16/fp16 natively -- except bf16 under the interpreter, whose bf16 dot
    is wrong (numpy has no bfloat16), so it takes the exact fp32 path too."""
    if dtype == torch.float32:
        return "tf32" if cuda and torch.backends.cudnn.allow_tf32 else "ieee"
    if dtype == torch.bfloat16 and not cuda and os.environ.get("TRITON_INTERPRET") == "1":
        return "ieee"
    return "native"


def _launch(kernel: Any, grid: Any, *args: Any, **meta: Any) -> None:
    LAUNCHES[kernel.fn.__name__] += 1
    kernel[grid](*args, **meta)


def _contiguous(*tensors: Tensor | None) -> tuple[Any, ...]:  # each its argument's type
    return tuple(t.contiguous() if t is not None else None for t in tensors)


def _or_stand_in(stand_in: Tensor, *tensors: Tensor | None) -> tuple[Tensor, ...]:
    """The kernel's tensor arguments with ``stand_in`` (any tensor of the device) for each absent one:
    the kernel never reads an absent tensor, its flags say so."""
    return tuple(t if t is not None else stand_in for t in tensors)


def _layer_meta(
    mode: str,
    x: Tensor,
    w_hh: Tensor,
    h0: Tensor | None,
    v0: Tensor | None,
    lengths: Tensor | None,
    mus: Tensor | None,
) -> dict[str, Any]:
    """The compile-time arguments and warps that the forward and backward kernels of one layer share."""
    D, G, H = w_hh.shape
    NG = GATES[mode]
    HP, BK, on_chip, warps = _config(H, x.dtype, NG)
    momentum = mus is not None
    return {
        "MODE": _MODE_ID[mode],
        "MOMENTUM": momentum,
        "HAS_H0": h0 is not None,
        "HAS_V0": momentum and v0 is not None,
        "HAS_LEN": lengths is not None,
        "D": D,
        "NG": NG,
        "BB": BLOCK_B,
        "HP": HP,
        "BK": BK,
        "ON_CHIP": on_chip,
        "PRECISION": dot_precision(w_hh.dtype, w_hh.is_cuda),
        "num_warps": warps,
    }


def check(mode: str, x: Tensor, hidden_size: int) -> None:
    """Raise a ValueError naming the problem when the fused kernels cannot run this call."""
    ok, why = supports(mode, hidden_size, x.dtype)
    if not ok:
        raise ValueError(f"fused_recurrent: {why}")


def fused_forward(
    mode: str,
    x: Tensor,
    lengths: Tensor | None,
    h0: Tensor | None,
    c0: Tensor | None,
    v0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    mus: Tensor | None,
    save: bool = False,
    keep_gi: bool = False,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """One layer, every direction, one launch (layouts in the module docstring). ``lengths`` is an
    int64 tensor on ``x``'s device or None (all ``T``); ``h0``/``c0``/``v0`` None are zeros; ``mus``
    None means no momentum. Returns ``out, h_n, c_n, v_n`` and, with ``save``, what
    :func:`fused_backward` needs: ``gi`` (kept only with ``keep_gi``, for ``d s``), ``gs``, ``cs``,
    ``vs`` (None where a cell has no such buffer)."""
    x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus = _contiguous(
        x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus
    )
    B, T, I = x.shape  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
    D, G, H = w_hh.shape
    momentum = mus is not None
    meta = _layer_meta(mode, x, w_hh, h0, v0, lengths, mus)
    dev, dt = x.device, x.dtype
    fuse = T == 1 and not save  # a decode step: the input projection inside the kernel
    if fuse and meta["ON_CHIP"]:  # the fused projection's temporaries beside on-chip weights: 16 warps spill more
        meta["num_warps"] = min(meta["num_warps"], 8)
    if fuse:
        gi = None
    else:
        x2 = x.reshape(B * T, I)
        w2 = w_ih.reshape(D * G, I).t()
        gi = (torch.addmm(b_ih.reshape(D * G), x2, w2) if b_ih is not None else torch.mm(x2, w2)).view(B, T, D * G)
    out = torch.empty(B, T, D * H, device=dev, dtype=dt)
    h_n = torch.empty(D, B, H, device=dev, dtype=dt)
    c_n = torch.empty(D, B, H, device=dev, dtype=dt) if mode == "lstm" else None
    v_n = torch.empty(D, B, G, device=dev, dtype=dt) if momentum else None
    scr = None if meta["ON_CHIP"] else torch.empty(D, B, meta["HP"], device=dev, dtype=torch.float32)
    gs = torch.empty(B, T, D * 4 * H, device=dev, dtype=dt) if save and mode in ("gru", "lstm") else None
    cs = torch.empty(B, T, D * H, device=dev, dtype=dt) if save and mode == "lstm" else None
    save_v = save and keep_gi and momentum
    vs = torch.empty(B, T, D * G, device=dev, dtype=dt) if save_v else None
    _launch(
        _fwd_kernel,
        (triton.cdiv(B, BLOCK_B), D),
        *_or_stand_in(x, gi, x, w_ih, b_ih, w_hh, b_hh, h0, c0, v0, lengths, mus, out, h_n, c_n, v_n, scr, gs, cs, vs),
        B,
        T,
        H,
        I,
        SAVE=save,
        SAVE_V=save_v,
        FUSE_INPUT=fuse,
        HAS_BIH=b_ih is not None,
        HAS_BHH=b_hh is not None,
        **meta,
    )
    return out, h_n, c_n, v_n, (gi if keep_gi else None), gs, cs, vs


def fused_backward(
    mode: str,
    x: Tensor,
    lengths: Tensor | None,
    h0: Tensor | None,
    c0: Tensor | None,
    v0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    mus: Tensor | None,
    out: Tensor,
    gi: Tensor | None,
    gs: Tensor | None,
    cs: Tensor | None,
    vs: Tensor | None,
    d_out: Tensor | None,
    d_hn: Tensor | None,
    d_cn: Tensor | None,
    d_vn: Tensor | None,
    needs: tuple[bool, ...],
) -> tuple[Tensor | None, ...]:
    """BPTT of :func:`fused_forward` for one layer, every direction in one launch. ``needs`` says
    which gradients to return, in the order ``x, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus``; an
    upstream gradient may be None (zero). Returns those nine gradients (None where not needed)."""
    # Upstream gradients are often expanded (stride 0, from a sum) or sliced: the kernel reads rows.
    d_out, d_hn, d_cn, d_vn = _contiguous(d_out, d_hn, d_cn, d_vn)
    B, T, I = x.shape  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
    D, G, H = w_hh.shape
    momentum = mus is not None
    learn = momentum and needs[8]
    if learn and gi is None:
        raise ValueError("fused_backward: the gradient of mu/s needs the forward's gi (keep_gi=True)")
    meta = _layer_meta(mode, x, w_hh, h0, v0, lengths, mus)
    dev, dt = x.device, x.dtype
    store_dgi = momentum or mode == "gru"
    da = torch.empty(B, T, D * G, device=dev, dtype=dt)
    dgi = torch.empty(B, T, D * G, device=dev, dtype=dt) if store_dgi else da
    hprev = torch.empty(B, T, D * H, device=dev, dtype=dt)
    dh0 = torch.empty(D, B, H, device=dev, dtype=h0.dtype if h0 is not None else dt)
    dc0 = torch.empty(D, B, H, device=dev, dtype=dt) if mode == "lstm" else None
    dv0 = torch.empty(D, B, G, device=dev, dtype=dt) if momentum else None
    nblocks = triton.cdiv(B, BLOCK_B)
    part = torch.empty(D * nblocks, 2, device=dev, dtype=torch.float32) if learn else None
    _launch(
        _bwd_kernel,
        (nblocks, D),
        *_or_stand_in(x, d_out, d_hn, d_cn, d_vn, out, h0, c0, v0, gi, gs, cs, vs, w_hh, lengths, mus),
        *_or_stand_in(x, da, dgi, hprev, dh0, dc0, dv0, part),
        B,
        T,
        H,
        LEARN=learn,
        STORE_DGI=store_dgi,
        HAS_DOUT=d_out is not None,
        HAS_DHN=d_hn is not None,
        HAS_DCN=d_cn is not None,
        HAS_DVN=d_vn is not None,
        **meta,
    )
    BT = B * T
    dgi2 = dgi.view(BT, D * G)
    n_x, n_h0, n_c0, n_v0, n_wih, n_whh, n_bih, n_bhh, n_mus = needs
    dx = torch.mm(dgi2, w_ih.reshape(D * G, I)).view(B, T, I) if n_x else None
    dw_ih = torch.mm(dgi2.t(), x.reshape(BT, I)).view(D, G, I) if n_wih else None
    db_ih = dgi2.sum(0).view(D, G) if n_bih else None
    # dW_hh[d] = dA_d^T H_prev_d: one batched matmul over the directions, on strided views.
    dw_hh = torch.bmm(da.view(BT, D, G).permute(1, 2, 0), hprev.view(BT, D, H).transpose(0, 1)) if n_whh else None
    db_hh = da.view(BT, D * G).sum(0).view(D, G) if n_bhh else None
    dmus = part.sum(0) if part is not None else None  # part is made when learn
    return (dx, dh0 if n_h0 else None, dc0 if n_c0 else None, dv0 if n_v0 else None, dw_ih, dw_hh, db_ih, db_hh, dmus)
