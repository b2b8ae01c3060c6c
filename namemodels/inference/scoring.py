"""What the predictor and file scoring (:mod:`namemodels.bulk`) share: how many names are scored
together, and how a gender model's answer is called. A leaf module, so that bulk scoring need not
import the predictor (which imports bulk scoring for ``predict_frame``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: numpy is imported where it is used
    from numpy.typing import ArrayLike

# Names validated, de-duplicated and sorted by length together: a bigger chunk pads less and finds more
# repeats, a smaller one bounds the memory of streaming callers (predict_iter, bulk scoring).
CHUNK = 65536
# Names per network call. Within a length-sorted chunk, 256 ran 2.5x faster than 1,024 (33k vs 13.5k
# distinct surnames/s on 2 cores): the (batch, length, 4 x hidden) activations of a 1,024 batch fall
# out of the cache, and ONNX Runtime's memory arena grows with them (~270 MB vs ~90 MB).
BATCH = 256


def gender_call(p_female: float) -> tuple[str, float]:
    """The sex a name is called and how sure: ``("F", p)`` when ``p = P(F) >= 0.5``, else ``("M", 1 - p)``."""
    return ("F", p_female) if p_female >= 0.5 else ("M", 1.0 - p_female)


UNKNOWN = "unknown"  # the label of an answer held back by ``min_prob``


def check_min_prob(min_prob: object) -> float | None:
    """``min_prob`` as given to predict/gender (``None``: always answer), else :class:`UsageError`."""
    from ..errors import UsageError

    if min_prob is None:
        return None
    if isinstance(min_prob, bool) or not isinstance(min_prob, (int, float)) or not 0.0 <= float(min_prob) <= 1.0:
        raise UsageError(
            f"min_prob must be a probability from 0 to 1, got {min_prob!r}: e.g. 0.8 answers "
            "'unknown' when the likeliest label has less than 80%"
        )
    return float(min_prob)


def held_back(label: str, probability: float, min_prob: float | None) -> str | None:
    """Why an answer is ``unknown`` (its best ``probability`` is below ``min_prob``), or None to answer."""
    if min_prob is None or probability >= min_prob:
        return None
    return f"best probability {probability:.3f} ({label}) is below min_prob {min_prob:g}"


COVERAGE_STEPS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)  # the min_prob values ``evaluate`` reports


def coverage_curve(
    probability: ArrayLike, right: ArrayLike, weight: ArrayLike | None = None, steps: Sequence[float] = COVERAGE_STEPS
) -> list[dict]:
    """Accuracy against coverage, to choose ``min_prob``: for each ``P`` in ``steps``, the (weighted)
    share of answers whose best ``probability`` is at least ``P`` (``coverage``) and their accuracy.
    ``right``: per answer, 1 when right and 0 when wrong (or the share of its births or lines that the
    answer gets right); ``weight``: births or lines per answer (default 1). Accuracy is None where no
    answer is left."""
    import numpy as np

    prob, hit = np.asarray(probability, np.float64), np.asarray(right, np.float64)
    w = np.ones(len(prob)) if weight is None else np.asarray(weight, np.float64)
    total = float(w.sum())
    out = []
    for p in steps:
        keep = prob >= p
        kept = float(w[keep].sum())
        out.append(
            {
                "min_prob": p,
                "coverage": kept / total if total else None,
                "accuracy": float((w[keep] * hit[keep]).sum()) / kept if kept else None,
            }
        )
    return out
