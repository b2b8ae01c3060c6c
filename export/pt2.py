"""torch.export: an ``ExportedProgram`` of the model, TorchScript's successor.

``namemodels export MODEL --format pt2 --out m.pt2`` writes ``torch.export.save`` of the model's own
code with the recurrent layers swapped as for TorchScript (:mod:`export.torchscript`'s
``NativeRecurrent``: the same weights, reversal within each length, final state at each length, the
momentum matrix). One difference: torch.export decomposes ``aten::lstm``/``gru``/``rnn_*`` into a
Python loop over time, which fixes the length; a classifier's layers therefore run their recurrence
as ``torch._higher_order_ops.scan`` (:func:`scan_run`), a graph-level loop, so batch and length both
stay dynamic. A generator's decoding step is one time step, so it keeps the native op.

* classifier: ``module()(ids (B, T) int64, lengths (B,) int64) -> logprobs (B, C)``;
* generator: ``module()(token (B,), state: list of (layers, B, width), category (B,)) ->
  (logprobs (B, V), state)``; ``category`` 0 means none (``i + 1``: label ``i``); the state starts at
  zeros of :func:`namemodels.recipe.state_layout`.

Load it with ``torch.export.load(path).module()`` -- torch alone, no namemodels. The vocabulary,
labels and config travel as ``extra_files`` (:func:`load` returns them). An AOTInductor package
(C++) can be made from the same program with :func:`aoti_package`.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import List, Tuple

import torch
from torch import Tensor, nn

from namemodels.recipe import state_layout

from .torchscript import EXTRA_FILES, NativeRecurrent, extra_files
from .weights import ExportError, ModelWeights

MAX_BATCH, MAX_TIME = 1 << 20, 4096


def scan_run(mode: str, x: Tensor, h0: Tensor, c0: Tensor, params: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """torch's native batch-first layer (``torch.lstm``/``gru``/``rnn_tanh``/``rnn_relu`` with
    ``params = [W_ih, W_hh, b_ih, b_hh]``, gates in torch's order) as a ``scan`` over time:
    ``(output (B, T, H), h_T (1, B, H), c_T (1, B, H))``, ``c_T = h_T`` except for LSTM. An LSTM with
    projections has a fifth, ``W_hr (P, H)``: ``h_t = W_hr (o_t * tanh(c_t))``, ``h`` (and the
    output) ``P`` wide, ``h0`` too."""
    from torch._higher_order_ops.scan import scan
    w_ih, w_hh, b_ih, b_hh = params[:4]
    w_hr = params[4] if len(params) == 5 else None
    xs = nn.functional.linear(x, w_ih, b_ih).transpose(0, 1)      # (T, B, gates*H), the input part at once
    h, c = h0[0].clone(), c0[0].clone()    # distinct tensors: scan's inputs must not alias (AOTInductor checks)
    if mode == "lstm":
        def step(carry, xt):
            h, c = carry
            i, f, g, o = (xt + nn.functional.linear(h, w_hh, b_hh)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if w_hr is not None:
                h = nn.functional.linear(h, w_hr)
            return (h, c), h.clone()
        (h, c), ys = scan(step, (h, c), xs)
        return ys.transpose(0, 1), h.unsqueeze(0), c.unsqueeze(0)
    if mode == "gru":
        def step(carry, xt):
            h, = carry
            xr, xz, xn = xt.chunk(3, 1)
            hr, hz, hn = nn.functional.linear(h, w_hh, b_hh).chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
            return (h,), h.clone()
    elif mode in ("rnn_tanh", "rnn_relu"):
        act = torch.tanh if mode == "rnn_tanh" else torch.relu

        def step(carry, xt):
            h, = carry
            h = act(xt + nn.functional.linear(h, w_hh, b_hh))
            return (h,), h.clone()
    else:
        raise ExportError(f"pt2 export: unknown recurrent mode {mode!r}")
    (h,), ys = scan(step, (h,), xs)
    return ys.transpose(0, 1), h.unsqueeze(0), h.unsqueeze(0)


class ScanRecurrent(NativeRecurrent):
    """:class:`NativeRecurrent` whose zero-state path (a classifier's padded batch) runs the recurrence
    as :func:`scan_run`; the given-state path (a decoding step) stays on the native op."""

    def __init__(self, layer) -> None:
        super().__init__(layer)
        # buffers, so that torch.export lifts them as the program's inputs (the scan body reads them)
        for kind in ("plain", "column"):
            for i, t in enumerate(getattr(self, kind)):
                self.register_buffer(f"{kind}_{i}", t)

    def _zero_params(self, k: int) -> List[Tensor]:
        kind = "column" if self.momentum else "plain"
        return [getattr(self, f"{kind}_{i}") for i in range(self.per * k, self.per * k + self.per)]

    def _zero_run(self, x: Tensor, h0: Tensor, c0: Tensor, params: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        return scan_run(self.mode, x, h0, c0, params)


class ClassifierProgram(nn.Module):
    """``log_probs(ids, lengths)``. With a wide part, ``ids`` gets ``pad`` columns of ``<pad>`` first:
    the n-gram code skips n-gram sizes longer than the batch (a branch on the length, which would
    fix the length's range in the program); padding changes no result (every step past a name's
    length is masked), and makes every size present for any length >= 1."""

    def __init__(self, model: nn.Module, pad: int = 0) -> None:
        super().__init__()
        self.model, self.pad = model, pad

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        if self.pad:
            ids = torch.cat([ids, ids.new_zeros(ids.size(0), self.pad)], 1)
        return self.model.log_probs(ids, lengths)


class GeneratorProgram(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, state: List[Tensor], category: Tensor) -> Tuple[Tensor, List[Tensor]]:
        logp, state = self.model.step(token, state, category)
        return logp, list(state)


def _exportable_copy(model: nn.Module, generator: bool) -> nn.Module:
    from namemodels.models import CharEncoder
    model = copy.deepcopy(model).float().eval().requires_grad_(False)
    for encoder in [m for m in model.modules() if isinstance(m, CharEncoder)]:
        encoder.rnn = NativeRecurrent(encoder.rnn) if generator else ScanRecurrent(encoder.rnn)
    return model


def program(model: nn.Module, w: ModelWeights) -> "torch.export.ExportedProgram":
    """``torch.export.export`` of ``model`` with dynamic batch (and length, for a classifier)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    if not w.generator:
        time = torch.export.Dim("time", min=1, max=MAX_TIME)
        ids = torch.full((3, 5), len(w.vocab) - 1, dtype=torch.long)
        lengths = torch.tensor([5, 3, 2])
        pad = w.ngram_max if w.ngrams is not None or any(m.ngrams is not None for m in w.members) else 0
        return torch.export.export(ClassifierProgram(_exportable_copy(model, False), pad).eval(), (ids, lengths),
                                   dynamic_shapes={"ids": {0: batch, 1: time}, "lengths": {0: batch}})
    layout = state_layout(w.mode, w.momentum, w.layers, w.hidden, w.gates, w.proj)
    state = [torch.zeros(layers, 3, width) for layers, width in layout.values()]
    args = (torch.tensor([1, 5, 6]), state, torch.zeros(3, dtype=torch.long))
    return torch.export.export(GeneratorProgram(_exportable_copy(model, True)).eval(), args,
                               dynamic_shapes={"token": {0: batch}, "state": [{1: batch} for _ in state],
                                               "category": {0: batch}})


def save(model: nn.Module, w: ModelWeights, path) -> None:
    torch.export.save(program(model, w), str(path), extra_files=extra_files(w))


def load_program(path, extra_files: dict = None) -> "torch.export.ExportedProgram":
    """``torch.export.load``, without torch's own pytree deprecation note (torch 2.13 prints a
    ``LeafSpec`` FutureWarning while it unpickles the program's input spec)."""
    import warnings
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*deprecated", category=FutureWarning)
        return torch.export.load(str(path), extra_files=extra_files)


def load(path) -> Tuple[nn.Module, dict]:
    """``(callable module, {"namemodels.json": ..., "vocab.json": ..., "labels.json": ...} parsed)``."""
    files = {k: "" for k in EXTRA_FILES}
    ep = load_program(path, files)
    return ep.module(), {k: json.loads(v) for k, v in files.items()}


def aoti_package(pt2_path, out) -> Path:
    """An AOTInductor package (``.pt2`` for ``torch::inductor::AOTIModelPackageLoader`` in C++) of the
    generator program in ``pt2_path``; needs a C++ compiler (measured: the shipped first-names step,
    104 s on a busy 2-core CPU, equal to eager at batch 1 and 5). Classifier programs are refused:
    torch 2.13's Inductor cannot lower their scan over a dynamic length (a KeyError on the length's
    symbol in ``lower_to_while_loop``); use their pt2 program or ONNX."""
    ep = load_program(pt2_path)
    if any(n.target is torch.ops.higher_order.scan for n in ep.graph.nodes):
        raise ExportError("AOTInductor (torch 2.13) cannot compile a classifier's scan over a dynamic length; "
                          "use the pt2 program (torch.export.load) or the ONNX export")
    return Path(torch._inductor.aoti_compile_and_package(ep, package_path=str(out)))
