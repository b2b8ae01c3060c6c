"""The fused kernels as ``torch.library`` custom ops: the one autograd path of the fused layer.

``torch.ops.namemodels.fused_rnn_fwd`` and ``torch.ops.namemodels.fused_rnn_bwd`` wrap
:func:`namemodels.kernels.fused_recurrent.fused_forward` / ``fused_backward`` (one layer, every
direction, one launch each) with fake implementations that give the output shapes without running
anything, and the forward's autograd formula (``register_autograd``) calls the backward op. That one
formula serves eager training and ``torch.compile`` alike: a compiled training step traces both ops
as single nodes without graph breaks, and an eager one runs the same ops through the dispatcher.
(There used to be a second formula, a ``torch.autograd.Function``, for eager calls; two gradient
definitions of one kernel can drift apart, and the op's costs only the dispatcher's few
microseconds per layer call.) :func:`fused_layer` is the one entry point of the layers; only an
inference call (no tensor needs a gradient) skips the op and calls ``fused_forward`` directly, as
there is nothing for autograd to record.

A custom op returns tensors only, so the states and buffers a cell does not have come back as empty
``(0,)`` tensors; :func:`fused_layer` turns them back into None.
"""

# No `from __future__ import annotations`: torch.library.custom_op evaluates the signatures of its ops
# (string annotations with eval), and on Python 3.9 `Tensor | None` cannot be evaluated.
from typing import Optional

import torch
from torch import Tensor

from .fused_recurrent import check, fused_backward, fused_forward

_OUTS = tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]


def _or_empty(t: Optional[Tensor], like: Tensor) -> Tensor:
    return t if t is not None else like.new_empty(0)


def _present(t: Optional[Tensor]) -> Optional[Tensor]:
    return t if t is not None and t.numel() > 0 else None


def _forward_shapes(
    mode: str, x: Tensor, w_hh: Tensor, momentum: bool, save: bool, keep_gi: bool
) -> list[tuple[int, ...]]:
    """Shape of every output of fused_rnn_fwd; () marks an absent one."""
    B, T, _ = x.shape
    D, G, H = w_hh.shape
    lstm, gated = mode == "lstm", mode in ("gru", "lstm")
    return [
        (B, T, D * H),
        (D, B, H),
        (D, B, H) if lstm else (),
        (D, B, G) if momentum else (),
        (B, T, D * G) if keep_gi else (),
        (B, T, D * 4 * H) if save and gated else (),
        (B, T, D * H) if save and lstm else (),
        (B, T, D * G) if save and keep_gi and momentum else (),
    ]


@torch.library.custom_op("namemodels::fused_rnn_fwd", mutates_args=())
def fused_rnn_fwd(
    mode: str,
    x: Tensor,
    lengths: Optional[Tensor],
    h0: Optional[Tensor],
    c0: Optional[Tensor],
    v0: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    mus: Optional[Tensor],
    save: bool,
    keep_gi: bool,
) -> _OUTS:
    """out, h_n, c_n, v_n and the buffers the backward needs (gi, gs, cs, vs); empty where absent."""
    res = fused_forward(mode, x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus, save=save, keep_gi=keep_gi)
    o = [_or_empty(t, x) for t in res]
    return o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]


@fused_rnn_fwd.register_fake
def _(mode, x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus, save, keep_gi):
    return tuple(x.new_empty(s if s else (0,)) for s in _forward_shapes(mode, x, w_hh, mus is not None, save, keep_gi))


@torch.library.custom_op("namemodels::fused_rnn_bwd", mutates_args=())
def fused_rnn_bwd(
    mode: str,
    x: Tensor,
    lengths: Optional[Tensor],
    h0: Optional[Tensor],
    c0: Optional[Tensor],
    v0: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    mus: Optional[Tensor],
    out: Tensor,
    gi: Optional[Tensor],
    gs: Optional[Tensor],
    cs: Optional[Tensor],
    vs: Optional[Tensor],
    d_out: Optional[Tensor],
    d_hn: Optional[Tensor],
    d_cn: Optional[Tensor],
    d_vn: Optional[Tensor],
    needs: list[bool],
) -> list[Tensor]:
    """Gradients of x, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus (empty where ``needs`` is False)."""
    grads = fused_backward(
        mode, x, lengths, h0, c0, v0, w_ih, w_hh, mus, out, gi, gs, cs, vs, d_out, d_hn, d_cn, d_vn, tuple(needs)
    )
    return [_or_empty(g, x) for g in grads]


@fused_rnn_bwd.register_fake
def _(mode, x, lengths, h0, c0, v0, w_ih, w_hh, mus, out, gi, gs, cs, vs, d_out, d_hn, d_cn, d_vn, needs):
    B = x.shape[0]
    D, G, H = w_hh.shape
    shapes = [
        x.shape,
        (D, B, H),
        (D, B, H) if mode == "lstm" else None,
        (D, B, G) if mus is not None else None,
        w_ih.shape,
        w_hh.shape,
        (D, G),
        (D, G),
        (2,) if mus is not None else None,
    ]
    dtypes = [x.dtype] * 8 + [torch.float32]
    return [
        x.new_empty(s, dtype=dt) if need and s is not None else x.new_empty(0)
        for s, dt, need in zip(shapes, dtypes, needs)
    ]


def _setup_context(ctx, inputs, output):
    mode, x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus, save, keep_gi = inputs
    out, _, _, _, gi, gs, cs, vs = output
    ctx.mode = mode
    ctx.save_for_backward(x, lengths, h0, c0, v0, w_ih, w_hh, mus, out, gi, gs, cs, vs)


def _backward(ctx, d_out, d_hn, d_cn, d_vn, *_buffers):
    x, lengths, h0, c0, v0, w_ih, w_hh, mus, out, gi, gs, cs, vs = ctx.saved_tensors
    n = ctx.needs_input_grad  # mode, x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus, save, keep_gi
    needs = [bool(n[i]) for i in (1, 3, 4, 5, 6, 7, 8, 9, 10)]
    grads = fused_rnn_bwd(
        ctx.mode,
        x,
        lengths,
        h0,
        c0,
        v0,
        w_ih,
        w_hh,
        mus,
        out,
        _present(gi),
        _present(gs),
        _present(cs),
        _present(vs),
        _present(d_out),
        _present(d_hn),
        _present(d_cn),
        _present(d_vn),
        needs,
    )
    dx, dh0, dc0, dv0, dw_ih, dw_hh, db_ih, db_hh, dmus = [g if need else None for g, need in zip(grads, needs)]
    return None, dx, None, dh0, dc0, dv0, dw_ih, dw_hh, db_ih, db_hh, dmus, None, None


fused_rnn_fwd.register_autograd(_backward, setup_context=_setup_context)


def fused_layer(
    mode: str,
    x: Tensor,
    lengths: Optional[Tensor],
    h0: Optional[Tensor],
    c0: Optional[Tensor],
    v0: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    mus: Optional[Tensor],
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """One layer, every direction: ``out (B, T, D*H), h_n, c_n, v_n`` (layouts in
    :mod:`namemodels.kernels.fused_recurrent`; ``c_n``/``v_n`` None where the cell has no such state).
    Differentiable in every tensor argument but ``lengths``, through the registered op
    ``torch.ops.namemodels.fused_rnn_fwd`` and its autograd formula, in eager mode and under
    ``torch.compile`` alike; a call where no tensor needs a gradient runs the kernels directly."""
    check(mode, x, w_hh.shape[2])
    tensors = (x, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus)
    save = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    if not (save or torch.compiler.is_compiling()):
        return fused_forward(mode, x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus)[:4]
    # Through the op: autograd records it (``save`` keeps the buffers its backward reads) and
    # torch.compile traces it as one node. ``gi`` is kept only for the gradient of learned momentum.
    keep_gi = save and mus is not None and mus.requires_grad
    out, h_n, c_n, v_n = fused_rnn_fwd(mode, x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mus, save, keep_gi)[:4]
    return out, h_n, (c_n if mode == "lstm" else None), (v_n if mus is not None else None)
