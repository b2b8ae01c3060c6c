"""The inference recipe of every namemodels model: what is computed, and where each piece is defined.

A classifier maps padded token ids ``ids (B, T)`` and ``lengths (B,)`` to log-probabilities ``(B, C)``:

1. embed ``x = E[ids]``;
2. encode: each layer runs its cell forward over ``x`` and, if bidirectional, over each sequence
   reversed within its own length; a momentum cell's input projection is the momentum matrix
   applied to the inputs; the final state of a sequence is its output at its own last step;
3. pool: the top layer's final states, and for ``pool="max"`` also the maximum over each sequence's
   own steps of the top layer's outputs;
4. head: ``logits = W enc + b``, plus the wide part (hashed character n-grams) where trained;
5. class log-probabilities: ``log_softmax(logits)``; a binary head's one logit as two classes;
6. an ensemble averages its members' probabilities.

A generator's decoding step maps ``token (B,)``, its state and a category to next-token
log-probabilities ``(B, V)`` and the new state: embed (plus the category's embedding), one step of
every layer, head, ``log_softmax``.

The recipe is written once, in ``namemodels.models``; every shared piece once, with its equation:

=====================  ==========================================================================
piece                  defined in
=====================  ==========================================================================
momentum matrix        ``namemodels/recipe_torch.py: momentum_matrix``
reversal in a length   ``namemodels/recipe_torch.py: reverse_index`` (``reverse_padded``, ``gather_steps``)
final-state index      ``namemodels/recipe_torch.py: final_index`` (``final_step``, ``gather_steps``)
binary head            ``namemodels/recipe_torch.py: binary_log_probs``
ensemble combine       ``namemodels/recipe_torch.py: ensemble_log_probs``
state layout, zeros    this module: ``state_layout``, ``zero_state``
special-token ids      ``namemodels/tokenizer.py: CharTokenizer`` (``pad_id``, ``bos_id``, ...)
gate blocks and order  ``kernels/cells.py`` (the cell registry)
=====================  ==========================================================================

It is rendered three times, each rendering importing the pieces above: eagerly by the model
classes on ``namemodels.kernels`` layers (their torch fallback calls ``momentum_matrix`` and
``reverse_padded``); as TorchScript by ``torch.jit.script`` of those same model classes, their
recurrent layers swapped for a scriptable one on the same weights (``export/torchscript.py``); and as
ONNX nodes by ``export/onnx_graph.py``, whose docstrings name the function each group of nodes
renders. Torch-free inference (``namemodels/inference/onnx_backend.py``) runs the ONNX graph and takes its
zero decoder state from here. The export checks (``export/verify.py``) compare every rendering with
the eager model.

This module imports no torch: the torch-free path imports it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

STATE_NAMES = ("h", "c", "v")  # every state a generator step may carry, in this order


def state_layout(
    mode: str, momentum: bool, layers: int, hidden: int, gates: int, proj: int = 0
) -> dict[str, tuple[int, int]]:
    """A generator's decoding state: name -> ``(layers, width)``, each state an array
    ``(layers, batch, width)``, in :data:`STATE_NAMES` order.

    ``h``: every cell's hidden state (width ``hidden``, or ``proj`` for an LSTM with projections,
    ``proj > 0``); ``c``: the LSTM cell state (``hidden``);
    ``v``: the momentum cells' input momentum ``v_t = mu v_{t-1} + s (W_ih x_t + b_ih)`` (width
    ``gates * hidden``, one block per gate of the cell's ``mode``)."""
    layout = {"h": (layers, proj or hidden)}
    if mode == "lstm":
        layout["c"] = (layers, hidden)
    if momentum:
        layout["v"] = (layers, gates * hidden)
    return layout


def zero_state(layout: Mapping[str, tuple[int, int]], batch: int) -> dict[str, np.ndarray]:
    """The state a generation starts from: zeros of ``(layers, batch, width)`` for every entry of
    ``layout`` (:func:`state_layout`), float32."""
    return {name: np.zeros((layers, batch, width), np.float32) for name, (layers, width) in layout.items()}
