"""Trained weights as plain NumPy arrays, with what the exporters need to know about the model.

The ONNX builder makes its graph node by node from these arrays; the TorchScript export scripts the
model itself and takes its configuration and metadata from here. Neither artifact references
namemodels at load time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from namemodels import __version__
from namemodels.errors import UsageError
from namemodels.kernels.cells import GATES  # the cell registry: cell -> mode, mode -> gates
from namemodels.kernels.cells import MODE_OF as MODES

if TYPE_CHECKING:  # torch is imported where a model is read
    import torch

FORMAT_VERSION = 1
POOLS = ("last", "max")  # classifier encodings: final states, or final states + max over the top layer's outputs


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Hide TorchScript's deprecation warnings (torch 2.10+ warns on every ``torch.jit.script``,
    ``save`` and ``load``) around our own torch.jit calls: they are ours to act on (torch.export is
    the successor, ``--format pt2``), not our users'. Other warnings still show. (Here, a leaf module,
    so that the package and verify.py can both use it.)"""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*(torch\.jit|TorchScript).*deprecated", category=DeprecationWarning
        )
        warnings.filterwarnings("ignore", message=r".*(torch\.jit|TorchScript).*deprecated", category=FutureWarning)
        yield


class ExportError(UsageError):
    """The model cannot be exported as asked (unsupported configuration)."""


@dataclass
class LayerWeights:
    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray
    w_hr: np.ndarray | None = None  # an LSTM with projections: (proj, hidden), h_t = W_hr (o_t * tanh(c_t))


@dataclass
class ModelWeights:
    kind: str  # classifier | lm | multitask
    cell: str  # config name, one of MODES
    mode: str  # native recurrence: rnn_tanh | rnn_relu | gru | lstm
    momentum: bool
    mu: float
    s: float
    layers: int
    directions: int
    hidden: int
    embedding: np.ndarray  # (V, E)
    category: np.ndarray | None  # (K+1, Ec) or None
    rnn: list[list[LayerWeights]]  # [layer][direction]
    head_w: np.ndarray
    head_b: np.ndarray
    binary: bool
    vocab: list[str]
    labels: list[str]
    config: dict = field(default_factory=dict)
    pool: str = "last"  # classifiers: "last" | "max" (head input is [final states, masked max over time])
    ngrams: np.ndarray | None = None  # classifiers' wide part: (buckets, C) logits per hashed n-gram
    ngram_max: int = 0
    members: list[ModelWeights] = field(default_factory=list)  # an ensemble: its members (self = member 0)
    proj: int = 0  # LSTM projections (proj_size): h (and each direction's output) has this width

    @property
    def width(self) -> int:
        """The width of ``h`` and of each direction's output: ``proj`` with projections, else ``hidden``."""
        return self.proj or self.hidden

    @property
    def gates(self) -> int:
        return GATES[self.mode]

    @property
    def generator(self) -> bool:
        return self.kind in ("lm", "multitask")

    def metadata(self) -> dict:
        """String metadata stored in every artifact (ONNX metadata_props, TorchScript extra files)."""
        return {
            "namemodels.format": str(FORMAT_VERSION),
            "namemodels.version": __version__,
            "namemodels.graph": "step" if self.generator else "classifier",
            "namemodels.kind": self.kind,
            "namemodels.cell": self.cell,
            "namemodels.layers": str(self.layers),
            "namemodels.bidirectional": str(self.directions == 2).lower(),
            "namemodels.hidden": str(self.hidden),
            "namemodels.momentum": json.dumps({"mu": self.mu, "s": self.s}) if self.momentum else "",
            "namemodels.conditioned": str(self.category is not None).lower(),
            "namemodels.binary": str(self.binary).lower(),
            "namemodels.pool": self.pool,
            "namemodels.ngrams": (
                json.dumps({"buckets": int(self.ngrams.shape[0]), "max_n": self.ngram_max})
                if self.ngrams is not None
                else ""
            ),
            "namemodels.vocab": json.dumps(self.vocab),
            "namemodels.labels": json.dumps(self.labels),
            "namemodels.tokenizer": json.dumps(self.config.get("tokenizer", {}), sort_keys=True),
            "namemodels.model": json.dumps(self.config.get("model", {}), sort_keys=True),
            "namemodels.ensemble": str(len(self.members)) if self.members else "",
            # only with projections, so that models without them keep their files byte for byte
            **({"namemodels.proj_size": str(self.proj)} if self.proj else {}),
        }


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().float().numpy().copy()


def extract(model: Any, config: dict) -> ModelWeights:  # a namemodels model: its attributes are read
    """Weights of a namemodels model (``CharClassifier``, ``CharLM`` or ``MultiTask``), in eval form."""
    from namemodels.models import CharClassifier, CharLM, EnsembleClassifier, MultiTask

    spec = config.get("model", {})
    if isinstance(model, EnsembleClassifier):
        members = [extract(m, {**config, "model": spec.get("member", {})}) for m in model.members]
        return dataclasses.replace(members[0], members=members, config=config)
    kind = {CharClassifier: "classifier", CharLM: "lm", MultiTask: "multitask"}.get(type(model))
    if kind is None:
        raise ExportError(f"cannot export a {type(model).__name__}: only classifier, lm and multitask models")
    rnn = model.encoder.rnn
    cell = spec.get("cell") or ("momentum_" if rnn.momentum else "") + rnn.mode
    if cell == "momentum_rnn_tanh":
        cell = "momentum_rnn"
    if cell not in MODES:
        raise ExportError(f"cannot export cell {cell!r}; supported: {', '.join(MODES)}")
    if cell == "momentum_rnn" and rnn.mode != "rnn_tanh":
        raise ExportError("cannot export a momentum RNN with nonlinearity relu (not a shipped configuration)")
    if MODES[cell] != rnn.mode or bool(rnn.momentum) != cell.startswith("momentum"):
        raise ExportError(f"config.json says cell {cell!r} but the layer is a {type(rnn).__name__} ({rnn.mode})")
    pool = getattr(model, "pool", "last") if kind == "classifier" else "last"
    if pool not in POOLS:
        raise ExportError(f"cannot export a classifier with pool={pool!r}; supported: {', '.join(POOLS)}")
    if not rnn.bias:
        raise ExportError("cannot export a recurrent layer without bias (bias=False)")
    layers = []
    for li in range(rnn.num_layers):
        dirs = []
        for d in range(rnn.num_directions):
            w_ih, w_hh, b_ih, b_hh = rnn._layer_weights(li, d)
            w_hr = rnn._layer_proj(li, d) if getattr(rnn, "proj_size", 0) else None
            dirs.append(
                LayerWeights(_np(w_ih), _np(w_hh), _np(b_ih), _np(b_hh), _np(w_hr) if w_hr is not None else None)
            )
        layers.append(dirs)
    mu = float(rnn.mu) if rnn.momentum else 0.0
    s = float(rnn.s) if rnn.momentum else 0.0
    category = None
    if kind == "lm" and model.category is not None:
        category = _np(model.category.weight)
    tok = config.get("tokenizer") or {}
    vocab = list(tok.get("specials", ["<pad>", "<bos>", "<eos>", "<unk>"])) + list(tok.get("chars", []))
    V = model.encoder.embedding.weight.shape[0]
    if tok and len(vocab) != V:
        raise ExportError(f"config.json's tokenizer has {len(vocab)} symbols but the embedding has {V} rows")
    ngrams = getattr(model, "ngrams", None) if kind == "classifier" else None
    return ModelWeights(
        kind=kind,
        cell=cell,
        mode=rnn.mode,
        momentum=bool(rnn.momentum),
        mu=mu,
        s=s,
        layers=rnn.num_layers,
        directions=rnn.num_directions,
        hidden=rnn.hidden_size,
        embedding=_np(model.encoder.embedding.weight),
        category=category,
        rnn=layers,
        head_w=_np(model.head.weight),
        head_b=_np(model.head.bias),
        binary=bool(getattr(model, "binary", False)),
        vocab=vocab,
        labels=list(config.get("labels", [])),
        config=config,
        pool=pool,
        ngrams=_np(ngrams.weight) if ngrams is not None else None,
        ngram_max=int(model.ngram_max) if ngrams is not None else 0,
        proj=int(getattr(rnn, "proj_size", 0)),
    )
