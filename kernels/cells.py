"""The cell registry: every recurrent cell and recurrence family, written down once.

A *mode* is a recurrence family with torch.nn's equations (``torch.nn.RNNBase.mode``): its gate
blocks, stacked as rows of ``weight_ih`` / ``weight_hh`` in torch.nn's order, and the order the ONNX
operators expect them in. A *cell* is what users and configs name (``--cell momentum_lstm``): a mode,
with or without momentum on the input projection, and the layer class that builds it.

The layers, the fused kernels, the references, the exporters and the benchmarks all read these
tables. This module imports nothing heavy (no torch), so torch-free code may import it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mode:
    """A recurrence family. ``gate_names`` are the row blocks of ``weight_ih``/``weight_hh`` (each
    ``hidden_size`` rows) in torch.nn's order; ``onnx_order[k]`` is the torch block that the ONNX
    operator (``RNN``/``GRU``/``LSTM``) expects as its ``k``-th block."""

    name: str
    gate_names: tuple[str, ...]
    onnx_order: tuple[int, ...]

    @property
    def gates(self) -> int:
        return len(self.gate_names)


@dataclass(frozen=True)
class Cell:
    """A named cell: its mode, whether momentum replaces the input projection
    (``v_t = mu v_{t-1} + s (W_ih x_t + b_ih)``), and the layer class in ``namemodels.kernels``."""

    name: str
    mode: str
    momentum: bool
    layer: str

    @property
    def gates(self) -> int:
        return MODES[self.mode].gates

    @property
    def plain(self) -> str:
        """The cell without momentum that this one builds on (itself for a plain cell)."""
        return self.mode if self.momentum else self.name


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode("rnn_tanh", ("h",), (0,)),  # h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
        Mode("rnn_relu", ("h",), (0,)),  # the same with relu
        Mode("gru", ("r", "z", "n"), (1, 0, 2)),  # ONNX GRU: z, r, h
        Mode("lstm", ("i", "f", "g", "o"), (0, 3, 1, 2)),  # ONNX LSTM: i, o, f, c
    )
}

REGISTRY: dict[str, Cell] = {
    c.name: c
    for c in (
        Cell("rnn_tanh", "rnn_tanh", False, "RNN"),
        Cell("rnn_relu", "rnn_relu", False, "RNN"),
        Cell("gru", "gru", False, "GRU"),
        Cell("lstm", "lstm", False, "LSTM"),
        Cell("momentum_rnn", "rnn_tanh", True, "MomentumRNN"),
        Cell("momentum_lstm", "lstm", True, "MomentumLSTM"),
        Cell("momentum_gru", "gru", True, "MomentumGRU"),
    )
}

CELLS: tuple[str, ...] = tuple(REGISTRY)
GATES: dict[str, int] = {name: m.gates for name, m in MODES.items()}  # mode -> gate blocks
MODE_OF: dict[str, str] = {c.name: c.mode for c in REGISTRY.values()}  # cell -> mode


def cell(name: str) -> Cell:
    """The registry entry of cell ``name``; an unknown name is a ValueError listing the cells."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown cell {name!r}; choose one of {', '.join(CELLS)}") from None


def cell_name(mode: str, momentum: bool) -> str | None:
    """The registered name of ``mode`` with or without momentum, or None (a relu momentum RNN can be
    built, ``MomentumRNN(nonlinearity='relu')``, but has no name)."""
    for c in REGISTRY.values():
        if c.mode == mode and c.momentum == bool(momentum):
            return c.name
    return None
