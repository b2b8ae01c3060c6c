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

Names are folded to ASCII as the tutorial does (:func:`unicode_to_ascii`); blank lines and lines
that fold to nothing are skipped.
"""
from __future__ import annotations

import collections
import csv
import hashlib
import math
import random
import string
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .errors import UsageError

__all__ = ["DataError", "unicode_to_ascii", "NameRecord", "NameDataset", "load", "grouped_split",
           "data_sha256", "check_name", "stats", "format_stats", "plot_stats", "ALL_LETTERS"]

PathLike = Union[str, Path]

ALL_LETTERS = string.ascii_letters + " .,;'-"
_ALLOWED = frozenset(ALL_LETTERS)
_ASCII_DROP = {i: None for i in range(128) if chr(i) not in _ALLOWED}


class DataError(UsageError):
    """A data file or directory that cannot be used; the message names the file (and line)."""


def unicode_to_ascii(s: str) -> str:
    """Fold to ASCII as the PyTorch char-RNN tutorial does: NFD, drop combining marks (category
    Mn), keep only ASCII letters and `` .,;'-``. ``"Ślusarski"`` -> ``"Slusarski"``; letters
    without a decomposition (``ß``, ``ł``) and other scripts are dropped."""
    if s.isascii():  # fast path, same result
        return s.translate(_ASCII_DROP)
    return "".join(c for c in unicodedata.normalize("NFD", s)
                   if c in _ALLOWED and unicodedata.category(c) != "Mn")


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


@dataclass
class NameDataset:
    records: List[NameRecord]
    labels: List[str] = field(default_factory=list)
    kind: str = "labeled"  # "labeled" | "gender" | "lines"
    source: str = ""

    @property
    def names(self) -> List[str]:
        return [r.name for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    @property
    def label_ids(self) -> List[int]:
        """Index of each record's label in :attr:`labels` (-1 for an unlabeled record)."""
        index = {label: i for i, label in enumerate(self.labels)}
        return [index.get(r.label, -1) if r.label is not None else -1 for r in self.records]

    @property
    def weights(self) -> List[float]:
        return [r.weight for r in self.records]

    @property
    def female_shares(self) -> List[float]:
        return [r.female_share for r in self.records]

    def subset(self, indices: Iterable[int]) -> "NameDataset":
        return NameDataset([self.records[i] for i in indices], list(self.labels), self.kind, self.source)


# ---------------------------------------------------------------------------------------- loading

def _decode_lines(data: bytes, where: str) -> List[str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{where}:{line}: not UTF-8 text ({exc.reason})") from None
    return text.splitlines()


def _read_lines(path: Path) -> List[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return _decode_lines(data, str(path))


def _name_lines(lines: Sequence[str], label: Optional[str]) -> List[NameRecord]:
    out = []
    for line in lines:
        name = unicode_to_ascii(line).strip()
        if name:
            out.append(NameRecord(name, label))
    return out


def _labeled_from_files(files: Sequence[Tuple[str, str, bytes]], source: str) -> NameDataset:
    """files: (label, display path, bytes)."""
    records: List[NameRecord] = []
    labels = []
    for label, where, data in sorted(files):
        recs = _name_lines(_decode_lines(data, where), label)
        if recs:
            labels.append(label)
            records.extend(recs)
    if not records:
        raise DataError(f"{source}: no names found (the .txt files are empty)")
    return NameDataset(records, sorted(labels), "labeled", source)


def _load_dir(path: Path) -> NameDataset:
    files = sorted(p for p in path.glob("*.txt") if p.is_file())
    if not files:
        contents = sorted(p.name for p in path.iterdir())[:8]
        hint = f" (it holds: {', '.join(contents)})" if contents else " (it is empty)"
        raise DataError(f"{path}: no <Label>.txt files in this directory{hint}")
    items = []
    for f in files:
        try:
            items.append((f.stem, str(f), f.read_bytes()))
        except OSError as exc:
            raise DataError(f"{f}: cannot read: {exc.strerror or exc}") from None
    return _labeled_from_files(items, str(path))


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
        items = []
        for info in by_dir[chosen]:
            try:
                data = zf.read(info)
            except (zipfile.BadZipFile, OSError) as exc:
                raise DataError(f"{path}!{info.filename}: cannot read ({exc})") from None
            items.append((PurePosixPath(info.filename).stem, f"{path}!{info.filename}", data))
    return _labeled_from_files(items, str(path))


def _load_tsv(path: Path, lines: Sequence[str], sep: str = "\t", first: int = 1) -> NameDataset:
    records = []
    for n, line in enumerate(lines, start=first):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != 2:
            raise DataError(f"{path}:{n}: expected 'name{'<TAB>' if sep == chr(9) else sep}label', "
                            f"got {len(parts)} field(s): {line[:60]!r}")
        raw, label = parts[0], parts[1].strip()
        if n == 1 and raw.strip().lower() == "name" and label.lower() == "label":
            continue  # header
        name = unicode_to_ascii(raw).strip()
        if not label:
            raise DataError(f"{path}:{n}: empty label: {line[:60]!r}")
        if not name:
            if raw.strip():
                continue  # a name in another script: nothing left after folding
            raise DataError(f"{path}:{n}: empty name: {line[:60]!r}")
        records.append(NameRecord(name, label))
    if not records:
        raise DataError(f"{path}: no names found")
    return NameDataset(records, sorted({r.label for r in records}), "labeled", str(path))


def _load_csv(path: Path, lines: Sequence[str]) -> NameDataset:
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))] if lines else []
    if header == ["name", "label"]:
        return _load_tsv(path, lines[1:], sep=",", first=2)
    if header != ["name", "sex", "count"]:
        raise DataError(f"{path}:1: expected the header 'name,sex,count' (or 'name,label'), got {lines[0][:60]!r}")
    counts: Dict[str, List[float]] = {}
    for n, row in enumerate(csv.reader(lines[1:]), start=2):
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
        name = unicode_to_ascii(raw).strip()
        if not name:
            if raw.strip():
                continue
            raise DataError(f"{path}:{n}: empty name")
        fm = counts.setdefault(name, [0.0, 0.0])
        fm[0 if sex == "F" else 1] += c
    if not counts:
        raise DataError(f"{path}: no names found (only a header)")
    records = []
    for name, (f, m) in counts.items():
        total = f + m
        records.append(NameRecord(name, "F" if f >= m else "M", weight=total,
                                  soft=f / total if total > 0 else 0.5))
    return NameDataset(records, ["F", "M"], "gender", str(path))


def load(path: PathLike) -> NameDataset:
    """Read a data set; see the module docstring for the formats. Raises :class:`DataError`."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if path.is_dir():
        return _load_dir(path)
    suffix = path.suffix.lower()
    if suffix == ".zip" or (suffix not in (".tsv", ".csv", ".txt") and zipfile.is_zipfile(path)):
        return _load_zip(path)
    lines = _read_lines(path)
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: empty file")
    if suffix == ".tsv":
        return _load_tsv(path, lines)
    if suffix == ".csv":
        return _load_csv(path, lines)
    records = _name_lines(lines, None)
    if not records:
        raise DataError(f"{path}: no names left after folding to ASCII letters")
    return NameDataset(records, [], "lines", str(path))


# ---------------------------------------------------------------------------------------- splitting

def grouped_split(ds: NameDataset, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0,
                  group: bool = True) -> Tuple[NameDataset, NameDataset, NameDataset]:
    """Split into train/validation/test.

    Stratified by label (each label's records are divided in ``fractions``) and, with ``group``,
    grouped by the case-folded name string so that no string lands in two splits (a string that
    carries two labels goes with its more common label's stratum). Deterministic for a seed and
    independent of the order of the records."""
    fr = [float(f) for f in fractions]
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or sum(fr) <= 0:
        raise UsageError(f"fractions must be three non-negative numbers (train, val, test), got {tuple(fractions)}")
    total = sum(fr)
    bounds = [sum(fr[: i + 1]) / total for i in range(3)]

    groups: Dict[object, List[int]] = collections.defaultdict(list)
    for i, r in enumerate(ds.records):
        groups[r.name.casefold() if group else i].append(i)

    strata: Dict[str, List[object]] = collections.defaultdict(list)
    for key, idx in groups.items():
        if len(idx) == 1:
            label = ds.records[idx[0]].label or ""
        else:
            votes = collections.Counter(ds.records[i].label or "" for i in idx)
            label = min(votes, key=lambda lab: (-votes[lab], lab))
        strata[label].append(key)

    rng = random.Random(seed)
    parts: List[List[int]] = [[], [], []]
    for label in sorted(strata):
        keys = sorted(strata[label])  # case-folded strings (or record indices without grouping)
        rng.shuffle(keys)
        n = sum(len(groups[k]) for k in keys)
        done = 0
        for k in keys:
            size = len(groups[k])
            mid = (done + size / 2) / n  # where this group's middle falls in the stratum
            split = next((s for s in range(3) if mid < bounds[s] and fr[s] > 0), 2 if fr[2] > 0 else (1 if fr[1] > 0 else 0))
            parts[split].extend(groups[k])
            done += size
    return tuple(ds.subset(sorted(p)) for p in parts)  # type: ignore[return-value]


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


# ---------------------------------------------------------------------------------------- user names

def check_name(name: str, max_len: int = 64) -> str:
    """Validate a name a user typed for prediction; return it folded to ASCII and stripped (inner
    runs of spaces collapsed). Raises :class:`UsageError` with a message saying what is wrong."""
    if not isinstance(name, str):
        raise UsageError(f"a name must be text, got {type(name).__name__}")
    raw = name.strip()
    if not raw:
        raise UsageError("empty name: give a name such as 'Dostoevsky'")
    if any(c.isdigit() for c in raw):
        raise UsageError(f"{raw!r} contains digits: names are letters (with spaces, hyphens, apostrophes)")
    folded = " ".join(unicode_to_ascii(raw).split())
    if not any(c.isalpha() for c in folded):
        if any(c.isalpha() for c in raw):
            raise UsageError(f"{raw!r} is not in the Latin alphabet: the models know only Latin letters "
                             "(transliterate it first, e.g. 'Иванов' -> 'Ivanov')")
        raise UsageError(f"{raw!r} has no letters: give a name such as 'Dostoevsky'")
    dropped = sorted({c for c in unicodedata.normalize("NFD", raw)
                      if c.isalpha() and c not in _ALLOWED and unicodedata.category(c) != "Mn"})
    if dropped:
        raise UsageError(f"{raw!r} has letters outside the Latin alphabet ({''.join(dropped)}): "
                         "the models know only Latin letters; transliterate them first")
    if len(folded) > max_len:
        raise UsageError(f"name is {len(folded)} characters long; the limit is {max_len}")
    return folded


# ---------------------------------------------------------------------------------------- stats

def stats(ds: NameDataset) -> dict:
    """Counts per class, length histogram and letter frequency; JSON-safe (string keys)."""
    names = ds.names
    lengths = [len(n) for n in names]
    hist = collections.Counter(lengths)
    letters = collections.Counter()
    for n in names:
        letters.update(n.lower())
    classes = collections.Counter(r.label for r in ds.records if r.label is not None)
    labels_of = collections.defaultdict(set)
    for r in ds.records:
        labels_of[r.name.casefold()].add(r.label)
    out = {
        "source": ds.source,
        "kind": ds.kind,
        "records": len(ds),
        "unique_names": len(labels_of),
        "labels": list(ds.labels),
        "classes": {label: classes.get(label, 0) for label in ds.labels},
        "names_with_several_labels": sum(1 for s in labels_of.values() if len(s) > 1),
        "length": {
            "min": min(lengths) if lengths else 0,
            "max": max(lengths) if lengths else 0,
            "mean": round(sum(lengths) / len(lengths), 3) if lengths else 0.0,
        },
        "length_histogram": {str(k): hist[k] for k in sorted(hist)},
        "letters": {c: letters[c] for c in sorted(letters, key=lambda c: (-letters[c], c))},
    }
    if ds.kind == "gender":
        total = sum(r.weight for r in ds.records)
        female = sum(r.weight * r.female_share for r in ds.records)
        out["births"] = {"total": total, "F": female, "M": total - female}
        out["ambiguous_names"] = sum(1 for r in ds.records if r.soft is not None and 0.1 < r.soft < 0.9)
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
