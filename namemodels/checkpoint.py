"""Model directories: ``model.safetensors`` + ``config.json`` (vocab, labels, card), no pickle.

Every write goes to a temporary file first and is renamed into place, so a crash never leaves a
half-written model; ``last.safetensors``/``last.json`` hold optimizer and RNG state for ``--resume``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, Tuple

import torch
from safetensors.torch import load_file, save_file

from .checkpoint_json import publish
from .errors import UsageError


def atomic_save_tensors(path: Path, tensors: Dict[str, torch.Tensor], metadata: Dict[str, str] = None) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
    publish(tmp, path)


def load_tensors(path: Path) -> Dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise UsageError(f"{path}: not found") from None
    except Exception as exc:  # safetensors raises its own error types for truncated headers
        raise UsageError(f"{path}: cannot read weights ({exc}); the file is truncated or not safetensors") from None


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Split an optimizer's state into tensors (for safetensors) and JSON (hyperparameters)."""
    sd = optimizer.state_dict()
    tensors = {f"optim.{idx}.{key}": torch.as_tensor(val) for idx, st in sd["state"].items() for key, val in st.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: Dict[str, torch.Tensor], meta: dict) -> None:
    state: Dict[int, dict] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def load_model(directory: Path, config: dict):
    """The model a directory's ``config.json`` describes, with its ``model.safetensors``, in eval mode."""
    from .models import build_model
    directory = Path(directory)
    try:
        model = build_model(config["model"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"{directory / 'config.json'}: cannot build the model ({exc})") from None
    tensors = load_tensors(directory / "model.safetensors")
    problem = weights_mismatch(model.state_dict(), tensors)
    if problem:
        raise UsageError(f"{directory / 'model.safetensors'}: the weights do not match config.json's model section "
                         f"({problem}); restore config.json, or retrain the model")
    model.load_state_dict(tensors)
    return model.eval()


def weights_mismatch(expected: Dict[str, torch.Tensor], found: Dict[str, torch.Tensor]) -> str:
    """The first difference between the tensors a model needs and those a file holds, in one line
    (torch's own message lists every tensor over several lines); "" when they fit."""
    for name, tensor in expected.items():
        if name not in found:
            return f"the file has no tensor {name}"
        if tuple(found[name].shape) != tuple(tensor.shape):
            return (f"{name} is {'x'.join(map(str, found[name].shape))} in the file but "
                    f"{'x'.join(map(str, tensor.shape))} by config.json")
    extra = sorted(set(found) - set(expected))
    return f"the file has tensors config.json does not describe, e.g. {extra[0]}" if extra else ""
