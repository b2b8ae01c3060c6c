"""One run at a time per output folder: ``train --out DIR`` and ``cv --out DIR`` hold an exclusive lock
on ``DIR/.namemodels.lock`` while they write there, so a second run on the same folder stops at once
(:class:`UsageError`, exit code 2) instead of both writing and the last one winning.

The lock is ``fcntl.flock``: the kernel releases it when the process ends, however it ends (a crash,
``kill -9``, a power cut), so a lock file left behind is never a stale lock: the next run takes it.
On a normal exit the file is removed. A run that opened the file just before its holder removed it
would lock a file no longer in the folder; after taking the lock a run therefore checks that the path
still names the file it locked, and tries again if not. Where ``fcntl`` does not exist (Windows) the
folder is not locked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import UsageError

LOCK_NAME = ".namemodels.lock"
_HELD: dict[str, int] = {}  # folders this process holds, by real path: the lock is re-entrant within a process


def _holder(path: Path) -> str:
    """What the lock file says about the run that holds it (best effort: it may be gone already)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""


@contextlib.contextmanager
def output_lock(folder: str | Path, command: str) -> Iterator[Path]:
    """Hold ``folder``'s lock for the ``with`` block (``folder`` must exist); raises
    :class:`UsageError` at once when another process holds it. ``command`` (e.g. ``"train"``) is
    written into the lock file, for the message another run shows. Re-entrant: a process that holds
    the lock may take it again (a thread of it too: the lock keeps processes apart, not threads)."""
    key = os.path.realpath(folder)
    if key in _HELD:  # this process holds it already (the CLI takes it before importing torch, then train())
        _HELD[key] += 1
        try:
            yield Path(folder)
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(Path(folder), command)
    _HELD[key] = 1
    try:
        yield Path(folder)
    finally:
        del _HELD[key]
        if fd is not None:
            try:
                os.unlink(Path(folder) / LOCK_NAME)  # while still locked: a run that opened it now retries
            except OSError:
                pass
            os.close(fd)


def _acquire(folder: Path, command: str) -> int | None:
    """The descriptor of the locked file, or None where files cannot be locked."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform (Windows): unlocked, as before
        return None
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a folder this user cannot write, a read-only file system
            raise UsageError(f"{folder}: cannot write there ({exc.strerror}); choose another --out") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UsageError(
                f"{folder} is in use by another run{_holder(path)}: only one run may write a folder at a "
                "time; wait for that run to finish, or choose another --out"
            ) from None
        except OSError:  # a file system without locks (some network mounts): unlocked, as before
            os.close(fd)
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, f"namemodels {command}, process {os.getpid()}\n".encode())
            return fd
        os.close(fd)  # its holder removed the file between our open and our lock: lock the new one
