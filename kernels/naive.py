"""Per-step reference for one recurrent layer in one direction: the equations, written plainly.

This is the oracle the fused paths are tested against and the "naive loop" of the benchmark.
Conventions (shared by every backend of `run_layer`):

* ``x`` is batch-first padded ``(B, T, I)``; ``lengths`` (``(B,)`` int64 or None = all ``T``).
* Gate rows follow torch.nn (:data:`namemodels.kernels.cells.MODES`): LSTM ``i, f, g, o``; GRU
  ``r, z, n``; Elman has one block.
* ``G = gates * H`` is the width of ``W_ih x + b_ih``; the momentum state ``v`` has that width.
* Momentum: ``v_t = mu * v_{t-1} + s * (W_ih x_t + b_ih)`` replaces ``W_ih x_t + b_ih``.
* ``reverse=True`` runs each sequence backwards from its own last valid step.
* Outputs at padded steps are zero; final states are taken at each sequence's own end.
* LSTM projections (``proj_size > 0``, torch.nn's ``weight_hr``): ``h_t = W_hr (o_t * tanh(c_t))``,
  so ``h`` has ``P = proj_size`` features while ``c`` keeps ``H``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .torch_fallback import LayerState


def cell_step(
    mode: str, gi: Tensor, h: Tensor, c: Tensor | None, w_hh: Tensor, b_hh: Tensor | None, w_hr: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """One step of a plain cell given the input-side pre-activation ``gi`` (= W_ih x + b_ih or v);
    ``w_hr (P, H)`` projects the LSTM's output (torch.nn's ``proj_size``)."""
    gh = h @ w_hh.t()
    if b_hh is not None:
        gh = gh + b_hh
    if mode == "rnn_tanh":
        return torch.tanh(gi + gh), None
    if mode == "rnn_relu":
        return torch.relu(gi + gh), None
    if mode == "gru":
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, None
    if mode == "lstm":
        i, f, g, o = (gi + gh).chunk(4, -1)
        assert c is not None, "an LSTM step needs its cell state c"
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return (h if w_hr is None else h @ w_hr.t()), c
    raise ValueError(f"unknown cell mode {mode!r}")


def naive_layer(
    mode: str,
    x: Tensor,
    lengths: Tensor | None,
    h0: Tensor,
    c0: Tensor | None,
    v0: Tensor | None,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
    mu: Any = None,  # the momentum cell's mu and s: tensors or floats
    s: Any = None,
    reverse: bool = False,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, LayerState]:
    """Run one layer step by step; returns ``out (B, T, H)`` (``(B, T, P)`` with ``w_hr (P, H)``) and
    ``(h_n, c_n, v_n)``."""
    B, T, _ = x.shape
    H = w_hh.shape[1]  # the width of h: P with a projection
    momentum = mu is not None
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long)
    lengths = lengths.to(x.device)
    h, c = h0, c0
    v = v0 if v0 is not None else x.new_zeros(B, w_ih.shape[0])
    outs = [x.new_zeros(B, H) for _ in range(T)]
    steps = range(T - 1, -1, -1) if reverse else range(T)
    for t in steps:
        # Each sequence is active at step t when t < its length; in reverse, a sequence starts at
        # its own end, so inactive rows simply keep their state.
        active = (t < lengths).unsqueeze(1)
        gi = x[:, t] @ w_ih.t()
        if b_ih is not None:
            gi = gi + b_ih
        if momentum:
            v_new = mu * v + s * gi
            gi = v_new
        h_new, c_new = cell_step(mode, gi, h, c, w_hh, b_hh, w_hr)
        h = torch.where(active, h_new, h)
        if c is not None:
            assert c_new is not None  # an LSTM's step returns its cell state
            c = torch.where(active, c_new, c)
        if momentum:
            v = torch.where(active, v_new, v)
        outs[t] = torch.where(active, h_new, torch.zeros_like(h_new))
    return torch.stack(outs, 1), (h, c, v if momentum else None)
