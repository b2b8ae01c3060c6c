"""``--ensemble K``: K classifiers trained apart on one split (seeds ``seed``, ``seed + 1``, ...) and
saved as one model that averages their probabilities.

Each member is an ordinary model directory under ``OUT/members/<k>`` (the trainer runs them in
parallel processes, so a crash loses at most the epoch in progress of each member, and ``--resume``
continues them); :func:`combine` then gives ``OUT`` the combined weights (``members.<k>.*``),
config, card and the members' histories."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from torch import nn

from ..checkpoint_json import read_json, write_json
from ..config import TrainConfig
from ..evaluate import write_model_card
from ..integrity import record as record_hashes
from ..models import EnsembleClassifier, count_parameters
from .checkpoint import atomic_save_tensors, load_model, saved_weights


def member_config(cfg: TrainConfig, k: int) -> TrainConfig:
    """Member ``k``'s settings: one model, seed ``seed + k``, the ensemble's split."""
    return dataclasses.replace(cfg, ensemble=1, seed=cfg.seed + k, split_seed=cfg.data_seed())


def member_dirs(cfg: TrainConfig, out: Path) -> list[Path]:
    return [Path(out) / "members" / str(k) for k in range(cfg.ensemble)]


def combine(
    cfg: TrainConfig,
    out: Path,
    held_out_metrics: Callable[[nn.Module], dict],
    seconds: float,
    command: str = "",
    cv_estimate: dict | None = None,
) -> dict:
    """Write the ensemble of the finished members in ``OUT/members`` to ``out``; returns its config.
    ``held_out_metrics(model)`` scores the combined model (``config.json``'s metrics); ``seconds``:
    the members' training time."""
    out = Path(out)
    dirs = member_dirs(cfg, out)
    configs = [read_json(d / "config.json") for d in dirs]
    model = EnsembleClassifier([load_model(d, c) for d, c in zip(dirs, configs)]).eval()
    config = {k: v for k, v in configs[0].items() if k not in ("metrics", "parameters", "training_seconds", "sha256")}
    config.update(
        model={"kind": "ensemble", "members": cfg.ensemble, "member": configs[0]["model"]},
        train=dataclasses.asdict(cfg),
        command=command,
        members=[
            {
                "dir": str(d.relative_to(out)),
                "seed": c["train"]["seed"],
                "metrics": c["metrics"],
                "training_seconds": c["training_seconds"],
            }
            for d, c in zip(dirs, configs)
        ],
    )
    if cv_estimate:
        config["cv"] = cv_estimate
    config["metrics"] = held_out_metrics(model)
    config["parameters"] = count_parameters(model)
    config["training_seconds"] = round(seconds, 1)
    atomic_save_tensors(out / "model.safetensors", saved_weights(model, cfg.save_dtype), {"format": "pt"})
    write_json(out / "history.json", {"members": [read_json(d / "history.json") for d in dirs]})
    write_json(out / "config.json", record_hashes(out, config, files=("model.safetensors",)))  # written last
    write_model_card(out, config)
    return config
