"""Part 4: the gender classifier with BCE on one logit versus 2-class NLL on a softmax."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..evaluate import classifier_logprobs
from ..models import CharClassifier
from ..tasks import model_spec
from .common import Context, Section, mean_sd, new_figure, pm, split_for, task_config, train_name_task


def _softmax_loss(m, b):
    target = torch.stack([1 - b.y, b.y], 1)  # soft labels: [P(M), P(F)]
    return nn.functional.cross_entropy(m(b.ids, b.lengths), target)


def run(ctx: Context) -> Section:
    bud = ctx.budget
    sec = Section("gender_loss", "4. Gender: BCE on one logit vs 2-class softmax NLL")
    sp = split_for(ctx, "gender")
    runs: dict[str, list[dict]] = {"bce": [], "softmax": []}
    for seed in range(bud.seeds):
        cfg = task_config(bud, "gender", "lstm", seed)
        spec = model_spec(cfg, len(sp.tok), ["M", "F"])
        torch.manual_seed(seed)
        runs["bce"].append(
            ctx.cache.get(("gender", "lstm", seed)) or train_name_task(ctx, cfg, desc=f"gender BCE s{seed}")
        )
        spec2 = {k: v for k, v in spec.items() if k not in ("kind", "binary")}
        spec2["num_classes"] = 2
        torch.manual_seed(seed)
        runs["softmax"].append(
            train_name_task(
                ctx,
                cfg,
                desc=f"gender softmax s{seed}",
                model=CharClassifier(binary=False, **spec2),
                loss_fn=_softmax_loss,
            )
        )
    names = {"bce": "BCE, 1 logit (sigmoid)", "softmax": "NLL, 2 logits (softmax)"}
    res: dict[str, dict[str, Any]] = {}
    for k, rr in runs.items():
        res[k] = {
            "test_roc_auc": mean_sd(r["test"]["roc_auc"] for r in rr),
            "test_accuracy": mean_sd(r["test"]["accuracy"] for r in rr),
            "parameters": rr[0]["fit"].parameters,
            "final_valid_loss": mean_sd(r["fit"].valid_curve[-1][1] if r["fit"].valid_curve else None for r in rr),
        }
    ctx.results["gender_loss"] = res
    sec.table(
        ["loss", "parameters", "test ROC AUC", "test accuracy", "final validation loss (nats/name)"],
        [
            [
                names[k],
                res[k]["parameters"],
                pm(res[k]["test_roc_auc"]),
                pm(res[k]["test_accuracy"]),
                pm(res[k]["final_valid_loss"]),
            ]
            for k in runs
        ],
        f"LSTM gender classifier, same data, budget and seeds ({bud.seeds}); both losses use the soft "
        "label (female share of births).",
    )
    a, b = res["bce"]["test_roc_auc"], res["softmax"]["test_roc_auc"]
    if a["mean"] is not None and b["mean"] is not None:
        gap = a["mean"] - b["mean"]
        spread = max(a["sd"], b["sd"])
        if abs(gap) <= spread or a["n"] < 2:
            verdict = (
                f"The ROC AUCs ({pm(a)} with BCE, {pm(b)} with softmax) differ by {abs(gap):.3f}, within "
                "the seed-to-seed spread: on these numbers the choice of loss does not matter."
            )
        else:
            hi, lo = (
                (f"BCE ({pm(a)})", f"the softmax NLL ({pm(b)})")
                if gap > 0
                else (f"the softmax NLL ({pm(b)})", f"BCE ({pm(a)})")
            )
            verdict = (
                f"ROC AUC was higher with {hi} than with {lo}, by {abs(gap):.3f}, more than the "
                "seed-to-seed spread; with this few seeds and so small a gap treat that as tentative."
            )
    else:
        verdict = "ROC AUC is undefined here (only one sex in the test split)."
    sec.p(
        "Why they should agree: a softmax over two logits z<sub>M</sub>, z<sub>F</sub> gives "
        "P(F) = σ(z<sub>F</sub> − z<sub>M</sub>), so the 2-class NLL is exactly BCE on the logit difference; "
        "the second output only adds a redundant direction (one more row of weights) that the loss cannot "
        "see. BCE on one logit is therefore the leaner choice for a two-way label, and it takes the soft label "
        "directly. " + verdict
    )
    fig, axes = new_figure(1, 2, (12, 4.2))
    from sklearn.metrics import roc_curve

    for k, color in (("bce", "tab:blue"), ("softmax", "tab:orange")):
        r0 = runs[k][0]
        axes[0, 0].plot(
            np.arange(1, len(r0["fit"].step_losses) + 1),
            r0["fit"].step_losses,
            color=color,
            alpha=0.5,
            lw=0.8,
            label=f"{names[k]} train",
        )
        if r0["fit"].valid_curve:
            s, v = zip(*r0["fit"].valid_curve)
            axes[0, 0].plot(s, v, color=color, ls="--", marker="o", label=f"{names[k]} valid")
        test = sp.test
        y = np.array([r.female_share >= 0.5 for r in test.records])
        p = np.exp(classifier_logprobs(r0["model"], r0["tok"], test.names)[:, 1])
        if len(np.unique(y)) == 2:
            fpr, tpr, _ = roc_curve(y, p)
            axes[0, 1].plot(fpr, tpr, color=color, label=f"{names[k]} (seed 0)")
    axes[0, 0].set_xlabel("training step (batches)")
    axes[0, 0].set_ylabel("loss (nats per name)")
    axes[0, 0].set_title("Loss curves (seed 0)")
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].plot([0, 1], [0, 1], color="0.6", ls=":", label="chance")
    axes[0, 1].set_xlabel("false positive rate (male names called female)")
    axes[0, 1].set_ylabel("true positive rate (female names found)")
    axes[0, 1].set_title("ROC curves on the test split")
    axes[0, 1].legend(fontsize=8)
    png = ctx.save(fig, "gender_loss.png")
    sec.figure(
        png,
        "Left: training and validation loss for the two losses (same units: nats per name with soft "
        "labels). Right: test ROC curves. What to see: the two curves should nearly coincide, since "
        "the losses are the same function of the logit difference.",
    )
    return sec
