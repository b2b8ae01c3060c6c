"""JSON files written atomically (temp file + rename), and what a model directory's checkpoint
manifest says; no torch, so inference can use it."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

from .errors import UsageError

MANIFEST = "last.json"   # a training run's checkpoint manifest (see namemodels.checkpoint)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """``path`` holds ``data`` in full, or keeps what it held (a hidden temporary file beside it, then
    :func:`publish`)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(tmp)
        raise
    publish(tmp, path)


def publish(tmp: str, path: Path) -> None:
    """Give a temporary file the usual permissions (mkstemp makes it 0600), flush it to disk and
    rename it into place, then flush the directory: after a crash or power cut, ``path`` holds
    either its old or its new bytes, never a part, and a file renamed later is not seen before it."""
    os.chmod(tmp, 0o666 & ~current_umask())
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


def current_umask() -> int:
    """The process's umask (reading it means setting it: it is put back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
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


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc}); the file is damaged, re-export or retrain it") from None




def interrupted_run(directory: Path) -> Optional[str]:
    """For a directory with a training checkpoint but no config.json: how far its run got and how
    to finish it; None for any other directory."""
    directory = Path(directory)
    if (directory / "config.json").exists() or not (directory / MANIFEST).is_file():
        return None
    try:
        manifest = read_json(directory / MANIFEST)
        done, total = manifest["epochs_done"], manifest["config"]["train"]["epochs"]
        command = manifest["config"].get("command") or ""
        where = f"stopped after epoch {done} of {total}"
    except (UsageError, KeyError, TypeError):
        command, where = "", "stopped before it finished"
    finish = f"`{command} --resume`" if command else "the same `namemodels train` command with --resume"
    return f"{directory}: this training run {where} and has no model yet (no config.json); finish it with {finish}"
