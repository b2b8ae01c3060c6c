"""The package's file I/O, each piece once: atomic writes, the streaming line reader, the CSV/TSV row
parser and SHA-256. Standard library only (no numpy, no torch), and it imports nothing of namemodels, so
every other module can use it.

* **Atomic writes** (:func:`atomic_write`, :func:`atomic_path`, :func:`atomic_write_bytes`,
  :func:`atomic_write_text`; the pieces :func:`temp_file` and :func:`publish`; whole folders:
  :func:`atomic_folder`): the bytes go to a
  hidden temporary file with a unique name in the target's folder, which is flushed to disk (fsync)
  and renamed over the target; then the folder is fsynced. After a crash or a power cut the target
  holds its old bytes or its new ones, never a part; a failed write removes the temporary file and
  leaves the target as it was. The file gets the mode a plain ``open()`` gives (``0666`` less the
  umask), not ``mkstemp``'s private ``0600``. Regular files only: what to do with a device, a FIFO
  or ``/dev/stdout`` is the caller's choice (:func:`namemodels.bulk.atomic_output` writes through them).
* **Lines** (:func:`byte_lines`): a binary stream's complete lines a block at a time, a UTF-8 BOM
  at the start dropped, a line longer than a limit dropped as it streams by (memory stays bounded).
* **Rows** (:func:`parse_row`, :func:`csv_reader`): CSV and TSV fields as Python's :mod:`csv` module
  reads them (the ``excel`` dialect with the given delimiter).
* **SHA-256** (:func:`sha256_file`, :func:`sha256_bytes`).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Union

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "current_umask",
    "fsync_dir",
    "temp_file",
    "publish",
    "discard",
    "atomic_path",
    "atomic_folder",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "byte_lines",
    "BLOCK",
    "parse_row",
    "csv_reader",
    "sha256_file",
    "sha256_bytes",
]

BLOCK = 1 << 20  # bytes read at a time (by the line reader and the hash)


# ---- atomic writes ---------------------------------------------------------------------------------
def current_umask() -> int:
    """The process's umask (reading it means setting it: it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(directory: PathLike) -> None:
    """Make renames and removals in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_file(path: PathLike, suffix: str = "") -> tuple[int, str]:
    """A new, empty, private file beside ``path`` for its next contents: ``(open descriptor, name)``,
    named ``.NAME.XXXXXXXX<suffix>`` (hidden, unique: two writers never share one; without a suffix
    the name is what :func:`namemodels.training.checkpoint._is_temporary` recognises as a crash's leftover)."""
    path = Path(path)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)


def publish(tmp: PathLike, path: PathLike, keep_mode: bool = False) -> None:
    """Put the finished temporary file ``tmp`` in the place of ``path``: give it the mode a plain
    ``open()`` gives (``0666`` less the umask; with ``keep_mode``, the mode and, where allowed, the owner
    of the regular file it replaces), flush it to disk, rename it over ``path`` and flush the folder.
    ``tmp`` is removed if any step fails."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            old = _regular_stat(path) if keep_mode else None
            os.fchmod(fd, old.st_mode & 0o777 if old is not None else 0o666 & ~current_umask())  # no set-id bits
            if old is not None:
                with contextlib.suppress(OSError):  # root writing over a user's file: it stays theirs
                    os.fchown(fd, old.st_uid, old.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        discard(tmp)
        raise
    fsync_dir(Path(path).parent)


def _regular_stat(path: PathLike) -> os.stat_result | None:
    """``os.stat(path)`` for a regular file (followed through symlinks), else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None


def discard(tmp: PathLike) -> None:
    """Remove a temporary file that will not be published (gone already is fine)."""
    with contextlib.suppress(OSError):
        os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "", keep_mode: bool = False) -> Iterator[Path]:
    """A temporary file's name to write ``path``'s contents to (for writers that take a file name:
    ``torch.jit.save``, ``numpy.save``); published (:func:`publish`) when the block ends without an
    error, removed otherwise. ``suffix``: for writers that want one (``torch.export`` wants ``.pt2``)."""
    fd, tmp = temp_file(path, suffix)
    os.close(fd)
    try:
        yield Path(tmp)
    except BaseException:
        discard(tmp)
        raise
    publish(tmp, path, keep_mode)


@contextlib.contextmanager
def atomic_folder(path: PathLike) -> Iterator[Path]:
    """A new hidden folder beside ``path`` to build a whole folder in (a bundle, a web site, a data
    set). When the block ends without an error it gets the mode a plain ``mkdir`` gives (``0777`` less
    the umask, not ``mkdtemp``'s private ``0700``) and takes ``path``'s place: an earlier folder there
    is moved aside first and removed after, so readers see the old folder or the new one, never a mix.
    On an error the new folder is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent)) / path.name
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            if old is not None:
                os.replace(old, path)
                os.rmdir(old.parent)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old.parent, ignore_errors=True)
    fsync_dir(path.parent)


@contextlib.contextmanager
def atomic_write(
    path: PathLike,
    mode: str = "wb",
    encoding: str | None = None,
    newline: str | None = None,
    suffix: str = "",
    keep_mode: bool = False,
) -> Iterator[IO]:
    """A file object (``open(..., mode, encoding, newline)``) whose contents replace ``path`` when
    the block ends without an error (:func:`publish`); otherwise the temporary file is removed and
    ``path`` keeps what it held."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes a whole file: mode 'w' or 'wb', got {mode!r}")
    fd, tmp = temp_file(path, suffix)
    try:
        with open(fd, mode, encoding=encoding, newline=newline) as f:
            yield f
    except BaseException:
        discard(tmp)
        raise
    publish(tmp, path, keep_mode)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """``path`` holds ``data`` in full, or keeps what it held (:func:`atomic_write`)."""
    with atomic_write(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """``path`` holds ``text`` (UTF-8, newlines as given) in full, or keeps what it held."""
    atomic_write_bytes(path, text.encode("utf-8"))


# ---- lines -----------------------------------------------------------------------------------------
def byte_lines(
    stream: IO[bytes], block: int = BLOCK, max_line: int = BLOCK, eager: bool = False
) -> Iterator[tuple[bytes, bool]]:
    """The complete lines of a binary stream, about ``block`` bytes at a time, as
    ``(lines, cut)``: ``lines`` is the lines' bytes joined by ``b"\\n"`` (``lines.split(b"\\n")``
    gives them; a CR before the LF is kept; the last line of the stream may have had no newline), and
    ``cut`` says the first of them was longer than ``max_line`` bytes and comes out empty: it is
    dropped as it streams by, so memory stays bounded by ``block + max_line``. A longer line that fits
    in one block is the caller's to notice. A UTF-8 byte order mark at the start is dropped.
    ``eager``: hand on what a pipe holds now (``read1``) instead of waiting for a full block."""
    read = getattr(stream, "read1", stream.read) if eager else stream.read
    carry, skipping, first = b"", False, True
    while True:
        data = read(block)
        eof = not data
        if first and data:
            if len(carry) + len(data) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(carry + data):
                carry += data  # perhaps the start of a BOM split over reads: wait for more
                continue
            data, carry, first = carry + data, b"", False
            if data.startswith(codecs.BOM_UTF8):
                data = data[len(codecs.BOM_UTF8) :]
        if not eof:
            buf = carry + data
            cut = buf.rfind(b"\n")
            if cut < 0:
                carry = buf
                if len(carry) > max_line:
                    carry, skipping = b"", True
                continue
            head, carry = buf[:cut], buf[cut + 1 :]
        elif carry or skipping:
            head, carry = carry, b""  # the last line has no newline
        else:
            return
        was_cut, skipping = skipping, False
        if was_cut:  # the first line is the end of an over-long line
            nl = head.find(b"\n")
            head = b"" if nl < 0 else head[nl:]
        if len(carry) > max_line:
            carry, skipping = b"", True
        yield head, was_cut
        if eof:
            return


# ---- rows ------------------------------------------------------------------------------------------
def csv_reader(lines: Iterable[str], delimiter: str = ",") -> Iterator[list[str]]:
    """The records of ``lines`` (each with its line break, as ``open(newline="")`` reads them, or
    without) as :func:`csv.reader` reads them: a quoted field may hold the delimiter, quotes (doubled)
    and line breaks. Raises :class:`csv.Error` on a record it cannot read."""
    return csv.reader(lines, delimiter=delimiter)


def parse_row(line: str, delimiter: str = ",") -> list[str]:
    """The fields of one line of CSV (``delimiter=","``) or TSV (``"\\t"``) as :func:`csv_reader`
    reads them (``[]`` for an empty line). Raises :class:`csv.Error` on a line it cannot read."""
    return next(csv_reader([line], delimiter), [])


# ---- SHA-256 ---------------------------------------------------------------------------------------
def sha256_file(path: PathLike) -> str:
    """The hex SHA-256 of a file's bytes, read a block at a time (memory stays flat)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(BLOCK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """The hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
