"""Splitting a data set: stratified by label and grouped by the case-folded name, so that no name
string lands in two parts (train/validation/test, or the folds of cross-validation); deterministic
for a seed and independent of the order of the records.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from .records import NameDataset, _take

__all__ = ["grouped_split", "grouped_parts"]


def grouped_split(
    ds: NameDataset, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0, group: bool = True
) -> tuple[NameDataset, NameDataset, NameDataset]:
    """Split into train/validation/test (:func:`grouped_parts` with three fractions).

    Stratified by label (each label's records are divided in ``fractions``) and, with ``group``,
    grouped by the case-folded name string so that no string lands in two splits (a string that
    carries two labels goes with its more common label's stratum). Deterministic for a seed and
    independent of the order of the records."""
    if len(fractions) != 3:
        raise UsageError(f"fractions must be three non-negative numbers (train, val, test), got {tuple(fractions)}")
    return grouped_parts(ds, fractions, seed, group)  # type: ignore[return-value]


def grouped_parts(
    ds: NameDataset, fractions: Sequence[float], seed: int = 0, group: bool = True
) -> tuple[NameDataset, ...]:
    """As many parts as ``fractions`` has (``(1,) * k``: the k folds of cross-validation), each
    stratified by label and grouped by name string as :func:`grouped_split` describes."""
    fr = [float(f) for f in fractions]
    if not 0 < len(fr) < 256 or any(not math.isfinite(f) or f < 0 for f in fr) or sum(fr) <= 0:
        raise UsageError(f"fractions must be 1 to 255 non-negative numbers, not all 0, got {tuple(fractions)}")
    total = sum(fr)
    bounds = [sum(fr[: i + 1]) / total for i in range(len(fr))]
    last = max(i for i, f in enumerate(fr) if f > 0)  # where a group past every bound goes

    # Groups are worked out over the distinct records (a record on many lines is counted, not
    # listed), then each line goes to its group's split.
    pool, lines = ds._pool, ds.line_counts()
    if group:
        key_of: dict[str, int] = {}
        group_of = np.array([key_of.setdefault(r.name.casefold(), len(key_of)) for r in pool], dtype=np.int64)
        keys: list[Any] = list(key_of)
        size = np.zeros(len(keys), dtype=np.int64)
        np.add.at(size, group_of, lines)
        votes: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
        for p in np.flatnonzero(lines).tolist():
            votes[int(group_of[p])][pool[p].label or ""] += int(lines[p])
    else:  # every line its own group
        keys = list(range(len(ds)))
        size = np.ones(len(ds), dtype=np.int64)
        votes = {i: collections.Counter({r.label or "": 1}) for i, r in enumerate(ds.records)}

    strata: dict[str, list[Any]] = collections.defaultdict(list)
    for g, vote in votes.items():
        label = min(vote, key=lambda lab: (-vote[lab], lab))
        strata[label].append(keys[g])
    gid: dict[Any, int] = {k: g for g, k in enumerate(keys)} if group else {}

    rng = random.Random(seed)
    split_of = np.zeros(len(keys), dtype=np.uint8)
    for label in sorted(strata):
        stratum = sorted(strata[label])  # case-folded strings (or line indices without grouping)
        rng.shuffle(stratum)
        g_ids = [gid[k] for k in stratum] if group else stratum
        n = int(size[g_ids].sum())
        done = 0
        for g in g_ids:
            s = int(size[g])
            mid = (done + s / 2) / n  # where this group's middle falls in the stratum
            split_of[g] = next((i for i in range(len(fr)) if mid < bounds[i] and fr[i] > 0), last)
            done += s
    line_split = _take(split_of[group_of], ds._index) if group else split_of
    return tuple(ds.where(line_split == s) for s in range(len(fr)))
