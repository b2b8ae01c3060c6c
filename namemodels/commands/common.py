"""Pieces the subcommands share: JSON output that is valid JSON, and an output folder that a failed
command does not leave behind."""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator
from pathlib import Path


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: object, indent: int = 2) -> str:
    """``json.dumps`` for output: a value that is not a finite number (an undefined metric such as the
    ROC AUC of one class) is written as ``null``, never as the ``NaN`` JSON does not have."""
    return json.dumps(_finite(obj), indent=indent, allow_nan=False)


@contextlib.contextmanager
def removed_on_failure(folder: str | Path) -> Iterator[Path]:
    """Run a command that writes into ``folder``: if it fails, the folders it created that are still
    empty are removed again (an existing folder, or one with files in it, is kept)."""
    folder = Path(folder).expanduser()
    new = []
    p = folder.absolute()
    while not p.exists() and p != p.parent:
        new.append(p)
        p = p.parent
    try:
        yield folder
    except BaseException:
        for d in new:  # deepest first
            try:
                d.rmdir()  # only when empty
            except OSError:
                break
        raise


def write_json_out(path: str | Path, obj: object) -> None:
    """``--json-out FILE``: ``obj`` as JSON (:func:`json_text`), written atomically; a path that cannot
    be written is a usage error naming it."""
    from namemodels.errors import UsageError
    from namemodels.fileio import atomic_write_text

    try:
        atomic_write_text(Path(path), json_text(obj) + "\n")
    except OSError as exc:
        raise UsageError(f"cannot write --json-out {path}: {exc.strerror or exc}") from None


def make_out_folder(folder: Path) -> None:
    """Create ``--out`` (and its parents) when missing; a path that is not a folder, or one that cannot be
    created, is a usage error naming it."""
    from namemodels.errors import UsageError

    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file, not a folder; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {folder}: cannot create the folder ({exc.strerror or exc}); choose another") from None


@contextlib.contextmanager
def locked_out_folder(folder: Path, command: str) -> Iterator[Path]:
    """``--out`` of a run that writes there (``train``, ``cv``): created when missing
    (:func:`make_out_folder`), removed again when the run fails while it is still empty
    (:func:`removed_on_failure`), and locked for the run (:mod:`namemodels.outlock`; taken before torch
    is imported, so a second run on the folder stops in a moment)."""
    from namemodels.outlock import output_lock

    with removed_on_failure(folder) as folder:
        make_out_folder(folder)
        with output_lock(folder, command):
            yield folder
