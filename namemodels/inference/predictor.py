"""``namemodels.load(name_or_dir)``: a predictor over a shipped or trained model.

Checking, tokenizing, batching and answering are NumPy; the network runs on a backend
(:class:`~namemodels.inference.protocol.Backend`: ``logprobs`` for classifiers, ``initial_state`` and
``step`` for generators), ONNX Runtime by default; the torch backend reads ``model.safetensors``, and
torch is imported only when it is used. Names are sampled by :mod:`namemodels.inference.sampler`.
Predictors hold no per-call state, so one predictor can serve several threads at once.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..batching import encode_batch
from ..config import CLASSIFIER_KINDS, GENERATE_LIMITS, TOP_LIMIT, read_model_config
from ..errors import UsageError, UsageTypeError
from ..options import Range
from ..text import check_name_details, fold_text
from ..tokenizer import CharTokenizer
from .locate import resolve
from .name_table import NameTable, Rule, name_key, respelled
from .novelty import NoveltySet
from .sampler import MAX_GENERATED, sample
from .scoring import BATCH, CHUNK, UNKNOWN, check_min_prob, held_back

if TYPE_CHECKING:  # annotations only: the protocol is documentation, not needed at run time
    import pandas as pd

    from .protocol import Backend

FEW_ROWS = 8  # at most this many distinct names are ranked in Python, not NumPy (see _top)
SAMPLE_CHUNK = 1024  # names sampled side by side: generate's memory does not grow with n
ERRORS = ("raise", "return")


@dataclass
class Scored:
    """One chunk scored by :meth:`Predictor.score_chunk`: a row per distinct name, and where each
    input name's row is."""

    logp: np.ndarray  # (distinct names, labels) natural-log probabilities; NaN where bad
    index: np.ndarray  # (input names,) row of ``logp`` for each input name
    errors: list[UsageError | None]  # per distinct name: None, or why it could not be scored
    counts: np.ndarray | None = None  # per distinct name: its count in the name table (0: the model answered)
    recent: np.ndarray | None = None  # per distinct name: its count in the table's recent span (a --recent table)
    notes: dict | None = None  # distinct name -> what the name as typed added (marked letters, script)
    latin: dict | None = None  # distinct name -> the Latin form the model read, where a letter was transliterated

    def count_of(self, j: int) -> int:
        """The births or lines behind distinct name ``j``'s answer (0: not in the name table)."""
        return 0 if self.counts is None else int(self.counts[j])

    def recent_of(self, j: int) -> int | None:
        """Distinct name ``j``'s count in the recent span, None without a recent layer or for an unknown name."""
        return None if self.recent is None or self.counts is None or not self.counts[j] else int(self.recent[j])

    def note_of(self, j: int) -> dict | None:
        """What distinct name ``j`` as typed added to the answer (``letters``, ``scripts``, ``labels``), or None."""
        return None if not self.notes else self.notes.get(j)

    def latin_of(self, j: int) -> str | None:
        """The Latin form the model read for distinct name ``j`` (``"Ivanov"`` for ``"Иванов"``), or None."""
        return None if not self.latin else self.latin.get(j)

    def expand(self) -> np.ndarray:
        """``(input names, labels)``: the rows in input order."""
        return self.logp[self.index]

    def error_of(self, i: int) -> UsageError | None:
        """Why input name ``i`` could not be scored, or None."""
        return self.errors[self.index[i]]


@dataclass
class TableHits:
    """The distinct names of a chunk that the name table holds (:meth:`Predictor._table_hits`): their
    positions ``at``, the counts of their rows added up (``counts``, and ``recent`` for a table with a
    recent layer), the network's answer stored with the names that have their own row (``stored_logp``
    at positions ``stored_at``: it is not run again) and the other spelling that contributed, by
    position (``spelled``)."""

    at: np.ndarray
    counts: np.ndarray
    recent: np.ndarray | None
    stored_at: np.ndarray
    stored_logp: np.ndarray
    spelled: dict[int, str]


@dataclass
class Answer:
    """One name's answer from ``predict(..., details=True)``: ``label`` (``"unknown"`` when held back by
    ``min_prob``, ``reason`` saying why) and its ``probability``; the evidence: ``source`` is
    ``"data"`` when the name is in the model's name table (then ``count`` births or lines of the
    training data stand behind the answer, ``unit`` says which) and ``"model"`` otherwise (``count``
    0); ``top``: the labels with natural-log probabilities, best first, as ``predict`` gives them;
    ``transliterated``: the Latin form the model read when a letter of the name was transliterated
    (``"Иванов"`` -> ``"Ivanov"``, :mod:`namemodels.text`), else None; ``recent`` (a table built with
    ``--recent``): ``{"span": "2004-2023", "count": births in that span}`` for a known name;
    ``evidence``: what the name as typed added (:class:`namemodels.inference.name_table.Rule`):
    ``letters`` (marked letters with their lines per label), ``scripts`` and ``labels`` (the labels the
    answer was restricted to), else None."""

    name: str
    label: str
    probability: float
    source: str
    count: int
    unit: str | None
    top: list[tuple[str, float]]
    reason: str | None = None
    transliterated: str | None = None
    recent: dict | None = None
    evidence: dict | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "probability": self.probability,
            "source": self.source,
            "count": self.count,
            "unit": self.unit,
            "reason": self.reason,
            "top": [{"label": label, "logprob": p} for label, p in self.top],
            "transliterated": self.transliterated,
            "recent": self.recent,
            "evidence": self.evidence,
        }


class Predictor:
    """Predictions from one model directory."""

    def __init__(
        self,
        directory: str | Path,
        backend: str = "auto",
        threads: int | None = None,
        device: str = "cpu",
        table: bool = True,
        calibrate: bool = True,
    ):
        if not isinstance(directory, (str, os.PathLike)):
            from .locate import shipped_models

            raise UsageTypeError(
                f"load needs a shipped model's name ({', '.join(map(repr, shipped_models()))}) or "
                f"the path of a model directory, got {_shown(directory)}"
            )
        self.directory = resolve(directory)
        self.device = device
        self.threads = threads  # ONNX batches scored at once (None: onnx_backend.default_threads)
        self.config = read_model_config(self.directory)
        self.task = self.config["task"]
        self.labels: list[str] = self.config["labels"]
        self.tokenizer = CharTokenizer.from_dict(self.config["tokenizer"])
        self.backend: Backend = self._backend(backend)
        self.novelty = NoveltySet.read(self.directory)
        # the name table (read on the first look-up; table=False: the model alone)
        self.table = NameTable.of(self.directory, self.config, check=self._check_table) if table else NameTable(None)
        # the whole answer (name_table.Rule): calibration, the table's rule, recent counts, marked letters, scripts
        self.rule = Rule.of(self.config, table=table, calibrate=calibrate)
        recent = (self.config.get("name_table") or {}).get("recent") if table else None
        self.span = f"{recent['since']}-{recent['until']}" if recent else None

    def _check_table(self, path: Path, data: bytes) -> None:
        from ..integrity import check_file

        check_file(path, self.config, data)

    @property
    def unit(self) -> str | None:
        """What the name table counts (``births``, ``lines``), or None without a table."""
        return (self.config.get("name_table") or {}).get("unit") if self.table else None

    def _backend(self, backend: str) -> Backend:
        if backend not in ("auto", "torch", "onnx"):
            raise UsageError(f"backend must be auto, torch or onnx, got {backend!r}")
        onnx_file = self.directory / "model.onnx"
        if self.device != "cpu":
            if backend == "onnx":
                raise UsageError(f"device={self.device!r} runs the torch backend; the ONNX backend runs on the CPU")
            backend = "torch"
        if backend == "onnx" or (backend == "auto" and onnx_file.is_file()):
            from .onnx_backend import OnnxBackend

            return OnnxBackend(onnx_file, self.config, threads=self.threads)
        try:
            from .torch_backend import open_directory

            return open_directory(self.directory, self.config, self.device)
        except ImportError as exc:  # name the module that is missing (torch, or safetensors beside it)
            missing = getattr(exc, "name", None) or str(exc)
            where = "" if onnx_file.is_file() else " and has no model.onnx"
            raise UsageError(
                f"{self.directory}: the torch backend needs {missing}, which is not installed{where}: "
                "pip install 'namemodels[train]'" + ("" if where == "" else ", or export the model to ONNX")
            ) from None

    @property
    def is_classifier(self) -> bool:
        return self.config["model"]["kind"] in CLASSIFIER_KINDS

    @property
    def is_generator(self) -> bool:
        return self.config["model"]["kind"] in ("lm", "multitask")

    # ---- classification -----------------------------------------------------------------
    def predict_proba(self, names: Sequence[str], batch: int = BATCH) -> np.ndarray:
        """Probabilities ``(N, C)`` over :attr:`labels`; raises UsageError on an invalid name."""
        return np.exp(self.predict_logproba(names, batch))

    def predict_logproba(self, names: Sequence[str], batch: int = BATCH) -> np.ndarray:
        """Natural-log probabilities ``(N, C)`` over :attr:`labels`, rows in input order; raises
        UsageError on the first invalid name."""
        names = self._names(names)
        parts = [
            self._strict(self.score_chunk(names[i : i + CHUNK], batch)).expand() for i in range(0, len(names), CHUNK)
        ]
        if len(parts) == 1:  # the usual case: no copy
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)), np.float32)

    def predict(
        self,
        names: Sequence[str],
        top: int | None = 3,
        errors: str = "raise",
        details: bool = False,
        min_prob: float | None = None,
    ) -> list:
        """For each name, the ``top`` labels (``None``: all of them) with natural-log probabilities,
        best first.

        ``errors="raise"``: an invalid name raises :class:`UsageError` for the whole call (see
        :func:`namemodels.text.check_name`). ``errors="return"``: every name is answered in its place,
        an invalid one with its UsageError instead of a list (test ``isinstance(r, Exception)``), as
        the command line answers the valid names and reports the others.

        ``details=True``: each answer is an :class:`Answer` -- the label and its probability, the
        evidence (``source``: ``"data"`` for a name of the name table, ``"model"`` otherwise;
        ``count``: the births or lines behind it) and the ``top`` list. ``min_prob`` (needs
        ``details=True``): a name whose likeliest label has a probability below it is answered
        ``"unknown"``, with the ``reason``."""
        k, strict = self.check_top(top), _errors(errors)
        min_prob = check_min_prob(min_prob)
        if min_prob is not None and not details:
            raise UsageError(
                "min_prob needs details=True: an answer held back is an Answer with label 'unknown' "
                "and its reason, e.g. predict(names, details=True, min_prob=0.8)"
            )
        names = self._names(names)
        out: list = []
        for i in range(0, len(names), CHUNK):
            scored = self.score_chunk(names[i : i + CHUNK])
            answers = self._answers(scored, k, strict)
            out.extend(self._detailed(names[i : i + CHUNK], scored, answers, min_prob) if details else answers)
        return out

    def _detailed(self, names: Sequence[str], scored: Scored, answers: list, min_prob: float | None) -> list:
        """:class:`Answer` objects for :meth:`predict`'s answers (errors stay in their place)."""
        out: list = []
        unit = self.unit
        for i, (name, top) in enumerate(zip(names, answers)):
            if isinstance(top, Exception):
                out.append(top)
                continue
            j = int(scored.index[i])
            best = int(np.argmax(scored.logp[j]))
            label, probability = self.labels[best], float(np.exp(np.float64(scored.logp[j, best])))
            count = scored.count_of(j)
            reason = held_back(label, probability, min_prob)
            r = scored.recent_of(j)
            out.append(
                Answer(
                    name.strip(),
                    UNKNOWN if reason else label,
                    probability,
                    "data" if count else "model",
                    count,
                    unit,
                    top,
                    reason,
                    scored.latin_of(j),
                    None if r is None else {"span": self.span, "count": r},
                    scored.note_of(j),
                )
            )
        return out

    def predict_iter(
        self, names: Iterable[str], top: int | None = 3, batch: int = BATCH, chunk: int = CHUNK, errors: str = "raise"
    ) -> Iterator[list]:
        """:meth:`predict` lazily: reads ``names`` (any iterable, e.g. a file's lines) ``chunk`` at a
        time and yields one result per name, in input order. Memory stays bounded by ``chunk``."""
        k, strict = self.check_top(top), _errors(errors)
        self._need_classifier()
        try:
            it = iter([names] if isinstance(names, str) else names)
        except TypeError:
            raise _not_names(names) from None
        while True:
            part = [n for _, n in zip(range(max(1, chunk)), it)]
            if not part:
                return
            yield from self._answers(self.score_chunk(part, batch), k, strict)

    def check_top(self, top: int | None) -> int:
        """How many labels ``top`` asks for: a whole number >= 1 (more than there are: all), or None for all."""
        if top is None:
            return len(self.labels)
        return min(_whole(top, "top", TOP_LIMIT), len(self.labels))

    def need_gender(self) -> None:
        """Raise :class:`UsageError` unless this model classifies names as F or M."""
        self._need_classifier()
        if sorted(self.labels) != ["F", "M"]:
            labels = ", ".join(self.labels[:6]) + (", ..." if len(self.labels) > 6 else "")
            raise UsageError(
                f"model {self.directory.name} is not a gender model: its labels are {labels}; "
                "use a model with labels F and M (the shipped gender model), or `namemodels predict`"
            )

    def _answers(self, scored: Scored, k: int, strict: bool) -> list:
        if strict:
            self._strict(scored)
        best = self._top(scored, k)
        if strict:
            return best
        return [best[i] if scored.error_of(i) is None else scored.error_of(i) for i in range(len(best))]

    def predict_frame(
        self, df: pd.DataFrame, column: str, top: int | None = 1, kind: str = "predict", min_prob: float | None = None
    ) -> pd.DataFrame:
        """A copy of the pandas DataFrame ``df`` with prediction columns added after its own: for
        ``kind="predict"`` ``label, logprob, label_2, logprob_2, ...`` (``top`` labels, best first),
        for ``kind="gender"`` ``label, probability``; then ``error`` (empty where the name scored,
        else why not -- a bad name does not stop the others). Between them the evidence: ``source``
        (``data`` or ``model``) and ``count``; with ``min_prob`` a ``reason`` column, and ``label``
        ``unknown`` where the likeliest label's probability is below it. See :mod:`namemodels.bulk`."""
        from ..bulk import predict_frame

        return predict_frame(self, df, column, top=top, kind=kind, min_prob=min_prob)

    def score_chunk(self, names: Sequence, batch: int = BATCH) -> Scored:
        """Validate, de-duplicate and score one chunk of names (the core of every predict method).

        Each distinct name is checked and scored once; the valid ones are sorted by length and run
        in batches of ``batch`` (a batch is padded to its longest name, so mixing lengths wastes
        work: 100,000 shuffled surnames ran 2-3x slower unsorted). Bad names do not raise here:
        their rows are NaN and :attr:`Scored.errors` says why."""
        self._need_classifier()
        distinct: dict = {}
        try:
            index = np.fromiter((distinct.setdefault(n, len(distinct)) for n in names), np.int64, len(names))
            keys = list(distinct)
        except TypeError:  # an unhashable item: no de-duplication (it fails the check below)
            keys, index = list(names), np.arange(len(names), dtype=np.int64)
        errors: list[UsageError | None] = [None] * len(keys)
        latin: dict[int, str] = {}
        valid, clean = [], []
        for j, name in enumerate(keys):
            try:
                folded, transliterated = check_name_details(name)
                clean.append(folded)
                if transliterated:
                    latin[j] = folded
                valid.append(j)
            except UsageError as exc:
                errors[j] = exc
        rule = self.rule
        checked = valid  # every valid name, known or not (for what the name as typed adds)
        # Rule steps 2-3 need each name's table rows: its own key's, and its other spelling's (Müller:
        # Mueller). A name with its own row takes the network's answer stored there; the rest run it.
        hits = self._table_hits(keys, valid, clean) if self.table else None
        if hits is not None and len(hits.stored_at):
            stored = np.zeros(len(keys), bool)
            stored[hits.stored_at] = True
            flags = stored.tolist()
            rest = [i for i, j in enumerate(valid) if not flags[j]]
            valid, clean = [valid[i] for i in rest], [clean[i] for i in rest]
        if len(keys) == 1 and clean and hits is None:  # one name, not in the table: nothing to sort or scatter
            out = self.backend.logprobs(*encode_batch(self.tokenizer, clean))
            self._check_finite(out, clean)
            raw = out.astype(np.float32, copy=False)
        else:
            raw = np.full((len(keys), len(self.labels)), np.nan, np.float32)  # the network's log-probabilities
            if hits is not None:
                raw[hits.stored_at] = hits.stored_logp
            order = np.argsort(np.fromiter(map(len, clean), np.int64, len(clean)), kind="stable")
            where = np.asarray(valid, np.int64)
            run = getattr(self.backend, "logprobs_map", None)  # several batches at once (ONNX), else one by one
            size = max(1, batch)
            if run:  # fewer names than threads x batch: one batch per thread, so that no thread idles
                size = min(size, max(1, -(-len(order) // max(1, getattr(self.backend, "threads", 1)))))
            parts = [order[start : start + size] for start in range(0, len(order), size)]
            encoded = (encode_batch(self.tokenizer, [clean[i] for i in rows]) for rows in parts)
            for rows, out in zip(parts, run(encoded) if run else (self.backend.logprobs(*b) for b in encoded)):
                self._check_finite(out, [clean[i] for i in rows])
                raw[where[rows]] = out
        counts = np.zeros(len(keys), np.int64) if self.table else None
        recent = None
        if hits is None:
            logp = rule.unseen(raw)  # step 1 (T == 1: the network's array itself)
        else:  # step 1 for the names without counts, steps 1-3 for those with
            logp = raw.copy()
            without = np.ones(len(keys), bool)
            without[hits.at] = False
            if without.any():
                logp[without] = rule.unseen(raw[without])
            logp[hits.at] = rule.known(raw[hits.at], hits.counts, hits.recent)
            assert counts is not None  # (hits come from a table)
            counts[hits.at] = hits.counts.sum(axis=1, dtype=np.int64)
            if hits.recent is not None:
                recent = np.zeros(len(keys), np.int64)
                recent[hits.at] = hits.recent.sum(axis=1, dtype=np.int64)
        notes = {}
        for j in checked:  # marked letters and scripts of the name as typed (never for an ASCII name)
            name = keys[j]
            if not name.isascii():
                note = rule.evidence(name)
                if note:
                    logp[j] = rule.adjust(logp[j], note)
                    notes[j] = note
                if hits is not None and j in hits.spelled:
                    notes[j] = {**(note or {}), "also_spelled": hits.spelled[j]}
        return Scored(logp, index, errors, counts, recent, notes or None, latin or None)

    def _table_hits(self, keys: Sequence, valid: Sequence[int], clean: Sequence[str]) -> TableHits | None:
        """The name table's rows of the valid names (``keys[valid[i]]``, checked as ``clean[i]``): its own
        key's, and where it is typed with a German umlaut its other spelling's
        (:func:`~namemodels.inference.name_table.respelled`), counts added; None when no name has one."""
        table = self.table
        lower = table.lowercase
        wanted = [name_key(c, lower) for c in clean]
        others: dict[int, tuple[int, str]] = {}  # position in clean -> (row, spelling), typed with an umlaut
        for i, j in enumerate(valid):
            folded = None if keys[j].isascii() else respelled(keys[j])
            if folded is not None:
                row = table.find(name_key(folded, lower))
                if row >= 0:
                    others[i] = (row, folded)
        if len(clean) <= FEW_ROWS:  # an interactive call: one search per name, no NumPy until a hit
            found = [table.find(k) for k in wanted]
            if not others and max(found, default=-1) < 0:
                return None
            own = np.array(found, np.int64)
        else:
            own = table.lookup(wanted)
        other = np.full(len(clean), -1, np.int64)
        spelled: dict[int, str] = {}
        for i, (row, folded) in others.items():
            if row != own[i]:
                other[i], spelled[valid[i]] = row, folded
        hit = np.flatnonzero((own >= 0) | (other >= 0))
        if not len(hit):
            return None
        at, own, other = np.asarray(valid, np.int64)[hit], own[hit], other[hit]
        counts = np.zeros((len(hit), len(self.labels)), np.int64)
        recent = None
        stored_at, stored_logp = at[:0], np.zeros((0, len(self.labels)), np.float32)
        for rows in (own, other):
            has = rows >= 0
            n, logp = table.rows(rows[has])
            counts[has] += n
            span = table.recent_rows(rows[has])
            if span is not None:
                recent = np.zeros_like(counts) if recent is None else recent
                recent[has] += span
            if rows is own:  # the network's answer for the name's own key, stored in the table
                stored_at, stored_logp = at[has], logp
        return TableHits(at, counts, recent, stored_at, stored_logp, spelled)

    def _need_classifier(self) -> None:
        if not self.is_classifier:
            raise UsageError(f"model {self.directory.name} is a {self.task} model; predict needs a classifier")

    def _names(self, names: str | Iterable[str]) -> list:
        self._need_classifier()
        if isinstance(names, str):
            return [names]
        try:
            return list(names)
        except TypeError:  # None, a number: not a collection of names
            raise _not_names(names) from None

    @staticmethod
    def _strict(scored: Scored) -> Scored:
        for err in scored.errors:  # distinct names in order of first appearance: the first bad input
            if err is not None:
                raise err
        return scored

    def _check_finite(self, out: np.ndarray, names: Sequence[str] | None = None) -> None:
        """The network's log-probabilities must be finite: NaN or infinity means damaged weights, and
        is never passed on as an answer."""
        if np.isfinite(out).all():  # the usual case, in one pass
            return
        bad = ~np.isfinite(out).all(axis=-1)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            what = f" for {names[row]!r}" if names is not None else ""
            raise UsageError(
                f"{self.directory}: the model gave non-finite log-probabilities (NaN or infinity){what}: "
                "its weights are damaged; reinstall the package, or retrain or re-export the model"
            )

    def _top(self, scored: Scored, top: int) -> list[list[tuple[str, float]]]:
        labels, k = self.labels, max(1, top)
        if len(scored.logp) <= FEW_ROWS:  # an interactive call: Python's sort beats NumPy's per-call cost
            rows = scored.logp.tolist()
            best = [
                [(labels[j], row[j]) for j in sorted(range(len(row)), key=row.__getitem__, reverse=True)[:k]]
                for row in rows
            ]
            return [list(best[j]) for j in scored.index.tolist()]
        # stable, as Python's sort above: tied labels keep the model's order on both paths
        order = np.argsort(-scored.logp, 1, kind="stable")[:, :k]
        values = np.take_along_axis(scored.logp, order, 1).tolist()  # Python floats in one call
        best = [[(labels[j], v) for j, v in zip(idx, vals)] for idx, vals in zip(order.tolist(), values)]
        return [list(best[j]) for j in scored.index.tolist()]  # a fresh list per name (no shared results)

    # ---- generation -----------------------------------------------------------------------
    def category_index(self, category: str | None) -> int:
        if category is None:
            return 0
        if not self.config["model"].get("num_categories"):
            raise UsageError(f"model {self.directory.name} is not conditioned on a category")
        lookup = {label.lower(): i + 1 for i, label in enumerate(self.labels)}
        if category.lower() not in lookup:
            raise UsageError(f"unknown category {category!r}; choose one of {', '.join(self.labels)}")
        return lookup[category.lower()]

    def generate(
        self,
        n: int = 10,
        temperature: float = 0.8,
        top_k: int | None = None,
        start: str = "",
        category: str | None = None,
        seed: int | None = None,
        novel: bool = False,
        max_tries: int = 20,
    ) -> list[str]:
        """Sample ``n`` names (lowercased internally, capitalized on output).

        ``n``: 1 to :data:`namemodels.config.MAX_NAMES`, sampled :data:`SAMPLE_CHUNK` at a time (memory does not grow
        with ``n`` beyond the names themselves). ``temperature`` > 0: 1 samples the model's own
        distribution, lower is more conservative, and near 0 every step takes the likeliest character
        (greedy). ``top_k``: sample among the k likeliest characters. ``start``: every name begins with
        it; checked like a name (a digit, symbol or control character raises). ``seed``: a whole
        number >= 0 for reproducible samples. ``novel``: skip names of the training data and repeats.
        Raises :class:`UsageError` when ``max_tries`` rounds in a row add no name."""
        if not self.is_generator:
            raise UsageError(f"model {self.directory.name} is a classifier; generate needs a generator model")
        n = _whole(n, "n", GENERATE_LIMITS["n"])
        temperature = _real(temperature, "temperature", GENERATE_LIMITS["temperature"])
        top_k = None if top_k is None else _whole(top_k, "top_k", GENERATE_LIMITS["top_k"])
        seed = None if seed is None else _whole(seed, "seed", GENERATE_LIMITS["seed"])
        max_tries = _whole(max_tries, "max_tries", Range(1))
        prefix = self._prefix(start)
        cat = self.category_index(category)
        rng = np.random.default_rng(seed)
        names: list[str] = []
        seen = set()
        idle = 0
        while idle < max_tries:
            before = len(names)
            for name in self._sample(
                min(SAMPLE_CHUNK, (n - len(names)) * (2 if novel else 1)), temperature, top_k, prefix, cat, rng
            ):
                if novel:
                    if self.is_training_name(name) or name in seen:
                        continue
                    seen.add(name)
                names.append(name)
                if len(names) == n:
                    return names
            idle = 0 if len(names) > before else idle + 1
        if novel:
            raise UsageError(
                f"found only {len(names)} of {n} novel names ({max_tries} rounds in a row found none); "
                "raise --temperature"
            )
        raise UsageError(
            f"the model ended every name before its first letter ({max_tries} rounds in a row); raise --temperature"
        )

    def _prefix(self, start: str) -> str:
        """``start`` as the model reads it; raises :class:`UsageError` on what it cannot read."""
        if not isinstance(start, str):
            raise UsageError(f"start must be text, got {type(start).__name__}")
        if not start:
            return ""
        prefix = self.tokenizer.normalize(fold_text(start))
        if not prefix:
            raise UsageError(f"start prefix {start!r} has no letters the model knows")
        unknown = sorted({c for c in prefix if c not in self.tokenizer.stoi})
        if unknown:
            raise UsageError(f"start prefix {start!r} has characters the model never saw: {''.join(unknown)!r}")
        if len(prefix) >= MAX_GENERATED:
            raise UsageError(f"start prefix is {len(prefix)} characters long; the limit is {MAX_GENERATED - 1}")
        return prefix

    def is_training_name(self, name: str) -> bool:
        """Whether ``name`` is one of the model's training names (by its hash; see :mod:`.novelty`)."""
        return name in self.novelty

    def _sample(
        self, n: int, temperature: float, top_k: int | None, prefix: str, cat: int, rng: np.random.Generator
    ) -> list[str]:
        category = np.full(n, cat, dtype=np.int64) if self.config["model"].get("num_categories") else None
        ids = sample(
            self.backend, self.tokenizer, n, rng, temperature, top_k, prefix, category, check=self._check_finite
        )
        return [self.tokenizer.decode(i).capitalize() for i in ids if i]


def load(
    name_or_dir: str | Path,
    backend: str = "auto",
    threads: int | None = None,
    device: str = "cpu",
    table: bool = True,
    calibrate: bool = True,
) -> Predictor:
    """Load a shipped model by name (``surnames``, ``gender``, ``first-names``, ``surnames-gen``) or a
    directory written by ``namemodels train``. ``threads``: batches of names scored at once, each on
    one ONNX Runtime thread (default ``min(2, cores)``, or ``NAMEMODELS_ONNX_THREADS``). ``device="cuda"``
    runs the model in PyTorch on the GPU (its layers on the fused kernels) instead of ONNX Runtime.

    A predictor pickles (its ONNX model travels inside the pickle and the session is re-opened
    where it is unpickled), so it can be sent to the worker processes of any engine.

    ``table=False``: answer every name by the model alone, ignoring the model's name table (the
    training names with their counts, :mod:`namemodels.inference.name_table`), the marked letters and
    the scripts: the model alone (tempered by its calibration). ``calibrate=False``: the network's own
    probabilities, untempered (``config.json``'s ``calibration.temperature`` ignored)."""
    return Predictor(name_or_dir, backend=backend, threads=threads, device=device, table=table, calibrate=calibrate)


def _shown(value: object) -> str:
    """A value as an error message shows it: its type, and its repr when short."""
    text = repr(value)
    if value is None or len(text) > 40:
        return "None" if value is None else f"a {type(value).__name__}"
    return text if type(value).__name__ in text else f"{type(value).__name__} {text}"


def _not_names(names: object) -> UsageTypeError:
    return UsageTypeError(
        f"names must be a name (str) or a list (any iterable) of names, got {_shown(names)}: "
        "e.g. predict(['Hinton', 'Nguyen'])"
    )


def _whole(value: object, name: str, allowed: Range) -> int:
    """A whole number (not a bool) inside ``allowed``, else :class:`UsageError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise UsageError(f"{name} must be a whole number, got {value!r}")
    return int(allowed.check(int(value), name))


def _real(value: object, name: str, allowed: Range) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UsageError(f"{name} must be a number, got {value!r}")
    return float(allowed.check(float(value), name))


def _errors(errors: str) -> bool:
    """True for ``errors="raise"``, False for ``"return"``."""
    if errors not in ERRORS:
        raise UsageError(f"errors must be 'raise' or 'return', got {errors!r}")
    return errors == "raise"
