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
