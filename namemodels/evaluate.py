"""Metrics for every task on a split and the model card (the plots of them live in ``plots.py``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, cast

import numpy as np
import torch
from torch import nn

from .batching import IGNORE, encode_batch, label_ids, next_char_pairs
from .data.records import NameDataset
from .data.run_parts import describe_split
from .errors import UsageError
from .fileio import atomic_write_text
from .tokenizer import CharTokenizer


@torch.no_grad()
def classifier_logprobs(model: nn.Module, tok: CharTokenizer, names: Sequence[str], batch: int = 1024) -> np.ndarray:
    out = []
    dev = next(model.parameters()).device
    # a classifier's method (nn.Module's attributes are typed as tensors or modules)
    log_probs = cast("Callable[[torch.Tensor, torch.Tensor], torch.Tensor]", model.log_probs)
    for i in range(0, len(names), batch):
        ids, lengths = encode_batch(tok, names[i : i + batch])
        out.append(log_probs(torch.from_numpy(ids).to(dev), torch.from_numpy(lengths).to(dev)).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


@torch.no_grad()
def lm_scores(
    model: nn.Module,
    tok: CharTokenizer,
    names: Sequence[str],
    categories: Sequence[int] | None = None,
    batch: int = 1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-name summed NLL (nats), token counts (characters + end marker), and, for multitask
    models, the female probability."""
    nll, tokens, female = [], [], []
    dev = next(model.parameters()).device
    for i in range(0, len(names), batch):
        pairs = next_char_pairs(tok, names[i : i + batch])
        tokens.append(pairs[2])
        inputs, targets, lengths = (torch.from_numpy(a).to(dev) for a in pairs)
        if hasattr(model, "gender_head"):
            logits, g, _ = model(inputs, lengths)
            female.append(torch.sigmoid(g).cpu().numpy())
        else:
            cat = torch.tensor(list(categories[i : i + batch]), device=dev) if categories is not None else None
            logits, _ = model(inputs, lengths, cat)
        loss = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none", ignore_index=IGNORE)
        nll.append(loss.sum(1).cpu().numpy())
    joined = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    return joined(nll), joined(tokens), (joined(female) if female else None)


def classification_metrics(
    y_true: np.ndarray,
    logp: np.ndarray,
    labels: Sequence[str],
    names: Sequence[str] | None = None,
    interval: bool = False,
) -> dict:
    """Accuracy and F1 over lines; with ``names``, also accuracy over distinct names, and with
    ``interval`` the bootstrap interval of the accuracy (~60 ms on 1,800 lines: for reports, not for
    every epoch)."""
    from sklearn.metrics import f1_score

    pred = logp.argmax(1)
    metrics = {
        "accuracy": float((pred == y_true).mean()),
        "macro_f1": float(f1_score(y_true, pred, average="macro", labels=range(len(labels)), zero_division=0)),
        "weighted_f1": float(f1_score(y_true, pred, average="weighted", zero_division=0)),
    }
    if names is not None and len(y_true):
        metrics.update(
            name_level_accuracy(pred == y_true, list(zip(names, y_true.tolist())), resamples=2000 if interval else 0)
        )
    return {**metrics, "n": int(len(y_true))}


def name_level_accuracy(correct: np.ndarray, keys: Sequence, resamples: int = 2000, seed: int = 0) -> dict:
    """Accuracy over distinct keys (name, label), and (``resamples`` > 0) a 95% bootstrap interval of
    the line accuracy that draws whole keys: the lines of a repeated name are right or wrong together,
    so they are one draw, not many (the surname files repeat some names dozens of times)."""
    index: dict = {}
    group = np.array([index.setdefault(k, len(index)) for k in keys], dtype=np.int64)
    lines = np.bincount(group, minlength=len(index))
    right = np.bincount(group, weights=correct.astype(float), minlength=len(index))
    out: dict = {"accuracy_unique": float(np.mean(right / lines))}
    if resamples:
        draws = np.random.default_rng(seed).integers(0, len(index), size=(resamples, len(index)))
        lo, hi = np.percentile(right[draws].sum(1) / lines[draws].sum(1), [2.5, 97.5])
        out["accuracy_ci95"] = [float(lo), float(hi)]
    return out


def gender_metrics(p_female: np.ndarray, soft: np.ndarray, weight: np.ndarray) -> dict:
    """ROC AUC over unique names (label = majority sex) and weighted by births."""
    from sklearn.metrics import roc_auc_score

    y = (soft >= 0.5).astype(int)
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p_female)) if both else float("nan"),
        "roc_auc_weighted": float(roc_auc_score(y, p_female, sample_weight=weight)) if both else float("nan"),
        "accuracy": float(((p_female >= 0.5) == y).mean()),
        "n": int(len(y)),
    }


def lm_metrics(nll: np.ndarray, tokens: np.ndarray) -> dict:
    mean = float(nll.sum() / max(1, tokens.sum()))
    return {"nll": mean, "perplexity": math.exp(mean), "n": int(len(nll)), "tokens": int(tokens.sum())}


NO_LABEL = "(no label)"  # how :func:`unknown_labels` counts the lines of a file without labels


def labels_read(config: dict) -> list[str] | None:
    """The labels a model reads from each line of the data it is evaluated on (its classes, F and M
    for gender and multitask, a conditioned generator's categories), or None when it reads none (an
    unconditioned generator scores any names)."""
    task, labels = config["task"], list(config.get("labels") or [])
    if task in ("classify", "gender", "multitask") or (task == "generate" and config["model"].get("num_categories")):
        return labels
    return None


def unknown_labels(config: dict, ds: NameDataset) -> dict[str, int]:
    """``{label: lines}`` of the lines of ``ds`` whose label the model (its ``config.json``) does not
    know, most lines first; lines without a label count under :data:`NO_LABEL`. Empty when every
    line fits, or when the model reads no labels."""
    read = labels_read(config)
    if read is None:
        return {}
    known = set(read)
    counts: dict[str, int] = {}
    for record, lines in ds.distinct():
        if record.label not in known:
            key = NO_LABEL if record.label is None else record.label
            counts[key] = counts.get(key, 0) + lines
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def describe_counts(counts: dict[str, int], limit: int = 8) -> str:
    """``"Klingon (3,301 lines), Vulcan (12 lines)"``, the first ``limit`` labels and how many more."""
    shown = [f"{label} ({n:,} line{'s' if n != 1 else ''})" for label, n in list(counts.items())[:limit]]
    more = len(counts) - limit
    return ", ".join(shown) + (f" and {more} more label{'s' if more != 1 else ''}" if more > 0 else "")


def known_label_part(
    config: dict, ds: NameDataset, where: str, skip_unknown: bool = False
) -> tuple[NameDataset, dict[str, int]]:
    """``(the lines of ds whose label the model knows, {label: lines} left out)``.

    Raises :class:`UsageError` when no line has a label the model knows (a gender model on language
    files; a file without labels), and, unless ``skip_unknown``, when some lines have labels it does
    not know: metrics over the other lines alone would read as complete. ``where`` names the data in
    the messages (e.g. ``"names/ (test split)"``)."""
    unknown = unknown_labels(config, ds)
    if not unknown:
        return ds, {}
    known = labels_read(config) or []  # not None: unknown labels were found
    left = sum(unknown.values())
    model_labels = ", ".join(known[:12]) + (f" and {len(known) - 12} more" if len(known) > 12 else "")
    if left == len(ds):
        what = (
            "has no labels"
            if list(unknown) == [NO_LABEL]
            else f"has labels the model does not know: {describe_counts(unknown)}"
        )
        raise UsageError(
            f"{where} does not fit this {config['task']} model: none of its {len(ds):,} lines has a label "
            f"the model knows ({model_labels}); it {what}. Evaluate the model on data of its task"
        )
    if not skip_unknown:
        raise UsageError(
            f"{where}: {left:,} of {len(ds):,} lines have labels the model does not know: "
            f"{describe_counts(unknown)} (it knows {model_labels}); metrics over the other "
            f"{len(ds) - left:,} lines would not describe this data. Pass --skip-unknown-labels to "
            "score those lines and report the ones left out, or remove the unknown labels from the data"
        )
    keep = set(known)
    mask = np.array([r.label in keep for r in ds.records], dtype=bool)
    return ds.where(mask), unknown


def evaluate_split(
    config: dict,
    model: nn.Module,
    tok: CharTokenizer,
    ds: NameDataset,
    interval: bool = False,
    logp: np.ndarray | None = None,
) -> dict:
    """The metrics of a model, described by its ``config.json``, on a dataset (a split or any loaded
    data): :func:`task_metrics` of its task and labels."""
    return task_metrics(
        config["task"],
        config["labels"],
        model,
        tok,
        ds,
        categories=config["task"] == "generate" and bool(config["model"].get("num_categories")),
        reverse=bool(config.get("train", {}).get("reverse_names")),
        interval=interval,
        logp=logp,
    )


def task_metrics(
    task: str,
    labels: Sequence[str],
    model: nn.Module,
    tok: CharTokenizer,
    ds: NameDataset,
    categories: bool = False,
    reverse: bool = False,
    interval: bool = False,
    logp: np.ndarray | None = None,
) -> dict:
    """The metrics of ``task`` on a dataset: accuracy and F1 over the lines whose label the model
    knows (classify), ROC AUC (gender), NLL and perplexity per character (generate; multitask also
    ROC AUC). ``categories``: a generator told each name's label; ``reverse``: a model that reads names
    backwards; ``interval``: classifiers' accuracy also gets its 95% interval over whole names (for
    reports and the final metrics); ``logp``: a classifier's log-probabilities of ``ds.names``, when
    the caller has them already."""
    names = [n[::-1] for n in ds.names] if reverse else ds.names
    if task == "classify":
        y = label_ids(labels, [r.label for r in ds.records], unknown=-1)
        known = np.flatnonzero(y >= 0).tolist()
        if not known:
            raise UsageError(
                f"none of the {len(y):,} lines has a label the model knows ({', '.join(labels)}): no metric to compute"
            )
        lp = classifier_logprobs(model, tok, [names[i] for i in known]) if logp is None else logp[known]
        return classification_metrics(y[known], lp, labels, [ds.records[i].name for i in known], interval)
    soft, weight = np.array(ds.female_shares), np.array(ds.weights)
    if task == "gender":
        lp = classifier_logprobs(model, tok, names) if logp is None else logp
        return gender_metrics(np.exp(lp[:, 1]), soft, weight)
    cats = (label_ids(labels, [r.label for r in ds.records], unknown=-1) + 1).tolist() if categories else None
    nll, tokens, female = lm_scores(model, tok, names, cats)
    metrics = lm_metrics(nll, tokens)
    if female is not None:
        metrics.update({k: v for k, v in gender_metrics(female, soft, weight).items() if k != "n"})
    return metrics


# ------------------------------------------------------------------- calibration and what users see


def target_counts(ds: NameDataset, labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """``(names, counts)`` of a dataset as the targets calibration scores against
    (:mod:`namemodels.inference.calibration`): one row per distinct name string, ``counts (names,
    labels)`` its births per sex (gender data: each name's total split by its female share) or its
    lines per label (a name on several lines, or under two labels, sums them). Lines whose label is
    not one of ``labels`` are left out."""
    column = {label: j for j, label in enumerate(labels)}
    row: dict[str, int] = {}
    sums: list[np.ndarray] = []
    gender = getattr(ds, "kind", "") == "gender"
    for r, lines in ds.distinct():
        if gender:
            share = r.female_share
            add = {"F": r.weight * share * lines, "M": r.weight * (1.0 - share) * lines}
        elif r.label in column:
            add = {r.label: float(lines)}
        else:
            continue
        i = row.setdefault(r.name, len(row))
        if i == len(sums):
            sums.append(np.zeros(len(labels), np.float64))
        for label, w in add.items():
            if label in column:
                sums[i][column[label]] += w
    counts = np.array(sums, np.float64).reshape(len(sums), len(labels))
    return list(row), counts


def weighted_macro_f1(pred: np.ndarray, counts: np.ndarray) -> float:
    """Macro-F1 with each item's counts as weighted true labels and ``pred`` its predicted label
    (``-1`` or any value outside the labels: no answer, wrong for every label's recall, no label's
    precision). As ``sklearn.metrics.f1_score(..., average="macro", labels=range(C), zero_division=0)``
    on the lines the counts stand for."""
    n = np.asarray(counts, np.float64)
    c = n.shape[1]
    total = n.sum(axis=1)
    tp, predicted = np.zeros(c), np.zeros(c)
    for j in range(c):
        mine = pred == j
        tp[j] = n[mine, j].sum()
        predicted[j] = total[mine].sum()
    actual = n.sum(axis=0)
    denom = predicted + actual
    f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
    return float(f1.mean())


def count_metrics(
    logp: np.ndarray | None,
    counts: np.ndarray,
    answered: np.ndarray | None = None,
    macro_f1: bool = False,
    bins: int = 15,
) -> dict:
    """Count-weighted metrics of one source of answers on items with target ``counts``: accuracy (the
    share of births or lines whose label is the answer; an item not ``answered`` counts wrong),
    and over the answered items log-loss and ECE (:mod:`namemodels.inference.calibration`), with
    ``macro_f1`` also macro-F1. ``weight``: the counts scored; ``answered_weight``: their share answered."""
    from .inference.calibration import expected_calibration_error, log_loss

    n = np.asarray(counts, np.float64)
    total = float(n.sum())
    ok = np.ones(len(n), bool) if answered is None else np.asarray(answered, bool)
    out: dict = {"weight": total, "names": int((n.sum(axis=1) > 0).sum())}
    if not len(n) or total <= 0:
        return {**out, "accuracy": None, "log_loss": None, "ece": None, **({"macro_f1": None} if macro_f1 else {})}
    pred = np.full(len(n), -1, np.int64)
    if logp is not None and ok.any():
        pred[ok] = np.asarray(logp)[ok].argmax(axis=1)
    right = np.where(pred >= 0, n[np.arange(len(n)), np.maximum(pred, 0)], 0.0)
    out["accuracy"] = float(right.sum() / total)
    if macro_f1:
        out["macro_f1"] = weighted_macro_f1(pred, n)
    scored = ok & (n.sum(axis=1) > 0)
    if logp is None or not scored.any():
        out.update(log_loss=None, ece=None, answered_weight=0.0)
        return out
    lp = np.asarray(logp, np.float64)[scored]
    out["log_loss"] = log_loss(lp, n[scored])
    out["ece"] = expected_calibration_error(lp, n[scored], bins)
    out["answered_weight"] = float(n[scored].sum() / total)
    return out


def calibration_section(sources: dict[str, np.ndarray], counts: np.ndarray, unit: str, bins: int = 15) -> dict:
    """``evaluate``'s ``calibration``: for each source of log-probabilities (``model``, and where they
    exist ``model_tempered``, ``combined``), its ``unit``-weighted log-loss, ECE and reliability bins."""
    from .inference.calibration import calibration_bins, expected_calibration_error, log_loss

    out: dict = {"weighting": unit, "bins": bins}
    for name, lp in sources.items():
        out[name] = {
            "log_loss": log_loss(lp, counts),
            "ece": expected_calibration_error(lp, counts, bins),
            "reliability": calibration_bins(lp, counts, bins),
        }
    return out


TABLE_PRIOR = 1.0  # "table alone": a prior of total strength one count, spread evenly over the labels


def table_alone(table_counts: np.ndarray) -> np.ndarray:
    """The table's own answer for known names: its counts' proportions under an even prior of total
    strength one count (Perks: ``(n_c + 1/C) / (N + 1)``; with two labels add-1/2), so that a label
    the table never saw is not log 0, as log-probabilities. Rows of unknown names (all counts 0) come
    out uniform and must be treated as unanswered."""
    t = np.asarray(table_counts, np.float64)
    c = t.shape[1]
    return np.log((t + TABLE_PRIOR / c) / (t.sum(axis=1, keepdims=True) + TABLE_PRIOR))


def compare_sources(
    counts: np.ndarray,
    model: np.ndarray,
    combined: np.ndarray,
    table_counts: np.ndarray,
    tempered: np.ndarray | None = None,
    subsets: dict[str, np.ndarray] | None = None,
    macro_f1: bool = False,
    bins: int = 15,
) -> dict:
    """What users see, part by part: for the items of each part (``all``, ``known``: in the name table,
    ``unseen``: not in it, and each of ``subsets``, a boolean mask per item) the :func:`count_metrics`
    of the model alone (``model``: the network; ``model_tempered``: with the model's temperature),
    the table alone (majority label of its counts, :func:`table_alone`; a name not in the table is
    answered "unknown" and counted wrong; log-loss and ECE over the known names only) and ``combined``
    (the predictor's answer). All arrays ``(items, labels)``, rows aligned."""
    n = np.asarray(counts, np.float64)
    tc = np.asarray(table_counts, np.float64)
    known = tc.sum(axis=1) > 0
    table_lp = table_alone(tc)
    parts = {"all": np.ones(len(n), bool), "known": known, "unseen": ~known, **(subsets or {})}
    sources = {
        "model": model,
        **({"model_tempered": tempered} if tempered is not None else {}),
        "table": table_lp,
        "combined": combined,
    }
    out: dict = {}
    for part, mask in parts.items():
        mask = np.asarray(mask, bool)
        rows = {}
        for name, lp in sources.items():
            answered = known[mask] if name == "table" else None
            rows[name] = count_metrics(np.asarray(lp)[mask], n[mask], answered, macro_f1, bins)
        out[part] = rows
    return out


def format_metric(v: Any) -> str:
    """One metric value as the model card and ``train`` print it (an interval as ``lo–hi``)."""
    if isinstance(v, list):
        return "–".join(f"{x:.3f}" for x in v)
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def write_model_card(out: Path, config: dict) -> None:
    last = list(config["metrics"].values())[-1]  # test, or train for a model trained on every line
    m = config["model"]
    d = config["data"]
    members = config.get("members") if m["kind"] == "ensemble" else None
    m = m["member"] if members else m
    lines = [
        f"# Model card: {Path(out).name}",
        "",
        f"- task: {config['task']}",
        f"- ensemble of {len(members)} members (seeds {', '.join(str(x['seed']) for x in members)}; the same "
        f"split), probabilities averaged; each member:"
        if members
        else None,
        f"- cell: {m['cell']} (embed {m['embed']}, hidden {m['hidden']}, "
        f"{'projected to ' + str(m['proj_size']) + ', ' if m.get('proj_size') else ''}"
        f"layers {m['layers']}{', bidirectional' if m.get('bidirectional') else ''}"
        f"{', pool ' + m['pool'] if m.get('pool', 'last') != 'last' else ''})"
        + (
            f"; wide part: hashed character 1..{m.get('ngram_max', 3)}-grams, {m['ngram_buckets']} buckets"
            if m.get("ngram_buckets")
            else ""
        ),
        f"- parameters: {config.get('parameters', '?'):,}" if isinstance(config.get("parameters"), int) else "",
        f"- weights stored as {config['train'].get('save_dtype', 'float32')} (the metrics below are theirs)",
        f"- training time: {config.get('training_seconds', '?')} s (CPU, 2 cores)",
        f"- trained by: `{config.get('command') or 'namemodels train'}`",
        f"- seed: {config['train']['seed']}",
        f"- data: `{d['path']}` ({d['names']} names), SHA-256 `{d['sha256']}`",
        describe_split(d["split"]),
        *(estimate_lines(config["cv"]) if config.get("cv") else []),
        "",
        "## Metrics",
        "",
        *(
            ["The `train` row is measured on lines the model was trained on: not an estimate of its quality.", ""]
            if "train" in config["metrics"]
            else []
        ),
        "| split | " + " | ".join(k for k in last) + " |",
        "|---" * (1 + len(last)) + "|",
    ]
    for split, vals in config["metrics"].items():
        lines.append(f"| {split} | " + " | ".join(format_metric(v) for v in vals.values()) + " |")
    atomic_write_text(Path(out) / "MODEL_CARD.md", "\n".join(line for line in lines if line is not None) + "\n")


def estimate_lines(estimate: dict) -> list[str]:
    """The model card's lines on the CV estimate of its expected quality."""
    folds = estimate["folds"]
    how = (
        "trained on all its training folds for the same epochs"
        if estimate["train_on"] == "all"
        else "early-stopped on a ninth of its training folds"
    )
    lines = [
        f"- expected quality: {folds}-fold grouped cross-validation of this recipe (each fold's model {how}; "
        f"mean ± sd over the held-out folds): "
        + ", ".join(f"{k} {v['mean']:.4f} ± {v['sd']:.4f}" for k, v in estimate["model"].items()),
        f"- strongest baseline on the same folds, {estimate['baseline']['name']}: "
        + ", ".join(
            f"{k} {v['mean']:.4f} ± {v['sd']:.4f}" for k, v in estimate["baseline"].items() if isinstance(v, dict)
        ),
        "- paired difference model − baseline: "
        + ", ".join(
            f"{k} {d['mean']:+.4f} ± {d['sd']:.4f} (model better in {d['model_better_folds']} of {folds} folds)"
            for k, d in estimate["difference"].items()
        ),
    ]
    if estimate.get("command"):
        lines.append(f"- cross-validated by: `{estimate['command']}`")
    return lines
