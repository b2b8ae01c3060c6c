"""``namemodels cv --task TASK --data PATH [--folds 5] [--out DIR] [--json] [--json-out FILE] [train options]``:
grouped k-fold cross-validation of a training recipe beside its baselines (see namemodels.training.cv)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from namemodels.config import TrainConfig
from namemodels.options import Range, add_json_options, json_destinations, number

from .train import add_train_options

CV_TASKS = ("classify", "gender", "generate")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cv",
        help="grouped k-fold cross-validation of a recipe and its baselines",
        description="Cross-validate a training recipe: the data is cut into --folds grouped folds (no name string in "
        "two folds), stratified by label; each fold is held out once while a model trains on the others "
        "with the options given (as for `namemodels train`), and the baselines (n-gram logistic "
        "regressions, C tuned inside the training folds; or uniform, unigram and add-k n-gram models, k "
        "tuned there) are scored on the same folds. Prints mean ± sd over folds and the paired "
        "difference model − baseline. Folds run in parallel processes; running the same command "
        "again reuses finished folds and resumes an interrupted one.",
    )
    p.add_argument("--task", required=True, choices=CV_TASKS)
    p.add_argument(
        "--data", required=True, help="folder of <Label>.txt, .zip, .tsv, name,sex,count .csv, or one name per line"
    )
    p.add_argument("--out", help="folder for the folds' models and results (default runs/cv-TASK-DATA)")
    add_json_options(p, "the report (always also written to OUT/cv.json)", old_file_spelling=True)
    p.add_argument(
        "--workers",
        type=number(int, Range(0)),
        default=0,
        help="parallel processes (default: one per core, at most one per fold)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--baselines-from",
        metavar="DIR",
        help="reuse the baselines of another cv run's --out on the same "
        "data and folds (they do not depend on the model's options)",
    )
    add_train_options(
        p,
        exclude=("fold",),
        defaults={"folds": 5},
        helps={
            "folds": "number of folds",
            "train_on": "split: each fold's model early-stops on a "
            "grouped ninth of its training folds; all: it trains on all of them for exactly --epochs "
            "(as `train --train-on all` ships a model)",
        },
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError

    from .common import json_text, locked_out_folder, write_json_out

    to_stdout, json_file = json_destinations(args, "cv")
    if args.workers < 0:
        raise UsageError(f"--workers must be at least 0, got {args.workers}")
    if args.folds < 2:  # before TrainConfig.check, whose rule for `train --folds` also allows 0
        raise UsageError(f"--folds must be at least 2, got {args.folds}")
    out = Path(args.out or f"runs/cv-{args.task}-{Path(args.data).stem}").expanduser()
    with locked_out_folder(out, "cv"):
        report = _run(args, out)
    from namemodels.training.cv import format_report

    if json_file:
        write_json_out(json_file, report)
    text = sys.stderr if to_stdout else sys.stdout  # with --json, stdout holds the JSON alone
    print(format_report(report), file=text)
    print(f"report written to {out / 'cv.json'}" + (f" and {json_file}" if json_file else ""), file=text)
    if to_stdout:
        print(json_text(report))
    return 0


def _run(args: argparse.Namespace, out: Path) -> dict:
    from namemodels.errors import UsageError
    from namemodels.kernels import CELLS
    from namemodels.training.cv import run_cv

    from .train import train_config

    cfg: TrainConfig = train_config(args)
    if cfg.cell not in CELLS:
        raise UsageError(f"unknown cell {cfg.cell!r}; choose one of {', '.join(CELLS)}")
    command = "namemodels " + " ".join(shlex.quote(a) for a in args.argv)
    return run_cv(
        cfg,
        args.data,
        out,
        workers=args.workers,
        progress=not args.quiet,
        log=lambda m: print(m, file=sys.stderr),
        command=command,
        baselines_from=args.baselines_from,
    )
