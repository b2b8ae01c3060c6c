"""Loading name data sets from files: the formats :func:`load` reads, and :func:`data_sha256`, the
data's digest that a model records. No torch here (inference must run without it).

Formats that :func:`load` reads, chosen by what the path is:

* a directory of ``<Label>.txt`` files, one name per line (the PyTorch char-RNN tutorial's
  ``data/names``): kind ``"labeled"``;
* a ``.zip`` holding such a directory (the tutorial's ``data.zip`` with ``data/names/*.txt``);
* a ``.tsv`` file of ``name<TAB>label`` lines (an optional ``name<TAB>label`` header): kind ``"labeled"``;
* a ``.csv`` file with header ``name,sex,count`` (US SSA baby names): kind ``"gender"``, one record
  per name with counts summed, label the majority sex (ties go to ``"F"``), ``soft`` the female
  share ``F / (F + M)`` and ``weight`` the total count; a ``.csv`` with header ``name,label`` is
  read like a ``.tsv``. Each line's fields are what Python's :mod:`csv` module reads from it
  (:func:`namemodels.fileio.parse_row`: ``"Smith, Jr",English`` is two fields);
* any other file: one item per line, kind ``"lines"`` (no labels), for generative models.

Names are folded to ASCII as the tutorial does, with the letters of :mod:`namemodels.text` spelt out
(``ß`` -> ``ss``; :func:`namemodels.text.ascii_fold`); blank lines and lines that fold to nothing
are skipped.

It builds on the modules beside it in :mod:`namemodels.data`, one concern each:
:mod:`~namemodels.data.records` (the data set in memory, :class:`~namemodels.data.records.NameDataset`),
:mod:`~namemodels.data.scan` (a file's distinct lines), :mod:`~namemodels.data.zipsafe` (zip safety);
splitting and describing a data set are :mod:`~namemodels.data.split` and :mod:`~namemodels.data.stats`.
File I/O itself (lines, CSV rows, SHA-256) is :mod:`namemodels.fileio`'s.
"""

from __future__ import annotations

import collections
import csv
import functools
import math
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Callable, Union

import numpy as np

from ..fileio import csv_reader, parse_row, sha256_bytes, sha256_file
from ..text import ascii_fold
from .records import DataError, NameDataset, NameRecord, _bincount, _index_dtype, _take
from .scan import Lines, scan_file
from .zipsafe import check_zip_members, scan_zip_member

PathLike = Union[str, Path]


# ---------------------------------------------------------------------------------------- loading
#
# Each line of a file is an id of its distinct raw bytes (namemodels.data.scan), so memory grows
# with the distinct lines, not with the lines. Every distinct line is decoded, folded and parsed
# once; an error names the file and the first line where that text occurs.


def _expand(lines: Lines, records_of: list[list[int]], pool_size: int) -> np.ndarray:
    """Per line of the file, the ids of its records (a line may hold none, or -- split at a Unicode
    line break such as U+2028 -- several), in order."""
    if all(len(r) <= 1 for r in records_of):  # the usual case: one byte or two a line throughout
        skip = pool_size
        table = np.array([r[0] if r else skip for r in records_of], dtype=_index_dtype(pool_size + 1))
        mapped = _take(table, lines.ids)
        return mapped[mapped != skip] if (table == skip).any() else mapped
    counts = np.array([len(r) for r in records_of], dtype=np.int64)[lines.ids]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in records_of])])[lines.ids]
    flat = np.array([i for r in records_of for i in r], dtype=np.int64)
    within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return flat[np.repeat(offsets, counts) + within]


def _name_records(lines: Lines, label: str | None, pool: list[NameRecord], lookup: dict[str, int]) -> np.ndarray:
    """Names of a one-name-a-line file, folded (blank lines and lines that fold to nothing skipped),
    added to ``pool`` (one record per distinct name, via ``lookup``); returns each line's pool ids."""
    records_of: list[list[int]] = []
    for k in range(len(lines.raw)):
        out = []
        for part in lines.text(k).splitlines() or [""]:
            name = ascii_fold(part).strip()
            if name:
                if name not in lookup:
                    lookup[name] = len(pool)
                    pool.append(NameRecord(name, label))
                out.append(lookup[name])
        records_of.append(out)
    return _expand(lines, records_of, len(pool))


def _labeled(files: Sequence[tuple[str, str, Callable[[], Lines]]], source: str) -> NameDataset:
    """files: (label, display path, reader of its lines), one label a file."""
    pool: list[NameRecord] = []
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
    return _labeled([(f.stem, str(f), functools.partial(scan_file, f)) for f in files], str(path))


def _load_zip(path: Path) -> NameDataset:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc})") from None
    with zf:
        by_dir: dict[str, list[zipfile.ZipInfo]] = collections.defaultdict(list)
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
        files = [
            (
                PurePosixPath(i.filename).stem,
                f"{path}!{i.filename}",
                lambda i=i: scan_zip_member(zf, i, f"{path}!{i.filename}"),
            )
            for i in by_dir[chosen]
        ]
        return _labeled(files, str(path))


# ---------------------------------------------------------------------------------------- tables


def _after_header(lines: Lines) -> Lines:
    """The lines after line 1 (a header); line numbers stay those of the file."""
    ids, first, header = lines.ids[1:], lines.first.copy(), int(lines.ids[0])
    again = ids == header
    first[header] = int(again.argmax()) + 2 if again.any() else 0
    return Lines(lines.raw, first, ids, lines.where)


def _first_line(lines: Lines) -> str:
    """Line 1's text ("" for an empty file)."""
    return (lines.text(int(lines.ids[0])).splitlines() or [""])[0] if len(lines.ids) else ""


def _in_order(lines: Lines) -> list[tuple[int, int, int]]:
    """``(k, line number, count)`` for each distinct line that occurs, in order of first occurrence."""
    counts = _bincount(lines.ids, len(lines.raw))
    used = np.flatnonzero(counts)
    used = used[np.argsort(lines.first[used], kind="stable")]
    return list(zip(used.tolist(), lines.first[used].tolist(), counts[used].tolist()))


def _load_tsv(path: Path, lines: Lines, sep: str = "\t") -> NameDataset:
    """``name<sep>label`` lines (a header line ``name<sep>label`` already removed)."""
    pool: list[NameRecord] = []
    lookup: dict[tuple[str, str], int] = {}
    records_of: list[list[int]] = [[] for _ in lines.raw]
    for k, n, _ in _in_order(lines):
        for line in lines.text(k).splitlines():
            if not line.strip():
                continue
            try:
                parts = parse_row(line, sep)  # CSV quoting: "Smith, Jr" is one field
            except csv.Error as exc:
                raise DataError(f"{path}:{n}: cannot be read as {'TSV' if sep == chr(9) else 'CSV'} ({exc})") from None
            if len(parts) != 2:
                raise DataError(
                    f"{path}:{n}: expected 'name{'<TAB>' if sep == chr(9) else sep}label', "
                    f"got {len(parts)} field(s): {line[:60]!r}"
                )
            raw, label = parts[0], parts[1].strip()
            name = ascii_fold(raw).strip()
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
    labels = sorted({r.label for r in pool if r.label is not None})
    return NameDataset.from_index(pool, _expand(lines, records_of, len(pool)), labels, "labeled", str(path))


def _is_header(line: str, sep: str, fields: Sequence[str]) -> bool:
    try:
        cells = parse_row(line, sep)
    except csv.Error:
        return False
    return [c.strip().lower() for c in cells] == list(fields)


def _load_csv(path: Path, lines: Lines) -> NameDataset:
    head = _first_line(lines)
    if _is_header(head, ",", ("name", "label")):
        return _load_tsv(path, _after_header(lines), sep=",")
    if not _is_header(head, ",", ("name", "sex", "count")):
        raise DataError(f"{path}:1: expected the header 'name,sex,count' (or 'name,label'), got {head[:60]!r}")
    lines = _after_header(lines)
    totals: dict[str, list[float]] = {}
    rows = [(n, times, line) for k, n, times in _in_order(lines) for line in lines.text(k).splitlines()]
    for (n, times, _), row in zip(rows, csv_reader((line for _, _, line in rows), ",")):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != 3:
            raise DataError(f"{path}:{n}: expected 3 fields 'name,sex,count', got {len(row)}: {','.join(row)[:60]!r}")
        raw, sex, count = row[0], row[1].strip().upper(), row[2].strip()
        if sex not in ("F", "M"):
            raise DataError(f"{path}:{n}: sex must be F or M, got {row[1]!r}")
        try:
            c = float(count)
            if not math.isfinite(c) or c < 0:
                raise ValueError
        except ValueError:
            raise DataError(f"{path}:{n}: count must be a non-negative number, got {row[2]!r}") from None
        name = ascii_fold(raw).strip()
        if not name:
            if raw.strip():
                continue
            raise DataError(f"{path}:{n}: empty name")
        fm = totals.setdefault(name, [0.0, 0.0])
        fm[0 if sex == "F" else 1] += c * times  # a row that occurs several times counts each time
    if not totals:
        raise DataError(f"{path}: no names found (only a header)")
    records = []
    for name, (f, m) in totals.items():
        total = f + m
        records.append(NameRecord(name, "F" if f >= m else "M", weight=total, soft=f / total if total > 0 else 0.5))
    return NameDataset(records, ["F", "M"], "gender", str(path))


def load(path: PathLike) -> NameDataset:
    """Read a data set; see the module docstring for the formats. Raises :class:`DataError`.

    Memory grows with the distinct lines, not with the lines (see :class:`~namemodels.data.records.RecordView`); a zip's
    members are checked against :func:`~namemodels.data.zipsafe.max_unzip_bytes` before they are read."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        return _load_dir(path)
    suffix = path.suffix.lower()
    if suffix == ".zip" or (suffix not in (".tsv", ".csv", ".txt") and zipfile.is_zipfile(path)):
        return _load_zip(path)
    lines = scan_file(path)
    if not any(lines.text(k).strip() for k in range(len(lines.raw))):
        raise DataError(f"{path}: empty file")
    if suffix == ".tsv":
        return _load_tsv(
            path, _after_header(lines) if _is_header(_first_line(lines), "\t", ("name", "label")) else lines
        )
    if suffix == ".csv":
        return _load_csv(path, lines)
    pool: list[NameRecord] = []
    index = _name_records(lines, None, pool, {})
    if not len(index):
        raise DataError(f"{path}: no names left after folding to ASCII letters")
    return NameDataset.from_index(pool, index, [], "lines", str(path))


# ---------------------------------------------------------------------------------------- checksums


def data_sha256(path: PathLike) -> str:
    """SHA-256 of a file; for a directory, of its files in sorted order of their relative paths
    (each contributes ``relative/path\\0<sha256 of its bytes>\\n``, hidden files skipped)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_file():
        return sha256_file(path)
    files = sorted((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
    rels = [(p.relative_to(path).as_posix(), p) for p in files]
    return sha256_bytes(
        "".join(
            f"{rel}\0{sha256_file(p)}\n" for rel, p in rels if not any(part.startswith(".") for part in rel.split("/"))
        ).encode()
    )
