"""A classifier's name table: the names of its training data with their counts per label, and the one
rule that combines those counts with the model. NumPy only (a leaf module: the predictor, bulk scoring
and the table builder all use this rule, and nothing else computes it).

**The rule.** For a name whose counts are ``n = (n_1 .. n_C)`` (births per sex for the gender model,
lines per language for the surnames model; ``N = n_1 + ... + n_C``) and whose model probabilities
are ``p = (p_1 .. p_C)``, the answer is the posterior mean under a Dirichlet prior of strength
``alpha`` centred on the model::

    P(label c) = (n_c + alpha * p_c) / (N + alpha)

A name with many counts follows its data, a rare name leans on the model, and a name not in the
table (``N = 0``) gets exactly the model's answer. ``alpha`` (> 0, in births or lines) is chosen by
cross-validation on held-out counts (:func:`choose_alpha`) and stored in ``config.json`` under
``name_table.alpha``.

**The file** ``name_table.npz`` (a NumPy ``.npz``: a zip of ``.npy`` files, ``names`` and ``counts``
deflated, ``logp`` stored; no pickle: read it with ``numpy.load(path, allow_pickle=False)``, or any zip
reader and the ``.npy`` format) holds three arrays:

* ``names``: ``uint8`` -- the distinct name keys, sorted by their bytes, each followed by ``\\n``
  (one UTF-8 blob; the keys are ASCII). A key is the name as the model reads it: folded and checked by
  :func:`namemodels.text.check_name` (accents folded, white space stripped and inner runs collapsed),
  then lower-cased when the model's tokenizer lower-cases (``tokenizer.lowercase`` in ``config.json``).
* ``counts``: ``uint32 (names, labels)`` -- the counts of each name, columns in the order of
  ``config.json``'s ``labels``.
* ``logp``: ``float32 (names, labels)`` -- the model's natural-log probabilities of each name,
  computed once when the table was built, so that a known name needs no network call. Another runtime
  may use them or run the model itself: both give ``p`` above.

``config.json`` describes the table under ``name_table`` (``file``, ``format``, ``names``, ``unit``,
``alpha`` and how it was chosen, the data's path and SHA-256) and records the file's SHA-256 under
``sha256`` like the weights (:mod:`namemodels.integrity`), checked when the table is first read.
Room to grow: further arrays (counts per year) or keys (a span of years) can be added beside these.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["FILE", "FORMAT", "SECTION", "name_key", "combine", "held_out_loss", "choose_alpha", "ALPHA_GRID",
           "write_table", "NameTable"]

FILE = "name_table.npz"
FORMAT = 1
SECTION = "name_table"    # the config.json section that describes the table
ALPHA_GRID = tuple(float(f"{a:.3g}") for a in np.logspace(-2, 4, 25))   # 0.01 .. 10,000, four per decade
SMALL = 64                # a chunk with at most this many names is looked up by binary search, not a dict


def name_key(folded: str, lowercase: bool) -> str:
    """The table's key for a name already folded (:func:`namemodels.text.check_name` or, for data,
    :func:`namemodels.text.ascii_fold`): inner runs of white space collapsed, stripped, lower-cased
    when the model lower-cases."""
    key = " ".join(folded.split())
    return key.lower() if lowercase else key


def combine(counts: np.ndarray, logp: np.ndarray, alpha: float) -> np.ndarray:
    """The rule: ``log((n + alpha * p) / (N + alpha))`` row by row, with ``p = exp(logp)``; a row
    whose counts are all zero is ``logp`` itself (the model's answer, unchanged). ``counts``:
    ``(names, labels)``; ``logp``: the model's natural-log probabilities, same shape; ``alpha > 0``.
    Returns float32 log-probabilities."""
    if not alpha > 0:
        raise ValueError(f"alpha must be above 0, got {alpha!r}")
    n = np.asarray(counts, np.float64)
    lp = np.asarray(logp)
    total = n.sum(axis=-1, keepdims=True)
    post = np.log((n + alpha * np.exp(lp.astype(np.float64))) / (total + alpha))
    return np.where(total > 0, post, lp).astype(np.float32)


def held_out_loss(train: np.ndarray, test: np.ndarray, logp: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """For each alpha: the log-loss per held-out count (``-sum(test * log P) / sum(test)``, ``P`` the
    rule applied to the ``train`` counts). All arrays ``(names, labels)``."""
    weight = test.sum()
    out = []
    for a in alphas:
        out.append(-float((test * combine(train, logp, a).astype(np.float64)).sum()) / max(float(weight), 1.0))
    return np.array(out)


def choose_alpha(counts: np.ndarray, logp: np.ndarray, alphas: Sequence[float] = ALPHA_GRID, repeats: int = 5,
                 seed: int = 0) -> Tuple[float, dict]:
    """Cross-validate alpha on held-out counts: each count is split in two at random (every birth or
    line goes to one half with probability 1/2, a binomial draw), the rule is applied to one half and
    scored by the log-loss of the other half's counts, both ways round, ``repeats`` times. Returns the
    alpha with the lowest mean loss and a report (``alphas``, ``loss``, ``repeats``, ``split``)."""
    counts = np.asarray(counts, np.int64)
    rng = np.random.default_rng(seed)
    loss = np.zeros(len(alphas))
    for _ in range(repeats):
        half = rng.binomial(counts, 0.5)
        rest = counts - half
        loss += held_out_loss(half, rest, logp, alphas) + held_out_loss(rest, half, logp, alphas)
    loss /= 2 * repeats
    best = int(np.argmin(loss))
    return float(alphas[best]), {"alphas": [float(a) for a in alphas], "loss": [round(float(v), 6) for v in loss],
                                 "repeats": repeats, "seed": seed,
                                 "split": "each count split in two halves (binomial, p = 1/2); the rule on one half "
                                          "scored by the log-loss of the other half's counts, both ways round"}


def write_table(path: Union[str, Path], keys: Sequence[str], counts: np.ndarray, logp: np.ndarray) -> None:
    """Write ``name_table.npz``: ``keys`` (distinct, any order) with their ``counts`` and ``logp`` rows."""
    keys = list(keys)
    if len(set(keys)) != len(keys):
        raise ValueError("write_table: the keys must be distinct")
    if any("\n" in k for k in keys):
        raise ValueError("write_table: a key holds a line break")
    counts = np.asarray(counts)
    if counts.shape[0] != len(keys) or np.asarray(logp).shape != counts.shape:
        raise ValueError(f"write_table: {len(keys)} keys, counts {counts.shape}, logp {np.asarray(logp).shape}")
    if (counts < 0).any() or (counts > np.iinfo(np.uint32).max).any():
        raise ValueError("write_table: counts must lie in 0 .. 2**32 - 1")
    order = sorted(range(len(keys)), key=lambda i: keys[i].encode("utf-8"))
    blob = "".join(keys[i] + "\n" for i in order).encode("utf-8")
    arrays = {"names": np.frombuffer(blob, np.uint8), "counts": counts[order].astype("<u4"),
              "logp": np.asarray(logp)[order].astype("<f4")}
    import io
    import zipfile
    from ..checkpoint_json import atomic_write_bytes
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:   # an .npz as numpy.savez writes it, member by member
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            # floats barely deflate (about 8%): stored, they cost nothing to read; names and counts deflate 3-4x
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name == "logp" else zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue(), compresslevel=9)
    atomic_write_bytes(path, out.getvalue())


class NameTable:
    """A model directory's name table, read on its first use (a model without one looks up nothing).

    ``alpha`` and ``lowercase`` come from ``config.json``; ``check``, when given, is called with the
    file's bytes before they are parsed (the SHA-256 check). Lookups are thread-safe."""

    def __init__(self, path: Optional[Path], alpha: float = 1.0, lowercase: bool = False, check=None):
        self.path, self.alpha, self.lowercase, self._check = path, float(alpha), bool(lowercase), check
        self._lock = threading.Lock()
        self._arrays: Optional[Tuple[bytes, List[int]]] = None           # the names: blob, where each starts
        self._values: Optional[Tuple[np.ndarray, np.ndarray]] = None     # counts, logp: read on the first known name
        self._index: Optional[Dict[str, int]] = None
        self._data: Optional[bytes] = None   # the file's bytes, once read (checked against its SHA-256)

    @classmethod
    def of(cls, directory: Union[str, Path], config: dict, check=None) -> "NameTable":
        """The table ``config.json`` describes (nothing is read yet), or an empty one."""
        section = config.get(SECTION)
        if not isinstance(section, dict):
            return cls(None)
        return cls(Path(directory) / section.get("file", FILE), float(section.get("alpha", 1.0)),
                   bool((config.get("tokenizer") or {}).get("lowercase", False)), check)

    def __bool__(self) -> bool:
        return self.path is not None

    def __getstate__(self) -> dict:
        """Pickled with the file's bytes (as the ONNX model travels in a predictor's pickle), so it
        unpickles where the model's folder is absent; the lock and parsed arrays are not pickled."""
        data = self._data
        if data is None and self.path is not None and self.path.is_file():
            data = self.path.read_bytes()
        return {"path": self.path, "alpha": self.alpha, "lowercase": self.lowercase, "check": self._check,
                "data": data}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"], state["alpha"], state["lowercase"], state["check"])
        self._data = state.get("data")

    def _member(self, name: str) -> np.ndarray:
        """One array of the (checked) file: only that member is inflated."""
        import io
        import zipfile
        with zipfile.ZipFile(io.BytesIO(self._data)) as z:
            return np.lib.format.read_array(io.BytesIO(z.read(name + ".npy")), allow_pickle=False)

    def _load(self) -> Tuple[bytes, List[int]]:
        """The names (the file is read and its SHA-256 checked first): ``(blob, start of each name)``."""
        if self._arrays is None:
            with self._lock:
                if self._arrays is None:
                    data = self._data if self._data is not None else self._read()
                    if self._check is not None:
                        self._check(self.path, data)
                    self._data = data
                    blob = self._member("names").tobytes()
                    ends = np.flatnonzero(np.frombuffer(blob, np.uint8) == 10)
                    # a list, not an array: a look-up's binary search indexes it ~17 times (an array
                    # element costs a NumPy scalar each time)
                    self._arrays = (blob, np.concatenate([[0], ends[:-1] + 1]).tolist())
        return self._arrays

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            from ..errors import UsageError
            raise UsageError(f"{self.path}: config.json describes a name table that cannot be read "
                             f"({exc.strerror or exc}); restore the file, or rebuild it with `namemodels data "
                             f"name-table {self.path.parent} --data PATH` (the model's training data)") from None

    def _counts_logp(self) -> Tuple[np.ndarray, np.ndarray]:
        if self._values is None:
            self._load()
            with self._lock:
                if self._values is None:
                    self._values = (self._member("counts"), self._member("logp"))
        return self._values

    def __len__(self) -> int:
        return len(self._load()[1]) if self else 0

    def keys(self) -> List[str]:
        return self._load()[0].decode("utf-8").split("\n")[:-1] if self else []

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Row of each key (already :func:`name_key`-ed), ``-1`` where the table lacks it."""
        if not self or not len(keys):
            return np.full(len(keys), -1, np.int64)
        blob, starts = self._load()
        if len(keys) <= SMALL and self._index is None:
            return np.array([self._search(blob, starts, k.encode("utf-8")) for k in keys], np.int64)
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.keys())}
        get = self._index.get
        return np.fromiter((get(k, -1) for k in keys), np.int64, len(keys))

    @staticmethod
    def _search(blob: bytes, starts: List[int], key: bytes) -> int:
        lo, hi = 0, len(starts)
        while lo < hi:
            mid = (lo + hi) // 2
            s = starts[mid]
            k = blob[s:blob.index(b"\n", s)]
            if k < key:
                lo = mid + 1
            elif k > key:
                hi = mid
            else:
                return mid
        return -1

    def rows(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(counts, logp)`` of table rows (all >= 0)."""
        counts, logp = self._counts_logp()
        return counts[rows], logp[rows]

    def answer(self, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """For known rows: the rule's log-probabilities and each name's total count."""
        counts, logp = self.rows(rows)
        return combine(counts, logp, self.alpha), counts.sum(axis=1, dtype=np.int64)


def table_counts(names: Iterable[str], labels: Iterable[str], weights: Iterable[float], label_order: Sequence[str],
                 lowercase: bool) -> Tuple[List[str], np.ndarray]:
    """Sum ``weights`` per (key, label) over the data's rows: ``(keys, counts (keys, labels))``, counts
    rounded to whole numbers. Rows whose label the model does not know raise ValueError."""
    column = {label: j for j, label in enumerate(label_order)}
    index: Dict[str, int] = {}
    sums: List[List[float]] = []
    for name, label, w in zip(names, labels, weights):
        key = name_key(name, lowercase)
        if not key:
            continue
        if label not in column:
            raise ValueError(f"label {label!r} of {name!r} is not one of the model's labels ({', '.join(label_order)})")
        i = index.setdefault(key, len(index))
        if i == len(sums):
            sums.append([0.0] * len(column))
        sums[i][column[label]] += w
    counts = np.rint(np.array(sums, np.float64).reshape(len(sums), len(column)))
    return list(index), counts.astype(np.int64)
