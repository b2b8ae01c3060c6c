"""Calibration of a classifier's probabilities: how far its confidence is from how often it is right,
and the one correction the package applies (temperature scaling). NumPy only, like
:mod:`namemodels.inference.name_table`, whose rule takes the tempered probabilities.

**Targets as counts.** Every function here scores predictions against a ``counts`` array
``(items, labels)``: the births per sex of a first name, the lines per language of a surname, or a
one-hot row for a single labelled line. An item weighs its total count (births- or line-weighted
metrics); an item whose counts are all zero weighs nothing.

**Temperature scaling.** A model's log-probabilities ``logp`` (any normalisation) become
``log softmax(logp / T)``: ``T > 1`` softens an over-confident model, ``T < 1`` sharpens an
under-confident one, the top label never changes. ``T`` minimises the count-weighted log-loss on
predictions for names the model never saw (a validation part, or out-of-fold predictions of a
cross-validation), never on its own training names, where every network is over-confident.

**Expected calibration error** (ECE): the items are put in ``bins`` equal-width bins by their top
probability (confidence); ECE is the weight-averaged ``|accuracy - confidence|`` over the bins, where an
item's accuracy is the share of its counts that carry its top label. The bins themselves are the
reliability diagram.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "temper",
    "log_loss",
    "calibration_bins",
    "expected_calibration_error",
    "fit_temperature",
    "choose_temperature",
    "BINS",
]

BINS = 15
T_RANGE = (0.05, 20.0)  # the temperatures searched (a model outside this range is broken, not miscalibrated)


def temper(logp: np.ndarray, temperature: float) -> np.ndarray:
    """``log softmax(logp / temperature)`` along the last axis (float32 in, float32 out; ``T == 1``
    returns ``logp`` unchanged, so an uncalibrated model costs nothing)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be above 0, got {temperature!r}")
    if temperature == 1.0:
        return logp
    return temper64(logp, temperature).astype(np.float32)


def temper64(logp: np.ndarray, temperature: float) -> np.ndarray:
    """:func:`temper`'s steps in float64, kept in float64 (for callers that chain further steps)."""
    z = np.asarray(logp, np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def temper_row(logp: Sequence[float], temperature: float) -> list[float]:
    """:func:`temper64` of one row of log-probabilities, in Python floats: the same result, for a single
    name, where NumPy's per-call cost (~1 µs a call, more with cold caches after the network's run)
    outweighs 18 numbers' arithmetic. ``logp`` must be log-probabilities (a log-softmax, as the network
    gives): its largest value is at least ``-log(labels)``, so ``exp(logp / T)`` cannot overflow or all
    underflow and, unlike :func:`temper64`, no shift by the maximum is needed. Agrees with
    :func:`temper64` to float64 rounding."""
    z = [v / temperature for v in logp]
    norm = math.log(sum(map(math.exp, z)))
    return [v - norm for v in z]


def _rows(logp: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logp, counts = np.asarray(logp, np.float64), np.asarray(counts, np.float64)
    if logp.shape != counts.shape or logp.ndim != 2:
        raise ValueError(f"logp {logp.shape} and counts {counts.shape} must both be (items, labels)")
    keep = counts.sum(axis=1) > 0
    return logp[keep], counts[keep]


def log_loss(logp: np.ndarray, counts: np.ndarray) -> float:
    """Count-weighted log-loss, ``-sum(counts * logp) / sum(counts)`` (nats per birth or line)."""
    lp, n = _rows(logp, counts)
    return float(-(n * lp).sum() / max(n.sum(), 1e-300))


def calibration_bins(logp: np.ndarray, counts: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """The reliability diagram: for each of ``bins`` equal-width confidence bins that holds any weight,
    its range, mean confidence, accuracy and weight (share of all counts)."""
    lp, n = _rows(logp, counts)
    total = n.sum(axis=1)
    top = lp.argmax(axis=1)
    conf = np.exp(lp[np.arange(len(lp)), top])
    right = n[np.arange(len(n)), top] / total
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    weight_all = max(total.sum(), 1e-300)
    out = []
    for b in range(bins):
        sel = which == b
        w = total[sel].sum()
        if w > 0:
            out.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "confidence": float((conf[sel] * total[sel]).sum() / w),
                    "accuracy": float((right[sel] * total[sel]).sum() / w),
                    "weight": float(w / weight_all),
                }
            )
    return out


def expected_calibration_error(logp: np.ndarray, counts: np.ndarray, bins: int = BINS) -> float:
    """ECE: the weight-averaged gap between accuracy and confidence over :func:`calibration_bins`."""
    return float(sum(b["weight"] * abs(b["accuracy"] - b["confidence"]) for b in calibration_bins(logp, counts, bins)))


def fit_temperature(logp: np.ndarray, counts: np.ndarray) -> float:
    """The temperature that minimises :func:`log_loss` of :func:`temper` ``(logp, T)``. The loss is
    convex in ``1/T`` (a log-sum-exp of a linear function), so a golden-section search on ``1/T``
    over :data:`T_RANGE` finds its minimum."""
    lp, n = _rows(logp, counts)
    lp = lp - lp.max(axis=1, keepdims=True)

    def loss(beta: float) -> float:
        z = lp * beta
        return float(-(n * (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))).sum())

    lo, hi = 1.0 / T_RANGE[1], 1.0 / T_RANGE[0]
    g = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = loss(a), loss(b)
    for _ in range(80):  # the bracket shrinks by 0.618 a step: far below float noise in 1/T
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = loss(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = loss(b)
    return float(1.0 / ((lo + hi) / 2.0))


def choose_temperature(
    logp: np.ndarray, counts: np.ndarray, seed: int = 0, groups: np.ndarray | None = None
) -> tuple[float, dict]:
    """Fit a temperature on held-out predictions and keep it only where it lowers the error: the items
    are cut in two halves at random (or by ``groups``, an int per item), each half's fitted temperature
    is scored on the other half, and ``T`` (fitted on all items) is kept when that cross-fitted log-loss
    is below the untempered one; otherwise ``T = 1``. Returns ``(T, report)`` with the log-loss and ECE
    before and after."""
    lp, n = np.asarray(logp, np.float64), np.asarray(counts, np.float64)
    half = (np.random.default_rng(seed).random(len(lp)) < 0.5) if groups is None else (np.asarray(groups) % 2 == 0)
    crossed, plain = 0.0, 0.0
    for a, b in ((half, ~half), (~half, half)):
        if n[a].sum() > 0 and n[b].sum() > 0:
            t = fit_temperature(lp[a], n[a])
            w = n[b].sum()
            crossed += log_loss(temper(lp[b], t), n[b]) * w
            plain += log_loss(lp[b], n[b]) * w
    fitted = fit_temperature(lp, n)
    keep = crossed < plain
    t = fitted if keep else 1.0
    report = {
        "fitted": round(fitted, 6),
        "kept": bool(keep),
        "cross_fitted_log_loss": round(crossed / max(n.sum(), 1e-300), 6),
        "untempered_log_loss": round(plain / max(n.sum(), 1e-300), 6),
        "log_loss_before": round(log_loss(lp, n), 6),
        "log_loss_after": round(log_loss(temper(lp, t), n), 6),
        "ece_before": round(expected_calibration_error(lp, n), 6),
        "ece_after": round(expected_calibration_error(temper(lp, t), n), 6),
        "items": int((n.sum(axis=1) > 0).sum()),
    }
    return t, report
