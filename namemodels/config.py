"""Training settings and the model directory's config.json (no torch here: the CLI builds its
options from these fields, and inference reads config.json through :func:`read_model_config`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .checkpoint_json import read_json
from .errors import UsageError
from .options import Range, check_choice

TASKS = ("classify", "gender", "generate", "multitask")
CLASSIFIER_TASKS = ("classify", "gender")  # the tasks that answer with labels: calibration, name tables, ensembles
PROJ_CELLS = ("lstm", "momentum_lstm")  # cells that take --proj-size (LSTM with projections)


CLI_SIZES = {"cell": "--cell", "hidden": "--hidden", "proj_size": "--proj-size"}


def size_problem(cell: str, hidden: int, proj_size: int, names: dict[str, str] | None = None) -> str | None:
    """The one rule for a model's projection size (``hidden`` >= 1 is a plain range, checked beside the
    other numbers): 0, or below ``hidden`` for a cell of :data:`PROJ_CELLS`. What is wrong, or None;
    ``names`` spells the three sizes as the caller's user knows them (``{"proj_size": "--proj-size",
    ...}`` for the command line; default the Python keywords). Used by the command line's options, the
    model's constructor and the reader of a model's config.json."""
    n = {"cell": "cell", "hidden": "hidden", "proj_size": "proj_size", **(names or {})}
    if proj_size and cell not in PROJ_CELLS:
        return (
            f"{n['proj_size']} projects an LSTM's hidden state; {n['cell']} {cell} has none: use {n['cell']} "
            f"{' or '.join(PROJ_CELLS)}, or no {n['proj_size']}"
        )
    if proj_size and proj_size >= hidden:
        return f"{n['proj_size']} must be below {n['hidden']} ({hidden}), got {proj_size}"
    return None


CLASSIFIER_KINDS = ("classifier", "ensemble")  # model kinds (config.json "model") that map a name to labels
MODEL_KINDS = {
    "classify": CLASSIFIER_KINDS,
    "gender": CLASSIFIER_KINDS,
    "generate": ("lm",),
    "multitask": ("multitask",),
}

_UNIT = Range(0, 1, high_open=True)
# Allowed values of TrainConfig's numeric fields (the CLI's options and TrainConfig.check()).
LIMITS: dict[str, Range] = {
    "embed": Range(1),
    "hidden": Range(1),
    "proj_size": Range(0),
    "layers": Range(1),
    "dropout": _UNIT,
    "ngram_buckets": Range(0),
    "ngram_max": Range(1, 8),
    "mu": _UNIT,
    "s": Range(0),
    "epochs": Range(1),
    "batch_size": Range(1),
    "lr": Range(0, low_open=True),
    "weight_decay": Range(0),
    "clip": Range(0),
    "ema": _UNIT,
    "label_smoothing": _UNIT,
    "logit_adjust": Range(0, 2),
    "l1": Range(0),
    "l2": Range(0),
    "patience": Range(1),
    "seed": Range(0),
    "split_seed": Range(-1),
    "ensemble": Range(1),
    "category_dropout": Range(0, 1),
    "gender_weight": Range(0),
    "max_train": Range(0),
    "folds": Range(0, 100),
    "fold": Range(0),
}
CHOICES: dict[str, tuple[str, ...]] = {
    "pool": ("last", "max"),
    "schedule": ("cosine", "constant"),
    "class_weight": ("none", "sqrt", "balanced"),
    "save_dtype": ("float32", "float16"),
    "train_on": ("split", "all"),
    "split_by": ("names", "lines"),
}
# Options that only early stopping reads: --train-on all (nothing held out to stop on) refuses them.
EARLY_STOPPING = ("patience", "metric", "final_fit")
# Allowed values of generate()'s arguments (the Python API and the generate command).
MAX_NAMES = 1_000_000  # the most names one call returns
GENERATE_LIMITS: dict[str, Range] = {
    "n": Range(1, MAX_NAMES),
    "temperature": Range(0, low_open=True),
    "top_k": Range(1),
    "seed": Range(0),
}
TOP_LIMIT = Range(1)  # predict(top=...)

# Validation metrics early stopping can follow, per task ("" = the task's default).
METRICS: dict[str, tuple[str, ...]] = {
    "classify": ("accuracy", "macro_f1", "weighted_f1"),
    "gender": ("roc_auc", "roc_auc_weighted", "accuracy"),
    "generate": ("nll",),
    "multitask": ("nll", "roc_auc", "roc_auc_weighted", "accuracy"),
}


@dataclass
class TrainConfig:
    task: str = "classify"
    cell: str = "lstm"
    embed: int = 32
    hidden: int = 128
    proj_size: int = 0  # lstm, momentum_lstm: project h to this width, below hidden (0 = none)
    layers: int = 1
    bidirectional: bool = False
    pool: str = "last"  # classifiers: last | max (also max over the outputs)
    dropout: float = 0.0
    ngram_buckets: int = 0  # classifiers: hashed character n-gram buckets of the wide part (0 = none)
    ngram_max: int = 3  # classifiers: longest n-gram of the wide part
    mu: float = 0.6
    s: float = 0.6
    learn_momentum: bool = False
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    clip: float = 1.0
    ema: float = 0.0  # decay of a moving average of the weights, evaluated and saved (0 = off)
    label_smoothing: float = 0.0  # classify: cross-entropy label smoothing
    logit_adjust: float = 0.0  # classify: final output bias minus this times log(label share); see tasks
    l1: float = 0.0
    l2: float = 0.0
    schedule: str = "cosine"  # cosine | constant
    patience: int = 5
    metric: str = ""  # default per task, see default_metric()
    seed: int = 0
    split_seed: int = -1  # seed of the grouped train/valid/test split (-1 = seed)
    ensemble: int = 1  # classifiers: train this many members (seeds seed, seed+1, ...) and average them
    lowercase: bool = True
    conditional: bool = True  # generate: condition on the dataset's labels when it has them
    category_dropout: float = 0.2  # generate: drop the category so the model also works without one
    gender_weight: float = 1.0  # multitask: weight of the gender loss
    class_weight: str = "none"  # classify: none | sqrt | balanced
    final_fit: bool = False  # also train on the validation split, all --epochs, keep the last weights
    max_train: int = 0  # use at most this many training names (0 = all)
    train_on: str = "split"  # split: hold out valid/test parts | all: train on every line, fixed epochs
    split_by: str = "names"  # names: no name string in two parts | lines: held-out lines, a name may sit on both sides
    folds: int = 0  # > 0: hold out fold `fold` of this many grouped folds as the test part
    fold: int = 0
    reverse_names: bool = False  # generate: read names backwards (to pretrain a reverse encoder)
    init_from: str = ""  # start the encoder from this generator's weights (and vocabulary)
    init_reverse_from: str = ""  # bidirectional: start the reverse direction from a --reverse-names generator
    save_dtype: str = "float32"  # dtype of model.safetensors: float32 | float16
    device: str = "cpu"

    def check(self) -> TrainConfig:
        """Raise :class:`UsageError` on a value outside :data:`LIMITS`, :data:`CHOICES` or :data:`METRICS`
        (named by its command-line option)."""
        check_choice(self.task, TASKS, "task")
        for name, allowed in LIMITS.items():
            allowed.check(getattr(self, name), option(name))
        for name, choices in CHOICES.items():
            check_choice(getattr(self, name), choices, option(name))
        problem = size_problem(self.cell, self.hidden, self.proj_size, CLI_SIZES)
        if problem:
            raise UsageError(problem)
        if self.metric:
            check_choice(self.metric, METRICS[self.task], f"--metric for {self.task}")
        if self.folds == 1:
            raise UsageError(
                "--folds must be at least 2 (or 0 for the 80/10/10 split of `train`), got 1: one fold "
                "would hold out every line"
            )
        if self.fold >= max(self.folds, 1):
            raise UsageError(
                f"--fold must name one of the --folds (at least 2), counted from 0; got --folds "
                f"{self.folds} --fold {self.fold}"
            )
        if self.logit_adjust and self.task != "classify":
            raise UsageError(
                f"--logit-adjust shifts a classifier's label logits by their share of the training "
                f"lines; the {self.task} task has no such labels: drop it"
            )
        if self.train_on == "all":
            refuse_early_stopping([option(n) for n in EARLY_STOPPING if getattr(self, n) != getattr(TrainConfig, n)])
        return self

    def data_seed(self) -> int:
        """The seed of the split (and of the ``max_train`` subset)."""
        return self.split_seed if self.split_seed >= 0 else self.seed

    def default_metric(self) -> str:
        return (
            self.metric
            or {"classify": "accuracy", "gender": "roc_auc", "generate": "nll", "multitask": "nll"}[self.task]
        )


# Options that TrainConfig no longer has, which configs, checkpoints and CV reports written before
# may still hold: left out when those are read back (see :func:`saved_options`).
RETIRED_OPTIONS = ("extra",)


def saved_options(train: dict) -> dict:
    """A saved ``train`` section as today's TrainConfig reads it: retired options dropped, options added
    since filled with their defaults."""
    return {**dataclasses.asdict(TrainConfig()), **{k: v for k, v in train.items() if k not in RETIRED_OPTIONS}}


def refuse_early_stopping(options: Sequence[str]) -> None:
    """:class:`UsageError` when early stopping ``options`` come with --train-on all."""
    if options:
        raise UsageError(
            f"{', '.join(dict.fromkeys(options))}: --train-on all holds nothing out to stop early on; it "
            "trains for exactly --epochs (choose them by `namemodels cv`); drop "
            f"{'it' if len(set(options)) == 1 else 'them'}"
        )


def option(name: str) -> str:
    """The command-line option of a TrainConfig field: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


# ------------------------------------------------------------------------------ config.json of a model


def read_model_config(directory: str | Path) -> dict:
    """A model directory's ``config.json``, checked against :func:`check_model_config`."""
    path = Path(directory) / "config.json"
    return check_model_config(read_json(path), path)


def check_model_config(config: object, path: str | Path = "config.json") -> dict:
    """Check the keys inference and export rely on (task, labels, tokenizer, model sizes) and that they
    agree with each other; :class:`UsageError` names the file and the key."""

    def fail(key: str, problem: str) -> NoReturn:
        raise UsageError(f"{path}: {key + ' ' if key else ''}{problem}; restore the file, or retrain the model")

    def get(obj: dict, key: str, kind: type, where: str, positive: bool = False, optional: bool = False) -> Any:
        name = f"{where}.{key}" if where else key
        if key not in obj:
            if optional:
                return None
            fail(f"key {name!r}", "is missing")
        value = obj[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0)):
            fail(f"key {name!r}", f"must be a {'positive' if positive else 'non-negative'} whole number, got {value!r}")
        if kind is not int and not isinstance(value, kind):
            fail(f"key {name!r}", f"must be {_TYPE_NAMES[kind]}, got {type(value).__name__} {value!r:.40}")
        return value

    if not isinstance(config, dict):
        fail("", f"must hold a JSON object, got {type(config).__name__}")
    task = get(config, "task", str, "")
    if task not in TASKS:
        fail("key 'task'", f"must be one of {', '.join(TASKS)}, got {task!r}")
    labels = get(config, "labels", list, "")
    if not all(isinstance(label, str) for label in labels):
        fail("key 'labels'", "must be a list of strings")
    tok = get(config, "tokenizer", dict, "")
    chars = get(tok, "chars", list, "tokenizer")
    if not all(isinstance(c, str) and len(c) == 1 for c in chars):
        fail("key 'tokenizer.chars'", "must be a list of single characters")
    get(tok, "lowercase", bool, "tokenizer", optional=True)
    spec = get(config, "model", dict, "")
    kind = get(spec, "kind", str, "model")
    if kind not in MODEL_KINDS[task]:
        fail("key 'model.kind'", f"is {kind!r}, but a {task} model is {' or '.join(MODEL_KINDS[task])}")
    where = "model"
    if kind == "ensemble":
        get(spec, "members", int, where, positive=True)
        spec, where = get(spec, "member", dict, where), "model.member"
        if spec.get("kind") != "classifier":
            fail(f"key '{where}.kind'", f"must be 'classifier', got {spec.get('kind')!r}")
    get(spec, "cell", str, where)
    for key in ("vocab_size", "embed", "hidden", "layers"):
        get(spec, key, int, where, positive=True)
    proj = get(spec, "proj_size", int, where, optional=True)
    problem = size_problem(
        spec["cell"], spec["hidden"], proj or 0, {k: f"'{where}.{k}'" for k in ("cell", "hidden", "proj_size")}
    )
    if problem:
        fail("", problem)  # names its keys: 'model.proj_size' must be below 'model.hidden' (64), got 80
    if spec["vocab_size"] != len(chars) + 4:
        fail(
            f"key '{where}.vocab_size'",
            f"is {spec['vocab_size']}, but the tokenizer has {len(chars) + 4} symbols (4 special + its characters)",
        )
    if kind in CLASSIFIER_KINDS:
        classes = get(spec, "num_classes", int, where, positive=True)
        if classes != len(labels):
            fail(f"key '{where}.num_classes'", f"is {classes}, but 'labels' has {len(labels)}")
    elif kind == "lm":
        categories = get(spec, "num_categories", int, where, optional=True)
        if categories and categories != len(labels):
            fail(f"key '{where}.num_categories'", f"is {categories}, but 'labels' has {len(labels)}")
    return config


_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", bool: "true or false"}
