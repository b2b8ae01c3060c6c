"""Names and labels to padded id arrays (NumPy only, shared by training, evaluation and torch-free
inference)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .tokenizer import CharTokenizer


def encode_batch(
    tokenizer: CharTokenizer, names: Sequence[str], bos: bool = False, eos: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``(ids (B, T) int64 padded with <pad>, lengths (B,) int64)``: ``tokenizer.encode`` of each name.

    Vectorised: the normalized names are joined and, when that text is ASCII (the usual case after
    folding), mapped through the tokenizer's 128-entry lookup table (``ascii_ids``) in one NumPy call
    and scattered into place."""
    texts = [tokenizer.normalize(n) for n in names]
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    joined = "".join(texts)
    if joined.isascii():
        flat = tokenizer.ascii_ids[np.frombuffer(joined.encode("ascii"), np.uint8)]
    else:
        flat = np.array([tokenizer.stoi.get(c, tokenizer.unk_id) for c in joined], np.int64)
    extra = int(bos) + int(eos)
    if len(texts) == 1 and not extra and len(flat):  # one name (an interactive call): nothing to pad
        return flat.reshape(1, -1), lengths
    ids = np.full((len(texts), max(1, int(lengths.max(initial=0)) + extra)), tokenizer.pad_id, dtype=np.int64)
    rows = np.repeat(np.arange(len(texts)), lengths)
    starts = np.cumsum(lengths) - lengths
    ids[rows, np.arange(len(flat)) - starts[rows] + int(bos)] = flat
    if bos:
        ids[:, 0] = tokenizer.bos_id
    if eos:
        ids[np.arange(len(texts)), lengths + int(bos)] = tokenizer.eos_id
    return ids, lengths + extra


IGNORE = -100  # a target the losses skip (torch's ``ignore_index``): padding after <eos>


def next_char_pairs(tokenizer: CharTokenizer, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(inputs, targets, lengths)`` for next-character prediction: inputs ``<bos> c1 .. cn`` and
    targets ``c1 .. cn <eos>``, each ``(B, T)`` with ``T`` the longest ``n + 1``; ``lengths`` (B,) is
    ``n + 1``, the valid steps of each row (the inputs after them are not read), and the targets
    after them are :data:`IGNORE`."""
    ids, lengths = encode_batch(tokenizer, names, bos=True, eos=True)
    targets = ids[:, 1:].copy()
    targets[targets == tokenizer.pad_id] = IGNORE
    return ids[:, :-1], targets, lengths - 1


def label_ids(labels: Sequence[str], values: Sequence[str | None], unknown: int | None = None) -> np.ndarray:
    """``(len(values),)`` int64: the index of each value in ``labels``. A value not among them (or
    None) gets ``unknown``; with ``unknown=None`` it is a :class:`KeyError` naming the value."""
    index: dict[str | None, int] = {label: i for i, label in enumerate(labels)}
    if unknown is None:
        return np.array([index[v] for v in values], dtype=np.int64).reshape(-1)
    return np.array([index.get(v, unknown) for v in values], dtype=np.int64).reshape(-1)


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Index batches over ``range(n)``, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]
