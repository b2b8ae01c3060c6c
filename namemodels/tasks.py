"""The task interface the training loop sees: a task turns records into a batch of tensors, a batch
into a loss, and a model into metrics.

    task = make_task(cfg, labels, train_ds)
    b = task.batch(tok, ds, idx, rng)     # records idx of ds; rng: a training batch (may drop categories)
    loss = task.loss(model, b)            # a scalar to minimise
    task.metrics(model, tok, ds)          # the metrics a saved model gets (namemodels.evaluate)

``classify`` and ``gender`` read a whole name and predict its label, or the female share of its
births. ``generate`` and ``multitask`` predict each next character of the name (inputs
``<bos> c1 .. cn``, targets ``c1 .. cn <eos>``: :func:`namemodels.batching.next_char_pairs`);
``generate`` may be told the name's category, ``multitask`` also predicts the female share.
:func:`model_spec` is the model each task trains and :func:`check_task` refuses data or options
that do not fit the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .batching import IGNORE, encode_batch, label_ids, next_char_pairs
from .config import CLASSIFIER_TASKS, TrainConfig
from .data.records import NameDataset, NameRecord
from .errors import UsageError
from .evaluate import task_metrics
from .tokenizer import CharTokenizer

# Metrics where lower is better (for the others higher is): early stopping compares scores by it.
LOWER_IS_BETTER = frozenset({"nll", "perplexity", "loss"})
GENDER_LABELS = ["M", "F"]


def task_labels(cfg: TrainConfig, data_labels: Sequence[str]) -> list[str]:
    """The labels a task's model predicts or is conditioned on: the data's for classify (and a
    conditional generator), M and F for gender and multitask, none otherwise."""
    if cfg.task == "classify" or (cfg.task == "generate" and cfg.conditional):
        return list(data_labels)
    return list(GENDER_LABELS) if cfg.task in ("gender", "multitask") else []


def check_task(cfg: TrainConfig, ds: NameDataset) -> None:
    """:class:`UsageError` for options out of range, or data and options that do not fit the task."""
    cfg.check()  # every option's range and choices (namemodels.config.LIMITS)
    need = {"classify": ("labeled", "gender"), "gender": ("gender",), "multitask": ("gender",)}.get(cfg.task)
    if need and ds.kind not in need:
        raise UsageError(
            f"task {cfg.task!r} needs {' or '.join(need)} data (a folder of <Label>.txt, a .tsv, "
            f"or a name,sex,count .csv); {ds.source} holds {ds.kind} data"
        )
    if cfg.ensemble > 1 and cfg.task not in CLASSIFIER_TASKS:
        raise UsageError(
            f"--ensemble must be 1 for {cfg.task!r}: only classify and gender average members, got {cfg.ensemble}"
        )
    if cfg.ngram_buckets and cfg.task not in CLASSIFIER_TASKS:
        raise UsageError(f"--ngram-buckets adds a wide part to classifiers; task {cfg.task!r} has none")


def model_spec(cfg: TrainConfig, vocab: int, labels: list) -> dict:
    """``config.json``'s ``model``: what :func:`namemodels.models.build_model` builds for the task."""
    momentum = cfg.cell.startswith("momentum")
    cell_kw = {"mu": cfg.mu, "s": cfg.s, "learn_momentum": cfg.learn_momentum} if momentum else {}
    if cfg.proj_size:  # left out at 0, so that models without projections keep their config.json
        cell_kw["proj_size"] = cfg.proj_size
    common = dict(
        vocab_size=vocab,
        cell=cfg.cell,
        embed=cfg.embed,
        hidden=cfg.hidden,
        layers=cfg.layers,
        dropout=cfg.dropout,
        **cell_kw,
    )
    wide = dict(ngram_buckets=cfg.ngram_buckets, ngram_max=cfg.ngram_max) if cfg.ngram_buckets else {}
    if cfg.task == "classify":
        return dict(
            kind="classifier", num_classes=len(labels), bidirectional=cfg.bidirectional, pool=cfg.pool, **wide, **common
        )
    if cfg.task == "gender":
        return dict(
            kind="classifier",
            num_classes=2,
            binary=True,
            bidirectional=cfg.bidirectional,
            pool=cfg.pool,
            **wide,
            **common,
        )
    if cfg.task == "generate":
        return dict(kind="lm", num_categories=len(labels) if cfg.conditional else 0, **common)
    return dict(kind="multitask", **common)


@dataclass
class Batch:
    """One batch. ``ids`` (B, T) and ``lengths`` (B,): the names as the model reads them;
    ``targets`` (B, T): next-character tasks' targets (:data:`IGNORE` past each name); ``y`` (B,):
    the label index, the female share, or the category (0 = none), by task."""

    ids: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor | None = None
    y: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> Batch:
        """This batch on ``device`` (lengths too: the fused kernels read them there, without a copy back)."""
        for key in ("ids", "lengths", "targets", "y"):
            t = getattr(self, key)
            if t is not None:
                setattr(self, key, t.to(device, non_blocking=True))
        return self


def next_char_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of (B, T, V) next-character logits over the targets that are not :data:`IGNORE`."""
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)


class Task:
    """A task of :mod:`namemodels.training.train` (see this module's docstring); subclasses give ``answers``
    and ``loss``."""

    next_char = False  # targets are the next characters of the name

    def __init__(self, cfg: TrainConfig, labels: Sequence[str]) -> None:
        self.cfg, self.labels = cfg, list(labels)

    def batch(
        self,
        tok: CharTokenizer,
        ds: NameDataset,
        idx: Sequence[int] | np.ndarray,
        rng: np.random.Generator | None = None,
    ) -> Batch:
        """The records ``idx`` of ``ds`` as tensors; ``rng`` (the epoch's generator) marks a training batch."""
        recs = [ds.records[i] for i in idx]
        names = [r.name[::-1] if self.cfg.reverse_names else r.name for r in recs]
        if self.next_char:
            ids, targets, lengths = next_char_pairs(tok, names)
            b = Batch(torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(targets))
        else:
            ids, lengths = encode_batch(tok, names)
            b = Batch(torch.from_numpy(ids), torch.from_numpy(lengths))
        b.y = self.answers(recs, rng)
        return b

    def answers(self, recs: Sequence[NameRecord], rng: np.random.Generator | None) -> torch.Tensor | None:
        """``Batch.y`` of these records."""
        raise NotImplementedError

    def loss(self, model: nn.Module, b: Batch) -> torch.Tensor:
        raise NotImplementedError

    def metrics(self, model: nn.Module, tok: CharTokenizer, ds: NameDataset, interval: bool = False) -> dict:
        """The task's metrics on ``ds`` (``interval``: a classifier's accuracy also gets its 95% interval)."""
        return task_metrics(
            self.cfg.task,
            self.labels,
            model,
            tok,
            ds,
            categories=self.cfg.task == "generate" and self.cfg.conditional and bool(self.labels),
            reverse=self.cfg.reverse_names,
            interval=interval,
        )

    def held_out_metrics(
        self, model: nn.Module, tok: CharTokenizer, train: NameDataset, valid: NameDataset, test: NameDataset
    ) -> dict[str, dict]:
        """``config.json``'s metrics: on the validation and test parts that exist; a model trained on every
        line (``train_on="all"``) gets those of its training data instead (key ``train``: lines it saw,
        not an estimate)."""
        parts = {"valid": valid, "test": test} if len(valid) or len(test) else {"train": train}
        return {name: self.metrics(model, tok, ds, interval=True) for name, ds in parts.items() if len(ds)}


class Classify(Task):
    """Language (or any label) of a name: cross-entropy over the labels, optionally class-weighted
    and label-smoothed."""

    def __init__(self, cfg: TrainConfig, labels: Sequence[str], class_weights: torch.Tensor | None = None) -> None:
        super().__init__(cfg, labels)
        self.class_weights = class_weights

    def answers(self, recs: Sequence[NameRecord], rng: np.random.Generator | None) -> torch.Tensor | None:
        return torch.from_numpy(label_ids(self.labels, [r.label for r in recs]))

    def loss(self, model: nn.Module, b: Batch) -> torch.Tensor:
        assert b.y is not None  # a batch of this task has them
        return nn.functional.cross_entropy(
            model(b.ids, b.lengths), b.y, weight=self.class_weights, label_smoothing=self.cfg.label_smoothing
        )


class Gender(Task):
    """Sex of a first name: binary cross-entropy of one logit against the female share of its births."""

    def answers(self, recs: Sequence[NameRecord], rng: np.random.Generator | None) -> torch.Tensor | None:
        return torch.tensor([r.female_share for r in recs])

    def loss(self, model: nn.Module, b: Batch) -> torch.Tensor:
        assert b.y is not None  # a batch of this task has them
        return nn.functional.binary_cross_entropy_with_logits(model(b.ids, b.lengths), b.y)


class Generate(Task):
    """Next character, given the name's category (1-based; 0 = none) when the model is conditional.
    A training batch drops each category with probability ``category_dropout``, so the model also
    generates without one."""

    next_char = True

    def answers(self, recs: Sequence[NameRecord], rng: np.random.Generator | None) -> torch.Tensor | None:
        if not (self.cfg.conditional and self.labels):
            return None
        cat = torch.from_numpy(label_ids(self.labels, [r.label for r in recs], unknown=-1) + 1)
        if rng is not None and self.cfg.category_dropout > 0:
            cat = cat.masked_fill(torch.from_numpy(rng.random(len(recs)) < self.cfg.category_dropout), 0)
        return cat

    def loss(self, model: nn.Module, b: Batch) -> torch.Tensor:
        assert b.targets is not None  # a batch of this task has them
        logits, _ = model(b.ids, b.lengths, b.y)
        return next_char_loss(logits, b.targets)


class Multitask(Task):
    """Next character and the female share from one encoder: the sum of both losses, the second
    weighted by ``gender_weight``."""

    next_char = True

    def answers(self, recs: Sequence[NameRecord], rng: np.random.Generator | None) -> torch.Tensor | None:
        return torch.tensor([r.female_share for r in recs])

    def loss(self, model: nn.Module, b: Batch) -> torch.Tensor:
        assert b.targets is not None and b.y is not None  # a batch of this task has them
        logits, gender_logit, _ = model(b.ids, b.lengths)
        gender = nn.functional.binary_cross_entropy_with_logits(gender_logit, b.y)
        return next_char_loss(logits, b.targets) + self.cfg.gender_weight * gender


TASK_TYPES = {"classify": Classify, "gender": Gender, "generate": Generate, "multitask": Multitask}


def label_counts(train: NameDataset, labels: Sequence[str]) -> np.ndarray:
    """Training lines per label (float64), in the order of ``labels``."""
    return np.bincount(train.label_ids, minlength=len(labels)).astype(np.float64)


def class_weights(cfg: TrainConfig, train: NameDataset, labels: Sequence[str]) -> torch.Tensor | None:
    """``--class-weight``: per label ``(N / count) / labels``, its square root for ``sqrt``, scaled to mean 1."""
    if cfg.task != "classify" or cfg.class_weight == "none":
        return None
    counts = label_counts(train, labels)
    w = counts.sum() / np.maximum(counts, 1) / len(labels)
    w = np.sqrt(w) if cfg.class_weight == "sqrt" else w
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def logit_adjustment(cfg: TrainConfig, train: NameDataset, labels: Sequence[str]) -> np.ndarray | None:
    """``--logit-adjust TAU``: ``-TAU * log prior`` per label, the prior being each label's share of the
    training lines (add-one smoothed), or None when off. Added to a trained classifier's output bias,
    it is post-hoc logit adjustment (Menon et al., "Long-tail learning via logit adjustment", 2021):
    a label is no longer favoured for being frequent in training, which trades a little accuracy on
    the big languages for recall on the small ones (macro-F1). Being a bias, it reaches every backend
    and export unchanged."""
    if cfg.task != "classify" or not cfg.logit_adjust:
        return None
    counts = label_counts(train, labels) + 1.0
    return -cfg.logit_adjust * np.log(counts / counts.sum())


def make_task(cfg: TrainConfig, labels: Sequence[str], train: NameDataset | None = None) -> Task:
    """The task of ``cfg``; ``train`` (the training part) sets a classifier's ``--class-weight``."""
    if cfg.task == "classify":
        weights = class_weights(cfg, train, labels) if train is not None else None
        return Classify(cfg, labels, weights.to(cfg.device) if weights is not None else None)
    return TASK_TYPES[cfg.task](cfg, labels)
