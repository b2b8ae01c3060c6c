"""``--ensemble K``: K classifiers trained apart on one split (seeds ``seed``, ``seed + 1``, ...), in
parallel processes, saved as one model that averages their probabilities.

Each member is an ordinary model directory under ``OUT/members/<k>`` (so a crash loses at most the
epoch in progress of each member, and ``--resume`` continues them); ``OUT`` then gets the combined
weights (``members.<k>.*``), config, card and the members' histories."""
from __future__ import annotations

import dataclasses
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, List, Optional

import torch

from .checkpoint import atomic_save_tensors, load_model
from .checkpoint_json import read_json, write_json
from .config import TrainConfig
from .evaluate import write_model_card
from .integrity import record as record_hashes
from .models import EnsembleClassifier, count_parameters


def member_config(cfg: TrainConfig, k: int) -> TrainConfig:
    return dataclasses.replace(cfg, ensemble=1, seed=cfg.seed + k, split_seed=cfg.data_seed())


def _train_member(job) -> dict:
    """Runs in a worker process: one member, quietly, on ``threads`` threads."""
    from .train import train
    cfg, data_path, out, resume, threads = job
    torch.set_num_threads(threads)
    return train(cfg, data_path, out, resume=resume, progress=False, log=lambda m: None)


def train_members(cfg: TrainConfig, data_path, out: Path, resume: bool, log: Callable[[str], None]) -> List[Path]:
    """Train (or, with ``resume``, finish) every member; returns their directories."""
    dirs = [out / "members" / str(k) for k in range(cfg.ensemble)]
    pending = [(k, d) for k, d in enumerate(dirs)
               if not (resume and (d / "config.json").exists())]    # config.json is written last: a finished member
    workers = max(1, min(len(pending), torch.get_num_threads()))
    threads = max(1, torch.get_num_threads() // workers)
    todo = [(member_config(cfg, k), data_path, d, resume, threads) for k, d in pending]
    log(f"ensemble: {cfg.ensemble} members, {len(todo)} to train in {workers} process(es) of {threads} thread(s)")
    if workers == 1:
        results = [_train_member(job) for job in todo]
    else:
        # spawn, not fork: a forked copy of a process whose torch already started its thread pool can hang
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_train_member, todo))
    for job, result in zip(todo, results):
        valid = result["metrics"]["valid"]
        log(f"member seed {job[0].seed}: valid " + "  ".join(f"{k} {v:.4f}" for k, v in valid.items()
                                                             if isinstance(v, float)))
    return dirs


def train_ensemble(cfg: TrainConfig, data_path, out_dir, resume: bool = False, log: Callable[[str], None] = print,
                   command: str = "", cv_estimate: Optional[dict] = None) -> dict:
    from .train import held_out_metrics, prepare, saved_weights
    _, train_ds, valid_ds, test_ds, _, tok = prepare(cfg, data_path)   # checks the task and options before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    dirs = train_members(cfg, data_path, out, resume, log)
    seconds = time.perf_counter() - start
    configs = [read_json(d / "config.json") for d in dirs]
    model = EnsembleClassifier([load_model(d, c) for d, c in zip(dirs, configs)]).eval()
    config = {k: v for k, v in configs[0].items() if k not in ("metrics", "parameters", "training_seconds", "sha256")}
    config.update(model={"kind": "ensemble", "members": cfg.ensemble, "member": configs[0]["model"]},
                  train=dataclasses.asdict(cfg), command=command,
                  members=[{"dir": str(d.relative_to(out)), "seed": c["train"]["seed"], "metrics": c["metrics"],
                            "training_seconds": c["training_seconds"]} for d, c in zip(dirs, configs)])
    if cv_estimate:
        config["cv"] = cv_estimate
    config["metrics"] = held_out_metrics(config, model, tok, train_ds, valid_ds, test_ds)
    config["parameters"] = count_parameters(model)
    config["training_seconds"] = round(seconds, 1)
    atomic_save_tensors(out / "model.safetensors", saved_weights(model, cfg.save_dtype), {"format": "pt"})
    write_json(out / "history.json", {"members": [read_json(d / "history.json") for d in dirs]})
    write_json(out / "config.json", record_hashes(out, config, files=("model.safetensors",)))   # written last
    write_model_card(out, config)
    return config
