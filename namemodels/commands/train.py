"""``namemodels train TASK --data PATH --out DIR [options]``; options mirror TrainConfig's fields."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from namemodels.config import (
    CHOICES,
    EARLY_STOPPING,
    LIMITS,
    METRICS,
    TASKS,
    TrainConfig,
    option,
    refuse_early_stopping,
)
from namemodels.options import add_json_options, number, one_of

HELP = {
    "cell": "rnn_tanh, rnn_relu, gru, lstm, momentum_rnn, momentum_lstm or momentum_gru",
    "proj_size": "lstm, momentum_lstm: an LSTM with projections, h = W_hr (o * tanh(c)) of this width (below "
    "--hidden; the cell state keeps --hidden; 0 = none)",
    "mu": "momentum cells: momentum coefficient",
    "s": "momentum cells: step size",
    "metric": "validation metric for early stopping: "
    + "; ".join(f"{t}: {', '.join(m)}" for t, m in METRICS.items())
    + " (default: the first of its task)",
    "pool": "classifiers: how the outputs over the name become one vector: last (the final states) or max "
    "(also the maximum over positions)",
    "schedule": "learning rate: cosine (decays to 0 over the epochs) or constant",
    "max_train": "use at most this many training names (0 = all)",
    "category_dropout": "generate: drop the category with this probability during training",
    "class_weight": "classify: none, sqrt or balanced",
    "ngram_buckets": "classifiers: add a wide part, a hashed bag of character n-grams with this many buckets "
    "(0 = none)",
    "ngram_max": "classifiers: longest n-gram of the wide part",
    "save_dtype": "float32 or float16: how model.safetensors stores the weights (float16 halves the file and its "
    "ONNX export; the final metrics are computed on the saved weights)",
    "reverse_names": "generate: read names backwards (pretrains the reverse direction of an encoder)",
    "init_from": "directory of a generator (same cell, sizes, --no-conditional) whose embedding and layers start "
    "this model",
    "init_reverse_from": "directory of a --reverse-names generator that starts the reverse direction",
    "ema": "evaluate and save an exponential moving average of the weights with this per-step decay "
    "(e.g. 0.998; 0 = off)",
    "final_fit": "train on the training and validation splits together for all --epochs and keep the last "
    "weights (for settings already chosen on validation; valid metrics then describe training data)",
    "label_smoothing": "classify: label smoothing of the cross-entropy loss",
    "logit_adjust": "classify: subtract this times log(each language's share of the training lines) from the "
    "final model's logits (post-hoc logit adjustment: more recall on rare languages, higher "
    "macro-F1, a little less accuracy on frequent ones; 0 = off)",
    "conditional": "generate: condition on the data's labels (language or sex) when it has them",
    "split_seed": "seed of the grouped train/valid/test split; -1 uses --seed",
    "ensemble": "classify, gender: train this many members (seeds --seed, --seed + 1, ...) on one split, in "
    "parallel processes, and save one model that averages their probabilities",
    "train_on": "split: hold out grouped validation and test parts (early stopping on validation); all: train on "
    "every line for exactly --epochs, nothing held out (to ship a recipe chosen by `namemodels cv`; "
    "refuses the early stopping options)",
    "split_by": "names: no name string in two parts (grouped; measures names never seen); lines: held-out lines "
    "drawn at random, stratified by label, so the same name may sit in training and test parts as in "
    "real files (measures what users see with the name table)",
    "folds": "hold out one of this many grouped, stratified folds as the test part (0 = the 80/10/10 split); "
    "as `namemodels cv` does for each fold",
    "fold": "with --folds: which fold is held out, counted from 0",
}
FIELDS = [f for f in dataclasses.fields(TrainConfig) if f.name != "task"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on names",
        description="Train a model; writes model.safetensors, "
        "config.json (vocab, labels, metrics), history.json and MODEL_CARD.md to --out.",
    )
    p.add_argument("task", choices=TASKS)
    p.add_argument(
        "--data", required=True, help="folder of <Label>.txt, .zip, .tsv, name,sex,count .csv, or one name per line"
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last checkpoint in --out (a folder "
        "holding a finished model or a checkpoint is refused without --resume or --force)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="train a new model in --out even when it holds a finished model or a checkpoint (they are replaced)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_options(p, "the final metrics")
    p.add_argument(
        "--cv-report",
        metavar="FILE",
        help="the JSON report of `namemodels cv` for this recipe and data: "
        "the model card records its estimate as the model's expected quality",
    )
    add_train_options(p)
    p.set_defaults(func=run)


def add_train_options(
    p: argparse.ArgumentParser,
    exclude: Sequence[str] = (),
    defaults: dict[str, Any] | None = None,
    helps: dict[str, str] | None = None,
) -> None:
    """One option per TrainConfig field (but ``exclude``), with its type, range or choices and help;
    ``defaults`` and ``helps`` replace a field's default value and help text."""
    base, defaults, helps = TrainConfig(), defaults or {}, {**HELP, **(helps or {})}
    for f in FIELDS:
        if f.name in exclude:
            continue
        flag, value = option(f.name), defaults.get(f.name, getattr(base, f.name))
        if isinstance(value, bool):
            p.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=value, help=helps.get(f.name)
            )
            continue
        kind = (
            dict(type=number(type(value), LIMITS[f.name]))
            if f.name in LIMITS
            else dict(type=one_of(*CHOICES[f.name]), choices=CHOICES[f.name])
            if f.name in CHOICES
            else dict(type=type(value))
        )
        shown = f" (default {value})" if value != "" else ""
        p.add_argument(flag, dest=f.name, default=value, help=(helps.get(f.name, "") + shown).strip() or None, **kind)


def train_config(args: argparse.Namespace, **fixed: Any) -> TrainConfig:
    """The checked TrainConfig of parsed options. An early stopping option given with --train-on all is
    refused even at its default value (TrainConfig.check() sees only values)."""
    cfg = TrainConfig(
        task=args.task, **{f.name: getattr(args, f.name) for f in FIELDS if hasattr(args, f.name)}, **fixed
    )
    if cfg.train_on == "all":
        refuse_early_stopping(
            [option(n) for n in EARLY_STOPPING for a in args.argv if a.split("=")[0] in option_spellings(n)]
        )
    return cfg.check()


def option_spellings(name: str) -> tuple:
    """The command-line spellings of a field's option (a boolean also has its --no- form)."""
    flag = option(name)
    return (flag, "--no-" + flag[2:]) if isinstance(getattr(TrainConfig, name), bool) else (flag,)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from namemodels.errors import UsageError

    from .common import locked_out_folder

    if args.resume and args.force:
        raise UsageError("--resume continues the run in --out and --force replaces it: give one of them")
    with locked_out_folder(Path(args.out).expanduser(), "train"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError
    from namemodels.kernels import CELLS
    from namemodels.training.train import train

    from .common import json_text, write_json_out

    cfg = train_config(args)
    if cfg.cell not in CELLS:
        raise UsageError(f"unknown cell {cfg.cell!r}; choose one of {', '.join(CELLS)}")
    command = "namemodels " + " ".join(shlex.quote(a) for a in args.argv)
    estimate = None
    if args.cv_report:
        from namemodels.checkpoint_json import read_json
        from namemodels.data.loader import data_sha256
        from namemodels.training.cv import cv_estimate

        estimate = cv_estimate(read_json(args.cv_report), cfg, data_sha256(args.data), args.cv_report)
    config = train(
        cfg,
        args.data,
        args.out,
        resume=args.resume,
        progress=not args.quiet,
        log=lambda m: print(m, file=sys.stderr),
        command=command,
        cv_estimate=estimate,
        force=args.force,
    )
    if args.json_out:
        write_json_out(args.json_out, config["metrics"])
    if args.json:
        print(json_text(config["metrics"]))
    else:
        from namemodels.evaluate import format_metric

        for split, vals in config["metrics"].items():
            print(f"{split}: " + "  ".join(f"{k} {format_metric(v)}" for k, v in vals.items()))
        print(f"model written to {args.out}")
    return 0
