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
    instead under torch.compile, where packing's data-dependent shapes would break the graph; the
    LSTM runs :func:`stepped_lstm` there, since Inductor cannot run the oneDNN LSTM its decomposition
    picks on the CPU).

    ``weights``: ``[w_ih, w_hh]``, then ``[b_ih, b_hh]`` with ``has_bias``, then ``w_hr`` for an
    LSTM with projections (torch.nn's layout; the native kernel sees the projection from ``h0``'s
    width)."""
    if mode == "lstm" and torch.compiler.is_compiling():
        return stepped_lstm(x, lengths, h0, c0, weights, has_bias)
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


def stepped_lstm(x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Tensor, weights: list,
                 has_bias: bool) -> Tuple[Tensor, Tensor, Tensor]:
    r"""One forward-direction LSTM layer, one step at a time in elementwise ops and matmuls: the
    path under ``torch.compile``, which unrolls the loop into one graph. (Inductor lowers ``_VF.lstm``
    on the CPU to ``aten.mkldnn_rnn_layer`` whenever the input needs no gradient, and then cannot run
    it: ``TypeError: expected Tensor() for op``.) With ``G = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``
    split into the blocks ``i, f, g, o`` (``4 H`` rows in all)

    .. math::
        c_t = \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g), \qquad
        h_t = \sigma(o) \odot \tanh(c_t)

    At steps past a sequence's length (``lengths``, on the input's device) the state is carried
    unchanged and the output is zero, as the packed computation gives. ``x (B, T, I)``, ``h0, c0
    (B, H)``; returns ``out (B, T, H), h_n, c_n``. A projection ``w_hr (P, H)`` (``weights[-1]``, after
    the biases) makes it :math:`h_t = W_{hr} (\sigma(o) \odot \tanh(c_t))`, ``h`` of width ``P``."""
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if has_bias else (None, None)
    w_hr = weights[4 if has_bias else 2] if len(weights) > (4 if has_bias else 2) else None
    B, T, _ = x.shape
    gi = torch.nn.functional.linear(x, w_ih, b_ih)                      # (B, T, 4H)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T, device=x.device)[None, :] < lengths.to(x.device)[:, None]).unsqueeze(2)
    h, c = h0, c0
    outs = []
    for t in range(T):
        i, f, g, o = (gi[:, t] + torch.nn.functional.linear(h, w_hh, b_hh)).chunk(4, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        if w_hr is not None:
            h_new = h_new @ w_hr.t()
        if valid is None:
            h, c = h_new, c_new
            outs.append(h_new)
        else:
            m = valid[:, t]
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outs.append(torch.where(m, h_new, torch.zeros_like(h_new)))
    return torch.stack(outs, 1), h, c


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
                b_hh: Optional[Tensor], mu=None, s=None, reverse: bool = False,
                w_hr: Optional[Tensor] = None) -> Tuple[Tensor, LayerState]:
    """Same contract as :func:`naive.naive_layer`, computed with native kernels (``w_hr``: the LSTM's
    projection, ``(P, H)``)."""
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
    if w_hr is not None:
        weights = weights + [w_hr]
    out, h_n, c_n = native_layer(mode, inp, lengths, h0, c0, weights, has_bias)
    if reverse:
        out = reverse_padded(out, lengths if lengths is not None else torch.full((B,), T))
    return out, (h_n, c_n, v_n)
