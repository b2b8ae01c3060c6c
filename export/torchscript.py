"""TorchScript export: small self-contained scripted modules (not traced) that take the trained weights.

* classifier: ``forward(ids (B, T) int64, lengths (B,) int64) -> logprobs (B, C)``; with ``pool="max"``
  the head also reads the max over each name's steps of the top layer's outputs;
* generator: ``forward(token (B,), state: List[Tensor], category (B,)) -> (logprobs (B, V), state)``
  with ``initial_state(batch)``; ``state`` is ``[h]``, ``[h, c]`` (LSTM), plus ``v`` for momentum cells.

The recurrences run on torch's native ``aten::rnn_tanh/rnn_relu/gru/lstm`` with the same tricks as the
ONNX graphs (final state gathered at each length, per-sequence reversal, momentum as a (T x T) matmul),
so batch and length are dynamic. Vocabulary, labels and config go in ``_extra_files``; the scripted code
references nothing from namemodels, so ``torch.jit.load`` works where namemodels is not installed.
"""

import json
import math
from typing import List, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from namemodels.models import ngram_logits

from .weights import ModelWeights

EXTRA_FILES = ("namemodels.json", "vocab.json", "labels.json")


def _run(mode: str, x: Tensor, h0: Tensor, c0: Tensor, params: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """One batch-first forward layer: ``(output, h_n, c_n)`` (c_n = h_n for non-LSTM)."""
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


class ScriptedClassifier(nn.Module):
    mode: str
    layers: int
    directions: int
    hidden: int
    momentum: bool
    mu: float
    s: float
    binary: bool
    pool_max: bool
    ngram_max: int
    vocab_size: int
    params: List[Tensor]

    def __init__(self, w: ModelWeights):
        super().__init__()
        self.mode, self.layers, self.directions, self.hidden = w.mode, w.layers, w.directions, w.hidden
        self.momentum, self.mu, self.s, self.binary = w.momentum, float(w.mu), float(w.s), w.binary
        self.pool_max = w.pool == "max"
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        self.ngram_max, self.vocab_size = w.ngram_max, w.embedding.shape[0]
        self.register_buffer("ngrams", t(w.ngrams) if w.ngrams is not None else torch.zeros(0, 0))
        self.register_buffer("embedding", t(w.embedding))
        self.register_buffer("head_w", t(w.head_w))
        self.register_buffer("head_b", t(w.head_b))
        params: List[Tensor] = []
        for layer in w.rnn:
            for lw in layer:
                if w.momentum:  # bias column: input weight [W | b_ih], input bias 0
                    params += [t(np.concatenate([lw.w_ih, lw.b_ih[:, None]], 1)), t(lw.w_hh),
                               t(np.zeros_like(lw.b_ih)), t(lw.b_hh)]
                else:
                    params += [t(lw.w_ih), t(lw.w_hh), t(lw.b_ih), t(lw.b_hh)]
        self.params = params

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        B, T, H = ids.size(0), ids.size(1), self.hidden
        x = nn.functional.embedding(ids, self.embedding)
        lengths = lengths.to(torch.long)
        L = lengths.view(B, 1)
        trow = torch.arange(T, dtype=torch.long).view(1, T)
        valid = trow < L                                                    # (B, T)
        ridx = torch.where(valid, L - 1 - trow, trow.expand(B, T)).unsqueeze(2)
        last = (L - 1).view(B, 1, 1).expand(B, 1, H)
        M = torch.zeros(0)
        col = torch.zeros(0)
        if self.momentum:
            tf = torch.arange(T, dtype=torch.float32)
            diff = tf.view(T, 1) - tf.view(1, T)
            powers = torch.pow(torch.tensor(self.mu, dtype=torch.float32), torch.relu(diff))
            M = torch.where(diff >= 0, powers * self.s, torch.zeros_like(diff))
            col = M.sum(1).view(1, T, 1).expand(B, T, 1)
        zeros = torch.zeros(1, B, H)
        finals: List[Tensor] = []
        for layer in range(self.layers):
            outs: List[Tensor] = []
            finals = []
            for d in range(self.directions):
                xi = x if d == 0 else x.gather(1, ridx.expand(B, T, x.size(2)))
                if self.momentum:
                    xi = torch.cat([torch.matmul(M, xi), col], 2)
                k = (layer * self.directions + d) * 4
                y, _, _ = _run(self.mode, xi, zeros, zeros, self.params[k:k + 4])
                finals.append(y.gather(1, last).squeeze(1))
                outs.append(y if d == 0 else y.gather(1, ridx.expand(B, T, H)))
            x = torch.cat(outs, 2)
        enc = torch.cat(finals, 1)
        if self.pool_max:  # x: the top layer's outputs (B, T, D*H), forward order; max over valid steps
            enc = torch.cat([enc, x.masked_fill(valid.logical_not().unsqueeze(2), float("-inf")).amax(1)], 1)
        logits = nn.functional.linear(enc, self.head_w, self.head_b)
        if self.ngram_max > 0:
            logits = logits + ngram_logits(ids, lengths, self.ngrams, self.vocab_size, self.ngram_max)
        if self.binary:
            logits = torch.cat([torch.zeros_like(logits), logits], 1)
        return torch.log_softmax(logits, 1)


class ScriptedEnsemble(nn.Module):
    """Members side by side; log of the mean of their probabilities."""
    log_k: float

    def __init__(self, w: ModelWeights):
        super().__init__()
        self.members = nn.ModuleList([ScriptedClassifier(m) for m in w.members])
        self.log_k = math.log(len(w.members))

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        outs: List[Tensor] = []
        for member in self.members:
            outs.append(member(ids, lengths))
        return torch.logsumexp(torch.stack(outs), 0) - self.log_k


class ScriptedStep(nn.Module):
    mode: str
    layers: int
    hidden: int
    momentum: bool
    conditioned: bool
    mu: float
    s: float
    params: List[Tensor]
    proj: List[Tensor]

    def __init__(self, w: ModelWeights):
        super().__init__()
        self.mode, self.layers, self.hidden = w.mode, w.layers, w.hidden
        self.momentum, self.mu, self.s = w.momentum, float(w.mu), float(w.s)
        self.conditioned = w.category is not None
        self.gates = w.gates
        t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        self.register_buffer("embedding", t(w.embedding))
        self.register_buffer("category_embedding", t(w.category) if self.conditioned else torch.zeros(1, 1))
        self.register_buffer("head_w", t(w.head_w))
        self.register_buffer("head_b", t(w.head_b))
        params: List[Tensor] = []
        proj: List[Tensor] = []
        for layer in w.rnn:
            lw = layer[0]
            if w.momentum:  # v_t = mu v + s (W x + b); the native cell reads v_t through an identity
                G = lw.w_ih.shape[0]
                params += [t(np.eye(G, dtype=np.float32)), t(lw.w_hh), t(np.zeros(G, np.float32)), t(lw.b_hh)]
                proj += [t(lw.w_ih), t(lw.b_ih)]
            else:
                params += [t(lw.w_ih), t(lw.w_hh), t(lw.b_ih), t(lw.b_hh)]
        self.params = params
        self.proj = proj

    @torch.jit.export
    def initial_state(self, batch: int) -> List[Tensor]:
        state = [torch.zeros(self.layers, batch, self.hidden)]
        if self.mode == "lstm":
            state.append(torch.zeros(self.layers, batch, self.hidden))
        if self.momentum:
            state.append(torch.zeros(self.layers, batch, self.gates * self.hidden))
        return state

    def forward(self, token: Tensor, state: List[Tensor], category: Tensor) -> Tuple[Tensor, List[Tensor]]:
        x = nn.functional.embedding(token, self.embedding)
        if self.conditioned:
            x = torch.cat([x, nn.functional.embedding(category, self.category_embedding)], 1)
        h = state[0]
        c = state[1] if self.mode == "lstm" else h
        v = state[len(state) - 1]
        hs: List[Tensor] = []
        cs: List[Tensor] = []
        vs: List[Tensor] = []
        for layer in range(self.layers):
            if self.momentum:
                u = nn.functional.linear(x, self.proj[2 * layer], self.proj[2 * layer + 1])
                vn = v[layer] * self.mu + u * self.s
                vs.append(vn)
                xi = vn.unsqueeze(1)
            else:
                xi = x.unsqueeze(1)
            k = layer * 4
            y, hn, cn = _run(self.mode, xi, h[layer:layer + 1], c[layer:layer + 1], self.params[k:k + 4])
            hs.append(hn)
            cs.append(cn)
            x = y[:, 0]
        logp = torch.log_softmax(nn.functional.linear(x, self.head_w, self.head_b), 1)
        out = [torch.cat(hs, 0)]
        if self.mode == "lstm":
            out.append(torch.cat(cs, 0))
        if self.momentum:
            out.append(torch.stack(vs, 0))
        return logp, out


def script(w: ModelWeights) -> torch.jit.ScriptModule:
    module = ScriptedStep(w) if w.generator else ScriptedEnsemble(w) if w.members else ScriptedClassifier(w)
    return torch.jit.script(module.eval())


def extra_files(w: ModelWeights) -> dict:
    return {"namemodels.json": json.dumps(w.metadata(), indent=1), "vocab.json": json.dumps(w.vocab),
            "labels.json": json.dumps(w.labels)}


def save(w: ModelWeights, path) -> None:
    torch.jit.save(script(w), str(path), _extra_files=extra_files(w))


def load(path):
    """``(module, metadata dict)``; works with torch alone."""
    files = {k: "" for k in EXTRA_FILES}
    module = torch.jit.load(str(path), _extra_files=files)
    return module, json.loads(files["namemodels.json"])
