"""``namemodels.load(name_or_dir)``: a predictor over a shipped or trained model.

Tokenizing, validating, batching and sampling are NumPy; the network runs on a backend with two
calls, ``logprobs(ids, lengths)`` for classifiers and ``step(tokens, state, category)`` for
generators. The torch backend reads ``model.safetensors``; torch is imported only when it is used.
Predictors hold no per-call state, so one predictor can serve several threads at once.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .batching import encode_batch
from .checkpoint_json import read_json
from .config import CLASSIFIER_KINDS
from .data import check_name
from .errors import UsageError
from .tokenizer import CharTokenizer

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
NOVELTY_FILE = "train_names.u32"
MAX_GENERATED = 32
# Names validated, de-duplicated and sorted by length together: a bigger chunk pads less and finds more
# repeats, a smaller one bounds the memory of streaming callers (predict_iter, bulk scoring).
CHUNK = 65536


def shipped_models() -> List[str]:
    return sorted(p.name for p in PRETRAINED.iterdir() if (p / "config.json").is_file()) if PRETRAINED.is_dir() else []


def resolve(name_or_dir: Union[str, Path]) -> Path:
    path = Path(name_or_dir)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{path}: not a model directory (no config.json); train one with `namemodels train`")
        return path
    if str(name_or_dir) in shipped_models():
        return PRETRAINED / str(name_or_dir)
    raise UsageError(f"unknown model {str(name_or_dir)!r}: not a directory, and the shipped models are "
                     f"{', '.join(shipped_models()) or '(none installed)'}")


def name_hash(name: str) -> int:
    return zlib.crc32(name.lower().encode("utf-8"))


class TorchBackend:
    def __init__(self, directory: Path, config: dict):
        import torch

        from .checkpoint import load_model
        self.torch = torch
        self.directory, self.config = directory, config
        self.model = load_model(directory, config)

    def __reduce__(self):   # pickled as where to load it from (the worker needs the directory)
        return TorchBackend, (self.directory, self.config)

    def logprobs(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            return self.model.log_probs(self.torch.from_numpy(ids), self.torch.from_numpy(lengths)).numpy()

    def step(self, tokens: np.ndarray, state, category: Optional[np.ndarray]):
        with self.torch.inference_mode():
            cat = self.torch.from_numpy(category) if category is not None else None
            logp, state = self.model.step(self.torch.from_numpy(tokens), state, cat)
            return logp.numpy(), state


@dataclass
class Scored:
    """One chunk scored by :meth:`Predictor.score_chunk`: a row per distinct name, and where each
    input name's row is."""
    logp: np.ndarray                     # (distinct names, labels) natural-log probabilities; NaN where bad
    index: np.ndarray                    # (input names,) row of ``logp`` for each input name
    errors: List[Optional[UsageError]]   # per distinct name: None, or why it could not be scored

    def expand(self) -> np.ndarray:
        """``(input names, labels)``: the rows in input order."""
        return self.logp[self.index]

    def error_of(self, i: int) -> Optional[UsageError]:
        """Why input name ``i`` could not be scored, or None."""
        return self.errors[self.index[i]]


class Predictor:
    """Predictions from one model directory."""

    def __init__(self, directory: Union[str, Path], backend: str = "auto", threads: Optional[int] = None):
        self.directory = resolve(directory)
        self.threads = threads   # ONNX Runtime intra-op threads for large batches (None: its default)
        self.config = read_json(self.directory / "config.json")
        self.task = self.config["task"]
        self.labels: List[str] = self.config["labels"]
        self.tokenizer = CharTokenizer.from_dict(self.config["tokenizer"])
        self.backend = self._backend(backend)
        novelty = self.directory / NOVELTY_FILE
        self._train_hashes = np.fromfile(novelty, dtype="<u4") if novelty.is_file() else None

    def _backend(self, backend: str):
        if backend not in ("auto", "torch", "onnx"):
            raise UsageError(f"backend must be auto, torch or onnx, got {backend!r}")
        onnx_file = self.directory / "model.onnx"
        if backend == "onnx" or (backend == "auto" and onnx_file.is_file()):
            from .onnx_backend import OnnxBackend
            return OnnxBackend(onnx_file, self.config, threads=self.threads)
        try:
            return TorchBackend(self.directory, self.config)
        except ImportError:
            raise UsageError(f"{self.directory} has no model.onnx and torch is not installed: "
                             "pip install 'namemodels[train]', or export the model to ONNX") from None

    @property
    def is_classifier(self) -> bool:
        return self.config["model"]["kind"] in CLASSIFIER_KINDS

    @property
    def is_generator(self) -> bool:
        return self.config["model"]["kind"] in ("lm", "multitask")

    # ---- classification -----------------------------------------------------------------
    def predict_proba(self, names: Sequence[str], batch: int = 1024) -> np.ndarray:
        """Probabilities ``(N, C)`` over :attr:`labels`; raises UsageError on an invalid name."""
        return np.exp(self.predict_logproba(names, batch))

    def predict_logproba(self, names: Sequence[str], batch: int = 1024) -> np.ndarray:
        """Natural-log probabilities ``(N, C)`` over :attr:`labels`, rows in input order; raises
        UsageError on the first invalid name."""
        names = self._names(names)
        parts = [self._strict(self.score_chunk(names[i:i + CHUNK], batch)).expand()
                 for i in range(0, len(names), CHUNK)]
        if len(parts) == 1:   # the usual case: no copy
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros((0, len(self.labels)), np.float32)

    def predict(self, names: Sequence[str], top: int = 3) -> List[List[Tuple[str, float]]]:
        """For each name, the ``top`` labels with natural-log probabilities, best first."""
        names = self._names(names)
        out: List[List[Tuple[str, float]]] = []
        for i in range(0, len(names), CHUNK):
            out.extend(self._top(self._strict(self.score_chunk(names[i:i + CHUNK])), top))
        return out

    def predict_iter(self, names: Iterable[str], top: int = 3, batch: int = 1024,
                     chunk: int = CHUNK) -> Iterator[List[Tuple[str, float]]]:
        """:meth:`predict` lazily: reads ``names`` (any iterable, e.g. a file's lines) ``chunk`` at a
        time and yields one result per name, in input order. Memory stays bounded by ``chunk``."""
        self._need_classifier()
        it = iter([names] if isinstance(names, str) else names)
        while True:
            part = [n for _, n in zip(range(max(1, chunk)), it)]
            if not part:
                return
            yield from self._top(self._strict(self.score_chunk(part, batch)), top)

    def predict_frame(self, df, column: str, top: int = 1, kind: str = "predict"):
        """A copy of the pandas DataFrame ``df`` with prediction columns added after its own: for
        ``kind="predict"`` ``label, logprob, label_2, logprob_2, ...`` (``top`` labels, best first),
        for ``kind="gender"`` ``label, probability``; then ``error`` (empty where the name scored,
        else why not -- a bad name does not stop the others). See :mod:`namemodels.bulk`."""
        from .bulk import predict_frame
        return predict_frame(self, df, column, top=top, kind=kind)

    def score_chunk(self, names: Sequence, batch: int = 1024) -> "Scored":
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
        except TypeError:   # an unhashable item: no de-duplication (it fails the check below)
            keys, index = list(names), np.arange(len(names), dtype=np.int64)
        errors: List[Optional[UsageError]] = [None] * len(keys)
        valid, clean = [], []
        for j, name in enumerate(keys):
            try:
                clean.append(check_name(name))
                valid.append(j)
            except UsageError as exc:
                errors[j] = exc
        logp = np.full((len(keys), len(self.labels)), np.nan, np.float32)
        order = np.argsort(np.fromiter(map(len, clean), np.int64, len(clean)), kind="stable")
        for start in range(0, len(order), max(1, batch)):
            rows = order[start:start + batch]
            out = self.backend.logprobs(*encode_batch(self.tokenizer, [clean[i] for i in rows]))
            logp[np.asarray(valid, np.int64)[rows]] = out
        return Scored(logp, index, errors)

    def _need_classifier(self) -> None:
        if not self.is_classifier:
            raise UsageError(f"model {self.directory.name} is a {self.task} model; predict needs a classifier")

    def _names(self, names) -> list:
        self._need_classifier()
        return [names] if isinstance(names, str) else list(names)

    @staticmethod
    def _strict(scored: "Scored") -> "Scored":
        for err in scored.errors:   # distinct names in order of first appearance: the first bad input
            if err is not None:
                raise err
        return scored

    def _top(self, scored: "Scored", top: int) -> List[List[Tuple[str, float]]]:
        order = np.argsort(-scored.logp, 1)[:, :max(1, top)]
        best = [[(self.labels[j], float(row[j])) for j in idx] for row, idx in zip(scored.logp, order)]
        return [list(best[j]) for j in scored.index]   # a fresh list per name (no shared results)

    # ---- generation -----------------------------------------------------------------------
    def category_index(self, category: Optional[str]) -> int:
        if category is None:
            return 0
        if not self.config["model"].get("num_categories"):
            raise UsageError(f"model {self.directory.name} is not conditioned on a category")
        lookup = {l.lower(): i + 1 for i, l in enumerate(self.labels)}
        if category.lower() not in lookup:
            raise UsageError(f"unknown category {category!r}; choose one of {', '.join(self.labels)}")
        return lookup[category.lower()]

    def generate(self, n: int = 10, temperature: float = 0.8, top_k: Optional[int] = None, start: str = "",
                 category: Optional[str] = None, seed: Optional[int] = None, novel: bool = False,
                 max_tries: int = 20) -> List[str]:
        """Sample ``n`` names (lowercased internally, capitalized on output)."""
        if not self.is_generator:
            raise UsageError(f"model {self.directory.name} is a classifier; generate needs a generator model")
        if not temperature > 0:
            raise UsageError(f"temperature must be > 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise UsageError(f"top-k must be at least 1, got {top_k}")
        prefix = self.tokenizer.normalize(start)
        if start and not prefix:
            raise UsageError(f"start prefix {start!r} has no letters the model knows")
        unknown = sorted({c for c in prefix if c not in self.tokenizer.stoi})
        if unknown:
            raise UsageError(f"start prefix {start!r} has characters the model never saw: {''.join(unknown)!r}")
        cat = self.category_index(category)
        rng = np.random.default_rng(seed)
        names: List[str] = []
        seen = set()
        for _ in range(max_tries):
            for name in self._sample(max(n - len(names), 1) * (2 if novel else 1), temperature, top_k, prefix, cat, rng):
                if novel and (self.is_training_name(name) or name in seen):
                    continue
                seen.add(name)
                names.append(name)
                if len(names) == n:
                    return names
        if novel:
            raise UsageError(f"could not find {n} novel names in {max_tries} rounds; raise --temperature")
        return names

    def is_training_name(self, name: str) -> bool:
        h = self._train_hashes
        if h is None:
            return False
        i = np.searchsorted(h, name_hash(name))
        return bool(i < len(h) and h[i] == name_hash(name))

    def _sample(self, n: int, temperature: float, top_k: Optional[int], prefix: str, cat: int,
                rng: np.random.Generator) -> List[str]:
        tok = self.tokenizer
        category = np.full(n, cat, dtype=np.int64) if self.config["model"].get("num_categories") else None
        feed = [tok.bos_id] + tok.encode(prefix)
        state = None
        for t in feed:
            logp, state = self.backend.step(np.full(n, t, dtype=np.int64), state, category)
        out = [list(tok.encode(prefix)) for _ in range(n)]
        done = np.zeros(n, dtype=bool)
        banned = [tok.pad_id, tok.bos_id, tok.unk_id]
        for _ in range(MAX_GENERATED - len(prefix)):
            logits = logp / temperature
            logits[:, banned] = -np.inf
            if top_k is not None and top_k < logits.shape[1]:
                kth = np.partition(logits, -top_k, axis=1)[:, -top_k][:, None]
                logits = np.where(logits < kth, -np.inf, logits)
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            nxt = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
            for i in np.flatnonzero(~done):
                if nxt[i] == tok.eos_id:
                    done[i] = True
                else:
                    out[i].append(int(nxt[i]))
            if done.all():
                break
            logp, state = self.backend.step(nxt.astype(np.int64), state, category)
        return [tok.decode(ids).capitalize() for ids in out if ids]


def load(name_or_dir: Union[str, Path], backend: str = "auto", threads: Optional[int] = None) -> Predictor:
    """Load a shipped model by name (``surnames``, ``gender``, ``first-names``, ``surnames-gen``) or a
    directory written by ``namemodels train``. ``threads``: ONNX Runtime's intra-op threads for
    large batches (default ``min(2, cores)``, or ``NAMEMODELS_ONNX_THREADS``).

    A predictor pickles (its ONNX model travels inside the pickle and the session is re-opened
    where it is unpickled), so it can be sent to the worker processes of any engine."""
    return Predictor(name_or_dir, backend=backend, threads=threads)
