"""What the predictor and file scoring (:mod:`namemodels.bulk`) share: how many names are scored
together, and how a gender model's answer is called. A leaf module, so that bulk scoring need not
import the predictor (which imports bulk scoring for ``predict_frame``)."""
from __future__ import annotations

from typing import Tuple

# Names validated, de-duplicated and sorted by length together: a bigger chunk pads less and finds more
# repeats, a smaller one bounds the memory of streaming callers (predict_iter, bulk scoring).
CHUNK = 65536
# Names per network call. Within a length-sorted chunk, 256 ran 2.5x faster than 1,024 (33k vs 13.5k
# distinct surnames/s on 2 cores): the (batch, length, 4 x hidden) activations of a 1,024 batch fall
# out of the cache, and ONNX Runtime's memory arena grows with them (~270 MB vs ~90 MB).
BATCH = 256


def gender_call(p_female: float) -> Tuple[str, float]:
    """The sex a name is called and how sure: ``("F", p)`` when ``p = P(F) >= 0.5``, else ``("M", 1 - p)``."""
    return ("F", p_female) if p_female >= 0.5 else ("M", 1.0 - p_female)


UNKNOWN = "unknown"   # the label of an answer held back by ``min_prob``


def check_min_prob(min_prob) -> "float | None":
    """``min_prob`` as given to predict/gender (``None``: always answer), else :class:`UsageError`."""
    from ..errors import UsageError
    if min_prob is None:
        return None
    if isinstance(min_prob, bool) or not isinstance(min_prob, (int, float)) or not 0.0 <= float(min_prob) <= 1.0:
        raise UsageError(f"min_prob must be a probability from 0 to 1, got {min_prob!r}: e.g. 0.8 answers "
                         "'unknown' when the likeliest label has less than 80%")
    return float(min_prob)


def held_back(label: str, probability: float, min_prob: "float | None") -> "str | None":
    """Why an answer is ``unknown`` (its best ``probability`` is below ``min_prob``), or None to answer."""
    if min_prob is None or probability >= min_prob:
        return None
    return f"best probability {probability:.3f} ({label}) is below min_prob {min_prob:g}"
