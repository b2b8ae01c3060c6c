"""What every part of the GPU check (:mod:`namemodels.bench.gpu_check`) shares: the input width and
the shapes it measures, and :class:`Setting`, one run's choices (dry run or CUDA, its folders, the
time budget and what is left of it). No torch here."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from namemodels.bench.gpu_timing import Timer

E = 32  # input features of every layer measured
GRID: dict[str, Any] = {
    "batch": (1, 64, 1024, 8192),
    "seq": (16, 64),
    "hidden": (64, 128, 256),
    "cells": ("lstm", "gru", "rnn_tanh", "momentum_lstm"),
    "dtypes": ("bfloat16", "float32"),
}
TINY: dict[str, Any] = {
    "batch": (1, 17),
    "seq": (4,),
    "hidden": (16,),
    "cells": ("lstm", "gru", "rnn_tanh", "momentum_lstm"),
    "dtypes": ("bfloat16", "float32"),
}
MEMORY_SHAPE = (1024, 64, 256)  # B, T, H of the peak-memory rows


@dataclass
class Setting:
    """One run's choices, from its command line: a dry run (tiny shapes on the CPU) or CUDA, the
    folders, the options the parts read, and the clock of the time budget."""

    dry: bool
    out: Path
    repo: Path
    budget: float
    data: str | None = None  # surnames data for the classifier and the training epoch
    pytest: str | None = None
    workers: int | None = None
    t0: float = field(default_factory=time.monotonic)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Setting:
        return cls(
            dry=args.dry_run,
            out=Path(args.outdir),
            repo=Path(args.repo) if args.repo else Path(__file__).resolve().parents[1],
            budget=args.budget,
            data=args.data,
            pytest=args.pytest,
            workers=args.workers,
        )

    @property
    def grid(self) -> dict[str, Any]:
        return TINY if self.dry else GRID

    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"

    @property
    def timer(self) -> Timer:
        return Timer(self.device, self.dry)

    def left(self) -> float:
        """Seconds left of the budget."""
        return self.budget - (time.monotonic() - self.t0)
