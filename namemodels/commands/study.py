"""``namemodels study [PART] --out DIR [--data DIR] [--quick|--tiny]``: the whole study, or one part."""
from __future__ import annotations

import argparse

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


def _options(p, suppress: bool) -> None:
    d = (lambda v: argparse.SUPPRESS) if suppress else (lambda v: v)
    p.add_argument("--data", default=d("../shared/data"),
                   help="folder with names/, first_names.csv and elements.txt (default ../shared/data)")
    p.add_argument("--out", default=d(None), help="output folder for report.html, results.json and the PNGs")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="budget", action="store_const", const="quick", default=d("full"),
                      help="small budgets (1200 training names, hidden 32, 2 epochs, 2 seeds): about 3 minutes")
    size.add_argument("--tiny", dest="budget", action="store_const", const="tiny", default=d("full"),
                      help="smallest budgets, for tests (seconds)")
    p.add_argument("--seeds", type=int, default=d(None), help="override the number of seeds")
    p.add_argument("--lines", default=d(None), help="one-item-per-line file for the generation part")
    p.add_argument("--batch-size", dest="grad_batch", type=int, default=d(64),
                   help="gradients part: names per batch when averaging gradient norms (1 for debugging)")
    p.add_argument("--threads", type=int, default=d(1), help="torch CPU threads (default 1: small models)")
    p.add_argument("--quiet", action="store_true", default=d(False), help="no progress bars")


def register(sub) -> None:
    p = sub.add_parser("study", help="run the study and write an HTML report",
                       description="Run the whole study (or one part) and write report.html (self-contained), "
                                   "results.json and PNGs to --out.")
    _options(p, suppress=False)
    parts = p.add_subparsers(dest="part", metavar="PART")
    for name, text in PART_HELP.items():
        sp = parts.add_parser(name, help=text, description=f"Study part: {text}.")
        _options(sp, suppress=True)
    p.set_defaults(func=run)


def run(args) -> int:
    from namemodels.errors import UsageError
    from namemodels.study import PARTS, run_study
    if not args.out:
        raise UsageError("--out DIR is required")
    if args.seeds is not None and args.seeds < 1:
        raise UsageError("--seeds must be at least 1")
    if args.grad_batch < 1:
        raise UsageError("--batch-size must be at least 1")
    parts = [args.part] if args.part else list(PARTS)
    run_study(args.out, args.data, parts, args.budget, args.seeds, args.lines, not args.quiet,
              args.grad_batch, args.threads)
    print(f"{args.out}/report.html")
    return 0
