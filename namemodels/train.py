"""The thin trainer: AdamW, global-norm clipping, optional L1/L2, early stopping, LR schedule,
seeds, progress bar, history, atomic checkpoints and ``--resume``."""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from .batching import batches, encode_batch
from .checkpoint import (MANIFEST, atomic_save_tensors, checkpoint_name, crash_point, load_tensors, optimizer_tensors,
                         read_checkpoint, restore_optimizer, save_checkpoint)
from .checkpoint_json import read_json, write_json
from .config import TrainConfig
from .cv import split_parts, split_record
from .data import NameDataset, data_sha256, load
from .errors import UsageError
from .evaluate import evaluate_split, write_model_card
from .integrity import record as record_hashes
from .models import build_model, count_parameters
from .predictor import NOVELTY_FILE, name_hash
from .tokenizer import CharTokenizer

LOWER_IS_BETTER = {"nll", "loss"}


SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


def saved_weights(model: nn.Module, dtype: str) -> dict:
    """The state dict as ``model.safetensors`` stores it: floating tensors in ``dtype``."""
    want = SAVE_DTYPES[dtype]
    return {k: v.to(want) if v.is_floating_point() else v for k, v in model.state_dict().items()}


def check_task(cfg: TrainConfig, ds: NameDataset) -> None:
    cfg.check()   # every option's range and choices (namemodels.config.LIMITS)
    need = {"classify": ("labeled", "gender"), "gender": ("gender",), "multitask": ("gender",)}.get(cfg.task)
    if need and ds.kind not in need:
        raise UsageError(f"task {cfg.task!r} needs {' or '.join(need)} data (a folder of <Label>.txt, a .tsv, "
                         f"or a name,sex,count .csv); {ds.source} holds {ds.kind} data")
    if cfg.ensemble > 1 and cfg.task not in ("classify", "gender"):
        raise UsageError(f"--ensemble must be 1 for {cfg.task!r}: only classify and gender average members, "
                         f"got {cfg.ensemble}")
    if cfg.ngram_buckets and cfg.task not in ("classify", "gender"):
        raise UsageError(f"--ngram-buckets adds a wide part to classifiers; task {cfg.task!r} has none")


def model_spec(cfg: TrainConfig, vocab: int, labels: list) -> dict:
    cell_kw = {"mu": cfg.mu, "s": cfg.s, "learn_momentum": cfg.learn_momentum} if cfg.cell.startswith("momentum") else {}
    common = dict(vocab_size=vocab, cell=cfg.cell, embed=cfg.embed, hidden=cfg.hidden, layers=cfg.layers,
                  dropout=cfg.dropout, **cell_kw)
    wide = dict(ngram_buckets=cfg.ngram_buckets, ngram_max=cfg.ngram_max) if cfg.ngram_buckets else {}
    if cfg.task == "classify":
        return dict(kind="classifier", num_classes=len(labels), bidirectional=cfg.bidirectional, pool=cfg.pool,
                    **wide, **common)
    if cfg.task == "gender":
        return dict(kind="classifier", num_classes=2, binary=True, bidirectional=cfg.bidirectional, pool=cfg.pool,
                    **wide, **common)
    if cfg.task == "generate":
        return dict(kind="lm", num_categories=len(labels) if cfg.conditional else 0, **common)
    return dict(kind="multitask", **common)


class TaskBatch:
    """Tensors for one batch of the task, built from dataset records."""

    def __init__(self, cfg: TrainConfig, tok: CharTokenizer, ds: NameDataset, idx, labels, training: bool,
                 rng: Optional[np.random.Generator] = None):
        recs = [ds.records[i] for i in idx]
        names = [r.name[::-1] if cfg.reverse_names else r.name for r in recs]
        lm = cfg.task in ("generate", "multitask")
        ids, lengths = encode_batch(tok, names, bos=lm, eos=lm)
        self.ids, self.lengths = torch.from_numpy(ids), torch.from_numpy(lengths)
        if lm:  # inputs <bos> c1..cn, targets c1..cn <eos>
            self.targets = self.ids[:, 1:].clone()
            self.ids, self.lengths = self.ids[:, :-1], self.lengths - 1
            self.targets[self.targets == tok.pad_id] = -100
        label_index = {l: i for i, l in enumerate(labels)}
        if cfg.task == "classify":
            self.y = torch.tensor([label_index[r.label] for r in recs])
        elif cfg.task in ("gender", "multitask"):
            self.y = torch.tensor([r.female_share for r in recs])
        elif cfg.conditional and labels:
            cat = torch.tensor([label_index[r.label] + 1 if r.label in label_index else 0 for r in recs])
            if training and cfg.category_dropout > 0:
                drop = torch.from_numpy(rng.random(len(recs)) < cfg.category_dropout)
                cat = cat.masked_fill(drop, 0)
            self.y = cat
        else:
            self.y = None

    def to(self, device) -> "TaskBatch":
        """This batch on ``device`` (lengths too: the fused kernels read them there, without a copy back)."""
        for key in ("ids", "lengths", "targets", "y"):
            t = getattr(self, key, None)
            if t is not None:
                setattr(self, key, t.to(device, non_blocking=True))
        return self


def check_device(device: str) -> None:
    """A clear error for a --device torch cannot use (train needs the device before any work)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device!r} is not a device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available to this torch ({torch.__version__}); "
                         "use --device cpu") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device}: only cpu and cuda are supported")


def task_loss(cfg: TrainConfig, model: nn.Module, b: TaskBatch, class_weights=None) -> torch.Tensor:
    if cfg.task == "classify":
        return nn.functional.cross_entropy(model(b.ids, b.lengths), b.y, weight=class_weights,
                                           label_smoothing=cfg.label_smoothing)
    if cfg.task == "gender":
        return nn.functional.binary_cross_entropy_with_logits(model(b.ids, b.lengths), b.y)
    if cfg.task == "generate":
        logits, _ = model(b.ids, b.lengths, b.y)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), b.targets.reshape(-1))
    logits, gender_logit, _ = model(b.ids, b.lengths)
    lm = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), b.targets.reshape(-1))
    return lm + cfg.gender_weight * nn.functional.binary_cross_entropy_with_logits(gender_logit, b.y)


def penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor:
    weights = [p for n, p in model.named_parameters() if "weight" in n]
    total = torch.zeros(())
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    if l2:
        total = total + l2 * sum((w * w).sum() for w in weights)
    return total


def _class_weights(cfg: TrainConfig, ds: NameDataset, labels: list) -> Optional[torch.Tensor]:
    if cfg.task != "classify" or cfg.class_weight == "none":
        return None
    counts = np.bincount(ds.label_ids, minlength=len(labels)).astype(np.float64)
    w = counts.sum() / np.maximum(counts, 1) / len(labels)
    w = np.sqrt(w) if cfg.class_weight == "sqrt" else w
    return torch.tensor(w / w.mean(), dtype=torch.float32)


class WeightAverage:
    """An exponential moving average of a model's floating tensors. The decay ramps up as
    ``min(decay, (1 + t) / (10 + t))`` so that the first steps do not keep the random start."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.steps = decay, 0
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.model.eval()
        # state_dict tensors share storage with the modules' (load_state_dict copies into them), so
        # the pairs stay valid for the whole run, resume included.
        self._pairs = [(avg, new) for avg, new in zip(self.model.state_dict().values(), model.state_dict().values())
                       if avg.is_floating_point()]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        keep = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, new in self._pairs:
            avg.lerp_(new, 1 - keep)


def _progress(total: int, desc: str, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is part of the [train] extra
        return None
    return tqdm(total=total, desc=desc, leave=False, disable=not enabled, unit="batch")


def prepare(cfg: TrainConfig, data_path):
    """Load, check and split the data; fit the tokenizer on the training split."""
    ds = load(data_path)
    check_task(cfg, ds)
    train_ds, valid_ds, test_ds = split_parts(ds, cfg)
    if cfg.max_train:
        train_ds = train_ds.sample(cfg.max_train, cfg.data_seed())
    if cfg.final_fit:
        train_ds = NameDataset(train_ds.records + valid_ds.records, list(ds.labels), ds.kind, ds.source)
    labels = list(ds.labels) if cfg.task == "classify" or (cfg.task == "generate" and cfg.conditional) else \
        (["M", "F"] if cfg.task in ("gender", "multitask") else [])
    if cfg.init_from:
        tok = CharTokenizer.from_dict(read_json(Path(cfg.init_from) / "config.json")["tokenizer"])
    else:
        tok = CharTokenizer.fit(train_ds.names, lowercase=cfg.lowercase)
    return ds, train_ds, valid_ds, test_ds, labels, tok


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
        raise UsageError(f"{cfg.init_from}: no encoder weights fit this model; pretrain a generator with the "
                         "same --cell, --embed and --hidden and --no-conditional")
    model.load_state_dict(copied, strict=False)
    return len(copied)


def write_novelty_hashes(out: Path, names) -> None:
    """Sorted CRC32s of the data's names, for ``generate --novel``: a membership test that ships
    no copy of the names themselves (false positives about 1 in 50,000 per query)."""
    hashes = np.unique(np.array([name_hash(n) for n in names], dtype="<u4"))
    tmp = out / (NOVELTY_FILE + ".tmp")
    hashes.tofile(tmp)
    tmp.replace(out / NOVELTY_FILE)


def held_out_metrics(config: dict, model: nn.Module, tok, train_ds, valid_ds, test_ds) -> dict:
    """``config.json``'s metrics: on the validation and test parts that exist; a model trained on every
    line (``train_on="all"``) gets those of its training data instead (key ``train``: lines it saw, not an estimate)."""
    parts = {"valid": valid_ds, "test": test_ds} if len(valid_ds) or len(test_ds) else {"train": train_ds}
    return {name: evaluate_split(config, model, tok, ds, interval=True) for name, ds in parts.items() if len(ds)}


def _part(tensors: dict, prefix: str) -> dict:
    """The tensors whose names start with ``prefix``, without it."""
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def train(cfg: TrainConfig, data_path, out_dir, resume: bool = False, progress: bool = True,
          log: Callable[[str], None] = print, command: str = "", cv_estimate: Optional[dict] = None) -> dict:
    """Train a model and write it to ``out_dir``; returns the final config dict (with metrics).
    ``cv_estimate`` (:func:`namemodels.cv.cv_estimate`) goes into the config and the card as the
    model's expected quality."""
    if cfg.ensemble != 1:
        from .ensemble import train_ensemble
        return train_ensemble(cfg, data_path, out_dir, resume, log, command, cv_estimate)
    check_device(cfg.device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    ds, train_ds, valid_ds, test_ds, labels, tok = prepare(cfg, data_path)
    if not len(train_ds) or (cfg.train_on == "split" and not len(valid_ds)):
        raise UsageError(f"{data_path}: too little data to split ({len(ds)} names); give at least 20 names")
    model = build_model(model_spec(cfg, len(tok), labels)).to(cfg.device)
    if cfg.init_from:
        log(f"encoder initialised from {cfg.init_from} ({init_encoder(model, cfg)} tensors)")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train_ds) / cfg.batch_size)
    total_steps = max(1, cfg.epochs * steps_per_epoch)
    lr_at = (lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))) \
        if cfg.schedule == "cosine" else (lambda step: 1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    metric = cfg.default_metric()
    lower = metric in LOWER_IS_BETTER
    history = {"steps": [], "epochs": []}
    start_epoch, best, bad_epochs, elapsed = 0, None, 0, 0.0
    config = {
        "format": 1, "task": cfg.task, "model": model_spec(cfg, len(tok), labels), "labels": labels,
        "tokenizer": tok.to_dict(), "train": dataclasses.asdict(cfg),
        "data": {"path": str(data_path), "sha256": data_sha256(data_path), "names": len(ds),
                 "split": split_record(cfg, train_ds, valid_ds, test_ds)},
        "command": command,
    }
    if cv_estimate:
        config["cv"] = cv_estimate
    average = WeightAverage(model, cfg.ema) if cfg.ema else None
    best_weights, finished = None, False     # the saved weights of the best epoch so far; whether the run had ended
    if resume and (out / MANIFEST).exists():
        state, tensors = read_checkpoint(out)   # checked against each other, or a UsageError
        saved = {**dataclasses.asdict(TrainConfig()), **state["config"]["train"]}   # options added since: defaults
        if saved != config["train"] or state["config"]["data"]["sha256"] != config["data"]["sha256"]:
            raise UsageError(f"{out}: --resume found a checkpoint made with other settings or data; "
                             "use the same command, or a new --out")
        model.load_state_dict(_part(tensors, "model."))
        if average is not None:
            average.model.load_state_dict(_part(tensors, "ema."))
            average.steps = state["ema_steps"]
        best_weights = _part(tensors, "best.")
        restore_optimizer(opt, tensors, state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(tensors["rng.torch"])
        start_epoch, best, bad_epochs, elapsed = state["epochs_done"], state["best"], state["bad_epochs"], state["elapsed"]
        history, finished = state["history"], state["finished"]
        write_json(out / "history.json", history)   # a crash may have come between the manifest and this copy
        if finished:
            log(f"nothing left to train: this run had finished ({start_epoch} of {cfg.epochs} epochs"
                + (", stopped early" if start_epoch < cfg.epochs else "") + "); writing its final model again")
        else:
            log(f"resuming from epoch {start_epoch + 1} of {cfg.epochs} ({out / checkpoint_name(start_epoch)})")
    class_weights = _class_weights(cfg, train_ds, labels)
    class_weights = class_weights.to(cfg.device) if class_weights is not None else None
    log(f"{cfg.task}: {len(train_ds)} train / {len(valid_ds)} valid / {len(test_ds)} test names, cell {cfg.cell}, "
        f"{count_parameters(model):,} parameters")
    for epoch in range(start_epoch, start_epoch if finished else cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{cfg.epochs}", progress)
        losses = []
        for idx in batches(len(train_ds), cfg.batch_size, rng):
            b = TaskBatch(cfg, tok, train_ds, idx, labels, True, rng).to(cfg.device)
            loss = task_loss(cfg, model, b, class_weights)
            total = loss + penalty(model, cfg.l1, cfg.l2) if (cfg.l1 or cfg.l2) else loss
            opt.zero_grad(set_to_none=True)
            total.backward()
            if cfg.clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            sched.step()
            if average is not None:
                average.update()
            losses.append(loss.item())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.close()
        history["steps"].extend(losses)
        model.eval()
        scored = average.model if average is not None else model   # the weights that are evaluated and saved
        valid = evaluate_split(config, scored, tok, valid_ds) if len(valid_ds) else {}   # none: train_on="all"
        elapsed += time.perf_counter() - t0
        score = valid.get(metric)
        improved = cfg.final_fit or not valid or best is None or (score < best if lower else score > best)
        history["epochs"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "lr": sched.get_last_lr()[0],
                                  "seconds": round(elapsed, 2), "valid": valid})
        log(f"epoch {epoch + 1}: train loss {np.mean(losses):.4f}"
            + (f"  valid {metric} {score:.4f}" + ("  *" if improved else "") if valid else ""))
        if improved:
            best, bad_epochs = score, 0
            best_weights = {k: v.detach().clone() for k, v in saved_weights(scored, cfg.save_dtype).items()}
        else:
            bad_epochs += 1
        stopped = bad_epochs >= cfg.patience
        tensors, opt_meta = optimizer_tensors(opt)
        tensors.update({f"model.{k}": v for k, v in model.state_dict().items()})
        if average is not None:
            tensors.update({f"ema.{k}": v for k, v in average.model.state_dict().items()})
        tensors.update({f"best.{k}": v for k, v in best_weights.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        save_checkpoint(out, epoch + 1, tensors, {
            "config": config, "finished": stopped or epoch + 1 == cfg.epochs, "best": best, "bad_epochs": bad_epochs,
            "elapsed": elapsed, "ema_steps": average.steps if average is not None else 0, "optimizer": opt_meta,
            "scheduler": sched.state_dict(), "history": history})
        write_json(out / "history.json", history)   # for people and plots; the manifest holds the run's copy
        crash_point("history", epoch + 1)
        if stopped:
            log(f"early stop: valid {metric} did not improve for {cfg.patience} epochs")
            break
    if best_weights is None:
        raise UsageError(f"{out}: no epoch was trained, so there is no model to write")
    atomic_save_tensors(out / "model.safetensors", best_weights, {"format": "pt"})
    crash_point("model", len(history["epochs"]))
    model.load_state_dict(load_tensors(out / "model.safetensors"))
    model.eval()
    config["metrics"] = held_out_metrics(config, model, tok, train_ds, valid_ds, test_ds)
    if cfg.task in ("generate", "multitask"):
        write_novelty_hashes(out, ds.distinct_names())
    config["parameters"] = count_parameters(model)
    config["training_seconds"] = round(elapsed, 1)
    write_json(out / "config.json", record_hashes(out, config, files=("model.safetensors",)))   # written last
    write_model_card(out, config)
    return config
