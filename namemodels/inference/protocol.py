"""What the predictor and the sampler need of a network: the :class:`Backend` protocol.

Two backends implement it: :class:`~namemodels.inference.onnx_backend.OnnxBackend` (the model's
``model.onnx`` on onnxruntime, no torch) and :class:`~namemodels.inference.torch_backend.TorchBackend`
(the PyTorch model, on the CPU or a CUDA device). Everything above them -- checking names,
batching, sampling, answers -- is NumPy and the same for both.

All arrays cross the interface as NumPy arrays on the host: ids and lengths ``int64``,
log-probabilities ``float32``. A generator's state is opaque: only the backend that made it (by
:meth:`Backend.initial_state` or :meth:`Backend.step`) reads it, so it may live on a GPU.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

State = Any  # a backend's decoding state; see the module docstring


@runtime_checkable
class Backend(Protocol):
    """A model's network behind three calls. A backend answers the calls its model's kind has
    (a classifier: :meth:`logprobs`; a generator: :meth:`initial_state` and :meth:`step`) and raises
    :class:`~namemodels.errors.UsageError` for the others. Calls hold no state between them, so
    one backend may serve several threads. A backend may also offer ``logprobs_map(batches)``, the
    :meth:`logprobs` of an iterable of ``(ids, lengths)`` in order, to run several batches at once (the
    ONNX backend does); the predictor calls :meth:`logprobs` batch by batch on one that does not."""

    def logprobs(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Classify a batch of names.

        Args:
            ids: ``(B, T)`` int64 token ids (:func:`namemodels.batching.encode_batch`), padded with
                ``<pad>`` after each name.
            lengths: ``(B,)`` int64, each name's number of ids (>= 1).

        Returns:
            ``(B, C)`` float32 natural-log probabilities over the model's labels (each row's
            ``exp`` sums to 1). Non-finite values mean damaged weights; the caller checks.
        """
        ...

    def initial_state(self, batch: int) -> State:
        """The state of ``batch`` generations before their first token: every recurrent state zero
        (:func:`namemodels.recipe.zero_state` for the ONNX backend; ``None``, which the layers read
        as zeros, for the torch backend)."""
        ...

    def step(self, tokens: np.ndarray, state: State, category: np.ndarray | None) -> tuple[np.ndarray, State]:
        """One decoding step of a generator.

        Args:
            tokens: ``(B,)`` int64, the token each generation reads now (``<bos>`` first).
            state: what :meth:`initial_state` or the previous :meth:`step` returned for these
                ``B`` generations (``None`` is read as :meth:`initial_state`).
            category: ``(B,)`` int64 category ids (0: none, ``i + 1``: the model's label ``i``) for a
                conditioned model; None otherwise (an unconditioned model ignores it).

        Returns:
            ``(logp, state)``: ``(B, V)`` float32 natural-log probabilities of the next token over
            the vocabulary, and the state after reading ``tokens``.
        """
        ...
