"""Births year by year (the US SSA by-year file, ``year,name,sex,count``, gzip or plain), summed per
(name, sex) over a span of years, streamed row by row; and the ``name,sex,count`` CSV that
``namemodels data births`` writes from them (the layout of ``first_names.csv``).

No torch and no NumPy: ``namemodels data births`` and ``evaluate --years`` both read through here."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from ..errors import UsageError

HEADER = ("year", "name", "sex", "count")
_GZIP_MAGIC = b"\x1f\x8b"

PathLike = Union[str, Path]


class BirthsError(UsageError):
    """A by-year births file that cannot be used; the message names the file (and line)."""


@dataclass
class Births:
    """Births per (name, sex) summed over ``since``..``until`` (inclusive; None = open), and the first
    year each name occurs in the whole file (any sex, any year, inside the span or not)."""

    counts: dict[tuple[str, str], int]
    first_year: dict[str, int]
    since: int | None
    until: int | None
    years: tuple[int, int]  # the first and last year in the file
    rows: int = 0  # data rows read
    rows_in_span: int = 0
    source: str = ""
    per_name: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def by_name(self) -> dict[str, tuple[int, int]]:
        """name -> (female births, male births) in the span."""
        if not self.per_name:
            out: dict[str, list] = {}
            for (name, sex), c in self.counts.items():
                out.setdefault(name, [0, 0])[0 if sex == "F" else 1] += c
            self.per_name = {n: (fm[0], fm[1]) for n, fm in out.items()}
        return self.per_name

    def new_names(self, after: int) -> set:
        """The names in the span whose first year in the file is after ``after``."""
        return {n for n in self.by_name() if self.first_year[n] > after}


def parse_years(text: str) -> tuple[int | None, int | None]:
    """``"2009-2023"`` -> (2009, 2023); ``"2009-"`` -> (2009, None); ``"-2008"`` -> (None, 2008);
    ``"2010"`` -> (2010, 2010)."""
    s = str(text).strip()
    try:
        if "-" in s:
            a, b = s.split("-", 1)
            since = int(a) if a.strip() else None
            until = int(b) if b.strip() else None
        else:
            since = until = int(s)
    except ValueError:
        raise UsageError(f"years must be YEAR, FIRST-LAST, FIRST- or -LAST, got {text!r}") from None
    if since is not None and until is not None and since > until:
        raise UsageError(f"years: {since} is after {until}")
    return since, until


def _open_text(path: Path) -> io.TextIOBase:
    try:
        raw = open(path, "rb")
    except FileNotFoundError:
        raise BirthsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise BirthsError(f"{path}: is a directory, expected a year,name,sex,count file (.csv or .csv.gz)") from None
    except OSError as exc:
        raise BirthsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    head = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if head == _GZIP_MAGIC else raw
    return io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")


def _rows(path: Path) -> Iterator[tuple[int, list]]:
    f = _open_text(path)
    n = 0
    try:
        with f:
            for n, row in enumerate(csv.reader(f), start=1):
                yield n, row
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise BirthsError(f"{path}: cannot read after line {n}: {exc} (a damaged or cut-off file?)") from None
    except UnicodeDecodeError as exc:
        raise BirthsError(f"{path}:{n + 1}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise BirthsError(f"{path}:{n + 1}: not a CSV row ({exc})") from None


def read_births(path: PathLike, since: int | None = None, until: int | None = None) -> Births:
    """Stream a ``year,name,sex,count`` file (gzip or plain) and sum the births per (name, sex) of
    the years ``since``..``until`` (inclusive; None = no bound). Raises :class:`BirthsError` for a
    file that is not one, and for a span with no births in it."""
    path = Path(path).expanduser()
    if since is not None and until is not None and since > until:
        raise UsageError(f"--since {since} is after --until {until}")
    counts: dict[tuple[str, str], int] = {}
    first: dict[str, int] = {}
    lo = hi = None
    rows = inside = 0
    it = _rows(path)
    header = next(it, None)
    if header is None:
        raise BirthsError(f"{path}: empty file; expected the header 'year,name,sex,count'")
    if [c.strip().lower() for c in header[1]] != list(HEADER):
        got = ",".join(header[1])[:60]
        raise BirthsError(f"{path}:1: expected the header 'year,name,sex,count', got {got!r}")
    get = counts.get
    for n, row in it:
        if not row:
            continue
        if len(row) != 4:
            raise BirthsError(
                f"{path}:{n}: expected 4 fields 'year,name,sex,count', got {len(row)}: {','.join(row)[:60]!r}"
            )
        y, name, sex, c = row
        try:
            year = int(y)
        except ValueError:
            raise BirthsError(f"{path}:{n}: year must be a whole number, got {y!r}") from None
        name = name.strip()
        if not name:
            raise BirthsError(f"{path}:{n}: empty name")
        sex = sex.strip().upper()
        if sex != "F" and sex != "M":
            raise BirthsError(f"{path}:{n}: sex must be F or M, got {row[2]!r}")
        try:
            count = int(c)
        except ValueError:
            count = -1
        if count < 0:
            raise BirthsError(f"{path}:{n}: count must be a whole number of births (0 or more), got {c!r}")
        rows += 1
        if lo is None or year < lo:
            lo = year
        if hi is None or year > hi:
            hi = year
        f = first.get(name)
        if f is None or year < f:
            first[name] = year
        if (since is None or year >= since) and (until is None or year <= until):
            inside += 1
            key = (name, sex)
            counts[key] = get(key, 0) + count
    if not rows:
        raise BirthsError(f"{path}: no rows after the header")
    assert lo is not None and hi is not None  # set by every row read
    if not counts:
        span = f"{since if since is not None else ''}-{until if until is not None else ''}"
        raise BirthsError(f"{path}: no births in the years {span} (the file covers {lo}-{hi})")
    return Births(counts, first, since, until, (lo, hi), rows, inside, str(path))


def csv_bytes(counts: dict[tuple[str, str], int]) -> bytes:
    """``name,sex,count`` rows sorted by name then sex, with a header: the layout of first_names.csv."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["name", "sex", "count"])
    for name, sex in sorted(counts):
        w.writerow([name, sex, counts[(name, sex)]])
    return buf.getvalue().encode("utf-8")


def write_counts(path: PathLike, counts: dict[tuple[str, str], int]) -> Path:
    """Write :func:`csv_bytes` to ``path`` atomically (the old file, if any, stays whole on failure)."""
    from ..fileio import atomic_write_bytes

    path = Path(path).expanduser()
    if path.is_dir():
        raise UsageError(f"--out {path}: is a directory; give a file name such as {path / 'births.csv'}")
    if not path.parent.is_dir():
        raise UsageError(f"--out {path}: the folder {path.parent} does not exist")
    try:
        atomic_write_bytes(path, csv_bytes(counts))
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write there: {exc.strerror or exc}") from None
    return path
