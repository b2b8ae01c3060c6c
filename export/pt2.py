"""torch.export: an ``ExportedProgram`` of the model, TorchScript's successor.

``namemodels export MODEL --format pt2 --out m.pt2`` writes ``torch.export.save`` of the model's own
code with the recurrent layers swapped as for TorchScript
(:class:`namemodels.kernels.torch_fallback.ScriptableRecurrent`: the layers' own torch path on the
same weights). One difference: torch.export decomposes ``aten::lstm``/``gru``/``rnn_*`` into a
Python loop over time, which fixes the length; a classifier's layers therefore run their recurrence
as ``torch._higher_order_ops.scan`` (:class:`ScanRecurrent`, the fallback's ``scan=True``), a
graph-level loop, so batch and length both stay dynamic. A generator's decoding step is one time
step, so it keeps the native op.

* classifier: ``module()(ids (B, T) int64, lengths (B,) int64) -> logprobs (B, C)``;
* generator: ``module()(token (B,), state: list of (layers, B, width), category (B,)) ->
  (logprobs (B, V), state)``; ``category`` 0 means none (``i + 1``: label ``i``); the state starts at
  zeros of :func:`namemodels.recipe.state_layout`.

Load it with ``torch.export.load(path).module()`` -- torch alone, no namemodels. The vocabulary,
labels and config travel as ``extra_files`` (:func:`load` returns them).

``--format aoti`` (:func:`save_aoti`) compiles an AOTInductor package (``model.pt2`` for
``torch::inductor::AOTIModelPackageLoader`` in C++, ``torch._inductor.aoti_load_package`` in Python).
A generator's package is its step program above. A classifier's cannot be: Inductor (torch 2.13)
cannot lower a ``scan`` with dynamically sized outputs, so its package runs the native ops unrolled
over a fixed maximum length (:class:`FixedLengthClassifier`, ``--max-length``, default 40), the batch
dynamic. Longer names are refused by :func:`load_aoti` in Python; in C++ the package checks its
inputs' sizes only with ``AOTI_RUNTIME_CHECK_INPUTS=1`` in the environment (AOTInductor's switch),
so a C++ caller sets it or keeps names within the length recorded in ``extra/namemodels.json``
(``aoti_max_length``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from namemodels.kernels.torch_fallback import ScriptableRecurrent
from namemodels.recipe import state_layout

from .torchscript import EXTRA_FILES, extra_files
from .weights import ExportError, ModelWeights

if TYPE_CHECKING:
    from namemodels.kernels.layers import RecurrentBase

MAX_BATCH, MAX_TIME = 1 << 20, 4096


class ScanRecurrent(ScriptableRecurrent):
    """:class:`~namemodels.kernels.torch_fallback.ScriptableRecurrent` whose recurrence runs as a
    ``scan`` (:func:`~namemodels.kernels.torch_fallback.scan_layer`): a classifier's program keeps its
    length dynamic. The weights are buffers, so that torch.export lifts them as the program's inputs
    (the scan body reads them)."""

    def __init__(self, layer: RecurrentBase) -> None:
        super().__init__(layer, scan=True)
        for i, t in enumerate(self.weights):
            self.register_buffer(f"weight_{i}", t)

    def _weights(self) -> list[Tensor]:
        return [getattr(self, f"weight_{i}") for i in range(len(self.weights))]


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
        # nn.Module types attributes as Tensor | Module; TorchScript needs the ignore at the line's end
        return self.model.log_probs(ids, lengths)  # type: ignore[operator]


class GeneratorProgram(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, token: Tensor, state: list[Tensor], category: Tensor) -> tuple[Tensor, list[Tensor]]:
        # nn.Module types attributes as Tensor | Module; TorchScript needs the ignore at the line's end
        logp, state = self.model.step(token, state, category)  # type: ignore[operator]
        return logp, list(state)


def _exportable_copy(model: nn.Module, generator: bool) -> nn.Module:
    from namemodels.models import CharEncoder

    model = copy.deepcopy(model).float().eval().requires_grad_(False)
    for encoder in [m for m in model.modules() if isinstance(m, CharEncoder)]:
        encoder.rnn = ScriptableRecurrent(encoder.rnn) if generator else ScanRecurrent(encoder.rnn)
    return model


def program(model: nn.Module, w: ModelWeights) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` with dynamic batch (and length, for a classifier)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    if not w.generator:
        time = torch.export.Dim("time", min=1, max=MAX_TIME)
        ids = torch.full((3, 5), len(w.vocab) - 1, dtype=torch.long)
        lengths = torch.tensor([5, 3, 2])
        pad = w.ngram_max if w.ngrams is not None or any(m.ngrams is not None for m in w.members) else 0
        return torch.export.export(
            ClassifierProgram(_exportable_copy(model, False), pad).eval(),
            (ids, lengths),
            dynamic_shapes={"ids": {0: batch, 1: time}, "lengths": {0: batch}},
        )
    layout = state_layout(w.mode, w.momentum, w.layers, w.hidden, w.gates, w.proj)
    state = [torch.zeros(layers, 3, width) for layers, width in layout.values()]
    args = (torch.tensor([1, 5, 6]), state, torch.zeros(3, dtype=torch.long))
    return torch.export.export(
        GeneratorProgram(_exportable_copy(model, True)).eval(),
        args,
        dynamic_shapes={"token": {0: batch}, "state": [{1: batch} for _ in state], "category": {0: batch}},
    )


def save(model: nn.Module, w: ModelWeights, path: str | Path) -> None:
    torch.export.save(program(model, w), str(path), extra_files=extra_files(w))


def load_program(path: str | Path, extra_files: dict | None = None) -> torch.export.ExportedProgram:
    """``torch.export.load``, without torch's own pytree deprecation note (torch 2.13 prints a
    ``LeafSpec`` FutureWarning while it unpickles the program's input spec)."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*deprecated", category=FutureWarning)
        return torch.export.load(str(path), extra_files=extra_files)


def load(path: str | Path) -> tuple[nn.Module, dict]:
    """``(callable module, {"namemodels.json": ..., "vocab.json": ..., "labels.json": ...} parsed)``."""
    files = {k: "" for k in EXTRA_FILES}
    ep = load_program(path, files)
    return ep.module(), {k: json.loads(v) for k, v in files.items()}


def aoti_package(pt2_path: str | Path, out: str | Path) -> Path:
    """An AOTInductor package of the *generator* program in ``pt2_path`` (a classifier's pt2 program
    is refused: its scan over a dynamic length does not compile, see :func:`save_aoti`, which makes a
    classifier's package from the model instead)."""
    ep = load_program(pt2_path)
    if any(n.target is torch.ops.higher_order.scan for n in ep.graph.nodes):
        raise ExportError(
            "AOTInductor (torch 2.13) cannot compile a classifier's scan over a dynamic length; "
            "make the package from the model with --format aoti (export.pt2.save_aoti), "
            "or use the pt2 program (torch.export.load) or the ONNX export"
        )
    return Path(torch._inductor.aoti_compile_and_package(ep, package_path=str(out)))


# ---- AOTInductor packages (export --format aoti) ------------------------------------------------
AOTI_MAX_LENGTH = 40  # a classifier package's longest name (verify's longest case; names past it are rare)


class FixedLengthClassifier(nn.Module):
    """``log_probs(ids (B, T), lengths)`` with ``T <= max_length``: ``ids`` padded with ``<pad>`` to
    ``max_length`` (plus the wide part's ``pad`` columns, as :class:`ClassifierProgram`) before the
    model runs, so that everything after the padding has a fixed length.

    Why: torch 2.13's Inductor cannot lower a ``scan`` whose outputs have a dynamic size (the
    classifier's pt2 program: a KeyError on the length's -- or the batch's -- symbol in
    ``lower_to_while_loop``). At a fixed length the layers run their native ops, which torch.export
    unrolls into ``max_length`` steps, and the batch stays dynamic. Steps past a name's length are
    masked (the state frozen, the outputs zeroed: :func:`namemodels.kernels.torch_fallback.masked_layer`),
    so the padding changes no result."""

    def __init__(self, model: nn.Module, max_length: int, pad: int = 0) -> None:
        super().__init__()
        self.model, self.max_length, self.pad = model, max_length, pad

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        ids = torch.cat([ids, ids.new_zeros(ids.size(0), self.max_length - ids.size(1) + self.pad)], 1)
        # nn.Module types attributes as Tensor | Module; TorchScript needs the ignore at the line's end
        return self.model.log_probs(ids, lengths)  # type: ignore[operator]


def aoti_program(model: nn.Module, w: ModelWeights, max_length: int = AOTI_MAX_LENGTH) -> torch.export.ExportedProgram:
    """The program AOTInductor compiles: a generator's step as in :func:`program`; a classifier at a
    fixed length (:class:`FixedLengthClassifier`), batch and length (``1..max_length``) dynamic."""
    if w.generator:
        return program(model, w)
    if not isinstance(max_length, int) or max_length < 2:
        raise ExportError(f"the AOTInductor package's maximum length must be an integer >= 2, got {max_length!r}")
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    time = torch.export.Dim("time", min=1, max=max_length)
    ids = torch.full((3, min(5, max_length)), len(w.vocab) - 1, dtype=torch.long)
    lengths = torch.tensor([ids.size(1), 2, 1])
    pad = w.ngram_max if w.ngrams is not None or any(m.ngrams is not None for m in w.members) else 0
    copy_ = _exportable_copy(model, generator=True)  # the native ops at a fixed length, not the scan
    return torch.export.export(
        FixedLengthClassifier(copy_, max_length, pad).eval(),
        (ids, lengths),
        dynamic_shapes={"ids": {0: batch, 1: time}, "lengths": {0: batch}},
    )


def save_aoti(model: nn.Module, w: ModelWeights, path: str | Path, max_length: int = AOTI_MAX_LENGTH) -> Path:
    """An AOTInductor package (``.pt2``, for ``torch::inductor::AOTIModelPackageLoader`` in C++ or
    ``torch._inductor.aoti_load_package`` in Python) of :func:`aoti_program`, with the vocabulary,
    labels and config (``namemodels.json`` gains ``aoti_max_length`` for a classifier) in the
    archive's ``extra/`` folder, where torch's PT2 archive keeps extra files. Needs a C++ compiler;
    compiling takes minutes (measured in the report of ``namemodels export --format aoti``)."""
    import zipfile

    ep = aoti_program(model, w, max_length)
    out = Path(torch._inductor.aoti_compile_and_package(ep, package_path=str(path)))
    files = extra_files(w)
    if not w.generator:
        meta = json.loads(files["namemodels.json"])
        meta["aoti_max_length"] = max_length
        files["namemodels.json"] = json.dumps(meta, indent=1)
    with zipfile.ZipFile(out, "a") as z:
        prefix = next(n for n in z.namelist() if n.endswith("archive_format"))[: -len("archive_format")]
        for name, text in files.items():
            z.writestr(f"{prefix}extra/{name}", text)
    return out


def load_aoti(path: str | Path) -> tuple[Callable, dict]:
    """``(callable, metadata)`` of a package :func:`save_aoti` wrote: the compiled model (called as the
    pt2 program is: ``(ids, lengths)`` or ``(token, state, category)``) and the parsed extra files.
    A classifier's callable raises a ValueError for names longer than the package's maximum length
    (the compiled code itself checks sizes only under ``AOTI_RUNTIME_CHECK_INPUTS=1``; without it a
    longer batch is not refused but computed wrongly, hence the check here)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        files = {
            n.rsplit("/", 1)[1]: json.loads(z.read(n))
            for n in z.namelist()
            if "/extra/" in n and n.rsplit("/", 1)[1] in EXTRA_FILES
        }
    compiled = torch._inductor.aoti_load_package(str(path))
    limit = files.get("namemodels.json", {}).get("aoti_max_length")
    if limit is None:
        return compiled, files

    def classify(ids: Tensor, lengths: Tensor) -> Tensor:
        if ids.size(1) > limit:
            raise ValueError(
                f"this AOTInductor package takes names of at most {limit} characters (its fixed "
                f"length); got a batch of {ids.size(1)} steps: export again with a larger "
                "--max-length, or use the pt2 program or ONNX, whose length is dynamic"
            )
        return compiled(ids, lengths)

    return classify, files
