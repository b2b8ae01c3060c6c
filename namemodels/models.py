"""Character-level models for names: classifier, conditioned generator, multitask, on any cell.

Every model reads padded token ids ``(B, T)`` with ``lengths (B,)``; the recurrent layer skips
padding, and the encoding of a name is the final hidden state at the name's own last character.

These classes are the inference recipe (:mod:`namemodels.recipe`): the TorchScript export scripts
their code as written, the ONNX builder renders it node by node, and the pieces both share with them
come from :mod:`namemodels.recipe_torch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

from .config import size_problem
from .kernels import CELLS, make_layer
from .recipe_torch import binary_log_probs, ensemble_log_probs
from .tokenizer import CharTokenizer


def _last_layer_state(h_n: Tensor, directions: int) -> Tensor:
    """The last layer's final hidden states concatenated over directions: ``(B, D*H)`` from ``h_n
    (layers*D, B, H)``."""
    return h_n[-directions:].transpose(0, 1).reshape(h_n.shape[1], -1)


def _hidden(states: Union[Tensor, list[Tensor]]) -> Tensor:
    """``h_n`` of a recurrent layer's states: the tensor itself, or the first of a list (or of the tuple
    a kernels layer returns)."""
    if isinstance(states, Tensor):
        return states
    return states[0]


def check_proj_size(cell: str, hidden: int, proj_size: int) -> None:
    """ValueError unless ``proj_size`` is 0 (no projection) or, for an LSTM cell, a width below ``hidden``."""
    if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
        raise ValueError(f"proj_size must be a whole number >= 0 (0 = no projection), got {proj_size!r}")
    problem = size_problem(cell, hidden, proj_size)
    if problem:
        raise ValueError(problem)


class CharEncoder(nn.Module):
    """Embedding + recurrent stack. ``extra`` features (e.g. a category embedding) join each step.

    ``rnn`` is a ``namemodels.kernels`` layer; the TorchScript export swaps in a scriptable layer on
    the same weights (``export/torchscript.py``) and scripts the rest of the model as written here."""

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embed: int = 32,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        extra: int = 0,
        proj_size: int = 0,
        **cell_kwargs: Any,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
        check_proj_size(cell, hidden, proj_size)
        if proj_size:
            cell_kwargs["proj_size"] = proj_size
        self.embedding = nn.Embedding(vocab_size, embed, padding_idx=0)
        self.embed_dropout = nn.Dropout(dropout)
        self.rnn = make_layer(
            cell,
            embed + extra,
            hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if layers > 1 else 0.0,
            **cell_kwargs,
        )
        self.out_size = self.rnn.out_size * self.rnn.num_directions  # the width of each step's output

    def forward(
        self, ids: Tensor, lengths: Tensor, extra: Optional[Tensor] = None, hx: Optional[list[Tensor]] = None
    ) -> tuple[Tensor, list[Tensor]]:
        """``(outputs (B, T, D*H), states)``; ``hx`` is the layer's initial state (a list or the tuple
        the layer returned), None for zeros."""
        x = self.embed_dropout(self.embedding(ids))
        if extra is not None:
            x = torch.cat([x, extra.unsqueeze(1).expand(-1, x.shape[1], -1) if extra.dim() == 2 else extra], 2)
        return self.rnn(x, hx, lengths=lengths)

    def final_state(self, states: Union[Tensor, list[Tensor]]) -> Tensor:
        """The top layer's final hidden state of each sequence, directions concatenated: ``(B, D*H)``."""
        return _last_layer_state(_hidden(states), self.rnn.num_directions)


NGRAM_STRIDE = 1_000_003  # separates the id ranges of 1-, 2-, ... n-grams before hashing


def ngram_buckets(
    ids: Tensor,
    lengths: Tensor,
    vocab_size: int,
    max_n: int,
    buckets: int,
    bos: int = CharTokenizer.bos_id,
    eos: int = CharTokenizer.eos_id,
    stride: int = NGRAM_STRIDE,
) -> tuple[Tensor, Tensor]:
    """Hashed character n-grams (n = 1..max_n) of each name framed as ``<bos> name <eos>``.

    Returns ``(bucket (B, P), valid (B, P))``: n-gram ``n`` starting at framed position ``p`` has id
    ``sum_k c[p+k] V^(n-1-k) + n * NGRAM_STRIDE`` and bucket ``id mod buckets``; it is valid when it
    ends at or before the ``<eos>`` (so padding never contributes). The ONNX export computes the
    same ids from the same formula; the TorchScript export scripts this function."""
    B, T = ids.size(0), ids.size(1)
    lengths = lengths.to(ids.device)
    framed = torch.cat(
        [
            torch.full((B, 1), bos, dtype=ids.dtype, device=ids.device),
            ids,
            torch.zeros((B, 1), dtype=ids.dtype, device=ids.device),
        ],
        1,
    )  # (B, T+2)
    pos = torch.arange(T + 2, device=ids.device)
    framed = torch.where(pos[None, :] == lengths[:, None] + 1, torch.full_like(framed, eos), framed)
    out: list[Tensor] = []
    valid: list[Tensor] = []
    for n in range(1, max_n + 1):
        P = T + 3 - n  # windows of n in the framed (T+2); none when names are shorter than n-2
        if P <= 0:
            continue
        code = torch.zeros((B, P), dtype=torch.long, device=ids.device)
        for k in range(n):
            code = code * vocab_size + framed[:, k : k + P]
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

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        cell: str = "lstm",
        embed: int = 32,
        hidden: int = 128,
        layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        binary: bool = False,
        pool: str = "last",
        ngram_buckets: int = 0,
        ngram_max: int = 3,
        proj_size: int = 0,
        **cell_kwargs: Any,
    ) -> None:
        super().__init__()
        if pool not in ("last", "max"):
            raise ValueError(f"pool must be 'last' or 'max', got {pool!r}")
        self.binary, self.pool = binary, pool
        self.vocab_size, self.ngram_max = vocab_size, ngram_max
        if ngram_buckets and vocab_size**ngram_max + ngram_max * NGRAM_STRIDE >= 2**63:
            raise ValueError(f"n-grams up to {ngram_max} over {vocab_size} symbols overflow int64 ids")
        self.ngrams = nn.Embedding(ngram_buckets, 1 if binary else num_classes) if ngram_buckets else None
        if self.ngrams is not None:
            nn.init.zeros_(self.ngrams.weight)
        self.encoder = CharEncoder(
            vocab_size, cell, embed, hidden, layers, bidirectional, dropout, proj_size=proj_size, **cell_kwargs
        )
        self.dropout = nn.Dropout(dropout)
        features = self.encoder.out_size * (2 if pool == "max" else 1)
        self.head = nn.Linear(features, 1 if binary else num_classes)

    def encode(self, ids: Tensor, lengths: Tensor) -> Tensor:
        out, states = self.encoder(ids, lengths)
        last = self.encoder.final_state(states)
        if self.pool == "last":
            return last
        pad = torch.arange(ids.shape[1], device=ids.device)[None, :] >= lengths.to(ids.device)[:, None]
        return torch.cat([last, out.masked_fill(pad.unsqueeze(2), float("-inf")).amax(1)], 1)

    def ngram_logits(self, ids: Tensor, lengths: Tensor) -> Tensor:
        assert self.ngrams is not None  # called only when there is a wide part
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
            return binary_log_probs(logits)
        return torch.log_softmax(logits, 1)


class _NextCharacter(nn.Module):
    """What the generators share: a left-to-right encoder, fed a category embedding at every step when
    there is one, and a head scoring the next character; :meth:`step` decodes one character."""

    def __init__(
        self,
        vocab_size: int,
        cell: str,
        embed: int,
        hidden: int,
        layers: int,
        dropout: float,
        proj_size: int,
        cell_kwargs: dict[str, Any],
        category: Optional[nn.Embedding] = None,
    ) -> None:
        super().__init__()
        # registered (and, by the caller, drawn) before the encoder: a seed's initial weights stay as they were
        self.category = category
        extra = category.embedding_dim if category is not None else 0
        self.encoder = CharEncoder(
            vocab_size, cell, embed, hidden, layers, False, dropout, extra=extra, proj_size=proj_size, **cell_kwargs
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.out_size, vocab_size)

    def _extra(self, category: Optional[Tensor], batch: int, device: torch.device) -> Optional[Tensor]:
        if self.category is None:
            return None
        if category is None:
            category = torch.zeros(batch, dtype=torch.long, device=device)
        return self.category(category)

    def _decode(
        self, ids: Tensor, lengths: Tensor, category: Optional[Tensor], hx: Optional[list[Tensor]]
    ) -> tuple[Tensor, list[Tensor]]:
        """Next-character logits ``(B, T, V)`` at every step, and the final state."""
        out, states = self.encoder(ids, lengths, self._extra(category, ids.shape[0], ids.device), hx)
        return self.head(self.dropout(out)), states

    def step(
        self, token: Tensor, state: Optional[list[Tensor]] = None, category: Optional[Tensor] = None
    ) -> tuple[Tensor, list[Tensor]]:
        """One decoding step: ``token (B,)`` -> log-probabilities ``(B, V)`` and the new state (None at
        the start: zeros); ``category`` is ignored by a model without categories."""
        with torch.no_grad():
            ones = torch.ones(token.shape[0], dtype=torch.long)
            logits, state = self._decode(token.unsqueeze(1), ones, category, state)
            return torch.log_softmax(logits[:, 0], 1), state


class CharLM(_NextCharacter):
    """Next-character model; optionally conditioned on a category (index 0 means "no category")."""

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embed: int = 32,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.0,
        num_categories: int = 0,
        category_embed: int = 8,
        proj_size: int = 0,
        **cell_kwargs: Any,
    ) -> None:
        category = nn.Embedding(num_categories + 1, category_embed) if num_categories else None
        super().__init__(vocab_size, cell, embed, hidden, layers, dropout, proj_size, cell_kwargs, category)
        self.num_categories = num_categories

    def forward(
        self, ids: Tensor, lengths: Tensor, category: Optional[Tensor] = None, hx: Optional[list[Tensor]] = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Logits ``(B, T, V)`` for the next character at every step, and the final state."""
        return self._decode(ids, lengths, category, hx)


class MultiTask(_NextCharacter):
    """Shared encoder with a next-character head and a gender head (one logit on the final state)."""

    def __init__(
        self,
        vocab_size: int,
        cell: str = "lstm",
        embed: int = 32,
        hidden: int = 128,
        layers: int = 1,
        dropout: float = 0.0,
        proj_size: int = 0,
        **cell_kwargs: Any,
    ) -> None:
        super().__init__(vocab_size, cell, embed, hidden, layers, dropout, proj_size, cell_kwargs)
        self.gender_head = nn.Linear(self.encoder.out_size, 1)

    def forward(
        self, ids: Tensor, lengths: Tensor, hx: Optional[list[Tensor]] = None
    ) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``ids`` start with ``<bos>``: next-char logits ``(B, T, V)``, gender logit ``(B,)``, state."""
        logits, states = self._decode(ids, lengths, None, hx)
        return logits, self.gender_head(self.encoder.final_state(states)).squeeze(1), states


class EnsembleClassifier(nn.Module):
    """Classifiers trained apart (same data, other seeds) that vote by averaging their probabilities:
    ``log_probs = log(mean_k p_k)``. Averaging independently trained models lowers the variance that
    one seed's luck adds; members are ``members.<k>.*`` in the weights."""

    def __init__(self, members: Sequence[nn.Module]) -> None:  # CharClassifiers, as built or loaded
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def log_probs(self, ids: Tensor, lengths: Tensor) -> Tensor:
        member_log_probs: list[Tensor] = []
        for member in self.members:
            # nn.ModuleList yields nn.Module to a type checker, and TorchScript compiles this loop (no cast)
            member_log_probs.append(member.log_probs(ids, lengths))  # type: ignore[operator]
        return ensemble_log_probs(torch.stack(member_log_probs))

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
