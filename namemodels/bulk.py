"""Scoring whole files and tables: streaming readers and writers, the output columns, bad rows.

What ``namemodels predict|gender --input`` runs, and what :meth:`Predictor.predict_frame` and
:mod:`namemodels.dask` share (NumPy and the standard library only; pandas is imported only for frames):

* **Input**: a plain file with one name per line, or a CSV/TSV with a header (``column`` picks the
  name column; default: a column called ``name``, else the first). ``-`` is standard input. Bytes
  are read line by line (at most :data:`MAX_LINE` bytes a line are kept) and decoded as UTF-8.
* **Output**: one row per input row, in input order: the input's columns (``name`` for a plain
  file), then the prediction columns (:func:`prediction_columns`), then ``error`` -- empty where
  the row scored, else why it did not (its prediction columns are empty). TSV, CSV or JSON Lines.
* **Chunks**: :data:`namemodels.predictor.CHUNK` rows are read, scored (each distinct name once,
  in length-sorted batches) and written at a time, so memory stays flat whatever the file size.
* **Atomic**: a file output is written to a hidden ``.NAME.*.partial`` file beside it and renamed
  at the end; an interrupted run (Ctrl-C, SIGTERM) removes it, so no truncated file looks complete.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .errors import UsageError
from .predictor import BATCH, CHUNK

ERROR = "error"          # the last output column: why a row could not be scored (empty if it scored)
PREFIX = "predicted_"    # put before every added column when one would repeat an input column's name
MAX_LINE = 1 << 20       # bytes; a longer input line is a bad row (its content is not kept)
KINDS = ("predict", "gender")
FORMATS = ("tsv", "csv", "jsonl")
DELIMITERS = {"tsv": "\t", "csv": ","}
DIGITS = {"logprob": 6, "probability": 4}   # decimals written for each kind of number


# ---- what is written for a scored name ------------------------------------------------------------
def prediction_columns(kind: str, top: int = 1) -> List[str]:
    """The prediction columns: ``label, logprob, label_2, logprob_2, ...`` for ``predict`` (``top``
    labels, best first), ``label, probability`` for ``gender`` (the likelier sex)."""
    if kind == "gender":
        return ["label", "probability"]
    if kind != "predict":
        raise UsageError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    cols = ["label", "logprob"]
    for k in range(2, top + 1):
        cols += [f"label_{k}", f"logprob_{k}"]
    return cols


def added_columns(kind: str, top: int, existing: Sequence[str]) -> List[str]:
    """The prediction columns and ``error``, each prefixed with :data:`PREFIX` when any of them
    would repeat a column of the input (e.g. a data file that has a ``label`` column)."""
    cols = prediction_columns(kind, top) + [ERROR]
    return [PREFIX + c for c in cols] if set(cols) & set(existing) else cols


class Scorer:
    """A classifier and what to report from it (``kind``, ``top``): turns a scored chunk
    (:class:`namemodels.predictor.Scored`) into one tuple of values per distinct name."""

    def __init__(self, predictor, kind: str = "predict", top: Optional[int] = 1):
        self.predictor, self.kind = predictor, kind
        if kind == "gender":
            predictor.need_gender()
            self._female = predictor.labels.index("F")
        self.top = predictor.check_top(top) if kind == "predict" else 1
        self.columns = prediction_columns(kind, self.top)

    def values(self, scored) -> List[Optional[tuple]]:
        """Per distinct name of a scored chunk (:class:`namemodels.predictor.Scored`) the values of
        :attr:`columns`; None for a name that could not be scored."""
        logp, labels = scored.logp, self.predictor.labels
        ok = [e is None for e in scored.errors]
        out: List[Optional[tuple]] = [None] * len(logp)
        if self.kind == "gender":
            pf = np.exp(logp[:, self._female].astype(np.float64))
            female = pf >= 0.5
            prob = np.where(female, pf, 1.0 - pf)
            for i in np.flatnonzero(ok):
                out[i] = ("F" if female[i] else "M", float(prob[i]))
            return out
        order = np.argsort(-logp, 1)[:, :self.top]
        best = np.take_along_axis(logp, order, 1).astype(np.float64)
        for i in np.flatnonzero(ok):
            row: list = []
            for j, v in zip(order[i].tolist(), best[i].tolist()):
                row += [labels[j], v]
            out[i] = tuple(row)
        return out

    @staticmethod
    def errors(scored) -> List[Optional[str]]:
        """Per distinct name of a scored chunk: why it has no prediction, or None."""
        return [None if e is None else str(e) for e in scored.errors]

    def digits(self) -> List[Optional[int]]:
        """Decimals of each column (None: text)."""
        return [DIGITS.get(c.split("_")[0]) for c in self.columns]


# ---- reading ----------------------------------------------------------------------------------------
@dataclass
class Row:
    fields: List[str]           # the input's columns for this row (one field, the line, for a plain file)
    name: object                # what is scored
    line: int                   # 1-based line where the row starts
    error: Optional[str] = None  # set when the row cannot even be read (bytes, CSV structure)


@dataclass
class Source:
    header: List[str]           # output names of the input columns
    rows: Iterator[Row]
    size: Optional[int] = None  # bytes, for progress (None for streams)
    position: callable = field(default=lambda: None)   # bytes read so far


def input_format(path: str, column: Optional[str], first_line: str) -> str:
    """plain | csv | tsv: from the extension (.csv; .tsv, .tab), else ``csv``/``tsv`` when a column is
    asked for (a tab in the header line means TSV), else plain."""
    suffix = Path(path).suffix.lower() if path != "-" else ""
    if suffix == ".csv":
        return "csv"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if column is not None:
        return "tsv" if "\t" in first_line else "csv"
    return "plain"


def _raw_lines(f: IO[bytes]) -> Iterator[Tuple[Optional[str], Optional[str]]]:
    """``(text, error)`` per line of a binary stream, newline removed; ``text`` is None for a line
    longer than :data:`MAX_LINE` bytes (the rest of it is skipped unread into memory)."""
    first = True
    while True:
        raw = f.readline(MAX_LINE + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while True:   # skip to the end of the over-long line
                more = f.readline(MAX_LINE)
                if not more or more.endswith(b"\n"):
                    break
            yield None, f"line longer than {MAX_LINE:,} bytes"
            first = False
            continue
        if first and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        first = False
        if raw.endswith(b"\n"):
            raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
        try:
            yield raw.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            yield raw.decode("utf-8", "replace"), f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"


def _plain_rows(lines) -> Iterator[Row]:
    for n, (text, error) in enumerate(lines, 1):
        text = "" if text is None else text
        yield Row([text], text, n, error)


def _delimited_rows(lines, fmt: str, column: Optional[str], path: str) -> Tuple[List[str], Iterator[Row]]:
    state = {"error": None, "line": 0}

    def text_lines():
        for text, error in lines:
            state["line"] += 1
            if error is not None and state["error"] is None:
                state["error"] = error
            yield "" if text is None else text

    reader = csv.reader(text_lines(), delimiter=DELIMITERS[fmt])
    try:
        header = next(reader)
    except StopIteration:
        raise UsageError(f"{path}: empty file; a {fmt.upper()} input needs a header line") from None
    except csv.Error as exc:
        raise UsageError(f"{path}: cannot read the header line ({exc})") from None
    if state["error"]:
        raise UsageError(f"{path}: the header line is {state['error']}")
    if column is None:
        lower = [h.strip().lower() for h in header]
        index = lower.index("name") if "name" in lower else 0
    elif column in header:
        index = header.index(column)
    else:
        raise UsageError(f"{path}: no column {column!r}; its columns are {', '.join(map(repr, header))}")
    width = len(header)

    def rows() -> Iterator[Row]:
        while True:
            start = state["line"] + 1
            try:
                fields = next(reader)
                error = state["error"]
            except StopIteration:
                return
            except csv.Error as exc:
                fields, error = [], f"cannot be read as {fmt.upper()} ({exc})"
            state["error"] = None
            if error is None and len(fields) != width:
                error = f"has {len(fields)} fields, the header has {width}"
            fields = (fields + [""] * width)[:width]
            yield Row(fields, fields[index] if error is None else "", start, error)

    return header, rows()


@contextlib.contextmanager
def open_source(path: str, column: Optional[str] = None) -> Iterator[Source]:
    """The rows of ``path`` (``-``: standard input); see the module docstring."""
    if path == "-":
        stream, size = sys.stdin.buffer, None
    else:
        p = Path(path)
        if p.is_dir():
            raise UsageError(f"{path}: is a directory; give a file of names")
        try:
            stream = open(p, "rb")
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot be read ({exc.strerror or exc})") from None
        size = p.stat().st_size if p.is_file() else None
    try:
        peek = stream.peek(4096)[:4096] if hasattr(stream, "peek") else b""
        fmt = input_format(path, column, peek.split(b"\n", 1)[0].decode("utf-8", "replace"))
        lines = _raw_lines(stream)
        position = stream.tell if size is not None else (lambda: None)
        if fmt == "plain":
            yield Source(["name"], _plain_rows(lines), size, position)
        else:
            header, rows = _delimited_rows(lines, fmt, column, path)
            yield Source(header, rows, size, position)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


# ---- writing ----------------------------------------------------------------------------------------
def output_format(path: Optional[str], fmt: Optional[str]) -> str:
    """``fmt`` if given, else from the output's extension (.csv, .tsv/.tab/.txt, .jsonl/.ndjson), else tsv."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = Path(path).suffix.lower() if path and path != "-" else ""
    if suffix == ".json":
        raise UsageError(f"{path}: the output is JSON Lines (one object per line), not one JSON document; "
                         "name it .jsonl or pass --format jsonl")
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "tsv")


class Writer:
    """Writes rows of (input fields, prediction values, error) to a text stream in one format;
    each distinct prediction is formatted once per chunk (:meth:`formatted`)."""

    def __init__(self, out: IO[str], fmt: str, columns: List[str], digits: List[Optional[int]]):
        self.out, self.fmt, self.columns, self.digits = out, fmt, columns, digits
        self._csv = csv.writer(out, delimiter=DELIMITERS[fmt], lineterminator="\n") if fmt != "jsonl" else None

    def header(self, input_columns: List[str]) -> None:
        self.input_columns = list(input_columns)
        if self._csv is not None:
            self._csv.writerow(self.input_columns + self.columns)

    def formatted(self, values: Optional[tuple], error: Optional[str]):
        """The prediction part of a row in this format (a tuple of strings, or a JSON fragment)."""
        if self.fmt == "jsonl":
            if values is None:
                values = (None,) * (len(self.columns) - 1)
            vals = [v if d is None or v is None else round(v, d) for v, d in zip(values, self.digits)]
            return json.dumps(dict(zip(self.columns, vals + [error])))[1:-1]
        if values is None:
            return ("",) * (len(self.columns) - 1) + (error or "",)
        return tuple(v if d is None else f"{v:.{d}f}" for v, d in zip(values, self.digits)) + ("",)

    def rows(self, rows: List[Tuple[List[str], object]]) -> None:
        """``(input fields, formatted prediction)`` pairs."""
        if self._csv is not None:
            self._csv.writerows([(*fields, *pred) for fields, pred in rows])
            return
        cols, dumps = self.input_columns, json.dumps
        if len(cols) == 1:
            key = dumps(cols[0])
            self.out.write("".join(f"{{{key}: {dumps(fields[0])}, {pred}}}\n" for fields, pred in rows))
        else:
            self.out.write("".join(f"{dumps(dict(zip(cols, fields)))[:-1]}, {pred}}}\n" for fields, pred in rows))


@contextlib.contextmanager
def atomic_output(path: Optional[str]) -> Iterator[IO[str]]:
    """A text stream for ``path`` (None or ``-``: standard output). A file is written under a hidden
    ``.NAME.XXXX.partial`` name beside it, flushed to disk and renamed to ``path`` only when the block
    ends without an error; otherwise (including Ctrl-C and SIGTERM) the partial file is removed."""
    if path in (None, "-"):
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{path}: is a directory; give a file name for --output")
    if not target.parent.is_dir():
        raise UsageError(f"{path}: folder {target.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    done = False
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)   # as a plain open() would create it (mkstemp makes it private)
        with _sigterm_raises(), io.open(fd, "w", encoding="utf-8", newline="") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        done = True
    finally:
        if not done:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class Terminated(BaseException):
    """SIGTERM turned into an exception, so that ``finally`` blocks (removing a partial file) run."""


@contextlib.contextmanager
def _sigterm_raises():
    def handler(signum, frame):
        raise Terminated()
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:   # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- the run ----------------------------------------------------------------------------------------
class Progress:
    """``rows, names/s[, percent]`` on one rewritten stderr line, at most 4 times a second."""

    def __init__(self, enabled: bool, size: Optional[int] = None):
        self.enabled, self.size = enabled, size
        self.start = self.last = time.perf_counter()
        self.shown = False

    def update(self, rows: int, position: Optional[int]) -> None:
        now = time.perf_counter()
        if not self.enabled or now - self.last < 0.25:
            return
        self.last = now
        rate = rows / max(now - self.start, 1e-9)
        pct = f"  {100 * position / self.size:5.1f}%" if self.size and position is not None else ""
        sys.stderr.write(f"\r{rows:,} rows  {rate:,.0f} names/s{pct}   ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r" + " " * 60 + "\r")
            sys.stderr.flush()


@dataclass
class Summary:
    rows: int = 0
    bad: int = 0
    seconds: float = 0.0
    first_bad: Optional[Tuple[int, str]] = None   # (line, error)

    def line(self, command: str, output: Optional[str]) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        where = f" -> {output}" if output not in (None, "-") else ""
        text = (f"namemodels {command}: {self.rows - self.bad:,} of {self.rows:,} rows scored in "
                f"{self.seconds:.1f} s ({rate:,.0f} names/s){where}")
        if self.bad:
            line, error = self.first_bad
            text += (f"; {self.bad:,} could not be scored and have an empty prediction and the reason in the "
                     f"{ERROR!r} column (first at line {line}: {error})")
        return text


def score_rows(scorer: Scorer, source: Source, writer: Writer, chunk: int, batch: Optional[int] = None,
               progress: Optional[Progress] = None) -> Summary:
    """Read, score and write ``source`` chunk by chunk; returns the counts."""
    summary = Summary()
    start = time.perf_counter()
    rows = source.rows
    while True:
        part = [r for _, r in zip(range(chunk), rows)]
        if not part:
            break
        scored = scorer.predictor.score_chunk([r.name for r in part], batch or BATCH)
        values, errors = scorer.values(scored), scorer.errors(scored)
        preds = [writer.formatted(v, e) for v, e in zip(values, errors)]
        out = []
        for r, j in zip(part, scored.index.tolist()):
            if r.error is not None or values[j] is None:
                error = r.error or errors[j]
                summary.bad += 1
                if summary.first_bad is None:
                    summary.first_bad = (r.line, error)
                out.append((r.fields, writer.formatted(None, error) if r.error is not None else preds[j]))
            else:
                out.append((r.fields, preds[j]))
        writer.rows(out)
        summary.rows += len(part)
        if progress is not None:
            progress.update(summary.rows, source.position())
    summary.seconds = time.perf_counter() - start
    return summary


def score_file(predictor, input: str, output: Optional[str] = None, kind: str = "predict", top: int = 1,
               column: Optional[str] = None, fmt: Optional[str] = None, chunk: Optional[int] = None,
               batch: Optional[int] = None, progress: bool = False) -> Summary:
    """Score every row of ``input`` into ``output`` (see the module docstring); bad rows are kept,
    counted and described, never raised."""
    scorer = Scorer(predictor, kind, top)
    fmt = output_format(output, fmt)
    with open_source(input, column) as source:
        writer_columns = added_columns(kind, scorer.top, source.header)
        bar = Progress(progress, source.size)
        try:
            with atomic_output(output) as out:
                writer = Writer(out, fmt, writer_columns, scorer.digits() + [None])
                writer.header(source.header)
                return score_rows(scorer, source, writer, chunk or CHUNK, batch, bar)
        finally:
            bar.close()


def score_names(predictor, names: Sequence[str], output: Optional[str] = None, kind: str = "predict",
                top: int = 1, fmt: Optional[str] = None) -> Summary:
    """:func:`score_file` for names given as a list (the CLI's arguments)."""
    scorer = Scorer(predictor, kind, top)
    fmt = output_format(output, fmt)
    source = Source(["name"], _plain_rows((n, None) for n in names))
    with atomic_output(output) as out:
        writer = Writer(out, fmt, added_columns(kind, scorer.top, ["name"]), scorer.digits() + [None])
        writer.header(["name"])
        return score_rows(scorer, source, writer, len(names) or 1)


# ---- frames -----------------------------------------------------------------------------------------
def predict_frame(predictor, df, column: str, top: int = 1, kind: str = "predict"):
    """``df`` (pandas) with the columns of :func:`added_columns` appended (see
    :meth:`namemodels.predictor.Predictor.predict_frame`). Labels and errors are pandas ``string``
    columns (missing: ``<NA>``), numbers float64 (missing: NaN)."""
    import pandas as pd
    if column not in df.columns:
        raise UsageError(f"no column {column!r}; the frame's columns are {', '.join(map(repr, df.columns))}")
    scorer = Scorer(predictor, kind, top)
    names = df[column].tolist()
    rows: List[tuple] = []
    blank = (None,) * len(scorer.columns)
    for start in range(0, len(names), CHUNK):
        scored = predictor.score_chunk(names[start:start + CHUNK])
        values, errors = scorer.values(scored), scorer.errors(scored)
        rows.extend(((values[j] or blank) + (errors[j],)) for j in scored.index.tolist())
    columns = list(zip(*rows)) if rows else [()] * (len(scorer.columns) + 1)
    out = df.copy()
    for name, values, digits in zip(added_columns(kind, scorer.top, [str(c) for c in df.columns]), columns,
                                    scorer.digits() + [None]):
        out[name] = pd.array(list(values), dtype="string") if digits is None else np.array(values, np.float64)
    return out
