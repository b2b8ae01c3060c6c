"""Loading, splitting and describing name data sets. No torch here (inference must run without it).

Formats that :func:`load` reads, chosen by what the path is:

* a directory of ``<Label>.txt`` files, one name per line (the PyTorch char-RNN tutorial's
  ``data/names``): kind ``"labeled"``;
* a ``.zip`` holding such a directory (the tutorial's ``data.zip`` with ``data/names/*.txt``);
* a ``.tsv`` file of ``name<TAB>label`` lines (an optional ``name<TAB>label`` header): kind ``"labeled"``;
* a ``.csv`` file with header ``name,sex,count`` (US SSA baby names): kind ``"gender"``, one record
  per name with counts summed, label the majority sex (ties go to ``"F"``), ``soft`` the female
  share ``F / (F + M)`` and ``weight`` the total count; a ``.csv`` with header ``name,label`` is
  read like a ``.tsv``;
* any other file: one item per line, kind ``"lines"`` (no labels), for generative models.

Names are folded to ASCII as the tutorial does, with the letters of :mod:`namemodels.text` spelt out
(``ß`` -> ``ss``; :func:`namemodels.text.ascii_fold`); blank lines and lines that fold to nothing
are skipped.
"""
from __future__ import annotations

import collections
import collections.abc
import csv
import hashlib
import itertools
import math
import os
import random
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import UsageError
from .text import ALL_LETTERS, ascii_fold, check_name

__all__ = ["DataError", "unicode_to_ascii", "NameRecord", "NameDataset", "load", "grouped_split",
           "grouped_parts", "data_sha256", "check_name", "stats", "format_stats", "plot_stats", "ALL_LETTERS", "RecordView",
           "max_unzip_bytes", "check_zip_members"]

PathLike = Union[str, Path]


class DataError(UsageError):
    """A data file or directory that cannot be used; the message names the file (and line)."""


unicode_to_ascii = ascii_fold   # the name this module has always exported


@dataclass
class NameRecord:
    name: str
    label: Optional[str] = None
    weight: float = 1.0
    soft: Optional[float] = None  # for gender data: the female share F / (F + M)

    @property
    def female_share(self) -> float:
        """The soft gender label: ``soft`` when known, else 1.0 for label "F" and 0.0 otherwise."""
        return self.soft if self.soft is not None else float(self.label == "F")


_ITER_CHUNK = 1 << 16      # lines turned into Python objects at a time
_BLOCK = 1 << 20           # lines per block of numpy work on a long index
SHUFFLE_MAX = 1 << 22      # NameDataset.sample shuffles every line up to this many


class RecordView(collections.abc.Sequence):
    """A data set's records, one per line, as a read-only sequence: the lines' indices into the
    list of distinct records (a file that repeats a name a million times holds one record and a
    million small integers). Slicing and ``+`` give plain lists."""

    __slots__ = ("_pool", "_index")

    def __init__(self, pool: List[NameRecord], index: np.ndarray):
        self._pool, self._index = pool, index

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._pool[j] for j in self._index[i].tolist()]
        return self._pool[self._index[i]]

    def __iter__(self):
        pool = self._pool
        for start in range(0, len(self._index), _ITER_CHUNK):
            for j in self._index[start:start + _ITER_CHUNK].tolist():
                yield pool[j]

    def __add__(self, other) -> List[NameRecord]:
        return list(self) + list(other)

    def __radd__(self, other) -> List[NameRecord]:
        return list(other) + list(self)

    def __eq__(self, other) -> bool:
        return isinstance(other, (list, tuple, RecordView)) and list(self) == list(other)

    __hash__ = None

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
        out[start:start + _BLOCK] = table[index[start:start + _BLOCK]]
    return out


def _bincount(index: np.ndarray, n: int) -> np.ndarray:
    """``np.bincount(index, minlength=n)``, a block at a time (see :func:`_take`)."""
    counts = np.zeros(n, dtype=np.int64)
    for start in range(0, len(index), _BLOCK):
        counts += np.bincount(index[start:start + _BLOCK], minlength=n)
    return counts


class NameDataset:
    """Records (one per line of the data) with the data's labels, kind and source.

    Stored as the distinct records and, per line, an index into them (see :class:`RecordView`), so
    repeated lines cost a byte or two each; :attr:`records` reads like a list."""

    def __init__(self, records: Iterable[NameRecord], labels: Optional[List[str]] = None, kind: str = "labeled",
                 source: str = ""):
        if isinstance(records, RecordView):
            pool, index = records._pool, records._index
        else:
            pool = list(records)
            index = np.arange(len(pool), dtype=_index_dtype(len(pool)))
        self._pool: List[NameRecord] = pool
        self._index: np.ndarray = index
        self.labels: List[str] = list(labels) if labels is not None else []
        self.kind, self.source = kind, source

    @classmethod
    def from_index(cls, pool: List[NameRecord], index: np.ndarray, labels: List[str], kind: str,
                   source: str) -> "NameDataset":
        """A data set whose line ``i`` is ``pool[index[i]]``."""
        ds = cls([], labels, kind, source)
        ds._pool, ds._index = pool, np.asarray(index).astype(_index_dtype(len(pool)), copy=False)
        return ds

    @property
    def records(self) -> RecordView:
        return RecordView(self._pool, self._index)

    @property
    def names(self) -> List[str]:
        names = [r.name for r in self._pool]
        return [names[j] for j in self._index.tolist()]

    def __len__(self) -> int:
        return len(self._index)

    def __iter__(self):
        return iter(self.records)

    def __repr__(self) -> str:
        return f"NameDataset({self.source!r}, {self.kind}, {len(self)} records, {len(self.labels)} labels)"

    def line_counts(self) -> np.ndarray:
        """How many lines hold each distinct record (aligned with the distinct records)."""
        return _bincount(self._index, len(self._pool))

    def distinct(self) -> List[Tuple[NameRecord, int]]:
        """``(record, number of lines)`` for each distinct record that some line holds."""
        return [(r, c) for r, c in zip(self._pool, self.line_counts().tolist()) if c]

    def distinct_names(self) -> List[str]:
        return list(dict.fromkeys(r.name for r, _ in self.distinct()))

    @property
    def label_ids(self) -> List[int]:
        """Index of each record's label in :attr:`labels` (-1 for an unlabeled record)."""
        index = {label: i for i, label in enumerate(self.labels)}
        ids = np.array([index.get(r.label, -1) if r.label is not None else -1 for r in self._pool], dtype=np.int64)
        return _take(ids, self._index).tolist()

    @property
    def weights(self) -> List[float]:
        return [r.weight for r in self.records]

    @property
    def female_shares(self) -> List[float]:
        return [r.female_share for r in self.records]

    def subset(self, indices: Iterable[int]) -> "NameDataset":
        """The records at ``indices`` (line positions), in that order."""
        idx = np.asarray(indices if isinstance(indices, np.ndarray) else list(indices), dtype=np.int64)
        return NameDataset.from_index(self._pool, self._index[idx], self.labels, self.kind, self.source)

    def where(self, mask: np.ndarray) -> "NameDataset":
        """The records where the boolean ``mask`` (one entry a line) is true, in order."""
        return NameDataset.from_index(self._pool, self._index[mask], self.labels, self.kind, self.source)

    def sample(self, n: int, seed: int) -> "NameDataset":
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


# ---------------------------------------------------------------------------------------- loading
#
# Files are read in chunks and each line is mapped to an id of its distinct raw bytes, so memory
# grows with the distinct lines, not with the lines: a file that repeats one name millions of times
# costs one record and one byte a line. Every distinct line is decoded, folded and parsed once; an
# error names the file and the first line where that text occurs.

_CHUNK = 1 << 22          # bytes read at a time
_MAX_LINE = 1 << 16       # a longer line is not a name (and would otherwise be held whole)
_BOM = b"\xef\xbb\xbf"
_SEEN = 16            # blocks remembered by digest


@dataclass
class _Lines:
    """The lines of one file: distinct raw lines (first-seen order), their first line numbers, and
    the id of each line's raw text."""
    raw: List[bytes]
    first: np.ndarray       # 1-based line number where raw[k] first occurs
    ids: np.ndarray         # per line: index into raw
    where: str

    def text(self, k: int) -> str:
        """raw[k] decoded; a :class:`DataError` naming the line when it is not UTF-8."""
        try:
            return self.raw[k].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{self.where}:{int(self.first[k])}: not UTF-8 text ({exc.reason})") from None


def _scan(stream: BinaryIO, where: str) -> _Lines:
    ids: Dict[bytes, int] = collections.defaultdict(itertools.count().__next__)   # new text -> next id, in C
    parts: List[np.ndarray] = []
    firsts: List[np.ndarray] = []
    seen: Dict[bytes, Tuple[np.ndarray, bytes]] = {}   # digest of a block -> its lines' ids and the rest
    done = 0            # lines before the current block
    carry = b""
    start = True
    while True:
        try:
            chunk = stream.read(_CHUNK)
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{where}: cannot read ({exc})") from None
        if start and chunk.startswith(_BOM):
            chunk = chunk[len(_BOM):]
        start = False
        if not chunk:
            break
        block = carry + chunk
        digest = hashlib.blake2b(block, digest_size=16).digest()
        if digest in seen:   # a file that repeats itself: a block read before has the same lines
            chunk_ids, carry = seen[digest]
        else:
            lines = block.split(b"\n")
            carry = lines.pop()
            if len(carry) > _MAX_LINE:
                raise DataError(f"{where}:{done + len(lines) + 1}: a line longer than {_MAX_LINE} bytes; "
                                "this is not a file of names")
            chunk_ids = _line_ids(lines, ids, done, firsts)
            if len(seen) == _SEEN:
                seen.pop(next(iter(seen)))
            seen[digest] = (chunk_ids, carry)
        parts.append(chunk_ids)
        done += len(chunk_ids)
    if carry:
        parts.append(_line_ids([carry], ids, done, firsts))
    first = np.concatenate(firsts) if firsts else np.zeros(0, np.int64)
    raw = list(ids)
    del ids
    long = [k for k, r in enumerate(raw) if len(r) > _MAX_LINE]
    if long:
        raise DataError(f"{where}:{int(first[long[0]])}: a line longer than {_MAX_LINE} bytes; "
                        "this is not a file of names")
    index = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    del parts
    return _Lines(raw, first, index.astype(_index_dtype(len(raw)), copy=False), where)


def _line_ids(lines: List[bytes], ids: Dict[bytes, int], done: int, firsts: List[np.ndarray]) -> np.ndarray:
    """The id of each line's text (new texts get the next ids); appends the line numbers where the
    new texts first occur (``done`` lines came before these) to ``firsts``."""
    before = len(ids)
    out = np.fromiter(map(ids.__getitem__, lines), dtype=np.int64, count=len(lines))
    if len(ids) > before:
        pos = np.flatnonzero(out >= before)
        _, first = np.unique(out[pos], return_index=True)
        firsts.append(done + pos[first] + 1)
    return out.astype(_index_dtype(len(ids)))


def _scan_file(path: Path) -> _Lines:
    try:
        with open(path, "rb") as f:
            return _scan(f, str(path))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _expand(lines: _Lines, records_of: List[List[int]], pool_size: int) -> np.ndarray:
    """Per line of the file, the ids of its records (a line may hold none, or -- split at a Unicode
    line break such as U+2028 -- several), in order."""
    if all(len(r) <= 1 for r in records_of):   # the usual case: one byte or two a line throughout
        skip = pool_size
        table = np.array([r[0] if r else skip for r in records_of], dtype=_index_dtype(pool_size + 1))
        mapped = _take(table, lines.ids)
        return mapped[mapped != skip] if (table == skip).any() else mapped
    counts = np.array([len(r) for r in records_of], dtype=np.int64)[lines.ids]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in records_of])])[lines.ids]
    flat = np.array([i for r in records_of for i in r], dtype=np.int64)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return flat[np.repeat(offsets, counts) + within]


def _name_records(lines: _Lines, label: Optional[str], pool: List[NameRecord],
                  lookup: Dict[str, int]) -> np.ndarray:
    """Names of a one-name-a-line file, folded (blank lines and lines that fold to nothing skipped),
    added to ``pool`` (one record per distinct name, via ``lookup``); returns each line's pool ids."""
    records_of: List[List[int]] = []
    for k in range(len(lines.raw)):
        out = []
        for part in lines.text(k).splitlines() or [""]:
            name = unicode_to_ascii(part).strip()
            if name:
                if name not in lookup:
                    lookup[name] = len(pool)
                    pool.append(NameRecord(name, label))
                out.append(lookup[name])
        records_of.append(out)
    return _expand(lines, records_of, len(pool))


def _labeled(files: Sequence[Tuple[str, str, Callable[[], _Lines]]], source: str) -> NameDataset:
    """files: (label, display path, reader of its lines), one label a file."""
    pool: List[NameRecord] = []
    parts, labels = [], set()
    for label, _where, read in sorted(files, key=lambda f: (f[0], f[1])):
        ids = _name_records(read(), label, pool, {})
        if len(ids):
            labels.add(label)
            parts.append(ids)
    if not pool:
        raise DataError(f"{source}: no names found (the .txt files are empty)")
    index = np.concatenate([p.astype(_index_dtype(len(pool))) for p in parts])
    return NameDataset.from_index(pool, index, sorted(labels), "labeled", source)


def _load_dir(path: Path) -> NameDataset:
    files = sorted(p for p in path.glob("*.txt") if p.is_file())
    if not files:
        contents = sorted(p.name for p in path.iterdir())[:8]
        hint = f" (it holds: {', '.join(contents)})" if contents else " (it is empty)"
        raise DataError(f"{path}: no <Label>.txt files in this directory{hint}")
    return _labeled([(f.stem, str(f), lambda f=f: _scan_file(f)) for f in files], str(path))


# ---------------------------------------------------------------------------------------- zip archives

MAX_UNZIP_MB = 256
MAX_UNZIP_ENV = "NAMEMODELS_MAX_UNZIP_MB"


def max_unzip_bytes() -> int:
    """The cap on the bytes a zip archive's members may unpack to: ``NAMEMODELS_MAX_UNZIP_MB``
    megabytes (default 256)."""
    value = os.environ.get(MAX_UNZIP_ENV, "").strip()
    if not value:
        return MAX_UNZIP_MB * 1_000_000
    try:
        mb = float(value)
        if not math.isfinite(mb) or mb <= 0:
            raise ValueError
    except ValueError:
        raise DataError(f"{MAX_UNZIP_ENV} must be a positive number of megabytes, got {value!r}") from None
    return int(mb * 1_000_000)


def check_zip_members(zf: zipfile.ZipFile, members: Sequence[zipfile.ZipInfo], where: str) -> None:
    """Refuse an archive with a member name that climbs out of its folder (``..``, an absolute path),
    and members to read whose declared sizes add up to more than :func:`max_unzip_bytes` -- checked
    before anything is unpacked (zipfile stops a member at its declared size)."""
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or ".." in name.split("/") or re.match(r"^[A-Za-z]:", name):
            raise DataError(f"{where}: unsafe member name {info.filename!r} in the zip (it points outside the "
                            "archive's folders); the archive was not used")
    total, cap = sum(i.file_size for i in members), max_unzip_bytes()
    if total > cap:
        raise DataError(f"{where}: its members unpack to {total / 1e6:.1f} MB, over the {cap / 1e6:g} MB limit; "
                        f"if you trust this archive, raise the limit with {MAX_UNZIP_ENV}=<megabytes>")


def scan_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> _Lines:
    try:
        with zf.open(info) as f:
            return _scan(f, where)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{where}: cannot read ({exc})") from None


def _load_zip(path: Path) -> NameDataset:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc})") from None
    with zf:
        by_dir: Dict[str, List[zipfile.ZipInfo]] = collections.defaultdict(list)
        for info in zf.infolist():
            p = PurePosixPath(info.filename)
            if info.is_dir() or p.suffix.lower() != ".txt" or "__MACOSX" in p.parts or p.name.startswith("."):
                continue
            by_dir[str(p.parent)].append(info)
        if not by_dir:
            raise DataError(f"{path}: no <Label>.txt files inside the zip")
        named = [d for d in by_dir if PurePosixPath(d).name == "names"]
        chosen = named[0] if named else max(sorted(by_dir), key=lambda d: len(by_dir[d]))
        check_zip_members(zf, by_dir[chosen], str(path))
        files = [(PurePosixPath(i.filename).stem, f"{path}!{i.filename}",
                  lambda i=i: scan_zip_member(zf, i, f"{path}!{i.filename}")) for i in by_dir[chosen]]
        return _labeled(files, str(path))


# ---------------------------------------------------------------------------------------- tables

def _after_header(lines: _Lines) -> _Lines:
    """The lines after line 1 (a header); line numbers stay those of the file."""
    ids, first, header = lines.ids[1:], lines.first.copy(), int(lines.ids[0])
    again = ids == header
    first[header] = int(again.argmax()) + 2 if again.any() else 0
    return _Lines(lines.raw, first, ids, lines.where)


def _first_line(lines: _Lines) -> str:
    """Line 1's text ("" for an empty file)."""
    return (lines.text(int(lines.ids[0])).splitlines() or [""])[0] if len(lines.ids) else ""


def _in_order(lines: _Lines) -> List[Tuple[int, int, int]]:
    """``(k, line number, count)`` for each distinct line that occurs, in order of first occurrence."""
    counts = _bincount(lines.ids, len(lines.raw))
    used = np.flatnonzero(counts)
    used = used[np.argsort(lines.first[used], kind="stable")]
    return list(zip(used.tolist(), lines.first[used].tolist(), counts[used].tolist()))


def _load_tsv(path: Path, lines: _Lines, sep: str = "\t") -> NameDataset:
    """``name<sep>label`` lines (a header line ``name<sep>label`` already removed)."""
    pool: List[NameRecord] = []
    lookup: Dict[Tuple[str, str], int] = {}
    records_of: List[List[int]] = [[] for _ in lines.raw]
    for k, n, _ in _in_order(lines):
        for line in lines.text(k).splitlines():
            if not line.strip():
                continue
            parts = line.split(sep)
            if len(parts) != 2:
                raise DataError(f"{path}:{n}: expected 'name{'<TAB>' if sep == chr(9) else sep}label', "
                                f"got {len(parts)} field(s): {line[:60]!r}")
            raw, label = parts[0], parts[1].strip()
            name = unicode_to_ascii(raw).strip()
            if not label:
                raise DataError(f"{path}:{n}: empty label: {line[:60]!r}")
            if not name:
                if raw.strip():
                    continue  # a name in another script: nothing left after folding
                raise DataError(f"{path}:{n}: empty name: {line[:60]!r}")
            if (name, label) not in lookup:
                lookup[(name, label)] = len(pool)
                pool.append(NameRecord(name, label))
            records_of[k].append(lookup[(name, label)])
    if not pool:
        raise DataError(f"{path}: no names found")
    return NameDataset.from_index(pool, _expand(lines, records_of, len(pool)), sorted({r.label for r in pool}),
                                  "labeled", str(path))


def _is_header(line: str, sep: str, fields: Sequence[str]) -> bool:
    cells = next(csv.reader([line]), []) if sep == "," else line.split(sep)
    return [c.strip().lower() for c in cells] == list(fields)


def _load_csv(path: Path, lines: _Lines) -> NameDataset:
    head = _first_line(lines)
    if _is_header(head, ",", ("name", "label")):
        return _load_tsv(path, _after_header(lines), sep=",")
    if not _is_header(head, ",", ("name", "sex", "count")):
        raise DataError(f"{path}:1: expected the header 'name,sex,count' (or 'name,label'), got {head[:60]!r}")
    lines = _after_header(lines)
    totals: Dict[str, List[float]] = {}
    rows = [(n, times, line) for k, n, times in _in_order(lines) for line in lines.text(k).splitlines()]
    for (n, times, _), row in zip(rows, csv.reader(line for _, _, line in rows)):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 3:
            raise DataError(f"{path}:{n}: expected 3 fields 'name,sex,count', got {len(row)}: "
                            f"{','.join(row)[:60]!r}")
        raw, sex, count = row[0], row[1].strip().upper(), row[2].strip()
        if sex not in ("F", "M"):
            raise DataError(f"{path}:{n}: sex must be F or M, got {row[1]!r}")
        try:
            c = float(count)
            if not math.isfinite(c) or c < 0:
                raise ValueError
        except ValueError:
            raise DataError(f"{path}:{n}: count must be a non-negative number, got {row[2]!r}") from None
        name = unicode_to_ascii(raw).strip()
        if not name:
            if raw.strip():
                continue
            raise DataError(f"{path}:{n}: empty name")
        fm = totals.setdefault(name, [0.0, 0.0])
        fm[0 if sex == "F" else 1] += c * times   # a row that occurs several times counts each time
    if not totals:
        raise DataError(f"{path}: no names found (only a header)")
    records = []
    for name, (f, m) in totals.items():
        total = f + m
        records.append(NameRecord(name, "F" if f >= m else "M", weight=total,
                                  soft=f / total if total > 0 else 0.5))
    return NameDataset(records, ["F", "M"], "gender", str(path))


def load(path: PathLike) -> NameDataset:
    """Read a data set; see the module docstring for the formats. Raises :class:`DataError`.

    Memory grows with the distinct lines, not with the lines (see :class:`RecordView`); a zip's
    members are checked against :func:`max_unzip_bytes` before they are read."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        return _load_dir(path)
    suffix = path.suffix.lower()
    if suffix == ".zip" or (suffix not in (".tsv", ".csv", ".txt") and zipfile.is_zipfile(path)):
        return _load_zip(path)
    lines = _scan_file(path)
    if not any(lines.text(k).strip() for k in range(len(lines.raw))):
        raise DataError(f"{path}: empty file")
    if suffix == ".tsv":
        return _load_tsv(path, _after_header(lines) if _is_header(_first_line(lines), "\t", ("name", "label"))
                         else lines)
    if suffix == ".csv":
        return _load_csv(path, lines)
    pool: List[NameRecord] = []
    index = _name_records(lines, None, pool, {})
    if not len(index):
        raise DataError(f"{path}: no names left after folding to ASCII letters")
    return NameDataset.from_index(pool, index, [], "lines", str(path))


# ---------------------------------------------------------------------------------------- splitting

def grouped_split(ds: NameDataset, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                  group: bool = True) -> Tuple[NameDataset, NameDataset, NameDataset]:
    """Split into train/validation/test (:func:`grouped_parts` with three fractions).

    Stratified by label (each label's records are divided in ``fractions``) and, with ``group``,
    grouped by the case-folded name string so that no string lands in two splits (a string that
    carries two labels goes with its more common label's stratum). Deterministic for a seed and
    independent of the order of the records."""
    if len(fractions) != 3:
        raise UsageError(f"fractions must be three non-negative numbers (train, val, test), got {tuple(fractions)}")
    return grouped_parts(ds, fractions, seed, group)  # type: ignore[return-value]


def grouped_parts(ds: NameDataset, fractions: Sequence[float], seed: int = 0,
                  group: bool = True) -> Tuple[NameDataset, ...]:
    """As many parts as ``fractions`` has (``(1,) * k``: the k folds of cross-validation), each
    stratified by label and grouped by name string as :func:`grouped_split` describes."""
    fr = [float(f) for f in fractions]
    if not 0 < len(fr) < 256 or any(not math.isfinite(f) or f < 0 for f in fr) or sum(fr) <= 0:
        raise UsageError(f"fractions must be 1 to 255 non-negative numbers, not all 0, got {tuple(fractions)}")
    total = sum(fr)
    bounds = [sum(fr[: i + 1]) / total for i in range(len(fr))]
    last = max(i for i, f in enumerate(fr) if f > 0)   # where a group past every bound goes

    # Groups are worked out over the distinct records (a record on many lines is counted, not
    # listed), then each line goes to its group's split.
    pool, lines = ds._pool, ds.line_counts()
    if group:
        key_of: Dict[str, int] = {}
        group_of = np.array([key_of.setdefault(r.name.casefold(), len(key_of)) for r in pool], dtype=np.int64)
        keys: List[object] = list(key_of)
        size = np.zeros(len(keys), dtype=np.int64)
        np.add.at(size, group_of, lines)
        votes: Dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
        for p in np.flatnonzero(lines).tolist():
            votes[int(group_of[p])][pool[p].label or ""] += int(lines[p])
    else:   # every line its own group
        keys = list(range(len(ds)))
        size = np.ones(len(ds), dtype=np.int64)
        votes = {i: collections.Counter({r.label or "": 1}) for i, r in enumerate(ds.records)}

    strata: Dict[str, List[object]] = collections.defaultdict(list)
    for g, vote in votes.items():
        label = min(vote, key=lambda lab: (-vote[lab], lab))
        strata[label].append(keys[g])
    gid = {k: g for g, k in enumerate(keys)} if group else None

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


# ---------------------------------------------------------------------------------------- checksums

def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_sha256(path: PathLike) -> str:
    """SHA-256 of a file; for a directory, of its files in sorted order of their relative paths
    (each contributes ``relative/path\\0<sha256 of its bytes>\\n``, hidden files skipped)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        return _file_sha256(path)
    h = hashlib.sha256()
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
    for p in files:
        rel = p.relative_to(path).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        h.update(f"{rel}\0{_file_sha256(p)}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------- stats

def stats(ds: NameDataset) -> dict:
    """Counts per class, length histogram and letter frequency; JSON-safe (string keys). Works over
    the distinct records, each weighted by the lines that hold it."""
    distinct = ds.distinct()
    hist: collections.Counter = collections.Counter()
    letters: collections.Counter = collections.Counter()
    classes: collections.Counter = collections.Counter()
    labels_of = collections.defaultdict(set)
    for r, c in distinct:
        hist[len(r.name)] += c
        for ch, k in collections.Counter(r.name.lower()).items():
            letters[ch] += k * c
        if r.label is not None:
            classes[r.label] += c
        labels_of[r.name.casefold()].add(r.label)
    n = len(ds)
    length_sum = sum(length * c for length, c in hist.items())
    out = {
        "source": ds.source,
        "kind": ds.kind,
        "records": n,
        "unique_names": len(labels_of),
        "labels": list(ds.labels),
        "classes": {label: classes.get(label, 0) for label in ds.labels},
        "names_with_several_labels": sum(1 for s in labels_of.values() if len(s) > 1),
        "length": {
            "min": min(hist) if hist else 0,
            "max": max(hist) if hist else 0,
            "mean": round(length_sum / n, 3) if n else 0.0,
        },
        "length_histogram": {str(k): hist[k] for k in sorted(hist)},
        "letters": {c: letters[c] for c in sorted(letters, key=lambda c: (-letters[c], c))},
    }
    if ds.kind == "gender":
        total = sum(r.weight * c for r, c in distinct)
        female = sum(r.weight * r.female_share * c for r, c in distinct)
        out["births"] = {"total": total, "F": female, "M": total - female}
        out["ambiguous_names"] = sum(c for r, c in distinct if r.soft is not None and 0.1 < r.soft < 0.9)
    return out


def format_stats(st: dict) -> str:
    """Human-readable text of :func:`stats`."""
    lines = [f"{st['source']}: {st['records']} {st['kind']} records, {st['unique_names']} distinct names"]
    ln = st["length"]
    lines.append(f"length: min {ln['min']}, max {ln['max']}, mean {ln['mean']:.1f}")
    if st["classes"]:
        lines.append(f"classes ({len(st['classes'])}):")
        width = max(len(c) for c in st["classes"])
        total = max(1, st["records"])
        for c, n in st["classes"].items():
            lines.append(f"  {c:<{width}}  {n:>7}  {100 * n / total:5.1f}%")
        if st.get("names_with_several_labels"):
            lines.append(f"names under more than one label: {st['names_with_several_labels']}")
    if "births" in st:
        b = st["births"]
        lines.append(f"births: {b['total']:.0f} (F {b['F']:.0f}, M {b['M']:.0f}); "
                     f"names with female share between 0.1 and 0.9: {st['ambiguous_names']}")
    top = list(st["letters"].items())[:12]
    lines.append("most common characters: " + ", ".join(f"{c!r} {n}" for c, n in top))
    return "\n".join(lines)


def plot_stats(st: dict, path: PathLike) -> Path:
    """Write a PNG with the length histogram, the class balance and the letter frequency."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise UsageError("--plot needs matplotlib: pip install 'namemodels[train]' or pip install matplotlib") from None
    path = Path(path)
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.4]})

    hist = {int(k): v for k, v in st["length_histogram"].items()}
    ax1.bar(list(hist), list(hist.values()), color="tab:blue")
    ax1.set_xlabel("name length (characters)")
    ax1.set_ylabel("names")
    ax1.set_title("Length histogram")

    if st["classes"]:
        classes = st["classes"]
        bars = ax2.barh(list(classes)[::-1], list(classes.values())[::-1], color="tab:orange")
        if len(classes) <= 24:
            ax2.bar_label(bars, padding=2, fontsize=7 if len(classes) > 12 else 9)
            ax2.margins(x=0.15)
        ax2.set_xlabel("names")
        ax2.set_ylabel("class")
        ax2.tick_params(axis="y", labelsize=8 if len(classes) > 12 else 10)
    else:
        ax2.text(0.5, 0.5, "no labels\n(one item per line)", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_xticks([])
        ax2.set_yticks([])
        ax2.set_xlabel("names")
        ax2.set_ylabel("class")
    ax2.set_title("Class balance")

    letters = st["letters"]
    keys = sorted(letters, key=lambda c: (not c.isalpha(), c))
    total = max(1, sum(letters.values()))
    ax3.bar(range(len(keys)), [100 * letters[c] / total for c in keys], color="tab:green")
    ax3.set_xticks(range(len(keys)))
    ax3.set_xticklabels(["␣" if c == " " else c for c in keys], fontsize=8)
    ax3.set_xlabel("character (case-folded)")
    ax3.set_ylabel("share of characters (%)")
    ax3.set_title("Letter frequency")

    kind = {"labeled": "labeled names", "gender": "names with sex counts", "lines": "items, one per line"}
    fig.suptitle(f"{Path(st['source']).name}: {st['records']} {kind.get(st['kind'], st['kind'])}, "
                 f"{len(st['classes'])} classes")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    return path
