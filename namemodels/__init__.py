"""namemodels: character-level recurrent models for names.

Importing this package does not import torch: inference from shipped models runs on onnxruntime.
"""

__version__ = "0.1.0"


def load(
    name_or_dir, backend: str = "auto", threads=None, device: str = "cpu", table: bool = True, calibrate: bool = True
):
    """Load a shipped model by name or a trained model directory; see :func:`namemodels.inference.predictor.load`."""
    from .inference.predictor import load as _load

    return _load(name_or_dir, backend=backend, threads=threads, device=device, table=table, calibrate=calibrate)
