"""Scoring whole files and tables: streaming readers and writers, the output columns, bad rows.

What ``namemodels predict|gender --input`` runs, and what :meth:`Predictor.predict_frame` and
:mod:`namemodels.dask` share (NumPy and the standard library only; pandas is imported only for frames):

* **Input**: a plain file with one name per line, or a CSV/TSV with a header (``column`` picks the
  name column; default: a column called ``name``, else the first). ``-`` is standard input. Bytes
  are read in blocks and decoded as UTF-8; a line longer than :data:`MAX_LINE` is a bad row. A
  CSV/TSV row is a record as :func:`csv.reader` reads the file (``open(newline="")``: a quoted field
  may span lines; CR LF and a lone CR end lines), with one exception: a quote that is not closed by
  the end of the file, within :data:`MAX_LINE` bytes or within the csv module's field limit does not
  swallow the rest -- its row is its first line alone, a bad row naming that line, and reading goes
  on at the next line. So every record is a row, and the counts add up to the input's rows.
* **Output**: one row per input row, in input order: the input's columns (``name`` for a plain
  file), then the prediction columns (:func:`prediction_columns`), then ``error`` -- empty where
  the row scored, else why it did not (its prediction columns are empty). TSV, CSV or JSON Lines.
  Added names never repeat an input column (:func:`added_columns`).
* **Chunks**: :data:`namemodels.inference.scoring.CHUNK` rows are read, scored (each distinct name once,
  in length-sorted batches) and written at a time, so memory stays flat whatever the file size.
* **Atomic**: a file output is written to a hidden ``.NAME.*.partial`` file beside it and renamed
  at the end; an interrupted run (Ctrl-C, SIGTERM) or a full disk removes it, so no truncated file
  looks complete. Only a regular file is replaced: a symlink is followed, a device or FIFO is
  written through (not atomically), ``/dev/stdout`` is the open descriptor (:func:`atomic_output`).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import signal
import stat
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Protocol, cast

import numpy as np

from .errors import UsageError, UsageTypeError
from .fileio import byte_lines, csv_reader, discard, parse_row, publish, temp_file
from .inference.scoring import BATCH, CHUNK, UNKNOWN, check_min_prob, gender_call, held_back

if TYPE_CHECKING:
    import pandas as pd

ERROR = "error"  # the last output column: why a row could not be scored (empty if it scored)
# put before every added column when one would repeat an input column's name (then predicted2_,
# predicted3_, ... while one still would)
PREFIX = "predicted_"
MAX_LINE = 1 << 20  # bytes; a longer input line is a bad row (its content is not kept)
BLOCK = 1 << 20  # bytes read at a time
KINDS = ("predict", "gender")
FORMATS = ("tsv", "csv", "jsonl")
DELIMITERS = {"tsv": "\t", "csv": ","}
DIGITS = {"logprob": 6, "probability": 4, "count": 0}  # decimals written for each kind of number
EVIDENCE = ["source", "count"]  # after the prediction: "data" (the name table) or "model", and the count behind it
REASON = "reason"  # with min_prob: why a row's label is "unknown" (empty where it was answered)


# ---- what is scored --------------------------------------------------------------------------------
# The predictor imports this module (for predict_frame), so this module names what it needs of it
# rather than importing it, even for annotations.
class ScoredChunk(Protocol):
    """What is read of a scored chunk (:class:`namemodels.inference.predictor.Scored`)."""

    @property
    def logp(self) -> np.ndarray: ...  # (distinct names, labels)

    @property
    def index(self) -> np.ndarray: ...  # (input names,) row of ``logp`` for each input name

    @property
    def errors(self) -> Sequence[Exception | None]: ...  # per distinct name

    def count_of(self, j: int) -> int: ...


class Classifier(Protocol):
    """What is used of a classifier (:class:`namemodels.inference.predictor.Predictor`)."""

    @property
    def labels(self) -> Sequence[str]: ...

    def need_gender(self) -> None: ...

    def check_top(self, top: int | None) -> int: ...

    def score_chunk(self, names: Sequence, batch: int = ...) -> ScoredChunk: ...


# ---- what is written for a scored name ------------------------------------------------------------
def prediction_columns(kind: str, top: int = 1, abstain: bool = False) -> list[str]:
    """The prediction columns: ``label, logprob, label_2, logprob_2, ...`` for ``predict`` (``top``
    labels, best first), ``label, probability`` for ``gender`` (the likelier sex); then the evidence,
    ``source`` (``data``: the name is in the model's name table; ``model``) and ``count`` (the births
    or lines behind the answer, 0 for the model); with ``abstain`` (``min_prob``) ``reason`` last,
    saying why a row's ``label`` is ``unknown``."""
    tail = EVIDENCE + ([REASON] if abstain else [])
    if kind == "gender":
        return ["label", "probability"] + tail
    if kind != "predict":
        raise UsageError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    cols = ["label", "logprob"]
    for k in range(2, top + 1):
        cols += [f"label_{k}", f"logprob_{k}"]
    return cols + tail


def added_columns(kind: str, top: int, existing: Sequence[str], abstain: bool = False) -> list[str]:
    """The prediction columns and ``error``; all of them prefixed with :data:`PREFIX` when any would
    repeat a column of the input (a data file with a ``label`` column), and with ``predicted2_``,
    ``predicted3_``, ... when a prefixed one would too (a file that was scored before): never a
    column name twice."""
    cols = prediction_columns(kind, top, abstain) + [ERROR]
    taken = set(existing)
    for k in range(1, len(taken) + 2):  # at most one prefix per input column is taken
        named = cols if k == 1 else [(PREFIX if k == 2 else f"{PREFIX[:-1]}{k - 1}_") + c for c in cols]
        if not taken & set(named):
            return named
    raise AssertionError("unreachable: some prefix is free")


class Scorer:
    """A classifier and what to report from it (``kind``, ``top``): turns a scored chunk
    (:class:`namemodels.inference.predictor.Scored`) into one tuple of values per distinct name."""

    def __init__(
        self, predictor: Classifier, kind: str = "predict", top: int | None = 1, min_prob: float | None = None
    ):
        self.predictor, self.kind = predictor, kind
        if kind == "gender":
            predictor.need_gender()
            self._female = predictor.labels.index("F")
        self.top = predictor.check_top(top) if kind == "predict" else 1
        self.min_prob = check_min_prob(min_prob)
        self.columns = prediction_columns(kind, self.top, self.min_prob is not None)

    def _evidence(self, scored: ScoredChunk, label: str, probability: float, i: int) -> tuple[str, tuple]:
        """The label (``unknown`` when held back by ``min_prob``) and the values after the prediction."""
        count = scored.count_of(i)
        tail: tuple = ("data" if count else "model", count)
        if self.min_prob is None:
            return label, tail
        reason = held_back(label, probability, self.min_prob)
        return (UNKNOWN if reason else label), tail + (reason,)

    def values(self, scored: ScoredChunk) -> list[tuple | None]:
        """Per distinct name of a scored chunk (:class:`namemodels.inference.predictor.Scored`) the values of
        :attr:`columns`; None for a name that could not be scored."""
        logp, labels = scored.logp, self.predictor.labels
        ok = [e is None for e in scored.errors]
        out: list[tuple | None] = [None] * len(logp)
        if self.kind == "gender":
            pf = np.exp(logp[:, self._female].astype(np.float64))
            for i in np.flatnonzero(ok).tolist():
                label, probability = gender_call(float(pf[i]))
                label, tail = self._evidence(scored, label, probability, i)
                out[i] = (label, probability) + tail
            return out
        order = np.argsort(-logp, 1)[:, : self.top]
        best = np.take_along_axis(logp, order, 1).astype(np.float64)
        p_best = np.exp(best[:, 0]).tolist()  # for min_prob: one exp a chunk, not a row
        for i in np.flatnonzero(ok).tolist():
            row: list = []
            for j, v in zip(order[i].tolist(), best[i].tolist()):
                row += [labels[j], v]
            row[0], tail = self._evidence(scored, row[0], p_best[i], i)
            out[i] = tuple(row) + tail
        return out

    @staticmethod
    def errors(scored: ScoredChunk) -> list[str | None]:
        """Per distinct name of a scored chunk: why it has no prediction, or None."""
        return [None if e is None else str(e) for e in scored.errors]

    def added_columns(self, existing: Sequence[str]) -> list[str]:
        """:func:`added_columns` for this scorer's kind, top and ``min_prob``."""
        return added_columns(self.kind, self.top, existing, self.min_prob is not None)

    def digits(self) -> list[int | None]:
        """Decimals of each column (None: text)."""
        return [DIGITS.get(c.split("_")[0]) for c in self.columns]


# ---- reading ----------------------------------------------------------------------------------------
@dataclass
class Chunk:
    """Rows read together."""

    names: list  # per row: what is scored
    fields: list[list[str]] | None  # per row: the input's columns; None for a plain file (a row is its name)
    lines: list[int]  # per row: the line it starts on (1-based)
    errors: dict[int, str]  # row -> why it could not be read (no prediction, whatever its name)


@dataclass
class Source:
    header: list[str]  # the input's column names (``name`` for a plain file)
    chunks: Callable[[int], Iterator[Chunk]]  # chunks(n): the rows, n at a time
    size: int | None = None  # bytes, for the progress bar (None for streams)
    position: Callable[[int], float | None] = lambda rows: None  # bytes behind the first ``rows`` rows


def input_format(path: str, column: str | None, first_line: str) -> str:
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


def _too_long() -> str:
    return f"line longer than {MAX_LINE:,} bytes"


def _decode(head: bytes, keep_cr: bool = False) -> tuple[list[str], dict[int, str]]:
    """Complete lines (joined by ``\\n``) -> (texts, {index: why not readable}); a CR before the LF is
    removed unless ``keep_cr``."""
    errors: dict[int, str] = {}
    try:
        text = head.decode("utf-8")
        lines = text.split("\n")  # UTF-8 never has the byte 0x0A inside a character
        crlf = "\r" in text
    except UnicodeDecodeError:
        lines, crlf = [], True
        for i, raw in enumerate(head.split(b"\n")):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                lines.append(raw.decode("utf-8", "replace"))
                errors[i] = f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
    if crlf and not keep_cr:
        lines = [s[:-1] if s.endswith("\r") else s for s in lines]
    if len(head) > MAX_LINE:
        for i, raw in enumerate(head.split(b"\n")):
            if len(raw) > MAX_LINE:
                lines[i], errors[i] = "", _too_long()
    return lines, errors


def line_blocks(
    f: IO[bytes], meter: dict | None = None, keep_cr: bool = False
) -> Iterator[tuple[list[str], dict[int, str]]]:
    """The lines of a binary stream, newline removed (and a CR before it, unless ``keep_cr``), decoded a
    block (~1 MB) at a time: ``(texts, {index in texts: why the line is unreadable})``. A line longer
    than :data:`MAX_LINE` is dropped as it streams by (memory stays bounded) and comes out as ``""``
    with an error (:func:`namemodels.fileio.byte_lines` reads the stream)."""
    for head, cut in byte_lines(f, BLOCK, MAX_LINE, eager=True):  # eager: what a pipe has now, not a full block
        lines, errors = _decode(head, keep_cr)
        if cut:  # the first line is the end of an over-long line
            lines[0], errors[0] = "", _too_long()
        if meter is not None:  # for the progress bar: bytes and lines read so far
            meter["bytes"] += len(head) + 1
            meter["lines"] += len(lines)
        yield lines, errors


def _plain_chunks(blocks: Iterator[tuple[list[str], dict[int, str]]], n: int) -> Iterator[Chunk]:
    names: list[str] = []
    errors: dict[int, str] = {}
    line = 1
    for lines, errs in blocks:
        errors.update((len(names) + i, e) for i, e in errs.items())
        names.extend(lines)
        while len(names) >= n:
            k = min(n, len(names))
            yield Chunk(names[:k], None, list(range(line, line + k)), {i: e for i, e in errors.items() if i < k})
            names, line = names[k:], line + k
            errors = {i - k: e for i, e in errors.items() if i >= k}
    if names:
        yield Chunk(names, None, list(range(line, line + len(names))), errors)


class _Unclosed(Exception):
    """A quoted field that does not end: at the end of the input, or after :data:`MAX_LINE` bytes."""


def _with_breaks(text: str) -> list[str]:
    """One decoded line (its LF removed, a CR kept) as the lines ``open(newline="")`` reads from it,
    each with its line break: a lone CR ends a line too, as the csv module expects."""
    if "\r" not in text:
        return [text + "\n"]
    crlf = text.endswith("\r")
    pieces = (text[:-1] if crlf else text).split("\r")
    return [p + "\r" for p in pieces[:-1]] + [pieces[-1] + ("\r\n" if crlf else "\n")]


class _Lines:
    """The lines of a CSV/TSV input for :func:`csv.reader`, each with its line break, and the lines of
    the record being read (from :attr:`mark`), kept so that a quote that never closes can be undone:
    the record is then its first line alone and the lines after it are read again."""

    def __init__(self, blocks: Iterator[tuple[list[str], dict[int, str]]]) -> None:
        self.blocks = blocks
        self.texts: list[str] = []  # the lines of the current record and of the block after it
        self.errs: dict[int, str] = {}  # index in texts -> why that line is unreadable
        self.first = 1  # line number of texts[0]
        self.i = 0  # next line handed to the reader
        self.mark = 0  # where the record being read starts
        self.eof = False  # the reader asked for a line after the last one

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.i >= len(self.texts) and not self._load():
            self.eof = True
            raise StopIteration
        self.i += 1
        return self.texts[self.i - 1]

    def _load(self) -> bool:
        """The next block of lines, after what is left of the record being read; raises
        :class:`_Unclosed` when that is more than :data:`MAX_LINE` bytes (a quote that never closes)."""
        for lines, errs in self.blocks:
            keep = self.texts[self.mark :]
            self.errs = {i - self.mark: e for i, e in self.errs.items() if i >= self.mark}
            self.first += self.mark
            if any("\r" in t for t in lines):
                texts: list[str] = []
                for k, t in enumerate(lines):
                    pieces = _with_breaks(t)
                    if k in errs:  # a bad line cut by lone CRs: its pieces with the bad bytes are bad
                        for j, piece in enumerate(pieces):
                            if len(pieces) == 1 or "\ufffd" in piece:
                                self.errs[len(keep) + len(texts) + j] = errs[k]
                    texts.extend(pieces)
            else:
                texts = [t + "\n" for t in lines]
                self.errs.update((len(keep) + k, e) for k, e in errs.items())
            self.texts, self.i, self.mark = keep + texts, len(keep), 0
            if len(keep) > 1 and sum(map(len, keep)) > MAX_LINE:
                raise _Unclosed()
            if texts:
                return True
        return False

    def error(self) -> str | None:
        """Why a line of the record just read is unreadable (bad UTF-8, too long), or None."""
        if self.errs:
            for k in range(self.mark, self.i):
                if k in self.errs:
                    return self.errs[k]
        return None

    def undo(self) -> str:
        """The record being read is its first line alone (returned, without its line break); the
        lines after it are read again."""
        self.i, self.eof = self.mark + 1, False
        return self.texts[self.mark].rstrip("\r\n")


def _unclosed(line: int, where: str) -> str:
    return (
        f"a quote opened on line {line} is not closed {where}; the row is that line alone, and the lines "
        "after it are rows of their own (fix the quoting)"
    )


def _delimited(
    blocks: Iterator[tuple[list[str], dict[int, str]]], fmt: str, column: str | None, path: str
) -> tuple[list[str], Callable[[int], Iterator[Chunk]]]:
    """A CSV/TSV input: its header, and its records as rows. Every record the csv module reads is a
    row, an empty line included; a quote that never closes does not swallow the rows after it (the
    row where it opened is a bad row, and reading goes on at the next line)."""
    delimiter = DELIMITERS[fmt]
    lines = _Lines(blocks)
    reader = csv_reader(lines, delimiter)
    try:
        header = next(reader)
        if lines.eof:
            raise _Unclosed()
    except StopIteration:
        raise UsageError(f"{path}: empty file; a {fmt.upper()} input needs a header line") from None
    except csv.Error as exc:
        raise UsageError(f"{path}: cannot read the header line ({exc})") from None
    except _Unclosed:
        raise UsageError(f"{path}: the header line opens a quote that is never closed; fix the quoting") from None
    if lines.error():
        raise UsageError(f"{path}: the header line is {lines.error()}")
    if column is None:
        lower = [h.strip().lower() for h in header]
        index = lower.index("name") if "name" in lower else 0
    elif column in header:
        index = header.index(column)
    else:
        raise UsageError(f"{path}: no column {column!r}; its columns are {', '.join(map(repr, header))}")
    width = len(header)

    def alone(text: str) -> list[str]:
        try:
            return parse_row(text, delimiter)
        except csv.Error:
            return []

    def chunks(n: int) -> Iterator[Chunk]:
        nonlocal reader
        while True:
            rows: list[list[str]] = []
            chunk = Chunk([], rows, [], {})
            names, starts = chunk.names, chunk.lines
            while len(names) < n:
                lines.mark = lines.i  # the record starts at the next line
                start = lines.first + lines.mark
                try:
                    fields = next(reader)
                    if lines.eof:  # the input ended inside a quoted field
                        raise _Unclosed()
                    error = lines.error() if lines.errs else None
                except StopIteration:
                    break
                except (csv.Error, _Unclosed) as exc:
                    if isinstance(exc, _Unclosed):
                        error = _unclosed(
                            start, "by the end of the file" if lines.eof else f"within {MAX_LINE:,} bytes"
                        )
                    elif lines.i - lines.mark > 1:  # a quoted field ran over lines to the csv module's limit
                        error = _unclosed(start, f"within {csv.field_size_limit():,} characters")
                    else:
                        error = f"cannot be read as {fmt.upper()} ({exc})"
                    fields = alone(lines.undo())
                    reader = csv_reader(lines, delimiter)
                if error is None and len(fields) != width:
                    error = "empty line" if not fields else f"has {len(fields)} fields, the header has {width}"
                if error is not None:
                    chunk.errors[len(names)] = error
                    fields = (fields + [""] * width)[:width]
                names.append(fields[index])
                rows.append(fields)
                starts.append(start)
            if not names:
                return
            yield chunk

    return header, chunks


@contextlib.contextmanager
def open_source(path: str, column: str | None = None) -> Iterator[Source]:
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
        meter = {"bytes": 0, "lines": 0}
        blocks = line_blocks(stream, meter, keep_cr=fmt != "plain")  # the csv module reads CR itself

        def position(rows: int) -> float | None:  # reading runs a block ahead of scoring
            return meter["bytes"] * min(1.0, rows / meter["lines"]) if size and meter["lines"] else None

        if fmt == "plain":
            yield Source(["name"], lambda n: _plain_chunks(blocks, n), size, position)
        else:
            header, chunks = _delimited(blocks, fmt, column, path)
            yield Source(header, chunks, size, position)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


# ---- writing ----------------------------------------------------------------------------------------
def output_format(path: str | None, fmt: str | None) -> str:
    """``fmt`` if given, else from the output's extension (.csv, .tsv/.tab/.txt, .jsonl/.ndjson), else tsv."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = Path(path).suffix.lower() if path and path != "-" else ""
    if suffix == ".json":
        raise UsageError(
            f"{path}: the output is JSON Lines (one object per line), not one JSON document; "
            "name it .jsonl or pass --format jsonl"
        )
    return {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}.get(suffix, "tsv")


class Writer:
    """Writes scored chunks to a text stream in one format (TSV and CSV quoted as the csv module
    does, QUOTE_MINIMAL). ``columns``: the added columns, ``error`` last; ``digits``: decimals of
    each prediction column (None: text). A prediction is formatted once per distinct name of a
    chunk; for a plain file, where a row is its name, the whole output line is."""

    def __init__(self, out: IO[str], fmt: str, input_columns: list[str], columns: list[str], digits: list[int | None]):
        self.out, self.fmt, self.input_columns, self.columns, self.digits = (
            out,
            fmt,
            list(input_columns),
            columns,
            digits,
        )
        if fmt == "jsonl":
            self._csv = None
        else:
            self.delimiter = DELIMITERS[fmt]
            self._special = re.compile(f'[{re.escape(self.delimiter)}"\r\n]')
            self._buffer = io.StringIO()  # a chunk's rows, written to ``out`` in one call
            self._csv = csv.writer(self._buffer, delimiter=self.delimiter, lineterminator="\n")
            self._csv.writerow(self.input_columns + self.columns)
            self._flush()

    def _flush(self) -> None:
        self.out.write(self._buffer.getvalue())
        self._buffer.seek(0)
        self._buffer.truncate()

    def _field(self, text: str) -> str:
        return f'"{text.replace(chr(34), chr(34) * 2)}"' if self._special.search(text) else text

    def prediction(self, values: tuple | None, error: str | None) -> tuple[str, ...] | str:
        """The prediction part of a row: a tuple of strings (TSV, CSV) or a JSON fragment (JSON Lines)."""
        if self.fmt == "jsonl":
            vals = (
                [None] * len(self.digits)
                if values is None
                else [v if d is None else round(v, d) for v, d in zip(values, self.digits)]
            )
            return json.dumps(dict(zip(self.columns, vals + [error])))[1:-1]
        if values is None:
            return ("",) * (len(self.columns) - 1) + (error or "",)
        return tuple(v if d is None else f"{v:.{d}f}" for v, d in zip(values, self.digits)) + ("",)

    def line(self, name: str, prediction: tuple[str, ...] | str) -> str:
        """A plain file's output line: its name, then the prediction."""
        if self.fmt == "jsonl":
            return f"{{{json.dumps(self.input_columns[0])}: {json.dumps(name)}, {prediction}}}\n"
        return self.delimiter.join([self._field(name), *map(self._field, prediction)]) + "\n"

    def write(self, chunk: Chunk, index: Sequence[int], predictions: list) -> None:
        """One chunk: row ``i`` gets ``predictions[index[i]]``, or an empty one with its read error."""
        if chunk.fields is None:  # plain: one line per distinct name, then the rows pick theirs
            first = np.empty(len(predictions), np.int64)
            first[np.asarray(index, np.int64)] = np.arange(len(index))
            lines = [self.line(chunk.names[k], p) for k, p in zip(first.tolist(), predictions)]
            rows = [lines[j] for j in index]
            for i, error in chunk.errors.items():
                rows[i] = self.line(chunk.names[i], self.prediction(None, error))
            self.out.write("".join(rows))
            return
        preds = [predictions[j] for j in index]
        for i, error in chunk.errors.items():
            preds[i] = self.prediction(None, error)
        if self._csv is not None:
            self._csv.writerows([(*f, *p) for f, p in zip(chunk.fields, preds)])
            self._flush()
        else:
            cols, dumps = self.input_columns, json.dumps
            self.out.write("".join(f"{dumps(dict(zip(cols, f)))[:-1]}, {p}}}\n" for f, p in zip(chunk.fields, preds)))


STD_FDS = {"/dev/stdout": 1, "/dev/stderr": 2}  # names a shell treats as its own descriptors


def _descriptor(path: str) -> int | None:
    """The descriptor ``path`` names (``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``,
    ``/proc/self/fd/N``), or None: written to as a shell's ``> /dev/stdout`` writes, through the
    descriptor already open, never reopened (reopening truncates a file that ``>>`` opened)."""
    for _ in range(40):  # the path, then each symlink it leads through (``out -> /dev/stdout``)
        norm = os.path.normpath(os.path.abspath(path))
        if norm in STD_FDS:
            return STD_FDS[norm]
        m = re.fullmatch(rf"/(?:dev/fd|proc/self/fd|proc/{os.getpid()}/fd)/(\d+)", norm)
        if m:
            return int(m.group(1))
        try:
            path = os.path.join(os.path.dirname(norm), os.readlink(norm))
        except OSError:  # not a symlink (or not there)
            return None
    return None


def _cannot_open(path: str, exc: OSError) -> UsageError:
    return UsageError(f"{path}: cannot write there ({exc.strerror or exc})")


def _write_error(path: str, exc: OSError) -> UsageError:
    what = exc.strerror or str(exc)
    hint = (
        "free some space or write elsewhere"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        else "check the path and its permissions"
    )
    return UsageError(f"cannot write {path}: {what}; {hint}")


class _Guarded:
    """A text stream whose write errors (a full disk) become one-line :class:`UsageError` naming the
    output; a closed pipe stays :class:`BrokenPipeError` (the CLI ends quietly on it)."""

    def __init__(self, stream: IO[str], path: str):
        self._stream, self._path = stream, path

    def _call(self, method, *args):
        try:
            return method(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _write_error(self._path, exc) from None

    def write(self, text: str) -> int:
        return self._call(self._stream.write, text)

    def flush(self) -> None:
        self._call(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _text(file: int | str, path: str) -> Iterator[IO[str]]:
    """``file`` (a name or a descriptor) opened for UTF-8 text, its write errors turned into one-line
    :class:`UsageError`; flushed when the block ends well, closed in any case."""
    try:
        stream = open(file, "w", encoding="utf-8", newline="")
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    try:
        out = _Guarded(stream, path)
        yield cast(IO[str], out)  # a proxy: write and flush guarded, the rest passed to the stream
        out.flush()
    finally:
        try:
            stream.close()  # after a failed write the buffer cannot be written; close() still frees the file
        except OSError:
            pass


@contextlib.contextmanager
def atomic_output(path: str | None) -> Iterator[IO[str]]:
    """A text stream for ``path`` (None or ``-``: standard output). What ``path`` names decides how
    it is written; nothing but a regular file is ever replaced:

    * a regular file, or nothing yet: **atomically**. The text goes to a hidden ``.NAME.XXXX.partial``
      file in the same folder, is flushed and fsynced, and is renamed to the name only when the block
      ends without an error (then the folder is fsynced too); otherwise -- an error, a full disk,
      Ctrl-C, SIGTERM -- the partial file is removed and an existing file is left as it was. A new
      file gets the mode a plain ``open()`` gives (``0666`` less the umask), a replaced one keeps its mode.
    * a **symlink** is followed: the file it points to is written as above, in *its* folder, and the
      link stays a link (pointing to the new file).
    * ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/fd/N``: the descriptor already
      open, as a shell's redirection writes to them (never reopened, so ``>> log`` stays appended to).
    * anything else that is not a regular file -- a character device (``/dev/null``), a FIFO -- is
      **written through**: opened and written as ``> PATH`` would, *not* atomically (a reader may
      see part of the output if the run fails).

    A write error (a full disk) raises :class:`UsageError` naming the output; standard output's
    own errors are raised as they are (the CLI reports them in one line)."""
    fd = None if path in (None, "-") else _descriptor(path)
    if path in (None, "-") or fd == 1:
        yield sys.stdout
        sys.stdout.flush()
        return
    if fd is not None:
        try:
            fd = os.dup(fd)
        except OSError as exc:
            raise _cannot_open(path, exc) from None
        with _text(fd, path) as out:
            yield out
        return
    try:
        st: os.stat_result | None = os.stat(path)  # follows symlinks
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path}: is a directory; give a file name for --output")
    if st is not None and not stat.S_ISREG(st.st_mode):  # a device, a FIFO: written through
        with _sigterm_raises(), _text(path, path) as out:
            yield out
        return
    target = Path(os.path.realpath(path))  # a symlink's target (a dangling one's too): the link stays
    if not target.parent.is_dir():
        raise UsageError(f"{path}: folder {target.parent} does not exist")
    try:
        fd, tmp = temp_file(target, ".partial")
    except OSError as exc:
        raise _cannot_open(path, exc) from None
    try:
        with _sigterm_raises(), _text(fd, path) as out:
            yield out
    except BaseException:
        discard(tmp)
        raise
    try:  # fsync, the mode of a new file or of the one it replaces, rename, fsync the folder
        publish(tmp, target, keep_mode=True)
    except OSError as exc:
        raise _write_error(path, exc) from None


class Terminated(BaseException):
    """SIGTERM turned into an exception, so that ``finally`` blocks (removing a partial file) run."""


@contextlib.contextmanager
def _sigterm_raises():
    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---- the run ----------------------------------------------------------------------------------------
class Progress:
    """``rows, names/s[, percent]`` on one rewritten stderr line, at most 4 times a second."""

    def __init__(self, enabled: bool, size: int | None = None):
        self.enabled, self.size = enabled, size
        self.start = self.last = time.perf_counter()
        self.shown = False

    def update(self, rows: int, position: float | None) -> None:
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
    first_bad: tuple[int, str] | None = None  # (line, error)

    def line(self, command: str, output: str | None) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else 0.0
        where = f" -> {output}" if output not in (None, "-") else ""
        text = (
            f"namemodels {command}: {self.rows - self.bad:,} of {self.rows:,} rows scored in "
            f"{self.seconds:.1f} s ({rate:,.0f} names/s){where}"
        )
        if self.bad:
            assert self.first_bad is not None  # score_rows records the first bad row with the count
            line, error = self.first_bad
            text += (
                f"; {self.bad:,} could not be scored and have an empty prediction and the reason in the "
                f"{ERROR!r} column (first at line {line}: {error})"
            )
        return text


def score_rows(
    scorer: Scorer,
    source: Source,
    writer: Writer,
    chunk: int,
    batch: int | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Read, score and write ``source`` chunk by chunk; returns the counts."""
    summary = Summary()
    start = time.perf_counter()
    for part in source.chunks(chunk):
        scored = scorer.predictor.score_chunk(part.names, batch or BATCH)
        errors = scorer.errors(scored)
        writer.write(
            part, scored.index.tolist(), [writer.prediction(v, e) for v, e in zip(scorer.values(scored), errors)]
        )
        bad = np.array([e is not None for e in errors], bool)[scored.index]
        bad[list(part.errors)] = True
        if bad.any():
            first = int(np.argmax(bad))
            summary.bad += int(bad.sum())
            if summary.first_bad is None:
                summary.first_bad = (part.lines[first], part.errors.get(first) or errors[scored.index[first]])
        summary.rows += len(part.names)
        if progress is not None:
            progress.update(summary.rows, source.position(summary.rows))
    summary.seconds = time.perf_counter() - start
    return summary


def score_file(
    predictor: Classifier,
    input: str,
    output: str | None = None,
    kind: str = "predict",
    top: int = 1,
    column: str | None = None,
    fmt: str | None = None,
    chunk: int | None = None,
    batch: int | None = None,
    progress: bool = False,
    min_prob: float | None = None,
) -> Summary:
    """Score every row of ``input`` into ``output`` (see the module docstring); bad rows are kept,
    counted and described, never raised."""
    scorer = Scorer(predictor, kind, top, min_prob)
    fmt = output_format(output, fmt)
    with open_source(input, column) as source:
        bar = Progress(progress, source.size)
        try:
            with atomic_output(output) as out:
                writer = Writer(out, fmt, source.header, scorer.added_columns(source.header), scorer.digits())
                return score_rows(scorer, source, writer, chunk or CHUNK, batch, bar)
        finally:
            bar.close()


def score_names(
    predictor: Classifier,
    names: Sequence[str],
    output: str | None = None,
    kind: str = "predict",
    top: int = 1,
    fmt: str | None = None,
    min_prob: float | None = None,
) -> Summary:
    """:func:`score_file` for names given as a list (the CLI's arguments)."""
    scorer = Scorer(predictor, kind, top, min_prob)
    fmt = output_format(output, fmt)
    source = Source(["name"], lambda n: _plain_chunks(iter([(list(names), {})]), n))
    with atomic_output(output) as out:
        writer = Writer(out, fmt, ["name"], scorer.added_columns(["name"]), scorer.digits())
        return score_rows(scorer, source, writer, CHUNK)


# ---- frames -----------------------------------------------------------------------------------------
def predict_frame(
    predictor: Classifier,
    df: pd.DataFrame,
    column: str,
    top: int | None = 1,
    kind: str = "predict",
    min_prob: float | None = None,
) -> pd.DataFrame:
    """``df`` (pandas) with the columns of :func:`added_columns` appended (see
    :meth:`namemodels.inference.predictor.Predictor.predict_frame`). Labels, sources, reasons and errors are
    pandas ``string`` columns (missing: ``<NA>``), ``count`` ``Int64`` (missing: ``<NA>``), other numbers
    float64 (missing: NaN)."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        what = (
            f"{type(df).__module__.split('.')[0]}.{type(df).__name__}" if hasattr(df, "columns") else type(df).__name__
        )
        hint = (
            "for a Dask DataFrame use namemodels.dask.predict(ddf, column)"
            if hasattr(df, "map_partitions")
            else "for a list of names use predict(names); for a table build one with pandas.DataFrame({'name': names})"
        )
        raise UsageTypeError(f"predict_frame needs a pandas DataFrame, got {what}; {hint}")
    if column not in df.columns:
        raise UsageError(f"no column {column!r}; the frame's columns are {', '.join(map(repr, df.columns))}")
    scorer = Scorer(predictor, kind, top, min_prob)
    names = df[column].tolist()
    digits = scorer.digits() + [None]
    parts: list[list[np.ndarray]] = []
    for start in range(0, len(names), CHUNK):
        scored = predictor.score_chunk(names[start : start + CHUNK])
        values, errors = scorer.values(scored), scorer.errors(scored)
        blank = (None,) * len(scorer.columns)
        distinct = list(zip(*[(v or blank) + (e,) for v, e in zip(values, errors)])) or [()] * len(digits)
        parts.append(
            [np.array(col, object if d is None else np.float64)[scored.index] for col, d in zip(distinct, digits)]
        )
    out = df.copy()
    for k, (name, d) in enumerate(zip(scorer.added_columns([str(c) for c in df.columns]), digits)):
        col = np.concatenate([p[k] for p in parts]) if parts else np.array([], object if d is None else np.float64)
        out[name] = (
            pd.array(col, dtype="string") if d is None else pd.array(col, dtype="Int64") if d == 0 else col
        )  # counts: whole numbers, <NA> where bad
    return out
