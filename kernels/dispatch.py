"""Which path runs a layer: the fused Triton kernels or the torch fallback, and why."""

from __future__ import annotations

import os
from typing import Protocol

from torch import Tensor


class _Layer(Protocol):
    """What :func:`triton_supported` reads of its layer, a :class:`namemodels.kernels.layers.RecurrentBase`
    (not imported: layers.py imports this module, and the import graph has no cycles)."""

    @property
    def mode(self) -> str: ...

    @property
    def hidden_size(self) -> int: ...


def triton_available() -> tuple[bool, str]:
    try:
        import triton  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return False, f"triton is not importable ({exc.__class__.__name__}: {exc})"
    return True, "triton importable"


def interpreter_on() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def triton_supported(layer: _Layer, x: Tensor, explicit: bool) -> tuple[bool, str]:
    """Whether the fused kernels can run this call. ``explicit`` (backend='triton') also allows CPU
    tensors under ``TRITON_INTERPRET=1``; 'auto' uses Triton only for CUDA tensors."""
    ok, why = triton_available()
    if not ok:
        return False, why
    if not x.is_cuda:
        if not explicit:
            return False, "input is on the CPU; the fused kernels run on CUDA"
        if not interpreter_on():
            return False, (
                "input is on the CPU and TRITON_INTERPRET=1 is not set: move the model and input "
                "to CUDA, or set TRITON_INTERPRET=1 (before importing triton) to run the kernels "
                "in Triton's interpreter"
            )
    from .fused_recurrent import supports

    return supports(layer.mode, layer.hidden_size, x.dtype)
