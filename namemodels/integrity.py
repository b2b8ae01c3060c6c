"""SHA-256 checks that a model directory is what was saved. No torch here (the ONNX path uses it).

``config.json`` carries a ``sha256`` block, written when the model is saved (training, ensembles,
``export`` of ``model.onnx`` beside the weights):

* ``model.safetensors``, ``model.onnx``: the SHA-256 of each file's bytes, checked on every load (about
  1 ms a file for the shipped files of 1 MB): the ONNX path, which runs ``model.onnx``, checks the
  ``model.safetensors`` beside it too. A flipped byte or a truncated file is an error, not a model that
  answers ``nan``;
* ``name_table.npz`` (a classifier's name table, :mod:`namemodels.inference.name_table`): checked
  when the table is first read (the first name looked up);
* ``task``, ``model``, ``labels``, ``tokenizer``, ``name_table``: the SHA-256 of each config.json
  section (as canonical JSON), checked on every load: an edited vocabulary, label list or the
  table's ``alpha`` would silently change every answer.

This catches damage and accidental edits, not a deliberate forgery (whoever can rewrite the files
can rewrite the block too). A directory saved before these hashes were recorded has no block and is
loaded unchecked; ``python -m namemodels.integrity DIR`` records them for it (and checks them on a
directory that has them).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import UsageError
from .fileio import sha256_bytes
from .fileio import sha256_file as file_sha256  # the name training/checkpoint.py and callers import from here

__all__ = ["FILES", "SECTIONS", "file_sha256", "section_sha256", "record", "check_file", "check_config"]

FILES = ("model.safetensors", "model.onnx", "name_table.npz")
SECTIONS = ("task", "model", "labels", "tokenizer", "name_table", "calibration")
KEY = "sha256"


def section_sha256(value: Any) -> str:
    """SHA-256 of a config section as canonical JSON (sorted keys, no spaces, ASCII)."""
    return sha256_bytes(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def record(directory: str | Path, config: dict, files: Iterable[str] = FILES) -> dict:
    """Add the SHA-256 of ``files`` (those present in ``directory``) and of the config's sections to
    ``config["sha256"]``; returns ``config``. Call it after the files are written, before config.json."""
    directory = Path(directory)
    hashes = dict(config.get(KEY) or {})
    for section in SECTIONS:
        if section in config:
            hashes[section] = section_sha256(config[section])
    for name in files:
        if (directory / name).is_file():
            hashes[name] = file_sha256(directory / name)
    config[KEY] = hashes
    return config


def _recorded(config: dict) -> dict | None:
    hashes = config.get(KEY)
    return hashes if isinstance(hashes, dict) else None


def check_config(config: dict, directory: str | Path) -> None:
    """Raise :class:`UsageError` when a hashed section of ``directory/config.json`` was changed."""
    hashes = _recorded(config)
    if hashes is None:
        return  # saved before hashes were recorded
    changed = [s for s in SECTIONS if s in hashes and section_sha256(config.get(s)) != hashes[s]]
    if changed:
        raise UsageError(
            f"{Path(directory) / 'config.json'}: its {', '.join(changed)} section"
            f"{'s were' if len(changed) > 1 else ' was'} changed after the model was saved (the SHA-256 "
            'recorded under "sha256" differs), so its answers could not be trusted; restore the file '
            "or retrain the model"
        )


def check_file(path: str | Path, config: dict, data: bytes | None = None) -> None:
    """Raise :class:`UsageError` when ``path`` (``model.safetensors`` or ``model.onnx`` of a model
    directory) is not the file whose SHA-256 ``config`` records. ``data``: the file's bytes when the
    caller has read them already (then exactly those bytes are checked, and the file is not read again)."""
    path = Path(path)
    hashes = _recorded(config)
    if hashes is None or path.name not in FILES:
        return
    want = hashes.get(path.name)
    redo = {
        "name_table.npz": f"rebuild it with `namemodels data name-table {path.parent} --data PATH` "
        "(the model's training data)",
        "model.onnx": f"re-export it with `namemodels export {path.parent} --format onnx --out {path}`",
    }.get(path.name, "reinstall namemodels (a shipped model)")
    if want is None:
        raise UsageError(
            f"{path}: config.json records no SHA-256 for this file, so it was not saved with this "
            f"model (a file left from an earlier model in this folder?); {redo}"
        )
    got = sha256_bytes(data) if data is not None else file_sha256(path)
    if got != want:
        raise UsageError(
            f"{path}: the file is damaged or was changed since the model was saved (SHA-256 "
            f"{got[:12]}..., config.json records {want[:12]}...); restore it, {redo}, or retrain"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m namemodels.integrity DIR...``: record the hashes in a directory that has none
    (saved before they were recorded); check them in one that has them."""
    from .checkpoint_json import read_json, write_json

    dirs = list(sys.argv[1:] if argv is None else argv)
    if not dirs:
        print("usage: python -m namemodels.integrity MODEL_DIR...", file=sys.stderr)
        return 2
    status = 0
    for d in map(Path, dirs):
        try:
            config = read_json(d / "config.json")
            if _recorded(config) is None:
                write_json(d / "config.json", record(d, config))
                print(f"{d}: recorded {', '.join(k for k in config[KEY])}")
            else:
                check_config(config, d)
                for name in FILES:
                    if (d / name).is_file():
                        check_file(d / name, config)
                print(f"{d}: ok")
        except UsageError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
