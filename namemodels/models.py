"""Character-level models for names: classifier, conditioned generator, multitask, on any cell.

Every model reads padded token ids ``(B, T)`` with ``lengths (B,)``; the recurrent layer skips
padding, and the encoding of a name is the final hidden state at the name's own last character.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .kernels import CELLS, make_layer


def _last_layer_state(layer, h_n: Tensor) -> Tensor:
    """Concatenate the last layer's final hidden states over directions: ``(B, D*H)``."""
    D = layer.num_directions
    return h_n[-D:].transpose(0, 1).reshape(h_n.shape[1], -1)


def _hidden(states) -> Tensor:
    return states if torch.is_tensor(states) else states[0]


class CharEncoder(nn.Module):
    """Embedding + recurrent stack. ``extra`` features (e.g. a category embedding) join each step."""

    def __init__(self, vocab_size: int, cell: str = "lstm", embed: int = 32, hidden: int = 128,
                 layers: int = 1, bidirectional: bool = False, dropout: float = 0.0, extra: int = 0,
                 **cell_kwargs) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.embed_dropout = nn.Dropout(dropout)
        self.rnn = make_layer(cell, embed + extra, hidden, num_layers=layers, batch_first=True,
                              bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0, **cell_kwargs)
        self.out_size = hidden * (2 if bidirectional else 1)

    def forward(self, ids: Tensor, lengths: Tensor, extra: Optional[Tensor] = None, hx=None):
        x = self.embed_dropout(self.embedding(ids))
        if extra is not None:
            x = torch.cat([x, extra.unsqueeze(1).expand(-1, x.shape[1], -1) if extra.dim() == 2 else extra], 2)
        return self.rnn(x, hx, lengths=lengths)


NGRAM_STRIDE = 1_000_003  # separates the id ranges of 1-, 2-, ... n-grams before hashing


def ngram_buckets(ids: Tensor, lengths: Tensor, vocab_size: int, max_n: int, buckets: int,
                  bos: int = 1, eos: int = 2, stride: int = NGRAM_STRIDE) -> Tuple[Tensor, Tensor]:
    """Hashed character n-grams (n = 1..max_n) of each name framed as ``<bos> name <eos>``.

    Returns ``(bucket (B, P), valid (B, P))``: n-gram ``n`` starting at framed position ``p`` has id
    ``sum_k c[p+k] V^(n-1-k) + n * NGRAM_STRIDE`` and bucket ``id mod buckets``; it is valid when it
    ends at or before the ``<eos>`` (so padding never contributes). The ONNX export computes the
    same ids from the same formula; the TorchScript export scripts this function."""
    B, T = ids.size(0), ids.size(1)
    lengths = lengths.to(ids.device)
    framed = torch.cat([torch.full((B, 1), bos, dtype=ids.dtype, device=ids.device), ids,
                        torch.zeros((B, 1), dtype=ids.dtype, device=ids.device)], 1)      # (B, T+2)
    pos = torch.arange(T + 2, device=ids.device)
    framed = torch.where(pos[None, :] == lengths[:, None] + 1, torch.full_like(framed, eos), framed)
    out: List[Tensor] = []
    valid: List[Tensor] = []
    for n in range(1, max_n + 1):
        P = T + 3 - n          # windows of n in the framed (T+2); none when names are shorter than n-2
        if P <= 0:
            continue
        code = torch.zeros((B, P), dtype=torch.long, device=ids.device)
        for k in range(n):
            code = code * vocab_size + framed[:, k:k + P]
        out.append((code + n * stride) % buckets)
        valid.append(pos[None, :P] + (n - 1) <= lengths[:, None] + 1)
    return torch.cat(out, 1), torch.cat(valid, 1)


def ngram_logits(ids: Tensor, lengths: Tensor, table: Tensor, vocab_size: int, max_n: int) -> Tensor:
    """The wide part's logits ``(B, C)``: the ``table`` rows of a name's n-grams, summed, divided by
    sqrt(their number). Scripted as is by the TorchScript export."""
    bucket, valid = ngram_buckets(ids, lengths, vocab_size, max_n, table.size(0))
    mask = valid.to(table.dtype)
    total = (nn.functional.embedding(bucket, table) * mask.unsqueeze(2)).sum(1)
    return total / mask.sum(1, keepdim=True).sqrt()


class CharClassifier(nn.Module):
    """Many-to-one: a name to one of ``num_classes`` labels (``binary=True``: one logit).

    ``pool="last"`` reads the final hidden states; ``pool="max"`` also concatenates the element-wise
    maximum of the top layer's outputs over the name's characters.

    ``ngram_buckets > 0`` adds a wide part beside the recurrent one (wide & deep): every hashed
    character n-gram (n <= ``ngram_max``, see :func:`ngram_buckets`) has a learned vector of class
    logits, and their sum over the name divided by sqrt(number of n-grams) is added to the logits --
    a linear bag-of-n-grams model trained jointly with the RNN."""

    def __init__(self, vocab_size: int, num_classes: int, cell: str = "lstm", embed: int = 32,
                 hidden: int = 128, layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 binary: bool = False, pool: str = "last", ngram_buckets: int = 0, ngram_max: int = 3,
                 **cell_kwargs) -> None:
        super().__init__()
        if pool not in ("last", "max"):
            raise ValueError(f"pool must be 'last' or 'max', got {pool!r}")
        self.binary, self.pool = binary, pool
        self.vocab_size, self.ngram_max = vocab_size, ngram_max
        if ngram_buckets and vocab_size ** ngram_max + ngram_max * NGRAM_STRIDE >= 2 ** 63:
            raise ValueError(f"n-grams up to {ngram_max} over {vocab_size} symbols overflow int64 ids")
        self.ngrams = nn.Embedding(ngram_buckets, 1 if binary else num_classes) if ngram_buckets else None
        if self.ngrams is not None:
            nn.init.zeros_(self.ngrams.weight)
        self.encoder = CharEncoder(vocab_size, cell, embed, hidden, layers, bidirectional, dropout, **cell_kwargs)
        self.dropout = nn.Dropout(dropout)
        features = self.encoder.out_size * (2 if pool == "max" else 1)
        self.head = nn.Linear(features, 1 if binary else num_classes)

    def encode(self, ids: Tensor, lengths: Tensor) -> Tensor:
        out, states = self.encoder(ids, lengths)
        last = _last_layer_state(self.encoder.rnn, _hidden(states))
        if self.pool == "last":
            return last
        pad = torch.arange(ids.shape[1], device=ids.device)[None, :] >= lengths.to(ids.device)[:, None]
        return torch.cat([last, out.masked_fill(pad.unsqueeze(2), float("-inf")).amax(1)], 1)

    def ngram_logits(self, ids: Tensor, lengths: Tensor) -> Tensor:
        return ngram_logits(ids, lengths, self.ngrams.weight, self.vocab_size, self.ngram_max)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        logits = self.head(self.dropout(self.encode(ids, lengths)))
        if self.ngrams is not None:
            logits = logits + self.ngram_logits(ids, lengths)
        return logits.squeeze(1) if self.binary else logits

    def log_probs(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """Log-probabilities over classes, ``(B, C)``; binary models give ``[log p(0), log p(1)]``."""
        logits = self.forward(ids, lengths)
        if self.binary:
            return torch.stack([nn.functional.logsigmoid(-logits), nn.functional.logsigmoid(logits)], 1)
        return torch.log_softmax(logits, 1)


class CharLM(nn.Module):
    """Next-character model; optionally conditioned on a category (index 0 means "no category")."""

    def __init__(self, vocab_size: int, cell: str = "lstm", embed: int = 32, hidden: int = 128,
                 layers: int = 1, dropout: float = 0.0, num_categories: int = 0, category_embed: int = 8,
                 **cell_kwargs) -> None:
        super().__init__()
        self.num_categories = num_categories
        extra = category_embed if num_categories else 0
        self.category = nn.Embedding(num_categories + 1, category_embed) if num_categories else None
        self.encoder = CharEncoder(vocab_size, cell, embed, hidden, layers, False, dropout, extra=extra, **cell_kwargs)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def _extra(self, category: Optional[Tensor], batch: int, device) -> Optional[Tensor]:
        if self.category is None:
            return None
        if category is None:
            category = torch.zeros(batch, dtype=torch.long, device=device)
        return self.category(category)

    def forward(self, ids: Tensor, lengths: Tensor, category: Optional[Tensor] = None, hx=None):
        """Logits ``(B, T, V)`` for the next character at every step, and the final state."""
        out, states = self.encoder(ids, lengths, self._extra(category, ids.shape[0], ids.device), hx)
        return self.head(self.dropout(out)), states

    @torch.no_grad()
    def step(self, token: Tensor, state=None, category: Optional[Tensor] = None) -> Tuple[Tensor, object]:
        """One decoding step: ``token (B,)`` -> log-probabilities ``(B, V)`` and the new state."""
        ones = torch.ones(token.shape[0], dtype=torch.long)
        logits, state = self.forward(token.unsqueeze(1), ones, category, state)
        return torch.log_softmax(logits[:, 0], 1), state


class MultiTask(nn.Module):
    """Shared encoder with a next-character head and a gender head (one logit on the final state)."""

    def __init__(self, vocab_size: int, cell: str = "lstm", embed: int = 32, hidden: int = 128,
                 layers: int = 1, dropout: float = 0.0, **cell_kwargs) -> None:
        super().__init__()
        self.encoder = CharEncoder(vocab_size, cell, embed, hidden, layers, False, dropout, **cell_kwargs)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)
        self.gender_head = nn.Linear(hidden, 1)

    def forward(self, ids: Tensor, lengths: Tensor, hx=None):
        """``ids`` start with ``<bos>``: next-char logits ``(B, T, V)``, gender logit ``(B,)``, state."""
        out, states = self.encoder(ids, lengths, hx=hx)
        h = _last_layer_state(self.encoder.rnn, _hidden(states))
        return self.head(self.dropout(out)), self.gender_head(h).squeeze(1), states

    @torch.no_grad()
    def step(self, token: Tensor, state=None, category: Optional[Tensor] = None):
        ones = torch.ones(token.shape[0], dtype=torch.long)
        logits, _, state = self.forward(token.unsqueeze(1), ones, state)
        return torch.log_softmax(logits[:, 0], 1), state


class EnsembleClassifier(nn.Module):
    """Classifiers trained apart (same data, other seeds) that vote by averaging their probabilities:
    ``log_probs = log(mean_k p_k)``. Averaging independently trained models lowers the variance that
    one seed's luck adds; members are ``members.<k>.*`` in the weights."""

    def __init__(self, members: List[CharClassifier]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def log_probs(self, ids: Tensor, lengths: Tensor) -> Tensor:
        stacked = torch.stack([m.log_probs(ids, lengths) for m in self.members])
        return torch.logsumexp(stacked, 0) - math.log(len(self.members))

    forward = log_probs


def build_model(spec: dict) -> nn.Module:
    """Build a model from the ``model`` section of a saved config."""
    kind = spec["kind"]
    if kind == "ensemble":
        return EnsembleClassifier([build_model(spec["member"]) for _ in range(int(spec["members"]))])
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    cls = {"classifier": CharClassifier, "lm": CharLM, "multitask": MultiTask}.get(kind)
    if cls is None:
        raise ValueError(f"unknown model kind {kind!r}")
    return cls(**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
