"""Part 2: the six cells on the same grouped split, the same budget and several seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .common import (
    CELL_COLORS,
    CELL_NAMES,
    STUDY_CELLS,
    Context,
    Section,
    mean_sd,
    new_figure,
    pm,
    rank_sentence,
    sample,
    task_config,
    train_name_task,
)

TASKS = {
    # task: (title, data, [(metric key, split, label, higher is better)])
    "classify": (
        "Surname → language",
        "surnames",
        [("accuracy", "test", "test accuracy", True), ("macro_f1", "test", "test macro-F1", True)],
    ),
    "gender": ("First name → sex", "first names", [("roc_auc", "test", "test ROC AUC", True)]),
    "generate": (
        "Surname generation",
        "surnames",
        [
            ("nll", "valid", "validation NLL (nats/char)", False),
            ("perplexity", "valid", "validation perplexity", False),
        ],
    ),
    "multitask": (
        "Multitask: next character + sex",
        "first names",
        [
            ("nll", "valid", "validation NLL (nats/char)", False),
            ("perplexity", "valid", "validation perplexity", False),
            ("roc_auc", "valid", "validation ROC AUC", True),
        ],
    ),
}


def smooth(x: Sequence[float] | np.ndarray, k: int) -> np.ndarray:
    """A running mean over ``k`` points (fewer at the start), as long as ``x``."""
    x = np.asarray(x, dtype=float)
    if len(x) < 2 or k <= 1:
        return x
    k = min(k, len(x))
    c = np.cumsum(np.insert(x, 0, 0.0))
    out = (c[k:] - c[:-k]) / k
    return np.concatenate([x[: k - 1].cumsum() / np.arange(1, k), out])


def run(ctx: Context) -> Section:
    b = ctx.budget
    sec = Section("cells", "2. Cell comparison")
    res: dict[str, Any] = {"budget": b.describe(), "seeds": b.seeds, "tasks": {}}
    from tqdm.auto import tqdm

    jobs = [(t, c, s) for t in TASKS for c in STUDY_CELLS for s in range(b.seeds)]
    bar = tqdm(jobs, desc="cells", unit="run", disable=not ctx.progress, file=__import__("sys").stderr)
    runs: dict[tuple[str, str, int], dict] = {}
    for task, cell, seed in bar:
        bar.set_postfix_str(f"{task} {cell} seed {seed}")
        r = train_name_task(ctx, task_config(b, task, cell, seed), desc=f"{task} {cell} s{seed}")
        ctx.cache[(task, cell, seed)] = r
        runs[(task, cell, seed)] = r
    sec.p(
        f"All cells train on the same grouped split (no name string in two splits), seed 0 for the split, "
        f"with the same {b.describe()}. Model seeds 0..{b.seeds - 1}; numbers are mean ± sample standard "
        f"deviation over seeds."
        + (
            f" Spreads need at least 3 seeds: this is a reduced run with {b.seeds}, so the spreads are rough."
            if b.seeds < 3
            else ""
        )
    )
    for task, (title, data, metrics) in TASKS.items():
        tr: dict[str, Any] = {"data": data, "cells": {}}
        res["tasks"][task] = tr
        for cell in STUDY_CELLS:
            rr = [runs[(task, cell, s)] for s in range(b.seeds)]
            entry: dict[str, Any] = {
                "parameters": rr[0]["fit"].parameters,
                "training_seconds": mean_sd(r["fit"].seconds for r in rr),
                "diverged_runs": sum(r["fit"].diverged for r in rr),
            }
            for key, split, _, _ in metrics:
                entry[f"{split}_{key}"] = mean_sd(r[split].get(key) for r in rr)
            entry["runs"] = [
                {
                    "seed": s,
                    "valid": r["valid"],
                    "test": r["test"],
                    "valid_curve": r["fit"].valid_curve,
                    "final_train_loss": r["fit"].step_losses[-1] if r["fit"].step_losses else None,
                }
                for s, r in enumerate(rr)
            ]
            tr["cells"][cell] = entry
        headers = ["cell", "parameters", "training time (s)"] + [m[2] for m in metrics]
        rows = [
            [CELL_NAMES[c], f"{tr['cells'][c]['parameters']:,}", pm(tr["cells"][c]["training_seconds"], 1)]
            + [pm(tr["cells"][c][f"{split}_{key}"]) for key, split, _, _ in metrics]
            for c in STUDY_CELLS
        ]
        sec.p(f"<b>{title}</b> ({data}).")
        sec.table(
            headers,
            rows,
            f"{title}: mean ± sd over {b.seeds} seeds; training time is wall-clock on a "
            "shared CPU, so treat it as rough.",
        )
        words = []
        for key, split, label, higher in metrics:
            words.append(rank_sentence(label, {c: tr["cells"][c][f"{split}_{key}"] for c in STUDY_CELLS}, higher))
        sec.p(" ".join(words))
        # loss curves
        fig, ax = new_figure(1, 1, (8, 4.5))
        ax = ax[0, 0]
        for cell in STUDY_CELLS:
            rr = [runs[(task, cell, s)] for s in range(b.seeds)]
            n = min(len(r["fit"].step_losses) for r in rr)
            if n == 0:
                continue
            tl = np.mean([smooth(r["fit"].step_losses[:n], max(1, n // 10)) for r in rr], 0)
            ax.plot(np.arange(1, n + 1), tl, color=CELL_COLORS[cell], lw=1.2, label=f"{CELL_NAMES[cell]} train")
            steps = [s for s, _ in rr[0]["fit"].valid_curve]
            if steps:
                vl = np.nanmean([[v for _, v in r["fit"].valid_curve][: len(steps)] for r in rr], 0)
                ax.plot(steps, vl, color=CELL_COLORS[cell], ls="--", marker="o", ms=4)
        ax.set_xlabel("training step (batches)")
        ax.set_ylabel("loss (nats" + ("/char" if task in ("generate",) else "") + ")")
        ax.set_title(f"{title}: training (solid, smoothed) and validation (dashed) loss")
        ax.legend(fontsize=8, ncol=2)
        png = ctx.save(fig, f"cells_loss_{task}.png")
        sec.figure(
            png,
            f"{title}: loss per training step for each cell, averaged over {b.seeds} seeds "
            "(solid: training loss, moving average; dashed with dots: validation loss). "
            "What to see: which cells fall fastest and whether validation follows training.",
        )
    samples = {}
    for cell in STUDY_CELLS:
        r = runs[("generate", cell, 0)]
        samples[cell] = sample(r["model"], r["tok"], 10, temperature=1.0, seed=0)
    res["samples"] = samples
    sec.table(
        ["cell", "ten sampled surnames (seed-0 model, temperature 1.0)"],
        [[CELL_NAMES[c], ", ".join(s.title() or "(empty)" for s in samples[c])] for c in STUDY_CELLS],
        "Unconditional surname samples from each cell's generator.",
    )
    ctx.results["cells"] = res
    return sec
