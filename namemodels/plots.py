"""Evaluation figures: confusion matrix for classifiers, ROC curve for gender models."""
from __future__ import annotations

import numpy as np

from .evaluate import classifier_logprobs, lm_scores


def _labels_and_scores(config, model, tok, ds):
    if config["task"] == "classify":
        index = {l: i for i, l in enumerate(config["labels"])}
        recs = [r for r in ds.records if r.label in index]
        return np.array([index[r.label] for r in recs]), classifier_logprobs(model, tok, [r.name for r in recs])
    soft = np.array(ds.female_shares)
    if config["task"] == "gender":
        p = np.exp(classifier_logprobs(model, tok, ds.names)[:, 1])
    else:
        p = lm_scores(model, tok, ds.names)[2]
    return (soft >= 0.5).astype(int), p


def classification_report(config, model, tok, ds) -> str:
    from sklearn.metrics import classification_report as report
    y, logp = _labels_and_scores(config, model, tok, ds)
    labels = config["labels"]
    return report(y, logp.argmax(1), labels=range(len(labels)), target_names=labels, digits=3, zero_division=0)


def evaluation_plot(config, model, tok, ds, path) -> None:
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


def coverage_plot(curve, path, title: str = "") -> None:
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
