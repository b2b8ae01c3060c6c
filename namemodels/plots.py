"""Evaluation figures: confusion matrix for classifiers, ROC curve for gender models, accuracy against
coverage, and the reliability diagram of calibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from .data.records import NameDataset
from .evaluate import classifier_logprobs, lm_scores
from .tokenizer import CharTokenizer


def _labels_and_scores(config, model, tok, ds):
    if config["task"] == "classify":
        index = {label: i for i, label in enumerate(config["labels"])}
        recs = [r for r in ds.records if r.label in index]
        return np.array([index[r.label] for r in recs]), classifier_logprobs(model, tok, [r.name for r in recs])
    soft = np.array(ds.female_shares)
    if config["task"] == "gender":
        p = np.exp(classifier_logprobs(model, tok, ds.names)[:, 1])
    else:
        p = lm_scores(model, tok, ds.names)[2]
    return (soft >= 0.5).astype(int), p


def classification_report(config: dict, model: nn.Module, tok: CharTokenizer, ds: NameDataset) -> str:
    from sklearn.metrics import classification_report as report

    y, logp = _labels_and_scores(config, model, tok, ds)
    labels = config["labels"]
    return report(y, logp.argmax(1), labels=range(len(labels)), target_names=labels, digits=3, zero_division=0)


def evaluation_plot(config: dict, model: nn.Module, tok: CharTokenizer, ds: NameDataset, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y, scores = _labels_and_scores(config, model, tok, ds)
    if config["task"] == "classify":
        labels = config["labels"]
        cm = np.zeros((len(labels), len(labels)))
        np.add.at(cm, (y, scores.argmax(1)), 1)
        cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        fig, ax = plt.subplots(figsize=(9, 8))
        im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, rotation=90)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted language")
        ax.set_ylabel("true language")
        ax.set_title(f"Confusion matrix (rows normalised), n={len(y)}")
        fig.colorbar(im, ax=ax, label="fraction of the true language's names")
    elif scores is None:
        raise ValueError("this model has no classification output to plot")
    else:
        from sklearn.metrics import roc_auc_score, roc_curve

        fpr, tpr, _ = roc_curve(y, scores)
        fig, ax = plt.subplots(figsize=(6, 6))
        ax.plot(fpr, tpr, label=f"model (AUC {roc_auc_score(y, scores):.3f})")
        ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
        ax.set_xlabel("false positive rate (male names called female)")
        ax.set_ylabel("true positive rate (female names called female)")
        ax.set_title(f"ROC curve over unique names, n={len(y)}")
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def coverage_plot(curve: list[dict], path: str | Path, title: str = "") -> None:
    """Accuracy against coverage (``evaluate --coverage-plot``), each point labelled with its min_prob."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [c for c in curve if c["accuracy"] is not None]
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([c["coverage"] for c in points], [c["accuracy"] for c in points], "o-")
    for c in points:
        ax.annotate(f"{c['min_prob']:g}", (c["coverage"], c["accuracy"]), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("coverage (share answered, the rest 'unknown')")
    ax.set_ylabel("accuracy of the answers given")
    ax.set_title(title or "Accuracy against coverage, points labelled with --min-prob")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SOURCE_NAMES = {
    "model": "model alone",
    "model_tempered": "model, tempered",
    "combined": "model + name table (what users see)",
}


def reliability_plot(calibration: dict, path: str | Path, title: str = "") -> None:
    """The reliability diagram of ``evaluate``'s ``calibration`` section: for each source, accuracy
    against mean confidence per confidence bin (marker area: the bin's share of births or lines), the
    diagonal of perfect calibration, and each source's ECE and log-loss in the legend; below, the
    share of weight per bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = [k for k in calibration if isinstance(calibration[k], dict) and "reliability" in calibration[k]]
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6, 7.5), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    width = 1.0 / max(1, calibration.get("bins", 15)) / (len(sources) + 1)
    for k, name in enumerate(sources):
        bins = calibration[name]["reliability"]
        conf = [b["confidence"] for b in bins]
        acc = [b["accuracy"] for b in bins]
        weight = np.array([b["weight"] for b in bins])
        (line,) = ax.plot(
            conf,
            acc,
            "o-",
            label=f"{SOURCE_NAMES.get(name, name)}: ECE {calibration[name]['ece']:.4f}, "
            f"log-loss {calibration[name]['log_loss']:.4f}",
        )
        ax.scatter(conf, acc, s=20 + 400 * weight, color=line.get_color(), alpha=0.3)
        hist.bar(
            [b["low"] + (k + 0.5) * width for b in bins], weight, width=width, color=line.get_color(), align="edge"
        )
    unit = calibration.get("weighting", "items")
    ax.set_ylabel(f"accuracy ({unit}-weighted)")
    ax.set_title(title or "Reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    lo = min([b["low"] for name in sources for b in calibration[name]["reliability"]] + [0.5])
    low_acc = min([b["accuracy"] for name in sources for b in calibration[name]["reliability"]] + [lo])
    ax.set_xlim(lo, 1)
    ax.set_ylim(max(0.0, low_acc - 0.05), 1.02)
    hist.set_xlabel("confidence (probability of the top label)")
    hist.set_ylabel(f"share of {unit}")
    hist.set_yscale("log")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
