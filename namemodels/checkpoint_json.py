"""JSON files written atomically (:mod:`namemodels.fileio`), and what a model directory's checkpoint
manifest says; no torch, so inference can use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from .errors import UsageError
from .fileio import atomic_write_text

MANIFEST = "last.json"  # a training run's checkpoint manifest (see namemodels.training.checkpoint)


def write_json(path: Path, obj: Any, default: Callable[[Any], Any] | None = None) -> None:
    """``obj`` as indented JSON, written atomically (:func:`namemodels.fileio.atomic_write_text`);
    ``default``: what to write for a value JSON cannot hold (as :func:`json.dumps` takes it)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=default) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid JSON ({exc}); the file is damaged, re-export or retrain it") from None


def interrupted_run(directory: Path) -> str | None:
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
