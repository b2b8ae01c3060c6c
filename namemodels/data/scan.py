"""The byte scanner under :func:`namemodels.data.loader.load`: a file's lines as ids of their distinct raw
texts, so memory grows with the distinct lines, not with the lines (a file that repeats one name
millions of times costs one text and one byte a line). The bytes come from
:func:`namemodels.fileio.byte_lines` (a BOM at the start dropped); a block whose lines were seen just
before (a file that repeats itself) is recognised by its digest and not split again.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ..fileio import byte_lines
from .records import DataError, _index_dtype

__all__ = ["Lines", "scan", "scan_file", "CHUNK", "MAX_LINE"]

CHUNK = 1 << 22  # bytes read at a time
MAX_LINE = 1 << 16  # a longer line is not a name (and would otherwise be held whole)
SEEN = 16  # blocks remembered by digest


@dataclass
class Lines:
    """The lines of one file: distinct raw lines (first-seen order), their first line numbers, and
    the id of each line's raw text."""

    raw: list[bytes]
    first: np.ndarray  # 1-based line number where raw[k] first occurs
    ids: np.ndarray  # per line: index into raw
    where: str

    def text(self, k: int) -> str:
        """raw[k] decoded; a :class:`DataError` naming the line when it is not UTF-8."""
        try:
            return self.raw[k].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.where}:{int(self.first[k])}: not UTF-8 text ({exc.reason})") from None


def scan(stream: IO[bytes], where: str) -> Lines:
    """The lines of ``stream`` (``where``: the name errors give it); a :class:`DataError` for a line
    longer than :data:`MAX_LINE` bytes or a stream that cannot be read."""
    ids: dict[bytes, int] = collections.defaultdict(itertools.count().__next__)  # new text -> next id, in C
    parts: list[np.ndarray] = []
    firsts: list[np.ndarray] = []
    seen: dict[bytes, np.ndarray] = {}  # digest of a block -> its lines' ids
    done = 0  # lines before the current block
    try:
        for block, cut in byte_lines(stream, CHUNK, MAX_LINE):
            if cut:
                raise DataError(f"{where}:{done + 1}: a line longer than {MAX_LINE} bytes; this is not a file of names")
            digest = hashlib.blake2b(block, digest_size=16).digest()
            if digest in seen:  # a file that repeats itself: a block read before has the same lines
                chunk_ids = seen[digest]
            else:
                chunk_ids = _line_ids(block.split(b"\n"), ids, done, firsts)
                if len(seen) == SEEN:
                    seen.pop(next(iter(seen)))
                seen[digest] = chunk_ids
            parts.append(chunk_ids)
            done += len(chunk_ids)
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{where}: cannot read ({exc})") from None
    first = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
    raw = list(ids)
    del ids
    long = [k for k, r in enumerate(raw) if len(r) > MAX_LINE]
    if long:
        raise DataError(
            f"{where}:{int(first[long[0]])}: a line longer than {MAX_LINE} bytes; this is not a file of names"
        )
    index = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    del parts
    return Lines(raw, first, index.astype(_index_dtype(len(raw)), copy=False), where)


def _line_ids(lines: list[bytes], ids: dict[bytes, int], done: int, firsts: list[np.ndarray]) -> np.ndarray:
    """The id of each line's text (new texts get the next ids); appends the line numbers where the
    new texts first occur (``done`` lines came before these) to ``firsts``."""
    before = len(ids)
    out = np.fromiter(map(ids.__getitem__, lines), dtype=np.int64, count=len(lines))
    if len(ids) > before:
        pos = np.flatnonzero(out >= before)
        _, first = np.unique(out[pos], return_index=True)
        firsts.append(done + pos[first] + 1)
    return out.astype(_index_dtype(len(ids)))


def scan_file(path: Path) -> Lines:
    """:func:`scan` of a file; a :class:`DataError` when it cannot be opened."""
    try:
        with open(path, "rb") as f:
            return scan(f, str(path))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
