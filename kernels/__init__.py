"""Recurrent cells as drop-in layers: Elman (tanh/relu), GRU, LSTM and their momentum variants."""
from .layers import (CELLS, GRU, LSTM, RNN, MomentumGRU, MomentumLSTM, MomentumRNN, RecurrentBase,
                     make_layer)

__all__ = ["CELLS", "GRU", "LSTM", "RNN", "MomentumGRU", "MomentumLSTM", "MomentumRNN", "RecurrentBase",
           "make_layer"]
