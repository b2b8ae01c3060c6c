"""Inference: names in, log-probabilities or new names out, on ONNX Runtime or PyTorch.

One module per part, each importing only what is below it:

* :mod:`.protocol` -- :class:`Backend`, what a network must answer (``logprobs``, ``initial_state``,
  ``step``), written down as a ``typing.Protocol``.
* :mod:`.onnx_backend` -- the backend on a model's ``model.onnx`` (onnxruntime + NumPy, no torch).
* :mod:`.torch_backend` -- the backend on the PyTorch model (``model.safetensors``; CPU or CUDA).
* :mod:`.sampler` -- the one sampler (temperature, top-k) over any backend's ``step``; the
  predictor's ``generate`` and the study's samples both call it.
* :mod:`.novelty` -- a generator's novelty set (hashes of its training names): written by the
  trainer, read by ``generate(novel=True)``.
* :mod:`.locate` -- a shipped model's name or a model directory -> the directory.
* :mod:`.predictor` -- :class:`Predictor` and :func:`load`: checks, batching, answers.

Importing this package imports none of them: ``from namemodels.inference.novelty import ...`` (the
trainer) or ``...locate import resolve`` (export) does not load the predictor. ``Predictor``,
``Scored`` and ``load`` are importable from here and are loaded when first used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Predictor", "Scored", "load"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import predictor

        return getattr(predictor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
