"""Model directories (``model.safetensors`` + ``config.json``: vocab, labels, card; no pickle) and
the training checkpoints that ``--resume`` continues from.

Every file is written to a temporary name, flushed to disk and renamed into place, so a crash never
leaves a half-written file. A checkpoint is a set of files made consistent by the one written last:

1. ``checkpoint-<epoch>.safetensors``: weights, moving average, optimizer state, torch's RNG state
   and the best weights so far (``best.*``); its epoch is in its name and in its metadata;
2. ``last.json``, the manifest: names that file with its epoch and SHA-256 and holds the rest of
   the state (history, scheduler, best score, settings). Written last: a crash before it leaves the
   previous manifest and the files it names untouched;
3. older checkpoint files are removed only after that.

On resume the manifest is checked against the file it names (present, same SHA-256, same epoch in
its metadata); anything else is refused with a message, never replayed silently.

Testing hook: ``NAMEMODELS_CRASH_AFTER=<point>:<epoch>`` ends the process at once (``os._exit``,
no clean-up, like ``kill -9``) right after that write; the points are :data:`CRASH_POINTS`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ..checkpoint_json import MANIFEST, read_json, write_json
from ..errors import UsageError
from ..fileio import fsync_dir, publish
from ..integrity import check_config, check_file, file_sha256

CHECKPOINT_FORMAT = 2
CRASH_ENV = "NAMEMODELS_CRASH_AFTER"
CRASH_EXIT = 86
# checkpoint: its file written, the manifest not; manifest: the manifest written, history.json not;
# history: history.json written; model: model.safetensors written at the end, config.json not.
CRASH_POINTS = ("checkpoint", "manifest", "history", "model")


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
    except BaseException:
        os.unlink(tmp)
        raise
    publish(tmp, path)


def crash_point(point: str, epoch: int) -> None:
    """The fault-injection hook (see the module docstring)."""
    if os.environ.get(CRASH_ENV) == f"{point}:{epoch}":
        os._exit(CRASH_EXIT)


def checkpoint_name(epoch: int) -> str:
    return f"checkpoint-{epoch:04d}.safetensors"


def save_checkpoint(out: Path, epoch: int, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write the checkpoint after ``epoch`` (1-based) epochs: tensors, manifest, then clear old files."""
    out = Path(out)
    name = checkpoint_name(epoch)
    atomic_save_tensors(out / name, tensors, {"format": "pt", "epoch": str(epoch)})
    crash_point("checkpoint", epoch)
    write_json(
        out / MANIFEST,
        {
            "format": CHECKPOINT_FORMAT,
            "epochs_done": epoch,
            "files": {name: {"epoch": epoch, "sha256": file_sha256(out / name)}},
            **state,
        },
    )
    crash_point("manifest", epoch)
    _remove_stale(out, keep=name)


def _is_temporary(name: str) -> bool:
    """A temporary file of :func:`atomic_save_tensors` or ``write_json`` (``.<name>.<random>``)."""
    base = name[1:].rsplit(".", 1)[0] if name.startswith(".") else ""
    return base in (MANIFEST, "history.json", "model.safetensors", "config.json") or (
        base.startswith("checkpoint-") and base.endswith(".safetensors")
    )


def _remove_stale(out: Path, keep: str) -> None:
    """Checkpoint files the manifest does not name, and temporary files a crash left behind."""
    stale = [p for p in out.glob("checkpoint-*.safetensors") if p.name != keep]
    stale += [p for p in out.glob(".*") if p.is_file() and _is_temporary(p.name)]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        fsync_dir(out)


def read_checkpoint(out: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """The manifest and the tensors of the checkpoint it names, checked against each other; a
    :class:`UsageError` says what does not fit. Stale files from an interrupted write are removed."""
    out = Path(out)
    manifest = read_json(out / MANIFEST)
    again = "start the run again with a new --out (or without --resume)"
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if manifest.get("format") != CHECKPOINT_FORMAT or not isinstance(files, dict) or len(files) != 1:
        raise UsageError(
            f"{out / MANIFEST}: not a checkpoint this version can resume (written by an older namemodels, "
            f"without the crash-safe manifest); {again}"
        )
    ((name, entry),) = files.items()
    epoch = manifest.get("epochs_done")
    path = out / name
    if not path.is_file():
        raise UsageError(
            f"{out}: the checkpoint set is inconsistent: {MANIFEST} names {name} (epoch {epoch}), which "
            f"is missing; {again}"
        )
    if file_sha256(path) != entry.get("sha256"):
        raise UsageError(
            f"{out}: the checkpoint set is inconsistent: {name} is not the file {MANIFEST} names "
            f"(its SHA-256 differs: damaged or replaced); {again}"
        )
    try:
        with safe_open(str(path), framework="pt") as f:
            saved_epoch = (f.metadata() or {}).get("epoch")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise UsageError(f"{path}: cannot read the checkpoint ({exc}); {again}") from None
    if not (saved_epoch == str(entry.get("epoch")) == str(epoch)):
        raise UsageError(
            f"{out}: the checkpoint set is inconsistent: {MANIFEST} is at epoch {epoch} but {name} holds "
            f"epoch {saved_epoch}; {again}"
        )
    _remove_stale(out, keep=name)
    return manifest, tensors


SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def saved_weights(model: torch.nn.Module, dtype: str) -> dict[str, torch.Tensor]:
    """The state dict as ``model.safetensors`` stores it: floating tensors in ``dtype`` (``--save-dtype``)."""
    want = SAVE_DTYPES[dtype]
    return {k: v.to(want) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def strip_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix`` (a part of a checkpoint), without it."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UsageError(f"{path}: not found") from None
    except Exception as exc:  # safetensors raises its own error types for truncated headers
        raise UsageError(f"{path}: cannot read weights ({exc}); the file is truncated or not safetensors") from None


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (for safetensors) and JSON (hyperparameters)."""
    sd = optimizer.state_dict()
    tensors = {f"optim.{idx}.{key}": torch.as_tensor(val) for idx, st in sd["state"].items() for key, val in st.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_model(directory: Path, config: dict) -> nn.Module:
    """The model a directory's ``config.json`` describes, with its ``model.safetensors``, in eval mode."""
    from ..models import build_model

    directory = Path(directory)
    try:
        model = build_model(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{directory / 'config.json'}: cannot build the model ({exc})") from None
    check_config(config, directory)
    check_file(directory / "model.safetensors", config)
    tensors = load_tensors(directory / "model.safetensors")
    problem = weights_mismatch(model.state_dict(), tensors)
    if problem:
        raise UsageError(
            f"{directory / 'model.safetensors'}: the weights do not match config.json's model section "
            f"({problem}); restore config.json, or retrain the model"
        )
    model.load_state_dict(tensors)
    return model.eval()


def weights_mismatch(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> str:
    """The first difference between the tensors a model needs and those a file holds, in one line
    (torch's own message lists every tensor over several lines); "" when they fit."""
    for name, tensor in expected.items():
        if name not in found:
            return f"the file has no tensor {name}"
        if tuple(found[name].shape) != tuple(tensor.shape):
            return (
                f"{name} is {'x'.join(map(str, found[name].shape))} in the file but "
                f"{'x'.join(map(str, tensor.shape))} by config.json"
            )
    extra = sorted(set(found) - set(expected))
    return f"the file has tensors config.json does not describe, e.g. {extra[0]}" if extra else ""
