"""Fused Triton kernels for one recurrent layer in one direction (forward, BPTT backward, decode step).

Same contract as :func:`namemodels.kernels.naive.naive_layer` (read its docstring): batch-first padded
``x (B, T, I)``, per-sequence ``lengths``, zero outputs at padding, final states at each sequence's own
end, ``reverse`` runs each sequence backwards from its own end, momentum
``v_t = mu v_{t-1} + s (W_ih x_t + b_ih)`` replacing ``W_ih x_t + b_ih``.

Design (flash-linear-attention ``fused_recurrent`` style):

* The input projection ``W_ih x_t + b_ih`` for all steps is one torch matmul outside the kernel.
* One launch runs the whole sequence. Each program owns a block of ``BLOCK_B = 16`` batch rows and
  loops over time up to the longest sequence *of its block* (no work past it; rows that ended earlier
  are masked). The hidden state (and ``c``, and the momentum state ``v``, one ``(BLOCK_B, HP)`` tile
  per gate) stays in registers across steps; the recurrent matmul ``h W_hh^T`` is done with
  ``tl.dot`` in K-blocks of ``BK`` (16 or 32), reading ``h`` back from a small per-program scratch row
  block (cache resident) and ``W_hh`` from L2. Gates, state update, momentum scan and the output store
  happen in the same step. Accumulation is fp32. fp32 weights on CUDA follow torch.nn's RNNs: TF32
  tensor cores while ``torch.backends.cudnn.allow_tf32`` is on (torch's default; ~7e-5 from exact
  on an H = 256, T = 64 LSTM), exact fp32 (``input_precision="ieee"``, ~1e-6, 9x slower on an H100)
  when it is off; bf16/fp16 weights use the native tensor-core dot.
* For training the forward saves what BPTT needs and nothing it can rebuild: the outputs (they are
  the hidden states), the activated gates (GRU: ``r, z, n`` and ``W_hn h + b_hn``; LSTM: ``i, f, g, o``)
  and the cell states (LSTM), the momentum states (momentum cells), all fp32.
* The backward kernel runs the steps in reverse order per program, keeping ``dh`` (``dc``, ``dv``) on
  chip, and writes the pre-activation gradients ``dA (B, T, G)`` (and, for GRU/momentum, the
  gradient w.r.t. the gate input ``dV``). Parameter and input gradients are then a few large torch
  matmuls: ``dW_hh = dA^T H_prev``, ``dx = dGI W_ih``, ``dW_ih = dGI^T x``, and the sums for the biases
  and for learnable ``mu``/``s``.
* :func:`fused_step` is a decode step (T = 1) with the input projection fused into the same kernel.

Supported: modes ``rnn_tanh``, ``rnn_relu``, ``gru``, ``lstm`` (each with or without momentum);
``1 <= hidden_size <= 256`` (padded internally to a power of two >= 16); dtypes float32, bfloat16,
float16 (weights in the input's dtype); any batch size, length and input size. CUDA tensors, or CPU
tensors under ``TRITON_INTERPRET=1`` (Triton's interpreter, used by the tests). Written against the
Triton 3.6 API (``tl.dot(..., input_precision=)``, ``tl.debug_barrier``, ``tl.static_range``).
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch
from torch import Tensor

import triton
import triton.language as tl

from .cells import GATES

MAX_HIDDEN = 256
BLOCK_B = 16
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MODE_ID = {"rnn_tanh": 0, "rnn_relu": 1, "gru": 2, "lstm": 3}


def supports(mode: str, hidden_size: int, dtype: torch.dtype) -> Tuple[bool, str]:
    """Whether the fused kernels handle this configuration, and why not if they don't."""
    if mode not in _MODE_ID:
        return False, f"mode {mode!r} has no fused kernel (supported: {', '.join(_MODE_ID)})"
    if not isinstance(hidden_size, int) or hidden_size < 1 or hidden_size > MAX_HIDDEN:
        return False, (f"hidden_size={hidden_size} is outside the fused kernels' range 1..{MAX_HIDDEN} "
                       "(the per-program state tile would not fit on chip)")
    if dtype not in _DTYPES:
        return False, f"dtype {dtype} is not supported by the fused kernels (float32, bfloat16, float16)"
    return True, f"fused Triton kernels support {mode}, hidden_size={hidden_size}, {dtype}"


# ---------------------------------------------------------------------------------------------
# Triton helpers
# ---------------------------------------------------------------------------------------------
@triton.jit
def _mm(acc, a_ptr, a_stride, rows, rmask, K, w_ptr, w_stride_k, w_stride_n, cols, cmask,
        BK: tl.constexpr, PRECISION: tl.constexpr):
    """acc[b, n] += sum_k A[rows[b], k] * w_ptr[k * w_stride_k + cols[n] * w_stride_n], k < K.

    ``A @ W[r0:]^T`` is ``w_ptr = W + r0 * ld, w_stride_k = 1, w_stride_n = ld``; ``A @ W[r0:]`` is
    ``w_stride_k = ld, w_stride_n = 1``."""
    for k0 in range(0, K, BK):
        ks = tl.arange(0, BK).to(tl.int64) + k0
        kmask = ks < K
        a = tl.load(a_ptr + rows[:, None] * a_stride + ks[None, :],
                    mask=rmask[:, None] & kmask[None, :], other=0.0)
        w = tl.load(w_ptr + ks[:, None] * w_stride_k + cols[None, :] * w_stride_n,
                    mask=kmask[:, None] & cmask[None, :], other=0.0)
        if PRECISION == "native":
            acc = tl.dot(a.to(w.dtype), w, acc)
        else:   # fp32 operands, "ieee" (exact) or "tf32"
            acc = tl.dot(a.to(tl.float32), w.to(tl.float32), acc, input_precision=PRECISION)
    return acc


@triton.jit
def _gate_in(gi_ptr, x_ptr, wih_ptr, bih_ptr, g, t, T, G, H, I, rows, rmask, cols, cmask, am,
             FUSE_INPUT: tl.constexpr, HAS_BIH: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr,
             BK: tl.constexpr, PRECISION: tl.constexpr):
    """Input-side pre-activation of gate g at step t: W_ih x_t + b_ih (projected outside, or here)."""
    if FUSE_INPUT:
        u = tl.zeros((BB, HP), dtype=tl.float32)
        u = _mm(u, x_ptr, I, rows, rmask, I, wih_ptr + g * H * I, 1, I, cols, cmask, BK, PRECISION)
        if HAS_BIH:
            u += tl.load(bih_ptr + g * H + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    else:
        u = tl.load(gi_ptr + rows[:, None] * (T * G) + t * G + g * H + cols[None, :],
                    mask=am, other=0.0).to(tl.float32)
    return u


@triton.jit
def _gate_hh(scr_ptr, whh_ptr, bhh_ptr, g, H, rows, rmask, cols, cmask,
             HAS_BHH: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr, BK: tl.constexpr,
             PRECISION: tl.constexpr):
    """Hidden-side pre-activation of gate g: h W_hh[g]^T + b_hh[g] (h read from scratch)."""
    acc = tl.zeros((BB, HP), dtype=tl.float32)
    acc = _mm(acc, scr_ptr, HP, rows, rmask, H, whh_ptr + g * H * H, 1, H, cols, cmask, BK, PRECISION)
    if HAS_BHH:
        acc += tl.load(bhh_ptr + g * H + cols, mask=cmask, other=0.0).to(tl.float32)[None, :]
    return acc


@triton.jit
def _block(pid, B, H, len_ptr, BB: tl.constexpr, HP: tl.constexpr):
    """This program's batch rows and hidden columns with their masks, and the rows' lengths."""
    rows = (pid * BB + tl.arange(0, BB)).to(tl.int64)  # int64 offsets: no overflow on big B*T*G
    rmask = rows < B
    cols = tl.arange(0, HP).to(tl.int64)
    cmask = cols < H
    m2 = rmask[:, None] & cmask[None, :]
    L = tl.load(len_ptr + rows, mask=rmask, other=0)
    return rows, rmask, cols, cmask, m2, L, tl.max(L, 0)


@triton.jit
def _tile(ptr, stride, rows, cols, m2):
    """A masked (BB, HP) tile of a row-major tensor whose rows are ``stride`` apart, in fp32."""
    return tl.load(ptr + rows[:, None] * stride + cols[None, :], mask=m2, other=0.0).to(tl.float32)


@triton.jit
def _load_v0(v0_ptr, g, G, H, rows, cols, m2, HAS_V0: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr):
    if HAS_V0:
        v = _tile(v0_ptr + g * H, G, rows, cols, m2)
    else:
        v = tl.zeros((BB, HP), dtype=tl.float32)
    return v


@triton.jit
def _momentum(u, v, mu, s, am, vs_ptr, g, t, T, G, H, rows, cols, MOMENTUM: tl.constexpr, SAVE: tl.constexpr):
    """Apply the momentum scan to gate g's input; returns (effective input, carried v)."""
    if MOMENTUM:
        vn = mu * v + s * u
        v = tl.where(am, vn, v)
        u = vn
        if SAVE:
            tl.store(vs_ptr + rows[:, None] * (T * G) + t * G + g * H + cols[None, :], vn, mask=am)
    return u, v


# ---------------------------------------------------------------------------------------------
# Forward kernel: whole sequence in one launch
# ---------------------------------------------------------------------------------------------
# Batch size and length vary from call to call: not specialised on (one compile serves them all).
@triton.jit(do_not_specialize=["B", "T"])
def _fwd_kernel(gi_ptr, x_ptr, wih_ptr, bih_ptr, whh_ptr, bhh_ptr, h0_ptr, c0_ptr, v0_ptr, len_ptr,
                mu_ptr, s_ptr, out_ptr, hn_ptr, cn_ptr, vn_ptr, scr_ptr, gs_ptr, cs_ptr, vs_ptr,
                B, T, H, I,
                MODE: tl.constexpr, MOMENTUM: tl.constexpr, REVERSE: tl.constexpr, SAVE: tl.constexpr,
                FUSE_INPUT: tl.constexpr, HAS_BIH: tl.constexpr, HAS_BHH: tl.constexpr,
                HAS_V0: tl.constexpr, NG: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr,
                BK: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    G = NG * H
    rows, rmask, cols, cmask, m2, L, Lmax = _block(pid, B, H, len_ptr, BB, HP)

    h = _tile(h0_ptr, H, rows, cols, m2)
    tl.store(scr_ptr + rows[:, None] * HP + cols[None, :], h, mask=rmask[:, None])
    c = tl.zeros((BB, HP), dtype=tl.float32)
    if MODE == 3:
        c = _tile(c0_ptr, H, rows, cols, m2)
    v0 = tl.zeros((BB, HP), dtype=tl.float32)
    v1 = tl.zeros((BB, HP), dtype=tl.float32)
    v2 = tl.zeros((BB, HP), dtype=tl.float32)
    v3 = tl.zeros((BB, HP), dtype=tl.float32)
    mu = 0.0
    s = 0.0
    if MOMENTUM:
        mu = tl.load(mu_ptr).to(tl.float32)
        s = tl.load(s_ptr).to(tl.float32)
        v0 = _load_v0(v0_ptr, 0, G, H, rows, cols, m2, HAS_V0, BB, HP)
        if NG > 1:
            v1 = _load_v0(v0_ptr, 1, G, H, rows, cols, m2, HAS_V0, BB, HP)
            v2 = _load_v0(v0_ptr, 2, G, H, rows, cols, m2, HAS_V0, BB, HP)
        if NG > 3:
            v3 = _load_v0(v0_ptr, 3, G, H, rows, cols, m2, HAS_V0, BB, HP)

    for i in range(0, Lmax):
        if REVERSE:
            t = Lmax - 1 - i
        else:
            t = i
        active = (t < L) & rmask
        am = active[:, None] & cmask[None, :]
        tl.debug_barrier()  # scratch h of the previous step is visible to every thread
        u0 = _gate_in(gi_ptr, x_ptr, wih_ptr, bih_ptr, 0, t, T, G, H, I, rows, rmask, cols, cmask, am,
                      FUSE_INPUT, HAS_BIH, BB, HP, BK, PRECISION)
        if MOMENTUM:
            u0, v0 = _momentum(u0, v0, mu, s, am, vs_ptr, 0, t, T, G, H, rows, cols, MOMENTUM, SAVE)
        a0 = _gate_hh(scr_ptr, whh_ptr, bhh_ptr, 0, H, rows, rmask, cols, cmask, HAS_BHH, BB, HP, BK, PRECISION)
        gbase = gs_ptr + rows[:, None] * (T * 4 * H) + t * (4 * H) + cols[None, :]
        if MODE == 0:
            h_new = (2.0 / (1.0 + tl.exp(-2.0 * (u0 + a0))) - 1.0)
        elif MODE == 1:
            h_new = tl.maximum(u0 + a0, 0.0)
        else:
            u1 = _gate_in(gi_ptr, x_ptr, wih_ptr, bih_ptr, 1, t, T, G, H, I, rows, rmask, cols, cmask, am,
                          FUSE_INPUT, HAS_BIH, BB, HP, BK, PRECISION)
            if MOMENTUM:
                u1, v1 = _momentum(u1, v1, mu, s, am, vs_ptr, 1, t, T, G, H, rows, cols, MOMENTUM, SAVE)
            a1 = _gate_hh(scr_ptr, whh_ptr, bhh_ptr, 1, H, rows, rmask, cols, cmask, HAS_BHH, BB, HP, BK, PRECISION)
            u2 = _gate_in(gi_ptr, x_ptr, wih_ptr, bih_ptr, 2, t, T, G, H, I, rows, rmask, cols, cmask, am,
                          FUSE_INPUT, HAS_BIH, BB, HP, BK, PRECISION)
            if MOMENTUM:
                u2, v2 = _momentum(u2, v2, mu, s, am, vs_ptr, 2, t, T, G, H, rows, cols, MOMENTUM, SAVE)
            a2 = _gate_hh(scr_ptr, whh_ptr, bhh_ptr, 2, H, rows, rmask, cols, cmask, HAS_BHH, BB, HP, BK, PRECISION)
            if MODE == 2:
                r = (1.0 / (1.0 + tl.exp(-(u0 + a0))))
                z = (1.0 / (1.0 + tl.exp(-(u1 + a1))))
                n = (2.0 / (1.0 + tl.exp(-2.0 * (u2 + r * a2))) - 1.0)
                h_new = (1.0 - z) * n + z * h
                if SAVE:
                    tl.store(gbase, r, mask=am)
                    tl.store(gbase + H, z, mask=am)
                    tl.store(gbase + 2 * H, n, mask=am)
                    tl.store(gbase + 3 * H, a2, mask=am)
            else:
                u3 = _gate_in(gi_ptr, x_ptr, wih_ptr, bih_ptr, 3, t, T, G, H, I, rows, rmask, cols, cmask, am,
                              FUSE_INPUT, HAS_BIH, BB, HP, BK, PRECISION)
                if MOMENTUM:
                    u3, v3 = _momentum(u3, v3, mu, s, am, vs_ptr, 3, t, T, G, H, rows, cols, MOMENTUM, SAVE)
                a3 = _gate_hh(scr_ptr, whh_ptr, bhh_ptr, 3, H, rows, rmask, cols, cmask, HAS_BHH, BB, HP, BK,
                              PRECISION)
                ig = (1.0 / (1.0 + tl.exp(-(u0 + a0))))
                fg = (1.0 / (1.0 + tl.exp(-(u1 + a1))))
                gg = (2.0 / (1.0 + tl.exp(-2.0 * (u2 + a2))) - 1.0)
                og = (1.0 / (1.0 + tl.exp(-(u3 + a3))))
                c_new = fg * c + ig * gg
                h_new = og * (2.0 / (1.0 + tl.exp(-2.0 * (c_new))) - 1.0)
                c = tl.where(am, c_new, c)
                if SAVE:
                    tl.store(gbase, ig, mask=am)
                    tl.store(gbase + H, fg, mask=am)
                    tl.store(gbase + 2 * H, gg, mask=am)
                    tl.store(gbase + 3 * H, og, mask=am)
                    tl.store(cs_ptr + rows[:, None] * (T * H) + t * H + cols[None, :], c_new, mask=am)
        h = tl.where(am, h_new, h)
        tl.store(out_ptr + rows[:, None] * (T * H) + t * H + cols[None, :],
                 h_new.to(out_ptr.dtype.element_ty), mask=am)
        tl.debug_barrier()  # every thread has read the old h before it is overwritten
        tl.store(scr_ptr + rows[:, None] * HP + cols[None, :], h, mask=rmask[:, None])

    tl.store(hn_ptr + rows[:, None] * H + cols[None, :], h.to(hn_ptr.dtype.element_ty), mask=m2)
    if MODE == 3:
        tl.store(cn_ptr + rows[:, None] * H + cols[None, :], c.to(cn_ptr.dtype.element_ty), mask=m2)
    if MOMENTUM:
        vb = vn_ptr + rows[:, None] * G + cols[None, :]
        tl.store(vb, v0.to(vn_ptr.dtype.element_ty), mask=m2)
        if NG > 1:
            tl.store(vb + H, v1.to(vn_ptr.dtype.element_ty), mask=m2)
            tl.store(vb + 2 * H, v2.to(vn_ptr.dtype.element_ty), mask=m2)
        if NG > 3:
            tl.store(vb + 3 * H, v3.to(vn_ptr.dtype.element_ty), mask=m2)


# ---------------------------------------------------------------------------------------------
# Backward kernel (BPTT): steps in reverse processing order, dh/dc/dv carried on chip
# ---------------------------------------------------------------------------------------------
@triton.jit
def _bwd_dv(du, dvc, mu, am, dgi_ptr, g, t, T, G, H, rows, cols,
            MOMENTUM: tl.constexpr, STORE_DGI: tl.constexpr):
    """Gate g's input gradient: through the momentum scan (stores dV_t, returns new carry) or plain."""
    if MOMENTUM:
        dv = du + dvc
        tl.store(dgi_ptr + rows[:, None] * (T * G) + t * G + g * H + cols[None, :], dv, mask=am)
        dvc = tl.where(am, mu * dv, dvc)
    else:
        if STORE_DGI:
            tl.store(dgi_ptr + rows[:, None] * (T * G) + t * G + g * H + cols[None, :], du, mask=am)
    return dvc


@triton.jit(do_not_specialize=["B", "T"])
def _bwd_kernel(dout_ptr, dhn_ptr, dcn_ptr, dvn_ptr, out_ptr, h0_ptr, c0_ptr, gs_ptr, cs_ptr,
                whh_ptr, len_ptr, mu_ptr, da_ptr, dgi_ptr, dh0_ptr, dc0_ptr, dv0_ptr,
                B, T, H,
                MODE: tl.constexpr, MOMENTUM: tl.constexpr, REVERSE: tl.constexpr,
                STORE_DGI: tl.constexpr, NG: tl.constexpr, BB: tl.constexpr, HP: tl.constexpr,
                BK: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    G = NG * H
    rows, rmask, cols, cmask, m2, L, Lmax = _block(pid, B, H, len_ptr, BB, HP)

    dh = _tile(dhn_ptr, H, rows, cols, m2)
    h0 = _tile(h0_ptr, H, rows, cols, m2)
    dc = tl.zeros((BB, HP), dtype=tl.float32)
    c0 = tl.zeros((BB, HP), dtype=tl.float32)
    if MODE == 3:
        dc = _tile(dcn_ptr, H, rows, cols, m2)
        c0 = _tile(c0_ptr, H, rows, cols, m2)
    dv0 = tl.zeros((BB, HP), dtype=tl.float32)
    dv1 = tl.zeros((BB, HP), dtype=tl.float32)
    dv2 = tl.zeros((BB, HP), dtype=tl.float32)
    dv3 = tl.zeros((BB, HP), dtype=tl.float32)
    mu = 0.0
    if MOMENTUM:
        mu = tl.load(mu_ptr).to(tl.float32)
        dv0 = _tile(dvn_ptr, G, rows, cols, m2)
        if NG > 1:
            dv1 = _tile(dvn_ptr + H, G, rows, cols, m2)
            dv2 = _tile(dvn_ptr + 2 * H, G, rows, cols, m2)
        if NG > 3:
            dv3 = _tile(dvn_ptr + 3 * H, G, rows, cols, m2)

    for i in range(0, Lmax):
        if REVERSE:
            t = i
            tp = t + 1
            first = tp >= L  # the step processed first in forward: its h_prev is h0
        else:
            t = Lmax - 1 - i
            tp = t - 1
            first = (rows * 0 + t) == 0
        active = (t < L) & rmask
        am = active[:, None] & cmask[None, :]
        pm = am & (~first)[:, None]
        dh = dh + _tile(dout_ptr + t * H, T * H, rows, cols, am)
        dab = da_ptr + rows[:, None] * (T * G) + t * G + cols[None, :]
        gbase = gs_ptr + t * (4 * H) + rows[:, None] * (T * 4 * H) + cols[None, :]
        dh_direct = tl.zeros((BB, HP), dtype=tl.float32)
        if MODE <= 1:
            hcur = _tile(out_ptr + t * H, T * H, rows, cols, am)
            if MODE == 0:
                d0 = dh * (1.0 - hcur * hcur)
            else:
                d0 = tl.where(hcur > 0, dh, 0.0)
            tl.store(dab, d0, mask=am)
            if STORE_DGI:
                dv0 = _bwd_dv(d0, dv0, mu, am, dgi_ptr, 0, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
        elif MODE == 2:
            hp = _tile(out_ptr + tp * H, T * H, rows, cols, pm)
            hp = tl.where(first[:, None], h0, hp)
            r = tl.load(gbase, mask=am, other=0.0).to(tl.float32)
            z = tl.load(gbase + H, mask=am, other=0.0).to(tl.float32)
            n = tl.load(gbase + 2 * H, mask=am, other=0.0).to(tl.float32)
            ghn = tl.load(gbase + 3 * H, mask=am, other=0.0).to(tl.float32)
            dan = dh * (1.0 - z) * (1.0 - n * n)
            daz = dh * (hp - n) * z * (1.0 - z)
            dar = dan * ghn * r * (1.0 - r)
            dh_direct = dh * z
            tl.store(dab, dar, mask=am)
            tl.store(dab + H, daz, mask=am)
            tl.store(dab + 2 * H, dan * r, mask=am)
            if STORE_DGI:
                dv0 = _bwd_dv(dar, dv0, mu, am, dgi_ptr, 0, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
            if STORE_DGI:
                dv1 = _bwd_dv(daz, dv1, mu, am, dgi_ptr, 1, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
            if STORE_DGI:
                dv2 = _bwd_dv(dan, dv2, mu, am, dgi_ptr, 2, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
        else:
            cp = _tile(cs_ptr + tp * H, T * H, rows, cols, pm)
            cp = tl.where(first[:, None], c0, cp)
            ccur = _tile(cs_ptr + t * H, T * H, rows, cols, am)
            ig = tl.load(gbase, mask=am, other=0.0).to(tl.float32)
            fg = tl.load(gbase + H, mask=am, other=0.0).to(tl.float32)
            gg = tl.load(gbase + 2 * H, mask=am, other=0.0).to(tl.float32)
            og = tl.load(gbase + 3 * H, mask=am, other=0.0).to(tl.float32)
            tc = (2.0 / (1.0 + tl.exp(-2.0 * (ccur))) - 1.0)
            dct = dc + dh * og * (1.0 - tc * tc)
            di = dct * gg * ig * (1.0 - ig)
            df = dct * cp * fg * (1.0 - fg)
            dg = dct * ig * (1.0 - gg * gg)
            do = dh * tc * og * (1.0 - og)
            dc = tl.where(am, dct * fg, dc)
            tl.store(dab, di, mask=am)
            tl.store(dab + H, df, mask=am)
            tl.store(dab + 2 * H, dg, mask=am)
            tl.store(dab + 3 * H, do, mask=am)
            if STORE_DGI:
                dv0 = _bwd_dv(di, dv0, mu, am, dgi_ptr, 0, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
            if STORE_DGI:
                dv1 = _bwd_dv(df, dv1, mu, am, dgi_ptr, 1, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
            if STORE_DGI:
                dv2 = _bwd_dv(dg, dv2, mu, am, dgi_ptr, 2, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
            if STORE_DGI:
                dv3 = _bwd_dv(do, dv3, mu, am, dgi_ptr, 3, t, T, G, H, rows, cols, MOMENTUM, STORE_DGI)
        tl.debug_barrier()  # this step's dA is visible to every thread of the program
        dhp = dh_direct
        for g in tl.static_range(NG):
            dhp = _mm(dhp, da_ptr + t * G + g * H, T * G, rows, rmask, H, whh_ptr + g * H * H, H, 1, cols, cmask,
                      BK, PRECISION)
        dh = tl.where(am, dhp, dh)

    tl.store(dh0_ptr + rows[:, None] * H + cols[None, :], dh, mask=m2)
    if MODE == 3:
        tl.store(dc0_ptr + rows[:, None] * H + cols[None, :], dc, mask=m2)
    if MOMENTUM:
        vb = dv0_ptr + rows[:, None] * G + cols[None, :]
        tl.store(vb, dv0, mask=m2)
        if NG > 1:
            tl.store(vb + H, dv1, mask=m2)
            tl.store(vb + 2 * H, dv2, mask=m2)
        if NG > 3:
            tl.store(vb + 3 * H, dv3, mask=m2)


# ---------------------------------------------------------------------------------------------
# Host side
# ---------------------------------------------------------------------------------------------
def _pads(H: int) -> Tuple[int, int]:
    HP = max(16, triton.next_power_of_2(H))
    return HP, (32 if HP >= 32 else 16)


def _precision(w: Tensor) -> str:
    """How ``tl.dot`` multiplies: fp32 weights on CUDA in TF32 exactly when torch.nn's RNNs would
    (cuDNN uses TF32 while ``torch.backends.cudnn.allow_tf32`` is on, torch's default), else exact
    fp32 ("ieee"); bf16/fp16 natively -- except bf16 under the interpreter, whose bf16 dot is wrong
    (numpy has no bfloat16), so it takes the exact fp32 path too."""
    if w.dtype == torch.float32:
        return "tf32" if w.is_cuda and torch.backends.cudnn.allow_tf32 else "ieee"
    if w.dtype == torch.bfloat16 and os.environ.get("TRITON_INTERPRET") == "1":
        return "ieee"
    return "native"


def _warps(H: int) -> int:
    return 4 if H <= 64 else 8


def _scalar(value, like: Tensor) -> Tensor:
    """mu/s as a (1,) fp32 device tensor for the kernels (detached)."""
    if torch.is_tensor(value):
        return value.detach().to(device=like.device, dtype=torch.float32).reshape(1)
    return torch.tensor([float(value)], dtype=torch.float32, device=like.device)


def _check(mode: str, x: Tensor, w_hh: Tensor) -> None:
    ok, why = supports(mode, int(w_hh.shape[1]), x.dtype)
    if not ok:
        raise ValueError(f"fused_recurrent: {why}")


def _lengths(lengths: Optional[Tensor], B: int, T: int, device) -> Tensor:
    if lengths is None:
        return torch.full((B,), T, dtype=torch.int64, device=device)
    return lengths.to(device=device, dtype=torch.int64).contiguous()


def _prev_seq(seq: Tensor, init: Tensor, lengths: Tensor, reverse: bool) -> Tensor:
    """State before each step (B, T, D): the previous processed step's state, or ``init`` first."""
    B, T, D = seq.shape
    if not reverse:
        return torch.cat([init.unsqueeze(1).to(seq.dtype), seq[:, :-1]], 1)
    shifted = torch.cat([seq[:, 1:], seq.new_zeros(B, 1, D)], 1)
    t = torch.arange(T, device=seq.device).view(1, T, 1)
    first = t == (lengths.view(B, 1, 1) - 1)
    return torch.where(first, init.unsqueeze(1).to(seq.dtype), shifted)


def _forward(mode, x, lens, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mu, s, reverse, save, gi=None):
    B, T, _ = x.shape
    H = w_hh.shape[1]
    NG = GATES[mode]
    G = NG * H
    HP, BK = _pads(H)
    momentum = mu is not None
    dev, dt = x.device, x.dtype
    if gi is None:
        gi = torch.matmul(x, w_ih.t())
        if b_ih is not None:
            gi = gi + b_ih
    gi = gi.contiguous()
    out = torch.zeros(B, T, H, device=dev, dtype=dt)
    h_n = torch.empty(B, H, device=dev, dtype=dt)
    c_n = torch.empty(B, H, device=dev, dtype=dt) if mode == "lstm" else None
    v_n = torch.empty(B, G, device=dev, dtype=dt) if momentum else None
    scr = torch.empty(B, HP, device=dev, dtype=torch.float32)
    dummy = torch.empty(1, device=dev, dtype=torch.float32)
    gs = torch.empty(B, T, 4 * H, device=dev, dtype=torch.float32) if save and mode in ("gru", "lstm") else dummy
    cs = torch.empty(B, T, H, device=dev, dtype=torch.float32) if save and mode == "lstm" else dummy
    # zeros, not empty: the kernel writes active steps only, and d mu sums dV * v_prev over every
    # step, so garbage at padding (0 * NaN) would poison the gradient.
    vs = torch.zeros(B, T, G, device=dev, dtype=torch.float32) if save and momentum else dummy
    mu_t = _scalar(mu, x) if momentum else dummy
    s_t = _scalar(s, x) if momentum else dummy
    grid = (triton.cdiv(B, BLOCK_B),)
    _fwd_kernel[grid](
        gi, dummy, dummy, dummy, w_hh.contiguous(), b_hh.contiguous() if b_hh is not None else dummy,
        h0.contiguous(), c0.contiguous() if c0 is not None else dummy,
        v0.contiguous() if v0 is not None else dummy, lens, mu_t, s_t,
        out, h_n, c_n if c_n is not None else dummy, v_n if v_n is not None else dummy, scr, gs, cs, vs,
        B, T, H, 1,
        MODE=_MODE_ID[mode], MOMENTUM=momentum, REVERSE=bool(reverse), SAVE=bool(save), FUSE_INPUT=False,
        HAS_BIH=False, HAS_BHH=b_hh is not None, HAS_V0=v0 is not None, NG=NG, BB=BLOCK_B, HP=HP, BK=BK,
        PRECISION=_precision(w_hh), num_warps=_warps(H))
    return out, h_n, c_n, v_n, gi, gs, cs, vs


class FusedRecurrentFunction(torch.autograd.Function):
    """One layer, one direction, all seven cells: forward and BPTT on the fused kernels."""

    @staticmethod
    def forward(ctx, mode, reverse, lengths, x, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mu, s):
        momentum = mu is not None
        B, T, _ = x.shape
        lens = _lengths(lengths, B, T, x.device)
        out, h_n, c_n, v_n, gi, gs, cs, vs = _forward(mode, x, lens, h0, c0, v0, w_ih, w_hh, b_ih, b_hh,
                                                      mu, s, reverse, save=True)
        mu_t = _scalar(mu, x) if momentum else None
        s_t = _scalar(s, x) if momentum else None
        s_needs = momentum and torch.is_tensor(s) and s.requires_grad
        ctx.save_for_backward(x, h0, c0, v0, w_ih, w_hh, lens, out, gs, cs, vs, mu_t, s_t,
                              gi if s_needs else None)
        ctx.mode, ctx.reverse, ctx.momentum = mode, bool(reverse), momentum
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        ctx.mu_info = (torch.is_tensor(mu), mu.dtype if torch.is_tensor(mu) else None,
                       mu.shape if torch.is_tensor(mu) else None)
        ctx.s_info = (torch.is_tensor(s), s.dtype if torch.is_tensor(s) else None,
                      s.shape if torch.is_tensor(s) else None)
        return out, h_n, c_n, v_n

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn, d_vn):
        x, h0, c0, v0, w_ih, w_hh, lens, out, gs, cs, vs, mu_t, s_t, gi = ctx.saved_tensors
        mode, reverse, momentum = ctx.mode, ctx.reverse, ctx.momentum
        B, T, I = x.shape
        H = w_hh.shape[1]
        NG = GATES[mode]
        G = NG * H
        HP, BK = _pads(H)
        dev = x.device
        f32 = torch.float32
        dummy = torch.empty(1, device=dev, dtype=f32)
        d_out = d_out.contiguous() if d_out is not None else torch.zeros(B, T, H, device=dev, dtype=x.dtype)
        d_hn = d_hn.contiguous() if d_hn is not None else torch.zeros(B, H, device=dev, dtype=x.dtype)
        if mode == "lstm":
            d_cn = d_cn.contiguous() if d_cn is not None else torch.zeros(B, H, device=dev, dtype=x.dtype)
        if momentum:
            d_vn = d_vn.contiguous() if d_vn is not None else torch.zeros(B, G, device=dev, dtype=x.dtype)
        store_dgi = momentum or mode == "gru"
        da = torch.zeros(B, T, G, device=dev, dtype=f32)
        dgi = torch.zeros(B, T, G, device=dev, dtype=f32) if store_dgi else da
        dh0 = torch.empty(B, H, device=dev, dtype=f32)
        dc0 = torch.empty(B, H, device=dev, dtype=f32) if mode == "lstm" else dummy
        dv0 = torch.empty(B, G, device=dev, dtype=f32) if momentum else dummy
        grid = (triton.cdiv(B, BLOCK_B),)
        _bwd_kernel[grid](
            d_out, d_hn, d_cn if mode == "lstm" else dummy, d_vn if momentum else dummy, out, h0.contiguous(),
            c0.contiguous() if c0 is not None else dummy, gs, cs, w_hh.contiguous(), lens,
            mu_t if momentum else dummy, da, dgi, dh0, dc0, dv0,
            B, T, H,
            MODE=_MODE_ID[mode], MOMENTUM=momentum, REVERSE=reverse, STORE_DGI=store_dgi, NG=NG, BB=BLOCK_B,
            HP=HP, BK=BK, PRECISION=_precision(w_hh), num_warps=_warps(H))
        needs = ctx.needs_input_grad
        # needs: mode, reverse, lengths, x, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mu, s
        wdt = w_ih.dtype
        dx = dh0_ = dc0_ = dv0_ = dw_ih = dw_hh = db_ih = db_hh = dmu = ds = None
        # dGI: gradient w.r.t. W_ih x_t + b_ih
        g_in = dgi * s_t if momentum else dgi
        if needs[3]:
            dx = torch.matmul(g_in.to(wdt), w_ih).to(x.dtype)
        if needs[7]:
            dw_ih = torch.matmul(g_in.reshape(-1, G).t(), x.reshape(-1, I).to(f32)).to(wdt)
        if needs[9]:
            db_ih = g_in.sum((0, 1)).to(wdt)
        if needs[8]:
            hprev = _prev_seq(out.to(f32), h0.to(f32), lens, reverse)
            dw_hh = torch.matmul(da.reshape(-1, G).t(), hprev.reshape(-1, H)).to(w_hh.dtype)
        if needs[10]:
            db_hh = da.sum((0, 1)).to(w_hh.dtype)
        if needs[4]:
            dh0_ = dh0.to(h0.dtype)
        if needs[5]:
            dc0_ = dc0.to(c0.dtype)
        if momentum and needs[6]:
            dv0_ = dv0.to(v0.dtype)
        if momentum and needs[11]:
            vinit = v0.to(f32) if v0 is not None else torch.zeros(B, G, device=dev, dtype=f32)
            dmu = (dgi * _prev_seq(vs, vinit, lens, reverse)).sum()
            dmu = dmu.to(ctx.mu_info[1]).reshape(ctx.mu_info[2])
        if momentum and needs[12]:
            ds = (dgi * gi.to(f32)).sum().to(ctx.s_info[1]).reshape(ctx.s_info[2])
        return (None, None, None, dx, dh0_, dc0_, dv0_, dw_ih, dw_hh, db_ih, db_hh, dmu, ds)


def fused_recurrent_layer(mode: str, x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                          v0: Optional[Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                          b_hh: Optional[Tensor], mu=None, s=None, reverse: bool = False):
    """Same contract as :func:`naive.naive_layer`; returns ``out (B, T, H)`` and ``(h_n, c_n, v_n)``."""
    _check(mode, x, w_hh)
    momentum = mu is not None
    if not momentum:
        v0 = None
    tensors = [x, h0, c0, v0, w_ih, w_hh, b_ih, b_hh]
    grad = torch.is_grad_enabled() and any(
        t is not None and torch.is_tensor(t) and t.requires_grad for t in tensors + [mu, s])
    if grad:
        out, h_n, c_n, v_n = FusedRecurrentFunction.apply(mode, bool(reverse), lengths, x, h0, c0, v0, w_ih,
                                                         w_hh, b_ih, b_hh, mu, s)
    else:
        B, T, _ = x.shape
        lens = _lengths(lengths, B, T, x.device)
        out, h_n, c_n, v_n = _forward(mode, x, lens, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mu, s, reverse,
                                      save=False)[:4]
    return out, (h_n, c_n if mode == "lstm" else None, v_n if momentum else None)


@torch.no_grad()
def fused_step(mode: str, x_t: Tensor, h: Tensor, c: Optional[Tensor], v: Optional[Tensor], w_ih: Tensor,
               w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor], mu=None, s=None
               ) -> Tuple[Tensor, Optional[Tensor], Optional[Tensor]]:
    """One decoding step ``x_t (B, I)`` -> ``(h, c, v)`` in a single launch (input projection fused).
    Forward only. ``c`` is used for lstm, ``v`` (None = zeros) for momentum cells."""
    _check(mode, x_t, w_hh)
    B, I = x_t.shape
    H = w_hh.shape[1]
    NG = GATES[mode]
    G = NG * H
    HP, BK = _pads(H)
    momentum = mu is not None
    dev, dt = x_t.device, x_t.dtype
    if mode == "lstm" and c is None:
        c = torch.zeros(B, H, device=dev, dtype=dt)
    dummy = torch.empty(1, device=dev, dtype=torch.float32)
    lens = torch.ones(B, dtype=torch.int64, device=dev)
    out = torch.empty(B, 1, H, device=dev, dtype=dt)
    h_n = torch.empty(B, H, device=dev, dtype=dt)
    c_n = torch.empty(B, H, device=dev, dtype=dt) if mode == "lstm" else None
    v_n = torch.empty(B, G, device=dev, dtype=dt) if momentum else None
    scr = torch.empty(B, HP, device=dev, dtype=torch.float32)
    grid = (triton.cdiv(B, BLOCK_B),)
    _fwd_kernel[grid](
        dummy, x_t.contiguous(), w_ih.contiguous(), b_ih.contiguous() if b_ih is not None else dummy,
        w_hh.contiguous(), b_hh.contiguous() if b_hh is not None else dummy,
        h.contiguous(), c.contiguous() if (mode == "lstm" and c is not None) else dummy,
        v.contiguous() if (momentum and v is not None) else dummy, lens,
        _scalar(mu, x_t) if momentum else dummy, _scalar(s, x_t) if momentum else dummy,
        out, h_n, c_n if c_n is not None else dummy, v_n if v_n is not None else dummy, scr, dummy, dummy, dummy,
        B, 1, H, I,
        MODE=_MODE_ID[mode], MOMENTUM=momentum, REVERSE=False, SAVE=False, FUSE_INPUT=True,
        HAS_BIH=b_ih is not None, HAS_BHH=b_hh is not None, HAS_V0=momentum and v is not None, NG=NG,
        BB=BLOCK_B, HP=HP, BK=BK, PRECISION=_precision(w_hh), num_warps=_warps(H))
    return h_n, c_n, v_n
