"""TorchScript export: ``torch.jit.script`` of the model's own code, its recurrent layers made scriptable.

The scripted code is the model's (``namemodels.models``: ``CharClassifier.log_probs`` -- encode, pool,
head, wide part, class log-probabilities -- ``EnsembleClassifier.log_probs``, ``CharLM.step``,
``MultiTask.step``), with one substitution: each ``namemodels.kernels`` layer, whose backend choice,
Triton kernels and packing TorchScript cannot compile, is swapped for :class:`NativeRecurrent`, the
same weights on torch's native ``aten::rnn_tanh/rnn_relu/gru/lstm`` per layer and direction, with the
shared pieces of :mod:`namemodels.recipe_torch` (reversal within each length, final state at each
length, the momentum matrix). Batch and length stay dynamic.

* classifier: ``forward(ids (B, T) int64, lengths (B,) int64) -> logprobs (B, C)``;
* generator: ``forward(token (B,), state: List[Tensor], category (B,)) -> (logprobs (B, V), state)``
  and ``initial_state(batch)``; ``state`` follows :func:`namemodels.recipe.state_layout`.

Vocabulary, labels and config go in ``_extra_files``. The saved file holds the compiled code, so
``torch.jit.load`` works with torch alone, where namemodels is not installed.
"""

import copy
import json
from typing import Final, List, Optional, Tuple

import torch
from torch import Tensor, nn

from namemodels.recipe import state_layout
from namemodels.recipe_torch import final_index, gather_steps, momentum_matrix, reverse_index

from .weights import ModelWeights

EXTRA_FILES = ("namemodels.json", "vocab.json", "labels.json")


def _run(mode: str, x: Tensor, h0: Tensor, c0: Tensor, params: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """One batch-first forward layer on the native kernel: ``(output, h_T, c_T)`` (``c_T = h_T``
    except for LSTM; an LSTM with projections has 5 ``params``, ``W_hr`` last, and ``h0`` of
    ``proj_size`` features)."""
    if mode == "lstm":
        out, h, c = torch.lstm(x, [h0, c0], params, True, 1, 0.0, False, False, True)
        return out, h, c
    if mode == "gru":
        out, h = torch.gru(x, h0, params, True, 1, 0.0, False, False, True)
        return out, h, h
    if mode == "rnn_relu":
        out, h = torch.rnn_relu(x, h0, params, True, 1, 0.0, False, False, True)
        return out, h, h
    out, h = torch.rnn_tanh(x, h0, params, True, 1, 0.0, False, False, True)
    return out, h, h


class NativeRecurrent(nn.Module):
    """A trained ``namemodels.kernels`` layer (inference only) in code ``torch.jit.script`` compiles.

    ``forward(x (B, T, I), hx, lengths (B,)) -> (output (B, T, D*H), [h_n, c_n (LSTM), v_n (momentum)])``,
    states ``(layers*D, B, width)`` as the kernels layers give them:

    * ``hx`` None (a classifier's padded batch): zero initial state. The reverse direction runs on
      each sequence reversed within its length (:func:`reverse_index`); ``h_n`` and ``v_n`` are
      read at each sequence's last step (:func:`final_index`). Momentum layers feed the plain cell
      ``[M x, M 1]`` with input weight ``[W_ih | b_ih]`` (:func:`momentum_matrix`).
    * ``hx`` given (a generator's decoding step, every sequence filling its ``T`` steps): the states
      after step ``T``; momentum runs in gate space, ``v_t = (M u)_t + mu^(t+1) v_0`` with
      ``u = W_ih x + b_ih``, through an identity input weight.

    Without ``hx``, ``c_n`` too is the LSTM cell state after step ``T`` (classifiers read ``h_n`` only)."""

    # Final: constants to TorchScript, which then keeps only the branches of this layer's mode
    mode: Final[str]
    num_layers: Final[int]
    num_directions: Final[int]
    hidden_size: Final[int]
    proj_size: Final[int]
    per: Final[int]
    momentum: Final[bool]
    mu: Final[float]
    s: Final[float]
    plain: List[Tensor]
    column: List[Tensor]
    gates: List[Tensor]

    def __init__(self, layer) -> None:
        super().__init__()
        self.mode, self.num_layers = layer.mode, layer.num_layers
        self.num_directions, self.hidden_size = layer.num_directions, layer.hidden_size
        self.proj_size = int(getattr(layer, "proj_size", 0))
        self.per = 5 if self.proj_size else 4       # tensors per layer and direction in torch.lstm's list
        self.momentum = bool(layer.momentum)
        self.mu = float(layer.mu) if self.momentum else 0.0
        self.s = float(layer.s) if self.momentum else 0.0
        plain: List[Tensor] = []     # [W_ih, W_hh, b_ih, b_hh(, W_hr)] per layer and direction
        column: List[Tensor] = []    # momentum, zero state: [[W_ih | b_ih], W_hh, 0, b_hh(, W_hr)]
        gates: List[Tensor] = []     # momentum, given state: [I, W_hh, 0, b_hh(, W_hr)]
        for lay in range(self.num_layers):
            for d in range(self.num_directions):
                w_ih, w_hh, b_ih, b_hh = (t.detach().float().clone() for t in layer._layer_weights(lay, d))
                # torch.lstm's flat list with projections: w_ih, w_hh, b_ih, b_hh, w_hr (torch.nn.LSTM's
                # _flat_weights_names order); it knows projections by h0 narrower than c0
                proj = [layer._layer_proj(lay, d).detach().float().clone()] if self.proj_size else []
                plain += [w_ih, w_hh, b_ih, b_hh] + proj
                if self.momentum:
                    zero = torch.zeros_like(b_ih)
                    column += [torch.cat([w_ih, b_ih.unsqueeze(1)], 1), w_hh, zero, b_hh] + proj
                    gates += [torch.eye(w_ih.shape[0]), w_hh, zero, b_hh] + proj
        self.plain, self.column, self.gates = plain, column, gates

    def forward(self, x: Tensor, hx: Optional[List[Tensor]], lengths: Tensor) -> Tuple[Tensor, List[Tensor]]:
        lengths = lengths.to(x.device, torch.long)
        T = x.size(1)
        last = final_index(lengths)
        rev = reverse_index(lengths, T) if self.num_directions == 2 else last
        M = momentum_matrix(T, torch.tensor(self.mu), torch.tensor(self.s), x) if self.momentum else x
        hs: List[Tensor] = []
        cs: List[Tensor] = []
        vs: List[Tensor] = []
        for layer in range(self.num_layers):
            outs: List[Tensor] = []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                xi = gather_steps(x, rev) if d == 1 else x
                if hx is None:
                    y, h_t, c_t, v_t = self._from_zero(xi, k, M, last)
                else:
                    y, h_t, c_t, v_t = self._from_state(xi, hx, k, M)
                hs.append(h_t)
                cs.append(c_t)
                vs.append(v_t)
                outs.append(gather_steps(y, rev) if d == 1 else y)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, 2)
        return x, self._states(hs, cs, vs)

    def _from_zero(self, x: Tensor, k: int, M: Tensor, last: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Layer-direction ``k`` from a zero state on a padded batch of any lengths: ``(output, h_n,
        c_n, v_n)``, ``h_n`` and ``v_n`` at each sequence's last step (``v_n`` unused without momentum)."""
        B, T = x.size(0), x.size(1)
        zeros = x.new_zeros(1, B, self.hidden_size)
        h0 = x.new_zeros(1, B, self.proj_size) if self.proj_size else zeros   # h is proj_size wide, c hidden
        params = self._zero_params(k)
        v_n = zeros[0]
        if self.momentum:    # v_0 = 0: the plain cell on [M x, M 1] with input weight [W_ih | b_ih]
            x = torch.cat([torch.matmul(M, x), M.sum(1).view(1, T, 1).expand(B, T, 1)], 2)
            v_n = nn.functional.linear(gather_steps(x, last).squeeze(1), params[0])
        y, _, c_t = self._zero_run(x, h0, zeros, params)
        return y, gather_steps(y, last).squeeze(1), c_t[0], v_n

    def _zero_params(self, k: int) -> List[Tensor]:
        """Layer-direction ``k``'s weights for :meth:`_from_zero`: ``column`` with momentum, else ``plain``."""
        return (self.column if self.momentum else self.plain)[self.per * k:self.per * k + self.per]

    def _zero_run(self, x: Tensor, h0: Tensor, c0: Tensor, params: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """:meth:`_from_zero`'s layer run (the native op; export/pt2.py's ScanRecurrent: a scan)."""
        return _run(self.mode, x, h0, c0, params)

    def _from_state(self, x: Tensor, hx: List[Tensor], k: int, M: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Layer-direction ``k`` from the given states, every sequence running its ``T`` steps (a
        decoding step): ``(output, h_T, c_T, v_T)`` (``v_T`` unused without momentum)."""
        T = x.size(1)
        h0 = hx[0][k:k + 1]
        c0 = hx[1][k:k + 1] if self.mode == "lstm" else h0
        params = self.plain[self.per * k:self.per * k + self.per]
        v_n = h0[0]
        if self.momentum:    # v_t = (M u)_t + mu^(t+1) v_0, u = W_ih x + b_ih, read through I
            u = nn.functional.linear(x, params[0], params[2])
            decay = torch.pow(torch.tensor(self.mu), torch.arange(1, T + 1, dtype=x.dtype))
            x = torch.matmul(M, u) + decay.view(1, T, 1) * hx[len(hx) - 1][k].unsqueeze(1)
            params = self.gates[self.per * k:self.per * k + self.per]
            v_n = x[:, T - 1]
        y, h_t, c_t = _run(self.mode, x, h0, c0, params)
        return y, h_t[0], c_t[0], v_n

    def _states(self, hs: List[Tensor], cs: List[Tensor], vs: List[Tensor]) -> List[Tensor]:
        """``[h_n]``, plus ``c_n`` (LSTM) and ``v_n`` (momentum), each ``(layers*D, B, width)``."""
        states = [torch.stack(hs)]
        if self.mode == "lstm":
            states.append(torch.stack(cs))
        if self.momentum:
            states.append(torch.stack(vs))
        return states


class ClassifierLogProbs(nn.Module):
    """``forward(ids, lengths)`` = the classifier's (or ensemble's) own ``log_probs``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return self.model.log_probs(ids, lengths)


class GeneratorStep(nn.Module):
    """``forward(token, state, category)`` = the generator's own ``step``; ``initial_state(batch)``
    the zero state of :func:`namemodels.recipe.state_layout`."""

    state_shapes: List[Tuple[int, int]]

    def __init__(self, model: nn.Module, w: ModelWeights) -> None:
        super().__init__()
        self.model = model
        layout = state_layout(w.mode, w.momentum, w.layers, w.hidden, w.gates, w.proj)
        self.state_shapes = [layout[name] for name in layout]

    @torch.jit.export
    def initial_state(self, batch: int) -> List[Tensor]:
        state: List[Tensor] = []
        for layers, width in self.state_shapes:
            state.append(torch.zeros(layers, batch, width))
        return state

    def forward(self, token: Tensor, state: List[Tensor], category: Tensor) -> Tuple[Tensor, List[Tensor]]:
        return self.model.step(token, state, category)


def _scriptable_copy(model: nn.Module) -> nn.Module:
    """A float32 eval-mode copy of ``model``, without gradients (outputs convert straight to NumPy),
    whose recurrent layers are :class:`NativeRecurrent`."""
    from namemodels.models import CharEncoder
    model = copy.deepcopy(model).float().eval().requires_grad_(False)
    for encoder in [m for m in model.modules() if isinstance(m, CharEncoder)]:   # an ensemble has several
        encoder.rnn = NativeRecurrent(encoder.rnn)
    return model


def script(model: nn.Module, w: ModelWeights) -> torch.jit.ScriptModule:
    """``model`` (what :func:`namemodels.export.weights.extract` turned into ``w``) as a ScriptModule."""
    model = _scriptable_copy(model)
    wrapper = GeneratorStep(model, w) if w.generator else ClassifierLogProbs(model)
    return torch.jit.script(wrapper.eval())


def extra_files(w: ModelWeights) -> dict:
    return {"namemodels.json": json.dumps(w.metadata(), indent=1), "vocab.json": json.dumps(w.vocab),
            "labels.json": json.dumps(w.labels)}


def save(model: nn.Module, w: ModelWeights, path) -> None:
    torch.jit.save(script(model, w), str(path), _extra_files=extra_files(w))


def load(path):
    """``(module, metadata dict)``; works with torch alone."""
    from .weights import quiet_torchscript   # torch.jit.load's deprecation note is ours, not the caller's
    files = {k: "" for k in EXTRA_FILES}
    with quiet_torchscript():
        module = torch.jit.load(str(path), _extra_files=files)
    return module, json.loads(files["namemodels.json"])
