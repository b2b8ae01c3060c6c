"""``namemodels study [PART] --out DIR [--data DIR] [--quick|--tiny]``: the whole study, or one part."""

from __future__ import annotations

import argparse

from namemodels.options import Range, number

USAGE = "namemodels study {part} --out DIR [--data DIR] [--quick | --tiny] [options]"

PART_HELP = {
    "data": "length histograms, class balance, letter frequency",
    "cells": "RNN/GRU/LSTM and momentum cells on four tasks, several seeds",
    "perplexity": "perplexity two ways beside uniform and unigram baselines",
    "gender-loss": "BCE on one logit vs 2-class softmax NLL",
    "gradients": "gradient norm w.r.t. the input embedding at each position",
    "momentum": "sweep over mu and s for the momentum cells",
    "memorizer": "recall the first of T symbols, every cell, clipping, train short/test long",
    "embeddings": "PCA / t-SNE of character and name embeddings (PNG + interactive SVG)",
    "reading": "the classifier's language probabilities after every character",
    "regularisation": "variational dropout, L1/L2, clipping for the LSTM classifier",
    "generation": "generators on elements.txt and on --lines FILE, several temperatures",
}

# The budgets below "full" (namemodels.study.common.BUDGETS), each chosen by its own flag.
BUDGET_HELP = {
    "quick": "small budgets (1200 training names, hidden 32, 2 epochs, 2 seeds): 1-2 minutes on an "
    "idle CPU core, longer on a busy machine",
    "tiny": "smallest budgets, for tests (seconds)",
}


def _options(p: argparse.ArgumentParser, suppress: bool) -> None:
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument(
        "--data",
        default=d("../shared/data"),
        metavar="DIR",
        help="folder with names/, first_names.csv and elements.txt (default ../shared/data)",
    )
    p.add_argument(
        "--out",
        default=d(None),
        metavar="DIR",
        help="required: output folder for report.html, results.json and the PNGs",
    )
    size = p.add_mutually_exclusive_group()
    for budget, text in BUDGET_HELP.items():  # --quick, --tiny: one flag per smaller budget
        size.add_argument(
            f"--{budget}", dest="budget", action="store_const", const=budget, default=d("full"), help=text
        )
    positive = number(int, Range(1))
    p.add_argument("--seeds", type=positive, default=d(None), metavar="N", help="override the number of seeds")
    p.add_argument("--lines", default=d(None), metavar="FILE", help="one-item-per-line file for the generation part")
    p.add_argument(
        "--batch-size",
        dest="grad_batch",
        type=positive,
        default=d(64),
        metavar="N",
        help="gradients part: names per batch when averaging gradient norms (1 for debugging)",
    )
    p.add_argument(
        "--threads", type=positive, default=d(1), metavar="N", help="torch CPU threads (default 1: small models)"
    )
    p.add_argument("--quiet", action="store_true", default=d(False), help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run the study and write an HTML report",
        usage=USAGE.format(part="[PART]"),
        description="Run the whole study (or one part) and write report.html (self-contained), "
        "results.json and PNGs to --out.",
    )
    _options(p, suppress=False)
    parts = p.add_subparsers(dest="part", metavar="PART")
    for name, text in PART_HELP.items():
        sp = parts.add_parser(name, help=text, description=f"Study part: {text}.", usage=USAGE.format(part=name))
        _options(sp, suppress=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError
    from namemodels.study import PARTS, run_study

    from .common import removed_on_failure

    if not args.out:
        raise UsageError("--out DIR is required")
    parts = [args.part] if args.part else list(PARTS)
    with removed_on_failure(args.out):
        run_study(
            args.out,
            args.data,
            parts,
            args.budget,
            args.seeds,
            args.lines,
            not args.quiet,
            args.grad_batch,
            args.threads,
        )
    print(f"{args.out}/report.html")
    return 0
