"""TorchScript export: ``torch.jit.script`` of the model's own code, its recurrent layers included.

The scripted code is the model's (``namemodels.models``: ``CharClassifier.log_probs`` -- encode, pool,
head, wide part, class log-probabilities -- ``EnsembleClassifier.log_probs``, ``CharLM.step``,
``MultiTask.step``). Each ``namemodels.kernels`` layer, whose backend choice, Triton kernels and
packing TorchScript cannot compile, is swapped for
:class:`namemodels.kernels.torch_fallback.ScriptableRecurrent`: the same weights on the layers' own
torch path (:func:`namemodels.kernels.torch_fallback.layered`, with ``static=True``: every step of
the padded batch on the native ``aten::rnn_tanh/rnn_relu/gru/lstm``, the state frozen past each
sequence's end), which compiles under ``torch.jit.script`` -- one recurrence for eager, TorchScript
and torch.export, not a twin to keep in step. Batch and length stay dynamic.

* classifier: ``forward(ids (B, T) int64, lengths (B,) int64) -> logprobs (B, C)``;
* generator: ``forward(token (B,), state: List[Tensor], category (B,)) -> (logprobs (B, V), state)``
  and ``initial_state(batch)``; ``state`` follows :func:`namemodels.recipe.state_layout`.

Vocabulary, labels and config go in ``_extra_files``. The saved file holds the compiled code, so
``torch.jit.load`` works with torch alone, where namemodels is not installed.
"""

import copy
import json
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn

from namemodels.kernels.torch_fallback import ScriptableRecurrent
from namemodels.recipe import state_layout

from .weights import ModelWeights

EXTRA_FILES = ("namemodels.json", "vocab.json", "labels.json")


class ClassifierLogProbs(nn.Module):
    """``forward(ids, lengths)`` = the classifier's (or ensemble's) own ``log_probs``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        # nn.Module types attributes as Tensor | Module; TorchScript needs the ignore at the line's end
        return self.model.log_probs(ids, lengths)  # type: ignore[operator]


class GeneratorStep(nn.Module):
    """``forward(token, state, category)`` = the generator's own ``step``; ``initial_state(batch)``
    the zero state of :func:`namemodels.recipe.state_layout`."""

    state_shapes: list[tuple[int, int]]

    def __init__(self, model: nn.Module, w: ModelWeights) -> None:
        super().__init__()
        self.model = model
        layout = state_layout(w.mode, w.momentum, w.layers, w.hidden, w.gates, w.proj)
        self.state_shapes = [layout[name] for name in layout]

    @torch.jit.export
    def initial_state(self, batch: int) -> list[Tensor]:
        state: list[Tensor] = []
        for layers, width in self.state_shapes:
            state.append(torch.zeros(layers, batch, width))
        return state

    def forward(self, token: Tensor, state: list[Tensor], category: Tensor) -> tuple[Tensor, list[Tensor]]:
        # nn.Module types attributes as Tensor | Module; TorchScript needs the ignore at the line's end
        return self.model.step(token, state, category)  # type: ignore[operator]


def _scriptable_copy(model: nn.Module) -> nn.Module:
    """A float32 eval-mode copy of ``model``, without gradients (outputs convert straight to NumPy),
    whose recurrent layers are :class:`~namemodels.kernels.torch_fallback.ScriptableRecurrent`."""
    from namemodels.models import CharEncoder

    model = copy.deepcopy(model).float().eval().requires_grad_(False)
    for encoder in [m for m in model.modules() if isinstance(m, CharEncoder)]:  # an ensemble has several
        encoder.rnn = ScriptableRecurrent(encoder.rnn)
    return model


def script(model: nn.Module, w: ModelWeights) -> torch.jit.ScriptModule:
    """``model`` (what :func:`namemodels.export.weights.extract` turned into ``w``) as a ScriptModule."""
    model = _scriptable_copy(model)
    wrapper = GeneratorStep(model, w) if w.generator else ClassifierLogProbs(model)
    return torch.jit.script(wrapper.eval())


def extra_files(w: ModelWeights) -> dict:
    return {
        "namemodels.json": json.dumps(w.metadata(), indent=1),
        "vocab.json": json.dumps(w.vocab),
        "labels.json": json.dumps(w.labels),
    }


def save(model: nn.Module, w: ModelWeights, path: Union[str, Path]) -> None:
    torch.jit.save(script(model, w), str(path), _extra_files=extra_files(w))


def load(path: Union[str, Path]) -> tuple[torch.jit.ScriptModule, dict]:
    """``(module, metadata dict)``; works with torch alone."""
    from .weights import quiet_torchscript  # torch.jit.load's deprecation note is ours, not the caller's

    files = {k: "" for k in EXTRA_FILES}
    with quiet_torchscript():
        module = torch.jit.load(str(path), _extra_files=files)
    return module, json.loads(files["namemodels.json"])
