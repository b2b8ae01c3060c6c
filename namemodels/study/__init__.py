"""The study: data, cells, perplexity, gender loss, gradients, momentum, memorizer, embeddings,
reading, regularisation, generation. ``run_study`` runs some or all parts and writes ``report.html``
(self-contained), the PNGs and ``results.json`` to ``out``."""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

# part name -> (module, function); the order is the report's
PARTS = {
    "data": ("data_part", "run"),
    "cells": ("cells", "run"),
    "perplexity": ("perplexity", "run"),
    "gender-loss": ("gender_loss", "run"),
    "gradients": ("gradients", "run"),
    "momentum": ("momentum", "run"),
    "memorizer": ("memorizer", "run"),
    "embeddings": ("embeddings", "run_embeddings"),
    "reading": ("embeddings", "run_reading"),
    "regularisation": ("regularisation", "run"),
    "generation": ("generation", "run"),
}


def run_study(
    out: str | Path,
    data: str | Path = "../shared/data",
    parts: Sequence[str] = tuple(PARTS),
    budget: str = "full",
    seeds: int | None = None,
    lines: str | None = None,
    progress: bool = True,
    grad_batch: int = 64,
    threads: int = 1,
    log: Callable[[str], Any] = lambda m: print(m, file=sys.stderr),
) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import torch

    from ..errors import UsageError
    from .common import BUDGETS, Context, Section, StudyData, json_safe
    from .report import render

    if threads:
        torch.set_num_threads(threads)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise UsageError(f"unknown study part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    if lines is not None and not Path(lines).is_file():
        raise UsageError(f"--lines {lines}: no such file")
    b = BUDGETS[budget]
    if seeds:
        b = dataclasses.replace(b, seeds=seeds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(StudyData(data, b), out, b, progress, lines, grad_batch)
    sections: list[Section] = []
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    for name in parts:
        mod, fn = PARTS[name]
        t0 = time.perf_counter()
        log(f"study: {name} ...")
        sections.append(getattr(importlib.import_module(f"{__name__}.{mod}"), fn)(ctx))
        timings[name] = round(time.perf_counter() - t0, 1)
        log(f"study: {name} done in {timings[name]:.1f} s")
    total = round(time.perf_counter() - t_all, 1)
    results = {
        "budget": dataclasses.asdict(b),
        "data": str(Path(data).resolve()),
        "parts": list(parts),
        "seconds": {"total": total, **timings},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **ctx.results,
    }
    (out / "results.json").write_text(json.dumps(json_safe(results), indent=1, allow_nan=False), encoding="utf-8")
    reduced = (
        ""
        if b.name == "full"
        else (
            f" <b>This is a reduced '{b.name}' run</b> ({b.seeds} seeds, {b.epochs} epoch(s), hidden {b.hidden}, "
            f"at most {b.max_train} training names): spreads need at least 3 seeds (the full run has them) and "
            "the numbers below are smoke-test sized, so read the sentences as describing this run only."
        )
    )
    meta = {
        "summary": f"Data: {Path(data).resolve()}. {b.describe()}. Parts: {', '.join(parts)}. Total time "
        f"{total:.0f} s on {torch.get_num_threads()} CPU thread(s) ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        + "). Every number is in results.json."
        + reduced
    }
    (out / "report.html").write_text(render(sections, meta), encoding="utf-8")
    log(f"study: wrote {out / 'report.html'}, {out / 'results.json'} and {len(ctx.figures)} figures in {total:.0f} s")
    return results
