"""The inference recipe's shared pieces in torch (see :mod:`namemodels.recipe` for the whole recipe).

Each piece is defined here once, with its equation. The eager models (``namemodels.models``), the
PyTorch fallback of the recurrent layers (``kernels/torch_fallback.py``) and the TorchScript export
(``export/torchscript.py``, which scripts these functions into the saved file) call them; the ONNX
builder (``export/onnx_graph.py``) renders each one as nodes and names the function it renders.
Every function here compiles under ``torch.jit.script``, so nothing that calls them needs a twin.

Shapes: ``B`` batch, ``T`` padded time, ``L_b`` the length of sequence ``b`` (``1 <= L_b <= T``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def momentum_matrix(T: int, mu: Tensor, s: Tensor, like: Tensor) -> Tensor:
    """``M (T, T)`` with ``M[t, k] = s * mu^(t-k)`` for ``k <= t``, else 0.

    The momentum input ``v_t = mu v_{t-1} + s (W x_t + b)`` with ``v_0 = 0`` is linear, so
    ``v_t = W (M x)_t + b (M 1)_t``: one (T x T) matmul over the inputs and a bias column, after which
    the plain cell runs unchanged. ``mu`` and ``s`` are floats or 0-d tensors (differentiable: ``mu``
    is clamped away from 0 only inside the power, so ``d M / d mu`` stays finite at ``mu = 0``); the
    result has ``like``'s dtype and device. (Annotated as tensors, as TorchScript types them; Python floats
    work too outside TorchScript.)"""
    idx = torch.arange(T, device=like.device)
    expo = (idx[:, None] - idx[None, :]).clamp(min=0).to(like.dtype)
    mu_t = torch.as_tensor(mu, dtype=like.dtype, device=like.device)
    powers = torch.where(expo > 0, mu_t.clamp(min=1e-30) ** expo, torch.ones_like(expo))
    return torch.tril(powers) * s


def reverse_index(lengths: Tensor, T: int) -> Tensor:
    """``r (B, T)``: ``r[b, t] = L_b - 1 - t`` for ``t < L_b``, else ``t``.

    Gathering steps ``r[b]`` reverses each sequence within its own length and leaves its padding in
    place; the index is its own inverse, so the same gather turns a reverse direction's outputs back
    into forward order."""
    t = torch.arange(T, device=lengths.device).view(1, T)
    last = (lengths - 1).view(-1, 1)
    return torch.where(t <= last, last - t, t)


def final_index(lengths: Tensor) -> Tensor:
    """``f (B, 1)``: ``f[b] = L_b - 1``, each sequence's last step.

    A recurrent layer's final hidden state is its output at the sequence's own last step; steps past
    the end (padding) come later and cannot reach it, so padded batches need no packing."""
    return (lengths - 1).view(-1, 1)


def gather_steps(x: Tensor, idx: Tensor) -> Tensor:
    """``out[b, j] = x[b, idx[b, j]]``: steps of ``x (B, T, ...)`` picked per sequence by ``idx (B, J)``
    (:func:`reverse_index`, :func:`final_index`)."""
    for _ in range(x.dim() - 2):
        idx = idx.unsqueeze(-1)
    shape = list(x.shape)
    shape[1] = idx.size(1)
    return x.gather(1, idx.expand(shape))


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    """``x (B, T, ...)`` with each sequence reversed within its own length (:func:`reverse_index`)."""
    return gather_steps(x, reverse_index(lengths.to(x.device), x.size(1)))


def final_step(y: Tensor, lengths: Tensor) -> Tensor:
    """``y[b, L_b - 1]`` for every ``b`` (:func:`final_index`): ``(B, ...)`` from ``y (B, T, ...)``."""
    return gather_steps(y, final_index(lengths.to(y.device))).squeeze(1)


def binary_log_probs(logit: Tensor) -> Tensor:
    """A binary head's one logit ``z (B,)`` as two-class log-probabilities ``(B, 2)``:
    ``[log sigma(-z), log sigma(z)] = log_softmax([0, z])`` (class 1 is the positive one)."""
    return torch.stack([torch.nn.functional.logsigmoid(-logit), torch.nn.functional.logsigmoid(logit)], 1)


def ensemble_log_probs(member_log_probs: Tensor) -> Tensor:
    """Members' log-probabilities ``(K, B, C)`` averaged as probabilities:
    ``log (1/K sum_k p_k) = logsumexp_k(log p_k) - log K`` (``logsumexp`` shifts by the maximum, so a
    class every member gives ~0 probability stays finite)."""
    return torch.logsumexp(member_log_probs, 0) - math.log(member_log_probs.size(0))
