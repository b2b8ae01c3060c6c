"""Recurrent cells as drop-in layers: Elman (tanh/relu), GRU, LSTM and their momentum variants.

The layer classes load torch on first use (``from namemodels.kernels import LSTM``); the cell registry,
:mod:`namemodels.kernels.cells`, does not, so torch-free code can read it.
"""

from typing import Any

from .cells import CELLS

_LAYERS = ("GRU", "LSTM", "RNN", "MomentumGRU", "MomentumLSTM", "MomentumRNN", "RecurrentBase", "make_layer")

__all__ = ["CELLS", *_LAYERS]


def __getattr__(name: str) -> Any:
    if name in _LAYERS:
        from . import layers

        return getattr(layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
