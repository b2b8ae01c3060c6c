"""namemodels: character-level recurrent models for names.

Importing this package does not import torch: inference from shipped models runs on onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only (importing the predictor here would slow `import namemodels`)
    from pathlib import Path

    from .inference.predictor import Predictor

__version__ = "0.1.0"


def load(
    name_or_dir: str | Path,
    backend: str = "auto",
    threads: int | None = None,
    device: str = "cpu",
    table: bool = True,
    calibrate: bool = True,
) -> Predictor:
    """Load a shipped model by name or a trained model directory; see :func:`namemodels.inference.predictor.load`."""
    from .inference.predictor import load as _load

    return _load(name_or_dir, backend=backend, threads=threads, device=device, table=table, calibrate=calibrate)
