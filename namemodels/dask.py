"""Scoring Dask DataFrames: the same model on every worker, partition by partition.

    import dask.dataframe as dd
    from distributed import Client
    import namemodels.dask

    client = Client("tcp://scheduler:8786")            # or LocalCluster(), or no client at all
    ddf = dd.read_csv("people-*.csv")
    out = namemodels.dask.predict(ddf, column="surname", model="surnames", top=1)
    out.to_parquet("scored/")                           # input columns, label, logprob, error

Needs the ``dask`` extra (``pip install 'namemodels[dask]'``: ``dask[dataframe]``, ``distributed``,
pandas). The model is loaded once on the client and sent to the workers as one task result
(:func:`dask.delayed`): each worker process unpickles it -- re-opening its ONNX session -- once,
and its partitions share it. The workers need namemodels installed, not the model's files: the
ONNX model travels inside the pickle. Every partition is scored as
:meth:`namemodels.inference.predictor.Predictor.predict_frame` scores a pandas frame, so the columns, the
error column for names that cannot be scored, and the numbers are the same as single-process
scoring.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .bulk import predict_frame
from .errors import UsageError, UsageTypeError

if TYPE_CHECKING:  # annotations only: dask and the predictor load when a frame is scored
    import dask.dataframe as dd

    from .inference.predictor import Predictor

__all__ = ["predict", "gender"]


def _dask() -> ModuleType:
    try:
        import dask
        import dask.dataframe  # noqa: F401  (the dataframe extra: pandas, pyarrow)
    except ImportError as exc:
        raise UsageError(
            f"namemodels.dask needs {exc.name or 'dask'}, which is not installed: pip install 'namemodels[dask]'"
        ) from None
    return dask


def _score_partition(
    df: Any, predictor: Predictor, column: str, top: int | None, kind: str, min_prob: float | None = None
) -> Any:  # pandas frames
    return predict_frame(predictor, df, column, top=top, kind=kind, min_prob=min_prob)


def predict(
    ddf: object,
    column: str,
    model: str | Path | Predictor = "surnames",
    top: int | None = 1,
    threads: int = 1,
    kind: str = "predict",
    min_prob: float | None = None,
) -> dd.DataFrame:
    """``ddf`` with prediction columns added after its own: ``label, logprob`` (and ``label_k,
    logprob_k`` up to ``top``), the evidence ``source, count`` (and ``reason`` with ``min_prob``: the
    label is ``unknown`` where the best probability is below it), then ``error`` (empty where the name
    scored). Lazy, like every Dask
    DataFrame. ``model``: a shipped model's name, a model directory or a loaded
    :class:`~namemodels.inference.predictor.Predictor`. ``threads``: ONNX Runtime threads per task (1 suits
    one Dask thread per core)."""
    dask = _dask()
    import dask.dataframe as dd

    from .inference.predictor import Predictor, load

    if not isinstance(ddf, dd.DataFrame):
        hint = (
            "score a pandas frame with namemodels.load(model).predict_frame(df, column), or make it a Dask "
            "DataFrame with dask.dataframe.from_pandas(df, npartitions=N)"
            if hasattr(ddf, "columns")
            else "read one with dask.dataframe.read_csv(...) or make one with dask.dataframe.from_pandas(...)"
        )
        raise UsageTypeError(
            f"namemodels.dask.predict needs a Dask DataFrame, got "
            f"{type(ddf).__module__.split('.')[0]}.{type(ddf).__name__}; {hint}"
        )
    if column not in ddf.columns:
        raise UsageError(f"no column {column!r}; the frame's columns are {', '.join(map(repr, ddf.columns))}")
    predictor = model if isinstance(model, Predictor) else load(model, threads=threads)
    meta = predict_frame(predictor, ddf._meta, column, top=top, kind=kind, min_prob=min_prob)
    shipped = dask.delayed(predictor, pure=True)
    return ddf.map_partitions(_score_partition, shipped, column, top, kind, min_prob, meta=meta)


def gender(
    ddf: object, column: str, model: str | Path | Predictor = "gender", threads: int = 1, min_prob: float | None = None
) -> dd.DataFrame:
    """``ddf`` with ``label`` (F or M, the likelier), ``probability``, ``source``, ``count`` and
    ``error`` added; see :func:`predict`."""
    return predict(ddf, column, model=model, threads=threads, kind="gender", min_prob=min_prob)
