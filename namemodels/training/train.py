"""``namemodels train``: one model, or an ensemble of members trained side by side.

One model's run is five steps, each a function below:

1. :func:`prepare`: load, check and split the data; fit the tokenizer on the training part;
2. :func:`build`: the task (:mod:`namemodels.tasks`), its model, the training loop
   (:mod:`namemodels.training.loop`: AdamW, schedule, clipping, L1/L2, moving average) and ``config.json``'s content;
3. :func:`restore` (``--resume``): the last checkpoint's weights, optimizer, schedule, RNG and history;
4. :func:`fit`: the epochs left, each validated (early stopping keeps the best epoch) and checkpointed;
5. :func:`finalize`: the best weights, their held-out metrics, the novelty set of a generator, and
   ``config.json`` written last, then the model card.

``--ensemble K`` runs K members in parallel processes and combines them (:mod:`namemodels.training.ensemble`).
Checkpoints are crash-safe (:mod:`namemodels.training.checkpoint`): ``--resume`` continues to the same weights,
byte for byte, as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from ..batching import batches
from ..checkpoint_json import read_json, write_json
from ..config import CLASSIFIER_TASKS, TrainConfig, saved_options
from ..cores import spawn, split_cores
from ..data.loader import PathLike, data_sha256, load
from ..data.records import NameDataset
from ..data.run_parts import joined, split_parts, split_record
from ..errors import UsageError
from ..evaluate import write_model_card
from ..inference.novelty import write_novelty_hashes
from ..integrity import record as record_hashes
from ..models import build_model, count_parameters
from ..outlock import output_lock
from ..tasks import LOWER_IS_BETTER, Task, check_task, logit_adjustment, make_task, model_spec, task_labels
from ..tokenizer import CharTokenizer
from .checkpoint import (
    MANIFEST,
    atomic_save_tensors,
    checkpoint_name,
    crash_point,
    load_tensors,
    read_checkpoint,
    save_checkpoint,
    saved_weights,
    strip_prefix,
)
from .ensemble import combine, member_config, member_dirs
from .loop import Loop, progress_bar

Log = Callable[[str], None]


def train(
    cfg: TrainConfig,
    data_path: PathLike,
    out_dir: PathLike,
    resume: bool = False,
    progress: bool = True,
    log: Log = print,
    command: str = "",
    cv_estimate: dict | None = None,
    force: bool = False,
    name_table: bool = True,
) -> dict:
    """Train a model (an ensemble with ``cfg.ensemble > 1``) and write it to ``out_dir``; returns the
    final config dict (with metrics). ``cv_estimate`` (:func:`namemodels.training.cv.cv_estimate`) goes into
    the config and the card as the model's expected quality.

    ``out_dir`` is locked for the run (:mod:`namemodels.outlock`: a second run on it stops at once). A
    folder that holds a finished model or a checkpoint is refused unless ``resume`` (continue it) or
    ``force`` (train a new model in its place; see :func:`check_out`). A classifier trained with a
    validation part gets a temperature fitted on it (:func:`add_calibration`), then its name table
    (:mod:`namemodels.training.name_tables`) unless ``name_table`` is False (``cv``'s fold models, scored alone)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out, "train"):
        check_out(out, resume, force, ensemble=cfg.ensemble != 1)
        data = prepare(cfg, data_path)  # once: training, and the name table's training names below
        if cfg.ensemble != 1:
            config = train_ensemble(cfg, data_path, out, data, resume, log, command, cv_estimate)
        else:
            config = train_model(cfg, data_path, out_dir, resume, progress, log, command, cv_estimate, data=data)
        onnx = out / "model.onnx"
        if force and onnx.is_file() and "model.onnx" not in (config.get("sha256") or {}):
            onnx.unlink()  # the export of the model this run replaced (the hash check would refuse it anyway)
            log(
                f"removed {onnx}, the export of the model this run replaced; export the new one with "
                f"`namemodels export {out} --format onnx --out {onnx}`"
            )
        if config.get("task") not in CLASSIFIER_TASKS:
            return config
        section = add_calibration(out, data, cfg)  # a temperature from the validation part, if there is one
        if section is not None:
            log(
                f"calibration: temperature {section['temperature']:g} "
                f"({'kept' if section['kept'] else 'not kept: 1'}; "
                f"fitted {section['fitted']:g}), validation log-loss {section['log_loss_before']:.4f} -> "
                f"{section['log_loss_after']:.4f}, ECE {section['ece_before']:.4f} -> {section['ece_after']:.4f}"
            )
            config = read_json(out / "config.json")
        if name_table:  # the training names with their counts (name_tables.py)
            from .name_tables import add_name_table

            section = add_name_table(out, data_path, dataset=data.train)
            log(f"name table: {section['names']:,} training names, alpha {section['alpha']:g}")
            config = read_json(out / "config.json")
        return config


CALIBRATION_HEADING = "## Calibration"


def add_calibration(out: Path, data: Prepared, cfg: TrainConfig) -> dict | None:
    """Fit the finished classifier's temperature on its validation part
    (:func:`namemodels.inference.calibration.choose_temperature`: births-weighted for gender,
    line-weighted for languages; ``T`` kept only where a temperature fitted on one random half of the
    names lowers the log-loss of the other half) and record it in ``config.json`` under
    ``calibration`` (the predictor tempers the network's probabilities by it before the name table's
    rule) and in the model card. None, and nothing written, without a held-out validation part
    (``--train-on all``, ``--final-fit``)."""
    if not len(data.valid) or cfg.final_fit:
        return None
    from ..evaluate import classifier_logprobs, target_counts
    from ..inference.calibration import choose_temperature
    from ..inference.torch_backend import load_torch_model

    model, config, _ = load_torch_model(out)
    names, counts = target_counts(data.valid, config["labels"])
    logp = classifier_logprobs(model, CharTokenizer.from_dict(config["tokenizer"]), names)
    t, report = choose_temperature(logp, counts, seed=cfg.seed)
    unit = "births" if cfg.task == "gender" else "lines"
    section = {
        "temperature": t,
        "how": f"fitted on the validation part ({len(names):,} names, {int(round(counts.sum())):,} {unit}; "
        f"{unit}-weighted log-loss), kept only where a temperature fitted on one random half of those "
        "names lowered the log-loss of the other half (both ways round)",
        "part": "valid",
        "unit": unit,
        **report,
    }
    config["calibration"] = section
    write_json(out / "config.json", record_hashes(out, config))
    _note_calibration(out, section)
    return section


def _note_calibration(out: Path, section: dict) -> None:
    """The model card's paragraph on calibration (before the name table's, which is written after it)."""
    card = out / "MODEL_CARD.md"
    if not card.is_file():
        return
    text = card.read_text(encoding="utf-8").split(f"\n{CALIBRATION_HEADING}\n")[0].rstrip("\n")
    note = (
        f"\n\n{CALIBRATION_HEADING}\n\nThe network's probabilities are tempered, softmax(logit / T), with "
        f"T = {section['temperature']:g} ({section['how']}; fitted {section['fitted']:g}). On the validation part: "
        f"log-loss {section['log_loss_before']:.4f} -> {section['log_loss_after']:.4f}, ECE "
        f"{section['ece_before']:.4f} -> {section['ece_after']:.4f} ({section['unit']}-weighted).\n"
    )
    from ..fileio import atomic_write_text

    atomic_write_text(card, text + note)


def check_out(out: Path, resume: bool, force: bool, ensemble: bool = False) -> None:
    """Refuse (:class:`UsageError`) to train into a folder holding a finished model (its
    ``config.json``, written last) or an unfinished run's checkpoint, unless ``resume`` or ``force``.
    ``resume`` on a finished single model without a checkpoint is refused too (there is nothing to
    resume, and training afresh would overwrite it). ``force`` trains afresh: the old model stays whole
    until the new run writes its weights, and its ``config.json`` is replaced last (in between, the old
    one's SHA-256 does not match the new weights: an error on load, never a silent mix)."""
    if force:
        return
    finished, checkpoint = (out / "config.json").is_file(), (out / MANIFEST).is_file()
    if resume:
        if finished and not checkpoint and not ensemble:
            raise UsageError(
                f"{out} holds a finished model but no checkpoint to resume from; training into it would "
                "overwrite it: pass --force to train a new model in its place, or choose another --out"
            )
        return
    if (out / "settings.json").is_file() and (out / "cv.json").is_file():
        raise UsageError(f"{out} holds a cross-validation run (`namemodels cv`); choose another --out")
    if finished:
        raise UsageError(
            f"{out} holds a finished model (config.json); training into it would overwrite it: pass "
            "--resume to keep it (a finished run is not trained further), --force to train a new model "
            "in its place, or choose another --out"
        )
    if checkpoint:
        raise UsageError(
            f"{out} holds an unfinished run's checkpoint: pass --resume to continue it, --force to start "
            "a new run in its place, or choose another --out"
        )


def train_model(
    cfg: TrainConfig,
    data_path: PathLike,
    out_dir: PathLike,
    resume: bool = False,
    progress: bool = True,
    log: Log = print,
    command: str = "",
    cv_estimate: dict | None = None,
    data: Prepared | None = None,
) -> dict:
    """One model: prepare -> build -> restore (``resume``) -> fit -> finalize. ``data``: what
    :func:`prepare` gave for ``cfg`` and ``data_path``, when the caller has it already."""
    check_device(cfg.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    data = prepare(cfg, data_path) if data is None else data
    if not len(data.train) or (cfg.train_on == "split" and not len(data.valid)):
        raise UsageError(f"{data_path}: too little data to split ({len(data.full)} names); give at least 20 names")
    run = build(cfg, data, data_path, out, command, cv_estimate, log)
    if resume:
        restore(run, log)
    fit(run, progress, log)
    return finalize(run)


# ------------------------------------------------------------------------------------------ 1. prepare


class Prepared(NamedTuple):
    """The data of a run: everything loaded, its parts, the task's labels, the tokenizer."""

    full: NameDataset  # every line of the data
    train: NameDataset
    valid: NameDataset  # empty with train_on="all"
    test: NameDataset  # empty with train_on="all" and no folds
    labels: list[str]
    tok: CharTokenizer


def prepare(cfg: TrainConfig, data_path: PathLike) -> Prepared:
    """Load, check and split the data; fit the tokenizer on the training split (or take the one of
    ``--init-from``)."""
    ds = load(data_path)
    check_task(cfg, ds)
    train_ds, valid_ds, test_ds = split_parts(ds, cfg)
    if cfg.max_train:
        train_ds = train_ds.sample(cfg.max_train, cfg.data_seed())
    if cfg.final_fit:
        train_ds = joined([train_ds, valid_ds], ds)
    if cfg.init_from:
        tok = CharTokenizer.from_dict(read_json(Path(cfg.init_from) / "config.json")["tokenizer"])
    else:
        tok = CharTokenizer.fit(train_ds.names, lowercase=cfg.lowercase)
    return Prepared(ds, train_ds, valid_ds, test_ds, task_labels(cfg, ds.labels), tok)


def check_device(device: str) -> None:
    """A clear error for a --device torch cannot use (train needs the device before any work)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device!r} is not a device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device {device}: no CUDA device is available to this torch ({torch.__version__}); use --device cpu"
        ) from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device}: only cpu and cuda are supported")


# ------------------------------------------------------------------------------------------ 2. build


@dataclass
class Run:
    """One model's training: what :func:`build` makes, :func:`restore` and :func:`fit` advance and
    :func:`finalize` writes."""

    cfg: TrainConfig
    out: Path
    data: Prepared
    task: Task
    model: nn.Module
    loop: Loop
    config: dict  # config.json's content (metrics come last)
    history: dict = field(default_factory=lambda: {"steps": [], "epochs": []})
    epochs_done: int = 0
    best: float | None = None  # the best validation score so far
    bad_epochs: int = 0  # epochs since it last improved
    elapsed: float = 0.0  # seconds of training, earlier sessions of a resumed run included
    best_weights: dict | None = None  # the saved weights of the best epoch so far
    finished: bool = False  # the run had ended: every epoch, or early stopping


def build(
    cfg: TrainConfig,
    data: Prepared,
    data_path: PathLike,
    out: Path,
    command: str = "",
    cv_estimate: dict | None = None,
    log: Log = print,
) -> Run:
    """The task, its model (its encoder from ``--init-from``), the training loop over all epochs, and
    ``config.json``'s content."""
    spec = model_spec(cfg, len(data.tok), data.labels)
    model = build_model(spec).to(cfg.device)
    if cfg.init_from:
        log(f"encoder initialised from {cfg.init_from} ({init_encoder(model, cfg)} tensors)")
    task = make_task(cfg, data.labels, data.train)
    loop = Loop(
        model,
        task.loss,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        clip=cfg.clip,
        l1=cfg.l1,
        l2=cfg.l2,
        schedule=cfg.schedule,
        total_steps=max(1, cfg.epochs * steps_per_epoch(cfg, data)),
        ema=cfg.ema,
    )
    config = {
        "format": 1,
        "task": cfg.task,
        "model": spec,
        "labels": data.labels,
        "tokenizer": data.tok.to_dict(),
        "train": dataclasses.asdict(cfg),
        "data": {
            "path": str(data_path),
            "sha256": data_sha256(data_path),
            "names": len(data.full),
            "split": split_record(cfg, data.train, data.valid, data.test),
        },
        "command": command,
    }
    if cv_estimate:
        config["cv"] = cv_estimate
    return Run(cfg, Path(out), data, task, model, loop, config)


def steps_per_epoch(cfg: TrainConfig, data: Prepared) -> int:
    return math.ceil(len(data.train) / cfg.batch_size)


def init_encoder(model: nn.Module, cfg: TrainConfig) -> int:
    """Start the encoder from pretrained generators: ``init_from`` gives the embedding and the
    forward layers, ``init_reverse_from`` (trained with ``reverse_names``) the reverse direction.
    Returns how many tensors were copied; shapes must match (same cell, sizes and vocabulary)."""
    own = model.state_dict()
    copied = {}
    sources = [(cfg.init_from, "")] + ([(cfg.init_reverse_from, "_reverse")] if cfg.init_reverse_from else [])
    for directory, suffix in sources:
        for name, tensor in load_tensors(Path(directory) / "model.safetensors").items():
            if not name.startswith("encoder.") or name.endswith("_reverse") or (suffix and ".rnn." not in name):
                continue
            target = name + suffix if ".rnn." in name else name
            if target in own and own[target].shape == tensor.shape:
                copied[target] = tensor
    if not any(".rnn." in k for k in copied):
        raise UsageError(
            f"{cfg.init_from}: no encoder weights fit this model; pretrain a generator with the "
            "same --cell, --embed and --hidden and --no-conditional"
        )
    model.load_state_dict(copied, strict=False)
    return len(copied)


# ------------------------------------------------------------------------------------------ 3. restore


def restore(run: Run, log: Log = print) -> None:
    """Continue from the last checkpoint in ``run.out``, if there is one (else start afresh): it must
    come from the same settings and data. A finished run is not trained further."""
    out = run.out
    if not (out / MANIFEST).exists():
        return
    state, tensors = read_checkpoint(out)  # checked against each other, or a UsageError
    if (
        saved_options(state["config"]["train"]) != saved_options(run.config["train"])
        or state["config"]["data"]["sha256"] != run.config["data"]["sha256"]
    ):
        raise UsageError(
            f"{out}: --resume found a checkpoint made with other settings or data; use the same command, or a new --out"
        )
    run.loop.load_state(tensors, state)
    run.best_weights = strip_prefix(tensors, "best.")
    torch.set_rng_state(tensors["rng.torch"])
    run.epochs_done, run.best, run.bad_epochs = state["epochs_done"], state["best"], state["bad_epochs"]
    run.elapsed, run.history, run.finished = state["elapsed"], state["history"], state["finished"]
    write_json(out / "history.json", run.history)  # a crash may have come between the manifest and this copy
    if run.finished:
        log(
            f"nothing left to train: this run had finished ({run.epochs_done} of {run.cfg.epochs} epochs"
            + (", stopped early" if run.epochs_done < run.cfg.epochs else "")
            + "); writing its final model again"
        )
    else:
        log(f"resuming from epoch {run.epochs_done + 1} of {run.cfg.epochs} ({out / checkpoint_name(run.epochs_done)})")


# ------------------------------------------------------------------------------------------ 4. fit


def fit(run: Run, progress: bool = True, log: Log = print) -> None:
    """Train the epochs left. After each: the validation score of the weights that would be saved
    (the moving average with ``--ema``), the best epoch's weights kept, a checkpoint; ``patience``
    epochs without improvement stop the run."""
    cfg, data, loop = run.cfg, run.data, run.loop
    metric = cfg.default_metric()
    log(
        f"{cfg.task}: {len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test names, "
        f"cell {cfg.cell}, {count_parameters(run.model):,} parameters"
    )
    for epoch in range(run.epochs_done, run.epochs_done if run.finished else cfg.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        bar = progress_bar(steps_per_epoch(cfg, data), f"epoch {epoch + 1}/{cfg.epochs}", progress)
        losses = loop.epoch(
            (
                run.task.batch(data.tok, data.train, idx, rng).to(cfg.device)
                for idx in batches(len(data.train), cfg.batch_size, rng)
            ),
            bar,
        )
        if bar is not None:
            bar.close()
        run.history["steps"].extend(losses)
        run.model.eval()
        valid = run.task.metrics(loop.weights, data.tok, data.valid) if len(data.valid) else {}  # none: train_on="all"
        run.elapsed += time.perf_counter() - t0
        score: Any = valid.get(metric)  # a float: valid holds the metric when it is not empty
        improved = (
            cfg.final_fit
            or not valid
            or run.best is None
            or (score < run.best if metric in LOWER_IS_BETTER else score > run.best)
        )
        run.history["epochs"].append(
            {
                "epoch": epoch + 1,
                "train_loss": float(np.mean(losses)),
                "lr": loop.lr(),
                "seconds": round(run.elapsed, 2),
                "valid": valid,
            }
        )
        log(
            f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}"
            + (f"  valid {metric} {score:.4f}" + ("  *" if improved else "") if valid else "")
        )
        if improved:
            run.best, run.bad_epochs = score, 0
            run.best_weights = {k: v.detach().clone() for k, v in saved_weights(loop.weights, cfg.save_dtype).items()}
        else:
            run.bad_epochs += 1
        stopped = run.bad_epochs >= cfg.patience
        run.epochs_done, run.finished = epoch + 1, stopped or epoch + 1 == cfg.epochs
        save(run)
        if stopped:
            log(f"early stop: valid {metric} did not improve for {cfg.patience} epochs")
            break


def save(run: Run) -> None:
    """The checkpoint after ``run.epochs_done`` epochs (its file, then the manifest: namemodels.training.checkpoint),
    then ``history.json`` for people and plots (the manifest holds the run's own copy)."""
    tensors, loop_state = run.loop.state()
    assert run.best_weights is not None  # set by the first epoch (always an improvement) or the checkpoint
    tensors.update({f"best.{k}": v for k, v in run.best_weights.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    save_checkpoint(
        run.out,
        run.epochs_done,
        tensors,
        {
            "config": run.config,
            "finished": run.finished,
            "best": run.best,
            "bad_epochs": run.bad_epochs,
            "elapsed": run.elapsed,
            **loop_state,
            "history": run.history,
        },
    )
    write_json(run.out / "history.json", run.history)
    crash_point("history", run.epochs_done)


# ------------------------------------------------------------------------------------------ 5. finalize


def finalize(run: Run) -> dict:
    """Write the best epoch's weights, score them on the held-out parts, and write ``config.json``
    (last: its presence marks a finished model) and the model card; returns the config."""
    out, data, model, config = run.out, run.data, run.model, run.config
    if run.best_weights is None:
        raise UsageError(f"{out}: no epoch was trained, so there is no model to write")
    shift = logit_adjustment(run.cfg, data.train, data.labels)
    if shift is not None:  # on the final weights only: the epochs' validation scores are the plain model's
        bias = run.best_weights["head.bias"]
        run.best_weights["head.bias"] = (bias.double() + torch.from_numpy(shift)).to(bias.dtype)
    atomic_save_tensors(out / "model.safetensors", run.best_weights, {"format": "pt"})
    crash_point("model", len(run.history["epochs"]))
    model.load_state_dict(load_tensors(out / "model.safetensors"))  # the metrics are those of the stored weights
    model.eval()
    config["metrics"] = run.task.held_out_metrics(model, data.tok, data.train, data.valid, data.test)
    if run.task.next_char:  # a generator: the novelty set for generate --novel
        write_novelty_hashes(out, data.full.distinct_names())
    config["parameters"] = count_parameters(model)
    config["training_seconds"] = round(run.elapsed, 1)
    write_json(out / "config.json", record_hashes(out, config, files=("model.safetensors",)))  # written last
    write_model_card(out, config)
    return config


# ------------------------------------------------------------------------------------------ ensembles


def train_ensemble(
    cfg: TrainConfig,
    data_path: PathLike,
    out: Path,
    data: Prepared,
    resume: bool,
    log: Log,
    command: str,
    cv_estimate: dict | None,
) -> dict:
    """``--ensemble K`` for :func:`train` (which has made ``out`` and prepared ``data``): train (or, with
    ``resume``, finish) the K members in parallel processes, then combine them into one model
    (:func:`namemodels.training.ensemble.combine`)."""
    start = time.perf_counter()
    train_members(cfg, data_path, out, resume, log)
    seconds = time.perf_counter() - start
    task = make_task(cfg, data.labels)
    return combine(
        cfg,
        out,
        lambda model: task.held_out_metrics(model, data.tok, data.train, data.valid, data.test),
        seconds,
        command,
        cv_estimate,
    )


def _train_member(job: tuple) -> dict:
    """Runs in a worker process: one member, quietly, on ``threads`` threads."""
    cfg, data_path, out, resume, threads = job
    torch.set_num_threads(threads)
    return train_model(cfg, data_path, out, resume=resume, progress=False, log=lambda m: None)


def train_members(cfg: TrainConfig, data_path: PathLike, out: Path, resume: bool, log: Log) -> None:
    """Train (or, with ``resume``, finish) every member of the ensemble in ``OUT/members``."""
    pending = [
        (k, d) for k, d in enumerate(member_dirs(cfg, out)) if not (resume and (d / "config.json").exists())
    ]  # config.json is written last: a finished member
    workers, threads = split_cores(len(pending), budget=torch.get_num_threads())  # the threads torch was given
    todo = [(member_config(cfg, k), data_path, d, resume, threads) for k, d in pending]
    log(f"ensemble: {cfg.ensemble} members, {len(todo)} to train in {workers} process(es) of {threads} thread(s)")
    if workers == 1:
        results = [_train_member(job) for job in todo]
    else:
        with ProcessPoolExecutor(workers, mp_context=spawn()) as pool:
            results = list(pool.map(_train_member, todo))
    for job, result in zip(todo, results):
        valid = result["metrics"]["valid"]
        log(
            f"member seed {job[0].seed}: valid "
            + "  ".join(f"{k} {v:.4f}" for k, v in valid.items() if isinstance(v, float))
        )
