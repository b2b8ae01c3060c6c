"""Names to padded id arrays (NumPy only, shared by training and torch-free inference)."""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def encode_batch(tokenizer, names: Sequence[str], bos: bool = False, eos: bool = False
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """``(ids (B, T) int64 padded with <pad>, lengths (B,) int64)``."""
    seqs = [tokenizer.encode(n, bos=bos, eos=eos) for n in names]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    ids = np.full((len(seqs), max(1, int(lengths.max(initial=1)))), tokenizer.pad_id, dtype=np.int64)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    return ids, lengths


def batches(n: int, batch_size: int, rng: np.random.Generator = None):
    """Index batches over ``range(n)``, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
