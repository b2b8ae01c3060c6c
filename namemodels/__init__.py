"""namemodels: character-level recurrent models for names.

Importing this package does not import torch: inference from shipped models runs on onnxruntime.
``namemodels.load`` is :func:`namemodels.inference.predictor.load` itself, imported on first use
(importing the predictor with the package would slow ``import namemodels``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and editors: the real signature and docstring
    from .inference.predictor import load as load

__version__ = "0.1.0"
__all__ = ["load", "__version__"]


def __getattr__(name: str) -> Any:  # PEP 562: a module attribute made on first access
    if name == "load":
        from .inference.predictor import load

        globals()["load"] = load  # later accesses skip this function
        return load
    raise AttributeError(f"module 'namemodels' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "load"})
