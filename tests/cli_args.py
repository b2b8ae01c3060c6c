"""The ``namemodels train`` command lines that several test files give :func:`namemodels.cli.main` (or a
``python -m namemodels.cli`` process), written once."""

from __future__ import annotations

from pathlib import Path


def train_argv(data: str | Path, *more: str) -> list[str]:
    """``train classify --data DATA MORE...``."""
    return ["train", "classify", "--data", str(data), *more]


def tiny_train_argv(data: str | Path, out: str | Path, *more: str) -> list[str]:
    """A quiet one-epoch run of a tiny classifier (embed 4, hidden 8, batches of 32) on DATA into OUT."""
    tiny = ["--epochs", "1", "--embed", "4", "--hidden", "8", "--batch-size", "32", "--quiet"]
    return train_argv(data, "--out", str(out), *tiny, *more)
