"""CPU/GPU fallback for one layer in one direction, on PyTorch's native fused RNN kernels.

Momentum without a Python loop: the recurrence ``v_t = mu v_{t-1} + s (W x_t + b)`` is linear, so
with ``v_0 = 0``

    v_t = W (s * sum_k mu^(t-k) x_k) + b (s * sum_k mu^(t-k)).

The sums are one small (T x T) lower-triangular matmul over the *inputs* (width I, not the gate
width G), and the second term is a time-dependent bias, fed as one extra input column whose
weight column is ``b_ih``. The native kernel then does exactly what it does for the plain cell.
A non-zero ``v_0`` adds ``mu^t v_0``, which no input column can carry; that rarer case runs the
scan in gate space and feeds ``v`` through an identity input weight.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor, _VF
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

# The momentum matrix and the reversal within each length are shared with the exported models.
from namemodels.recipe_torch import momentum_matrix, reverse_padded


LayerState = Tuple[Tensor, Optional[Tensor], Optional[Tensor]]   # (h_n, c_n, v_n) of one layer and direction

_NATIVE = {"rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu, "gru": _VF.gru, "lstm": _VF.lstm}


def native_layer(mode: str, x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                 weights: list, has_bias: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """One forward-direction layer on the native kernel; packs only when lengths differ (masks
    instead under torch.compile, where packing's data-dependent shapes would break the graph)."""
    if lengths is not None and torch.compiler.is_compiling():
        return _masked_native_layer(mode, x, lengths, h0, c0, weights, has_bias)
    fn = _NATIVE[mode]
    hx = (h0.unsqueeze(0), c0.unsqueeze(0)) if mode == "lstm" else h0.unsqueeze(0)
    T = x.shape[1]
    # cuDNN's "train" flag keeps what its backward needs (no dropout here): on whenever autograd is.
    train = torch.is_grad_enabled()
    if lengths is None or bool((lengths == T).all()):
        res = fn(x, hx, weights, has_bias, 1, 0.0, train, False, True)
        out = res[0]
    else:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        # Native packed kernels expect hx in sorted order and return it sorted.
        hx = tuple(t.index_select(1, packed.sorted_indices) for t in hx) if mode == "lstm" \
            else hx.index_select(1, packed.sorted_indices)
        res = fn(packed.data, packed.batch_sizes, hx, weights, has_bias, 1, 0.0, train, False)
        out, _ = pad_packed_sequence(type(packed)(res[0], packed.batch_sizes, packed.sorted_indices,
                                                  packed.unsorted_indices),
                                     batch_first=True, total_length=T)
        res = (res[0],) + tuple(r.index_select(1, packed.unsorted_indices) for r in res[1:])
    h_n = res[1][0]
    c_n = res[2][0] if mode == "lstm" else None
    return out, h_n, c_n


# A gate pre-activation of +-FREEZE saturates the sigmoid to exactly 1 or 0 in every float dtype.
FREEZE = 1e4


def _masked_native_layer(mode: str, x: Tensor, lengths: Tensor, h0: Tensor, c0: Optional[Tensor],
                         weights: list, has_bias: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """The packed computation without packing (static shapes, for torch.compile): the native kernel
    runs all T steps on the padded batch with padding zeroed; one extra input column, 1 at padded
    steps, drives the LSTM's forget gate to exactly 1 and input gate to exactly 0 (the GRU's update
    gate to 1), so the cell state is carried unchanged past each sequence's end and those steps add
    exactly nothing to any gradient. Outputs past the end are zeroed and ``h_n`` is read at each
    sequence's last step (the Elman state cannot be frozen that way; its late steps reach nothing)."""
    B, T, _ = x.shape
    H = weights[1].shape[1]
    pad = torch.arange(T, device=x.device)[None, :] >= lengths.to(x.device)[:, None]     # (B, T)
    inp = x.masked_fill(pad.unsqueeze(2), 0.0)
    weights = list(weights)
    if mode in ("lstm", "gru"):
        col = torch.zeros(weights[0].shape[0], 1, dtype=x.dtype, device=x.device)
        if mode == "lstm":
            col[:H] = -FREEZE          # input gate i -> 0
            col[H:2 * H] = FREEZE      # forget gate f -> 1
        else:
            col[H:2 * H] = FREEZE      # update gate z -> 1: h' = h
        inp = torch.cat([inp, pad.unsqueeze(2).to(x.dtype)], 2)
        weights[0] = torch.cat([weights[0], col], 1)
    hx = (h0.unsqueeze(0), c0.unsqueeze(0)) if mode == "lstm" else h0.unsqueeze(0)
    res = _NATIVE[mode](inp, hx, weights, has_bias, 1, 0.0, torch.is_grad_enabled(), False, True)
    out = res[0]
    last = (lengths.to(x.device) - 1).clamp(min=0)
    h_n = out[torch.arange(B, device=x.device), last]
    out = out.masked_fill(pad.unsqueeze(2), 0.0)
    return out, h_n, (res[2][0] if mode == "lstm" else None)


def torch_layer(mode: str, x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Optional[Tensor],
                v0: Optional[Tensor], w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor],
                b_hh: Optional[Tensor], mu=None, s=None, reverse: bool = False
                ) -> Tuple[Tensor, LayerState]:
    """Same contract as :func:`naive.naive_layer`, computed with native kernels."""
    B, T, _ = x.shape
    if reverse:
        x = reverse_padded(x, lengths if lengths is not None else torch.full((B,), T))
    has_bias = b_ih is not None
    v_n = None
    if mu is None:
        weights = [w_ih, w_hh] + ([b_ih, b_hh] if has_bias else [])
        inp = x
    else:
        M = momentum_matrix(T, mu, s, x)
        last = (lengths.to(x.device) - 1) if lengths is not None else torch.full((B,), T - 1, device=x.device)
        rows = torch.arange(B, device=x.device)
        if v0 is None:
            xm = torch.matmul(M, x)
            w = w_ih
            if has_bias:
                xm = torch.cat([xm, M.sum(1).view(1, T, 1).expand(B, T, 1)], 2)
                w = torch.cat([w_ih, b_ih.unsqueeze(1)], 1)
            inp = xm
            v_n = xm[rows, last] @ w.t()
        else:
            u = x @ w_ih.t()
            if has_bias:
                u = u + b_ih
            mu_t = torch.as_tensor(mu, dtype=x.dtype, device=x.device)
            decay = mu_t ** torch.arange(1, T + 1, device=x.device, dtype=x.dtype)
            inp = torch.matmul(M, u) + decay.view(1, T, 1) * v0.unsqueeze(1)
            w = torch.eye(inp.shape[2], dtype=x.dtype, device=x.device)
            v_n = inp[rows, last]
        zeros = torch.zeros_like(b_hh) if has_bias else None
        weights = [w, w_hh] + ([zeros, b_hh] if has_bias else [])
    out, h_n, c_n = native_layer(mode, inp, lengths, h0, c0, weights, has_bias)
    if reverse:
        out = reverse_padded(out, lengths if lengths is not None else torch.full((B,), T))
    return out, (h_n, c_n, v_n)
