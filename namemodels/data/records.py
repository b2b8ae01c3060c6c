"""A data set in memory: :class:`NameRecord` (a name, its label, weight and female share),
:class:`NameDataset` (one record a line, stored as the distinct records and a small integer a line)
and :class:`RecordView` (its records as a read-only sequence). No torch here (inference must run
without it); :mod:`namemodels.data.loader` builds these from files.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import overload

import numpy as np

from ..errors import UsageError

__all__ = ["DataError", "NameRecord", "RecordView", "NameDataset", "SHUFFLE_MAX"]


class DataError(UsageError):
    """A data file or directory that cannot be used; the message names the file (and line)."""


@dataclass
class NameRecord:
    """One name of a data set; ``weight`` (the births behind it) and ``soft`` for gender data."""

    name: str
    label: str | None = None
    weight: float = 1.0
    soft: float | None = None  # for gender data: the female share F / (F + M)

    @property
    def female_share(self) -> float:
        """The soft gender label: ``soft`` when known, else 1.0 for label "F" and 0.0 otherwise."""
        return self.soft if self.soft is not None else float(self.label == "F")


_ITER_CHUNK = 1 << 16  # lines turned into Python objects at a time
_BLOCK = 1 << 20  # lines per block of numpy work on a long index
SHUFFLE_MAX = 1 << 22  # NameDataset.sample shuffles every line up to this many


class RecordView(collections.abc.Sequence):
    """A data set's records, one per line, as a read-only sequence: the lines' indices into the
    list of distinct records (a file that repeats a name a million times holds one record and a
    million small integers). Slicing and ``+`` give plain lists."""

    __slots__ = ("_pool", "_index")

    def __init__(self, pool: list[NameRecord], index: np.ndarray):
        self._pool, self._index = pool, index

    def __len__(self) -> int:
        return len(self._index)

    @overload
    def __getitem__(self, i: int) -> NameRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[NameRecord]: ...

    def __getitem__(self, i: int | slice) -> NameRecord | list[NameRecord]:
        if isinstance(i, slice):
            return [self._pool[j] for j in self._index[i].tolist()]
        return self._pool[self._index[i]]

    def __iter__(self) -> Iterator[NameRecord]:
        pool = self._pool
        for start in range(0, len(self._index), _ITER_CHUNK):
            for j in self._index[start : start + _ITER_CHUNK].tolist():
                yield pool[j]

    def __add__(self, other: Iterable[NameRecord]) -> list[NameRecord]:
        return list(self) + list(other)

    def __radd__(self, other: Iterable[NameRecord]) -> list[NameRecord]:
        return list(other) + list(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, (list, tuple, RecordView)) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # compared by contents, so not hashable

    def __repr__(self) -> str:
        return f"RecordView({len(self)} records, {len(self._pool)} distinct)"


def _index_dtype(n: int) -> np.dtype:
    """The smallest unsigned integer type that can index ``n`` items (one byte a line below 256)."""
    return np.min_scalar_type(max(n - 1, 0))


def _take(table: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``table[index]``, a block at a time: numpy copies a fancy index to 8-byte integers, which for
    a long index of small integers would be many times the index itself."""
    out = np.empty(len(index), dtype=table.dtype)
    for start in range(0, len(index), _BLOCK):
        out[start : start + _BLOCK] = table[index[start : start + _BLOCK]]
    return out


def _bincount(index: np.ndarray, n: int) -> np.ndarray:
    """``np.bincount(index, minlength=n)``, a block at a time (see :func:`_take`)."""
    counts = np.zeros(n, dtype=np.int64)
    for start in range(0, len(index), _BLOCK):
        counts += np.bincount(index[start : start + _BLOCK], minlength=n)
    return counts


class NameDataset:
    """Records (one per line of the data) with the data's labels, kind and source.

    Stored as the distinct records and, per line, an index into them (see :class:`RecordView`), so
    repeated lines cost a byte or two each; :attr:`records` reads like a list."""

    def __init__(
        self, records: Iterable[NameRecord], labels: list[str] | None = None, kind: str = "labeled", source: str = ""
    ):
        if isinstance(records, RecordView):
            pool, index = records._pool, records._index
        else:
            pool = list(records)
            index = np.arange(len(pool), dtype=_index_dtype(len(pool)))
        self._pool: list[NameRecord] = pool
        self._index: np.ndarray = index
        self.labels: list[str] = list(labels) if labels is not None else []
        self.kind, self.source = kind, source

    @classmethod
    def from_index(
        cls, pool: list[NameRecord], index: np.ndarray, labels: list[str], kind: str, source: str
    ) -> NameDataset:
        """A data set whose line ``i`` is ``pool[index[i]]``."""
        ds = cls([], labels, kind, source)
        ds._pool, ds._index = pool, np.asarray(index).astype(_index_dtype(len(pool)), copy=False)
        return ds

    @property
    def records(self) -> RecordView:
        return RecordView(self._pool, self._index)

    @property
    def names(self) -> list[str]:
        names = [r.name for r in self._pool]
        return [names[j] for j in self._index.tolist()]

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self) -> Iterator[NameRecord]:
        return iter(self.records)

    def __repr__(self) -> str:
        return f"NameDataset({self.source!r}, {self.kind}, {len(self)} records, {len(self.labels)} labels)"

    def line_counts(self) -> np.ndarray:
        """How many lines hold each distinct record (aligned with the distinct records)."""
        return _bincount(self._index, len(self._pool))

    def distinct(self) -> list[tuple[NameRecord, int]]:
        """``(record, number of lines)`` for each distinct record that some line holds."""
        return [(r, c) for r, c in zip(self._pool, self.line_counts().tolist()) if c]

    def distinct_names(self) -> list[str]:
        return list(dict.fromkeys(r.name for r, _ in self.distinct()))

    @property
    def label_ids(self) -> list[int]:
        """Index of each record's label in :attr:`labels` (-1 for an unlabeled record)."""
        index = {label: i for i, label in enumerate(self.labels)}
        ids = np.array([index.get(r.label, -1) if r.label is not None else -1 for r in self._pool], dtype=np.int64)
        return _take(ids, self._index).tolist()

    @property
    def weights(self) -> list[float]:
        return [r.weight for r in self.records]

    @property
    def female_shares(self) -> list[float]:
        return [r.female_share for r in self.records]

    def subset(self, indices: Iterable[int]) -> NameDataset:
        """The records at ``indices`` (line positions), in that order."""
        idx = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64)
        return NameDataset.from_index(self._pool, self._index[idx], self.labels, self.kind, self.source)

    def where(self, mask: np.ndarray) -> NameDataset:
        """The records where the boolean ``mask`` (one entry a line) is true, in order."""
        return NameDataset.from_index(self._pool, self._index[mask], self.labels, self.kind, self.source)

    def sample(self, n: int, seed: int) -> NameDataset:
        """``n`` records drawn without replacement, kept in their order (all of them when ``n`` is not
        smaller): the first ``n`` of ``numpy.random.default_rng(seed).permutation(len(self))``, or
        above :data:`SHUFFLE_MAX` lines a draw whose memory grows with ``n``, not with the lines."""
        if n >= len(self):
            return self
        rng = np.random.default_rng(seed)
        if len(self) <= SHUFFLE_MAX:
            keep = rng.permutation(len(self))[:n]
        else:
            keep = rng.choice(len(self), size=n, replace=False, shuffle=False)
        return self.subset(np.sort(keep))
