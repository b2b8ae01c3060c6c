"""Random batches of padded token ids, as a runtime is given them: for comparing an exported program
with the eager model at shapes other than the traced one."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch


def padded_batches(
    shapes: Iterable[tuple[int, int]], vocab: int, seed: int
) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    """For each ``(batch, time)`` of ``shapes``: ``(B, T, ids, lengths)``, ids drawn from 4 (the first id
    after the special tokens) to ``vocab``, 0 (padding) after each name's length; the first name is T long."""
    rng = np.random.default_rng(seed)
    for B, T in shapes:
        lengths = torch.from_numpy(rng.integers(1, T + 1, B))
        lengths[0] = T  # one name of the full length: the batch is T wide
        ids = torch.from_numpy(rng.integers(4, vocab, (B, T)))
        ids[torch.arange(T)[None, :] >= lengths[:, None]] = 0
        yield B, T, ids, lengths
