"""Torch-free inference: a model's ``model.onnx`` on onnxruntime + NumPy.

Implements :class:`~namemodels.inference.protocol.Backend`: ``logprobs(ids, lengths)`` for a classifier
graph, ``initial_state(batch)`` and ``step(tokens, state, category)`` for a generator's step graph
(the state is a dict of arrays named as the graph's state inputs, :data:`namemodels.recipe.STATE_NAMES`).

Threads (``threads``, default :func:`default_threads`): a classifier's batches are independent, so
:meth:`OnnxBackend.logprobs_map` runs up to ``threads`` of them at once on one single-threaded session
(ONNX Runtime sessions take concurrent runs; each run releases the GIL), while the calling thread
encodes the next batches. A generator's decoding steps depend on each other, so a step of more than
:data:`SMALL_BATCH` rows runs on a session with ``threads`` intra-op threads instead, created on first
use. Idle pool threads sleep rather than spin. Whole batches per thread hold up when other processes
compete for the cores, where splitting every small operator across threads (ONNX Runtime's intra-op
parallelism) made each batch wait for its slowest thread: ``namemodels bench bulk`` (threads part)
compares the settings on a quiet machine and with every core busy.

Pickling: a backend pickles with its model file's bytes and opens its sessions again where it is
unpickled, so a predictor can be sent to other processes (Dask workers) that lack the file.
"""

from __future__ import annotations

import collections
import json
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..config import CLASSIFIER_KINDS
from ..cores import machine_cores
from ..errors import UsageError
from ..integrity import check_config, check_file
from ..recipe import STATE_NAMES, zero_state

SMALL_BATCH = 64  # at most this many rows run on the single-threaded session


def default_threads() -> int:
    """``NAMEMODELS_ONNX_THREADS`` when set, else ``min(2, usable cores)`` (``bench bulk``'s threads part
    compares it with every other setting, on a quiet machine and a busy one)."""
    return int(os.environ.get("NAMEMODELS_ONNX_THREADS", "0")) or min(2, machine_cores())


def _session(model: bytes | str | Path, threads: int) -> Any:  # an onnxruntime.InferenceSession
    """An ONNX Runtime session for ``model``: a path, or the file's bytes (an unpickled backend)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle pool threads sleep instead of spinning: a spinning thread burns the core that another process
    # (a web server, a second Dask worker) needs, and on a busy machine spinning threads wait on each other.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


class OnnxBackend:
    """A model's ``model.onnx`` behind the backend protocol. ``config``: its directory's checked
    ``config.json``, when there is one (the file's SHA-256, vocabulary, labels and cell are checked
    against it); ``threads``: intra-op threads for large batches."""

    def __init__(self, path: str | Path, config: dict | None = None, threads: int | None = None):
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"{path}: not found; write it with `namemodels export MODEL --format onnx --out {path}`")
        if path.stat().st_size == 0:
            raise UsageError(f"{path}: empty file; re-export it with `namemodels export`")
        self._model = path.read_bytes()  # read once: checked, then parsed by every session of this backend
        if config is not None:  # the SHA-256s config.json records, before onnxruntime parses the bytes
            check_config(config, path.parent)
            check_file(path, config, self._model)
            weights = path.parent / "model.safetensors"
            if weights.is_file() and "model.safetensors" in (config.get("sha256") or {}):
                # Not read on this path, but checked as on the torch path, so that every load checks the
                # hashes: a damaged copy of the weights is noticed before it is exported or trained on
                # (~1 ms for the shipped files of 1 MB, against ~270 ms for `namemodels predict`).
                check_file(weights, config)
        self.threads = max(1, int(threads)) if threads is not None else default_threads()
        try:
            self.session = _session(self._model, 1)  # small batches; metadata
        except Exception as exc:  # onnxruntime raises its own types for truncated or invalid protobufs
            msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise UsageError(
                f"{path}: cannot load the ONNX model ({msg}); the file is truncated or not an "
                "ONNX model, re-export it with `namemodels export`"
            ) from None
        self.path = path
        self._wide = self.session if self.threads == 1 else None
        self._build_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self.meta: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.graph = self.meta.get("namemodels.graph", "")
        if self.graph not in ("classifier", "step"):
            raise UsageError(
                f"{path}: not a namemodels export (no namemodels.graph metadata); re-export it with `namemodels export`"
            )
        self.states = [n for n in STATE_NAMES if n in self.inputs]
        self._logprobs = ["logprobs"]
        self._step_outputs = ["logprobs"] + [n + "_out" for n in self.states]
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        self._state_layout = {n: (shapes[n][0], shapes[n][2]) for n in self.states}  # (layers, width)
        if config is not None:
            self._check_config(config)

    def _check_config(self, config: dict) -> None:
        problems = []
        tok = config.get("tokenizer", {})
        vocab = list(tok.get("specials", [])) + list(tok.get("chars", []))
        try:
            meta_vocab = json.loads(self.meta.get("namemodels.vocab", "null"))
            meta_labels = json.loads(self.meta.get("namemodels.labels", "null"))
        except json.JSONDecodeError:
            meta_vocab = meta_labels = None
        if meta_vocab != vocab:
            problems.append("its vocabulary differs from config.json's tokenizer")
        if meta_labels != config.get("labels"):
            problems.append("its labels differ from config.json's")
        spec = config.get("model", {})
        kind = spec.get("kind")
        want = "classifier" if kind in CLASSIFIER_KINDS else "step"
        if self.graph != want:
            problems.append(f"it is a {self.graph} graph but config.json describes a {kind} model")
        cell = spec.get("member", spec).get("cell")
        if cell and self.meta.get("namemodels.cell") != cell:
            problems.append(f"it was exported from a {self.meta.get('namemodels.cell')} model, config.json says {cell}")
        if problems:
            raise UsageError(
                f"{self.path}: does not match {Path(self.path).parent / 'config.json'}: "
                + "; ".join(problems)
                + "; re-export it with `namemodels export`"
            )

    def _for(self, batch: int) -> Any:
        """The session for a decoding step of ``batch`` rows (see the module docstring)."""
        if batch <= SMALL_BATCH:
            return self.session
        if self._wide is None:
            with self._build_lock:  # several threads may hit the first large batch at once: build it once
                if self._wide is None:
                    self._wide = _session(self._model, self.threads)
        return self._wide

    # ---- pickling: the model's bytes travel, the sessions are opened again where it is unpickled ----
    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("session", "_wide", "_build_lock", "_pool")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.session = _session(self._model, 1)
        self._wide = self.session if self.threads == 1 else None
        self._build_lock = threading.Lock()
        self._pool = None

    def session_info(self) -> dict:
        return {
            "classifier_batches_at_once": self.threads,
            "classifier_intra_op_threads": 1,
            "step_intra_op_threads": {f"<= {SMALL_BATCH} rows": 1, f"> {SMALL_BATCH} rows": self.threads},
            "spinning": False,
            "execution_mode": "sequential",
            "graph_optimization": "all",
        }

    def logprobs(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        if self.graph != "classifier":
            raise UsageError(f"{self.path}: a generator step graph cannot classify")
        lengths = np.asarray(lengths, np.int64)  # no copy when already int64 (what the predictor passes)
        return self.session.run(self._logprobs, {"ids": np.asarray(ids, np.int64), "lengths": lengths})[0]

    def logprobs_map(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[np.ndarray]:
        """:meth:`logprobs` of each ``(ids, lengths)`` batch, in order, up to ``threads`` at once (see the
        module docstring). ``batches`` is read lazily, so its encoding overlaps the runs."""
        if self.threads == 1:
            for ids, lengths in batches:
                yield self.logprobs(ids, lengths)
            return
        if self._pool is None:
            with self._build_lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="namemodels-onnx")
        pending: collections.deque = collections.deque()
        try:
            for ids, lengths in batches:
                pending.append(self._pool.submit(self.logprobs, ids, lengths))
                if len(pending) > self.threads:  # keep every thread busy, and memory bounded
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:  # the caller stopped early (an error): drop what has not started
                f.cancel()

    def initial_state(self, batch: int) -> dict[str, np.ndarray]:
        return zero_state(self._state_layout, batch)

    def step(
        self, tokens: np.ndarray, state: dict[str, np.ndarray] | None, category: np.ndarray | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if self.graph != "step":
            raise UsageError(f"{self.path}: a classifier graph cannot generate")
        tokens = np.asarray(tokens, np.int64)
        feeds = dict(state) if state is not None else self.initial_state(len(tokens))
        feeds["token"] = tokens
        if "category" in self.inputs:
            if category is None:
                category = np.zeros(len(tokens), np.int64)  # category 0: none
            feeds["category"] = np.asarray(category, np.int64)
        outs = self._for(len(tokens)).run(self._step_outputs, feeds)
        return outs[0], dict(zip(self.states, outs[1:]))
