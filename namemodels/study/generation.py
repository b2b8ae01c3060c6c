"""Part 11: generation beyond names: chemical elements, and any one-item-per-line file (--lines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..batching import batches
from ..models import build_model
from ..tasks import make_task, model_spec
from .common import Context, FitResult, Section, Split, fit, new_figure, sample, task_config

TEMPERATURES = (0.5, 1.0, 1.5)


def train_lines(ctx: Context, path: Path) -> tuple[FitResult, Split, dict]:
    """A next-character model trained on every line of ``path``: the fit, the data and its metrics on it."""
    b = ctx.budget
    sp = ctx.data.lines(path)
    train = sp.full  # small files: train on every item, report the training NLL and novelty
    cfg = task_config(b, "generate", "lstm", 0, batch_size=min(b.batch_size, 32))
    model = build_model(model_spec(cfg, len(sp.tok), []))
    task = make_task(cfg, [])

    def batch_iter(epoch):
        rng = np.random.default_rng([0, epoch])
        for idx in batches(len(train), cfg.batch_size, rng):
            yield task.batch(sp.tok, train, idx, rng)

    steps = -(-len(train) // cfg.batch_size)
    r = fit(
        model,
        batch_iter,
        task.loss,
        b.gen_epochs,
        lr=5e-3,
        steps_per_epoch=steps,
        desc=f"generate {path.name}",
        progress=ctx.progress,
    )
    metrics = task.metrics(r.model, sp.tok, train)
    return r, sp, metrics


def run(ctx: Context) -> Section:
    sec = Section("generation", "11. Generation beyond names")
    files = [("elements", ctx.data.elements_path)] + ([("lines", Path(ctx.lines))] if ctx.lines else [])
    res: dict[str, Any] = {"temperatures": list(TEMPERATURES), "files": {}}
    fig, axes = new_figure(1, len(files), (6 * len(files), 4))
    for j, (key, path) in enumerate(files):
        r, sp, metrics = train_lines(ctx, path)
        known = {n.lower() for n in sp.full.names}
        samples = {str(t): sample(r.model, sp.tok, 10, t, seed=1) for t in TEMPERATURES}
        novelty = {t: float(np.mean([s not in known for s in v])) for t, v in samples.items()}
        res["files"][key] = {
            "path": str(path),
            "items": len(sp.full),
            "epochs": ctx.budget.gen_epochs,
            "train_nll": metrics["nll"],
            "train_perplexity": metrics["perplexity"],
            "samples": samples,
            "novel_fraction": novelty,
            "seconds": r.seconds,
        }
        ax = axes[0, j]
        ax.plot(np.arange(1, len(r.step_losses) + 1), r.step_losses, color="tab:red")
        ax.set_xlabel("training step (batches)")
        ax.set_ylabel("training loss (nats per character)")
        ax.set_title(f"{path.name}: {len(sp.full)} items")
        sec.table(
            ["temperature", "ten samples", "not in the training file"],
            [[t, ", ".join(s.title() or "(empty)" for s in v), f"{novelty[t]:.0%}"] for t, v in samples.items()],
            f"Samples from an LSTM trained on {path.name} ({len(sp.full)} items, {ctx.budget.gen_epochs} epochs; "
            f"training perplexity {metrics['perplexity']:.2f}).",
        )
        lo, hi = str(TEMPERATURES[0]), str(TEMPERATURES[-1])
        sec.p(
            f"{path.name}: at temperature {lo} {novelty[lo]:.0%} of the samples were new strings, at {hi} "
            f"{novelty[hi]:.0%}; lower temperature sharpens the distribution towards the training items, higher "
            "flattens it towards random letters."
        )
    if not ctx.lines:
        sec.p("No --lines FILE was given, so only the element names were modelled.")
    png = ctx.save(fig, "generation_loss.png")
    sec.figure(
        png,
        "Training loss per step of the generators (one item per line; nats per character). What to "
        "see: whether the loss has levelled off. On files this small a generator can memorise its "
        "training items, so the share of samples not in the file (tables above) is the check.",
    )
    ctx.results["generation"] = res
    return sec
