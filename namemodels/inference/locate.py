"""Where a model lives: a shipped model's name (``surnames``, ``gender``, ...) or a directory
written by ``namemodels train``. No NumPy, no torch: the predictor, export and the benchmarks import it."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"


def shipped_models() -> list[str]:
    """The names of the models that ship with the package, sorted."""
    return sorted(p.name for p in PRETRAINED.iterdir() if (p / "config.json").is_file()) if PRETRAINED.is_dir() else []


def resolve(name_or_dir: str | Path) -> Path:
    """The model directory of a shipped name or a directory; :class:`UsageError` when it is neither
    (an interrupted training run says how to resume it)."""
    path = Path(name_or_dir)
    if path.is_dir():
        if not (path / "config.json").is_file():
            from ..checkpoint_json import interrupted_run

            raise UsageError(
                interrupted_run(path)
                or f"{path}: not a model directory (no config.json); train one with `namemodels train`"
            )
        return path
    if str(name_or_dir) in shipped_models():
        return PRETRAINED / str(name_or_dir)
    raise UsageError(
        f"unknown model {str(name_or_dir)!r}: not a directory, and the shipped models are "
        f"{', '.join(shipped_models()) or '(none installed)'}"
    )
