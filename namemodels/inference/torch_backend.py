"""The :class:`~namemodels.inference.protocol.Backend` on a PyTorch model: ``model.safetensors`` read
by :func:`namemodels.training.checkpoint.load_model`, on the CPU or a CUDA device (where the layers run the
fused kernels). Needs the ``train`` extra; the predictor imports this module only when it is used."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from ..config import read_model_config
from ..errors import UsageError
from ..training.checkpoint import load_model
from .locate import resolve
from .protocol import State


def load_torch_model(name_or_dir: str | Path) -> tuple[torch.nn.Module, dict, Path]:
    """``(model in eval mode, config, directory)`` of a shipped name or a model directory."""
    directory = resolve(name_or_dir)
    config = read_model_config(directory)
    return load_model(directory, config), config, directory


class TorchBackend:
    """A namemodels ``nn.Module`` (a classifier's ``log_probs`` or a generator's ``step``) behind the
    backend protocol: NumPy in, NumPy out, the model on ``device``. A generation's state stays on the
    device between steps.

    Built from a model in memory (the study's freshly trained models) or, by :func:`open_directory`,
    from a model directory; the latter pickles as where to load it from."""

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None):
        if device is None:
            device = next(iter(model.parameters())).device
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.directory: Path | None = None
        self.config: dict | None = None

    def __reduce__(self) -> tuple[Callable[..., TorchBackend], tuple]:
        if self.directory is None:  # a model in memory travels whole
            return TorchBackend, (self.model, str(self.device))
        return open_directory, (self.directory, self.config, str(self.device))

    def _in(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.device, non_blocking=True)

    def logprobs(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            # a classifier's method (nn.Module's attributes are typed as tensors or modules)
            log_probs = cast("Callable[[torch.Tensor, torch.Tensor], torch.Tensor]", self.model.log_probs)
            return log_probs(self._in(ids), self._in(lengths)).cpu().numpy()

    def initial_state(self, batch: int) -> None:
        return None  # the layers start from zeros

    def step(self, tokens: np.ndarray, state: State, category: np.ndarray | None) -> tuple[np.ndarray, State]:
        with torch.inference_mode():
            cat = self._in(category) if category is not None else None
            step = cast("Callable[..., tuple[torch.Tensor, Any]]", self.model.step)  # a generator's method
            logp, state = step(self._in(tokens), state, cat)
            return logp.cpu().numpy(), state


def open_directory(directory: str | Path, config: dict, device: str = "cpu") -> TorchBackend:
    """The backend on a model directory's weights (``config``: its checked ``config.json``) on
    ``device``: ``"cpu"``, or ``"cuda"`` / ``"cuda:N"`` where torch sees a CUDA device."""
    if str(device) != "cpu":
        if not str(device).startswith("cuda"):
            raise UsageError(f"device={device!r}: use 'cpu' or 'cuda'")
        if not torch.cuda.is_available():
            raise UsageError(f"device={device!r}: torch sees no CUDA device here; use device='cpu'")
    backend = TorchBackend(load_model(Path(directory), config), device)
    backend.directory, backend.config = Path(directory), config
    return backend
