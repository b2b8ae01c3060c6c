"""ONNX graphs (opset >= 17) for classifiers and generator steps, built node by node.

Portability rules (measured on onnxruntime, the ONNX reference evaluator, OpenVINO and tract):

* no ``sequence_lens`` and no ``Loop``: each sequence's final state is gathered from ``Y`` at its
  own ``length - 1`` (GatherElements), so padding after a sequence's end cannot change its result;
* the reverse direction reverses every sequence within its own length (a gather index built from
  ``lengths``), runs the forward-direction op and reverses ``Y`` back;
* momentum cells are not unrolled: ``v_t = mu v_{t-1} + s (W x_t + b)`` with ``v_0 = 0`` is
  ``W (M x)_t + b (M 1)_t`` with ``M[t, k] = s mu^(t-k)`` (k <= t), a (T x T) matrix built from
  the dynamic T (Range/Pow/Where). ``M x`` is one MatMul, ``M 1`` an extra input column whose
  weight column is ``b_ih``; the native RNN/GRU/LSTM op does the rest. The generator step feeds
  ``v_t`` through a (permuted) identity input weight.

Gate orders: torch LSTM (i, f, g, o) -> ONNX (i, o, f, c); torch GRU (r, z, n) -> ONNX (z, r, h)
with ``linear_before_reset=1``.
"""
from __future__ import annotations

from typing import List, Optional

import numpy as np

from .weights import ExportError, LayerWeights, ModelWeights

MIN_OPSET = 17
DEFAULT_OPSET = 17
ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2], "rnn_tanh": [0], "rnn_relu": [0]}


def _reorder(a: np.ndarray, mode: str, hidden: int) -> np.ndarray:
    chunks = [a[i * hidden:(i + 1) * hidden] for i in range(a.shape[0] // hidden)]
    return np.concatenate([chunks[i] for i in ORDER[mode]], 0)


class _Builder:
    def __init__(self):
        from onnx import helper, numpy_helper, TensorProto
        self.h, self.nh, self.TP = helper, numpy_helper, TensorProto
        self.nodes, self.inits, self.n = [], [], 0
        self._consts = {}

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, base: str, arr: np.ndarray) -> str:
        name = self.name(base)
        self.inits.append(self.nh.from_array(np.array(arr, order="C"), name))
        return name

    def const(self, value, dtype) -> str:
        key = (repr(value), np.dtype(dtype).str)
        if key not in self._consts:
            self._consts[key] = self.init("c", np.array(value, dtype=dtype))
        return self._consts[key]

    def op(self, op_type: str, inputs: List[str], n_out: int = 1, **attrs):
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, inputs, outs, name=self.name("n_" + op_type), **attrs))
        return outs[0] if n_out == 1 else outs

    def recurrent(self, mode: str, X: str, lw: LayerWeights, hidden: int, momentum: bool, *, bias_column: bool,
                  identity: bool, initial_h: Optional[str] = None, initial_c: Optional[str] = None):
        """One forward-direction ONNX RNN/GRU/LSTM over time-major ``X``; returns ``(Y, Y_h, Y_c)``."""
        G = lw.w_ih.shape[0]
        if identity:
            W = np.eye(G, dtype=np.float32)[:, :]
            W = _reorder(W, mode, hidden)
            Wb = np.zeros(G, np.float32)
        else:
            W = _reorder(lw.w_ih, mode, hidden)
            Wb = _reorder(lw.b_ih, mode, hidden)
            if bias_column:
                W = np.concatenate([W, Wb[:, None]], 1)
                Wb = np.zeros(G, np.float32)
        R = _reorder(lw.w_hh, mode, hidden)
        B = np.concatenate([Wb, _reorder(lw.b_hh, mode, hidden)])
        ins = [X, self.init("W", W[None].astype(np.float32)), self.init("R", R[None]), self.init("B", B[None])]
        if initial_h is not None:
            ins += ["", initial_h] + ([initial_c] if mode == "lstm" else [])
        attrs = {"hidden_size": hidden}
        if mode == "gru":
            op_type, attrs["linear_before_reset"] = "GRU", 1
        elif mode == "lstm":
            op_type = "LSTM"
        else:
            op_type, attrs["activations"] = "RNN", ["Tanh" if mode == "rnn_tanh" else "Relu"]
        outs = self.op(op_type, ins, 3 if mode == "lstm" else 2, **attrs)
        return outs[0], outs[1], (outs[2] if mode == "lstm" else None)

    def model(self, graph_name, inputs, outputs, metadata: dict, opset: int):
        h = self.h
        graph = h.make_graph(self.nodes, graph_name, inputs, outputs, self.inits)
        m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="namemodels",
                         producer_version=metadata.get("namemodels.version", ""))
        m.ir_version = min(m.ir_version, 8)
        h.set_model_props(m, metadata)
        return m


def _check(w: ModelWeights, opset: int) -> None:
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: the exporter needs opset >= {MIN_OPSET}")
    if w.mode not in ORDER:
        raise ExportError(f"cannot export recurrence {w.mode!r} to ONNX")


def classifier_graph(w: ModelWeights, opset: int = DEFAULT_OPSET):
    """``ids (B, T) int64, lengths (B,) int64 -> logprobs (B, C)``."""
    _check(w, opset)
    b = _Builder()
    TP, h = b.TP, b.h
    i64 = np.int64
    H = w.hidden
    x = b.op("Gather", [b.init("embedding", w.embedding), "ids"], axis=0)          # (B,T,E)
    shape_bt = b.op("Shape", ["ids"])                                                # [B,T]
    L = b.op("Unsqueeze", ["lengths", b.const([1], i64)])                            # (B,1)
    last = b.op("Sub", [L, b.const(1, i64)])                                         # (B,1)
    tr = None
    if w.directions == 2 or w.momentum:
        T = b.op("Gather", [shape_bt, b.const(1, i64)], axis=0)                      # scalar
        tr = b.op("Range", [b.const(0, i64), T, b.const(1, i64)])                    # (T,)
    shape_b1h = b.op("Concat", [b.op("Shape", ["lengths"]), b.const([1, H], i64)], axis=0)
    last_idx = b.op("Expand", [b.op("Unsqueeze", [last, b.const([2], i64)]), shape_b1h])  # (B,1,H)
    ridx3 = None
    if w.directions == 2:
        trow = b.op("Unsqueeze", [tr, b.const([0], i64)])                            # (1,T)
        ridx = b.op("Where", [b.op("Less", [trow, L]), b.op("Sub", [last, trow]), trow])  # (B,T)
        ridx3 = b.op("Unsqueeze", [ridx, b.const([2], i64)])                         # (B,T,1)
    M = rowsum3 = shape_1b1 = None
    if w.momentum:
        tf = b.op("Cast", [tr], to=TP.FLOAT)
        diff = b.op("Sub", [b.op("Unsqueeze", [tf, b.const([1], i64)]), b.op("Unsqueeze", [tf, b.const([0], i64)])])
        powers = b.op("Pow", [b.const(w.mu, np.float32), b.op("Relu", [diff])])
        M = b.op("Where", [b.op("GreaterOrEqual", [diff, b.const(0.0, np.float32)]),
                           b.op("Mul", [powers, b.const(w.s, np.float32)]), b.const(0.0, np.float32)])  # (T,T)
        rowsum3 = b.op("Unsqueeze", [b.op("ReduceSum", [M, b.const([1], i64)], keepdims=1), b.const([1], i64)])  # (T,1,1)
        shape_1b1 = b.op("Concat", [b.const([1], i64), b.op("Shape", ["lengths"]), b.const([1], i64)], axis=0)

    def reverse(t):
        return b.op("GatherElements", [t, b.op("Expand", [ridx3, b.op("Shape", [t])])], axis=1)

    finals = []
    for layer in range(w.layers):
        outs = []
        finals = []
        for d in range(w.directions):
            xi = reverse(x) if d else x
            X = b.op("Transpose", [xi], perm=[1, 0, 2])                               # (T,B,I)
            if w.momentum:  # 2-D MatMul over (T, B*I): every runtime handles it with a symbolic T
                xm = b.op("Reshape", [b.op("MatMul", [M, b.op("Reshape", [X, b.const([0, -1], i64)])]),
                                      b.op("Shape", [X])])
                X = b.op("Concat", [xm, b.op("Expand", [rowsum3, shape_1b1])], axis=2)  # (T,B,I+1)
            Y, _, _ = b.recurrent(w.mode, X, w.rnn[layer][d], H, w.momentum, bias_column=w.momentum, identity=False)
            Y = b.op("Transpose", [b.op("Squeeze", [Y, b.const([1], i64)])], perm=[1, 0, 2])  # (B,T,H)
            finals.append(b.op("Squeeze", [b.op("GatherElements", [Y, last_idx], axis=1), b.const([1], i64)]))
            outs.append(reverse(Y) if d else Y)
        x = outs[0] if len(outs) == 1 else b.op("Concat", outs, axis=2)
    enc = finals[0] if len(finals) == 1 else b.op("Concat", finals, axis=1)           # (B, D*H)
    logits = b.op("Gemm", [enc, b.init("head_w", w.head_w), b.init("head_b", w.head_b)], transB=1)
    if w.binary:
        logits = b.op("Concat", [b.op("Mul", [logits, b.const(0.0, np.float32)]), logits], axis=1)
    out = b.op("LogSoftmax", [logits], axis=1)
    b.nodes.append(h.make_node("Identity", [out], ["logprobs"], name="output"))
    C = 2 if w.binary else w.head_w.shape[0]
    inputs = [h.make_tensor_value_info("ids", TP.INT64, ["batch", "time"]),
              h.make_tensor_value_info("lengths", TP.INT64, ["batch"])]
    outputs = [h.make_tensor_value_info("logprobs", TP.FLOAT, ["batch", C])]
    return b.model("namemodels_classifier", inputs, outputs, w.metadata(), opset)


def state_names(w: ModelWeights) -> List[str]:
    return ["h"] + (["c"] if w.mode == "lstm" else []) + (["v"] if w.momentum else [])


def state_sizes(w: ModelWeights) -> dict:
    return {"h": w.hidden, "c": w.hidden, "v": w.gates * w.hidden}


def step_graph(w: ModelWeights, opset: int = DEFAULT_OPSET):
    """``token (B,), h (L,B,H)[, c][, v][, category (B,)] -> logprobs (B,V), h_out[, c_out][, v_out]``."""
    _check(w, opset)
    if w.directions != 1:
        raise ExportError("a generator cannot be bidirectional")
    b = _Builder()
    TP, h = b.TP, b.h
    i64 = np.int64
    H, G = w.hidden, w.gates * w.hidden
    x = b.op("Gather", [b.init("embedding", w.embedding), "token"], axis=0)         # (B,E)
    if w.category is not None:
        x = b.op("Concat", [x, b.op("Gather", [b.init("category_embedding", w.category), "category"], axis=0)], axis=1)
    new = {"h": [], "c": [], "v": []}
    for layer in range(w.layers):
        lw = w.rnn[layer][0]
        sl = lambda name: b.op("Slice", [name, b.const([layer], i64), b.const([layer + 1], i64), b.const([0], i64)])  # noqa: E731
        h0 = sl("h")
        c0 = sl("c") if w.mode == "lstm" else None
        if w.momentum:
            v0 = b.op("Squeeze", [sl("v"), b.const([0], i64)])                     # (B,G)
            u = b.op("Gemm", [x, b.init("w_ih", lw.w_ih), b.init("b_ih", lw.b_ih)], transB=1)
            vn = b.op("Add", [b.op("Mul", [v0, b.const(w.mu, np.float32)]), b.op("Mul", [u, b.const(w.s, np.float32)])])
            new["v"].append(b.op("Unsqueeze", [vn, b.const([0], i64)]))
            X = new["v"][-1]
        else:
            X = b.op("Unsqueeze", [x, b.const([0], i64)])                           # (1,B,I)
        _, Yh, Yc = b.recurrent(w.mode, X, lw, H, w.momentum, bias_column=False, identity=w.momentum,
                                initial_h=h0, initial_c=c0)
        new["h"].append(Yh)
        if Yc is not None:
            new["c"].append(Yc)
        x = b.op("Squeeze", [Yh, b.const([0], i64)])
    logits = b.op("Gemm", [x, b.init("head_w", w.head_w), b.init("head_b", w.head_b)], transB=1)
    b.nodes.append(h.make_node("LogSoftmax", [logits], ["logprobs"], axis=1, name="output"))
    names = state_names(w)
    for n in names:
        parts = new[n]
        src = parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=0)
        b.nodes.append(h.make_node("Identity", [src], [n + "_out"], name=n + "_out"))
    sizes = state_sizes(w)
    inputs = [h.make_tensor_value_info("token", TP.INT64, ["batch"])]
    inputs += [h.make_tensor_value_info(n, TP.FLOAT, [w.layers, "batch", sizes[n]]) for n in names]
    if w.category is not None:
        inputs.append(h.make_tensor_value_info("category", TP.INT64, ["batch"]))
    outputs = [h.make_tensor_value_info("logprobs", TP.FLOAT, ["batch", w.embedding.shape[0]])]
    outputs += [h.make_tensor_value_info(n + "_out", TP.FLOAT, [w.layers, "batch", sizes[n]]) for n in names]
    return b.model("namemodels_step", inputs, outputs, w.metadata(), opset)


def build(w: ModelWeights, opset: int = DEFAULT_OPSET):
    m = step_graph(w, opset) if w.generator else classifier_graph(w, opset)
    import onnx
    onnx.checker.check_model(m, full_check=True)
    return m
