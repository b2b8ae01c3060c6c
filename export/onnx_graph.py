"""ONNX graphs (opset >= 17) for classifiers and generator steps, built node by node.

What the graphs compute is the models' own recipe (``namemodels.models``; overview in
``namemodels.recipe``), rendered as nodes: each shared piece is defined once in
``namemodels.recipe_torch`` (momentum matrix, reversal within a length, final step, binary head,
ensemble combine) or ``namemodels.recipe`` (decoder state layout), and the nodes below name the
definition they render. Gate blocks and their ONNX order come from the cell registry
(``kernels/cells.py``), special-token ids from ``CharTokenizer``.

Portability rules (measured on onnxruntime, the ONNX reference evaluator, OpenVINO and tract):

* no ``sequence_lens``, no ``Loop`` and no unrolling over time: each sequence's final state is
  gathered from ``Y`` at its own ``length - 1``, so padding after a sequence's end cannot change its
  result;
* the classifier runs time-major: ``ids`` is transposed once, the embedding gather gives
  ``(T, B, E)``, and every per-sequence gather (final state, reversal) is one ``Gather`` on the
  ``(T*B, width)`` view with flat indices ``t * B + b`` built once from ``lengths`` -- few nodes,
  which is what a single name's latency pays for;
* ``pool="max"`` classifiers also take the top layer's ``Y`` (reverse direction restored to forward
  order), set steps at or past each length to -inf with a ``(T, B)`` mask ``Range(T) < lengths``
  (``Where``), ``ReduceMax`` over time (axes an attribute at opset 17, an input from 18) and
  concatenate that after the final states;
* the reverse direction reverses every sequence within its own length, runs the forward-direction
  op and reverses ``Y`` back;
* ``rnn_relu`` does not use the ONNX ``RNN`` op: the reference evaluator does not implement its
  ``Relu`` activation and tract computes it wrongly. The classifier runs it as a ``Scan`` over time
  (``h_t = Relu(x_t W^T + b + h_{t-1} R^T)`` with ``x W^T + b`` precomputed by one MatMul outside
  the loop), the generator step as plain MatMul/Add/Relu;
* an LSTM with projections (``proj_size``, ``h_t = W_hr (o_t * tanh(c_t))``) does not use the ONNX
  ``LSTM`` op either, which has no projection: the classifier runs each layer and direction as a
  ``Scan`` over time of the same structure (``x W_ih^T + b`` precomputed; the body adds ``h W_hh^T``,
  splits the gates in torch's order i, f, g, o and projects), the generator step writes the one
  step out (Gemm/Split/Sigmoid/Tanh/MatMul); ``h`` and each direction's output are ``proj_size``
  wide, ``c`` keeps ``hidden``;
* momentum cells are not unrolled: ``v_t = mu v_{t-1} + s (W x_t + b)`` with ``v_0 = 0`` is
  ``W (M x)_t + b (M 1)_t`` with ``M[t, k] = s mu^(t-k)`` (k <= t), a (T x T) matrix built from
  the dynamic T (Range/Pow/Where). ``M x`` is one MatMul, ``M 1`` an extra input column whose
  weight column is ``b_ih``; the native RNN/GRU/LSTM op does the rest. The generator step feeds
  ``v_t`` through a (permuted) identity input weight.

Gate orders: torch LSTM (i, f, g, o) -> ONNX (i, o, f, c); torch GRU (r, z, n) -> ONNX (z, r, h)
with ``linear_before_reset=1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from namemodels.kernels.cells import MODES
from namemodels.recipe import state_layout
from namemodels.tokenizer import CharTokenizer

from .weights import ExportError, LayerWeights, ModelWeights

if TYPE_CHECKING:  # onnx is imported where a graph is built
    import onnx

_T = TypeVar("_T")

MIN_OPSET = 17
HALF_MIN_SIZE = 256  # smaller float16-exact initializers stay float32 (nothing to save)
EXACT_INT = 2**24  # integers a float32 holds exactly (see _ngram_logits)
DEFAULT_OPSET = 17


def _reorder(a: np.ndarray, mode: str, hidden: int) -> np.ndarray:
    """Gate blocks (rows of ``hidden``) from torch.nn's order to the ONNX operator's."""
    chunks = [a[i * hidden : (i + 1) * hidden] for i in range(a.shape[0] // hidden)]
    return np.concatenate([chunks[i] for i in MODES[mode].onnx_order], 0)


def _need(value: _T | None) -> _T:
    """``value``, which this model's configuration has made (a name or an array built or stored only for
    some configurations)."""
    assert value is not None
    return value


def _f32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32)


class _Builder:
    def __init__(self) -> None:
        from onnx import TensorProto, helper, numpy_helper

        self.h, self.nh, self.TP = helper, numpy_helper, TensorProto
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0
        self._consts: dict[tuple[str, str], str] = {}

    def name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def init(self, base: str, arr: np.ndarray) -> str:
        """An initializer. A float32 weight whose every value is a float16 (weights trained with
        ``--save-dtype float16``) is stored as float16 and cast back by a ``Cast`` that runtimes fold
        at load time: half the file, the same numbers."""
        name = self.name(base)
        arr = np.array(arr, order="C")
        if arr.dtype == np.float32 and arr.size >= HALF_MIN_SIZE and np.array_equal(arr.astype(np.float16), arr):
            self.inits.append(self.nh.from_array(arr.astype(np.float16), name + "_f16"))
            self.nodes.append(
                self.h.make_node("Cast", [name + "_f16"], [name], to=self.TP.FLOAT, name=self.name("n_Cast"))
            )
            return name
        self.inits.append(self.nh.from_array(arr, name))
        return name

    def const(self, value: Any, dtype: DTypeLike) -> str:
        key = (repr(value), np.dtype(dtype).str)
        if key not in self._consts:
            self._consts[key] = self.init("c", np.array(value, dtype=dtype))
        return self._consts[key]

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        """A node of one output; returns the output's name."""
        return self.ops(op_type, inputs, 1, **attrs)[0]

    def ops(self, op_type: str, inputs: list[str], n_out: int, **attrs: Any) -> list[str]:
        """A node of ``n_out`` outputs; returns their names."""
        outs = [self.name(op_type.lower()) for _ in range(n_out)]
        self.nodes.append(self.h.make_node(op_type, inputs, outs, name=self.name("n_" + op_type), **attrs))
        return outs

    def native(
        self,
        mode: str,
        X: str,
        lw: LayerWeights,
        hidden: int,
        *,
        bias_column: bool,
        identity: bool,
        initial_h: str | None = None,
        initial_c: str | None = None,
    ) -> tuple[str, str, str | None]:
        """One forward-direction ONNX GRU/LSTM/RNN(Tanh) over time-major ``X``; returns ``(Y, Y_h, Y_c)``
        with ``Y`` of shape ``(T, 1, B, H)``."""
        if mode == "rnn_relu":
            raise AssertionError("rnn_relu does not use the ONNX RNN op (see the module docstring)")
        G = lw.w_ih.shape[0]
        if identity:
            W = _reorder(np.eye(G, dtype=np.float32), mode, hidden)
            Wb = np.zeros(G, np.float32)
        else:
            W = _reorder(lw.w_ih, mode, hidden)
            Wb = _reorder(lw.b_ih, mode, hidden)
            if bias_column:
                W = np.concatenate([W, Wb[:, None]], 1)
                Wb = np.zeros(G, np.float32)
        R = _reorder(lw.w_hh, mode, hidden)
        B = np.concatenate([Wb, _reorder(lw.b_hh, mode, hidden)])
        ins = [X, self.init("W", _f32(W[None])), self.init("R", _f32(R[None])), self.init("B", _f32(B[None]))]
        if initial_h is not None:
            ins += ["", initial_h] + ([_need(initial_c)] if mode == "lstm" else [])
        attrs: dict[str, Any] = {"hidden_size": hidden}
        if mode == "gru":
            op_type, attrs["linear_before_reset"] = "GRU", 1
        elif mode == "lstm":
            op_type = "LSTM"
        else:
            op_type, attrs["activations"] = "RNN", ["Tanh"]
        outs = self.ops(op_type, ins, 3 if mode == "lstm" else 2, **attrs)
        return outs[0], outs[1], (outs[2] if mode == "lstm" else None)

    def scan(
        self,
        step: str,
        nodes: list[onnx.NodeProto],
        body_inputs: list[tuple[str, int]],
        body_outputs: list[tuple[str, int]],
        weights: dict[str, np.ndarray],
        inputs: list[str],
    ) -> str:
        """A ``Scan`` over time whose body graph (named after ``step``) is ``nodes``; returns the scanned
        output ``Y (T, B, width)``. ``inputs``: the initial states, then the one time-major input;
        ``body_inputs`` / ``body_outputs``: the body's ``(name, width)`` values, each ``(B, width)`` float
        (the states, then the step's input / output); ``weights``: the body's own initializers by name
        (a Scan body reads them as its own, which every runtime accepts)."""
        h = self.h

        def values(pairs: list[tuple[str, int]]) -> list[onnx.ValueInfoProto]:
            return [h.make_tensor_value_info(name, self.TP.FLOAT, [None, width]) for name, width in pairs]

        body = h.make_graph(
            nodes,
            self.name(step),
            values(body_inputs),
            values(body_outputs),
            [self.nh.from_array(a, name) for name, a in weights.items()],
        )
        return self.ops("Scan", inputs, len(body_outputs), body=body, num_scan_inputs=1)[-1]

    def relu_scan(self, X: str, lw: LayerWeights, hidden: int, shape_bh: str) -> str:
        """``rnn_relu`` over time-major ``X (T, B, I)`` as a Scan; returns ``Y (T, B, H)``.

        ``x W_ih^T + b_ih + b_hh`` is one MatMul over all steps; the loop body does
        ``h = Relu(xw_t + h R^T)`` and emits ``h``. The body's weight is its own initializer."""
        h = self.h
        xw = self.op(
            "Add",
            [self.op("MatMul", [X, self.init("w_ih_t", _f32(lw.w_ih.T))]), self.init("b", _f32(lw.b_ih + lw.b_hh))],
        )  # (T,B,H)
        h0 = self.op("ConstantOfShape", [shape_bh], value=self.nh.from_array(np.zeros(1, np.float32)))  # (B,H) zeros
        h_in, x_in = self.name("scan_h"), self.name("scan_xw")
        r_t, pre, h_new = self.name("scan_r_t"), self.name("scan_pre"), self.name("scan_h_new")
        h_out, y_out = self.name("scan_h_out"), self.name("scan_y")
        hr = self.name("scan_hr")
        nodes = [
            h.make_node("MatMul", [h_in, r_t], [hr], name=self.name("n_scan_MatMul")),
            h.make_node("Add", [x_in, hr], [pre], name=self.name("n_scan_Add")),
            h.make_node("Relu", [pre], [h_new], name=self.name("n_scan_Relu")),
            h.make_node("Identity", [h_new], [h_out], name=self.name("n_scan_state")),
            h.make_node("Identity", [h_new], [y_out], name=self.name("n_scan_out")),
        ]
        return self.scan(
            "relu_step",
            nodes,
            [(h_in, hidden), (x_in, hidden)],
            [(h_out, hidden), (y_out, hidden)],
            {r_t: _f32(lw.w_hh.T)},
            [h0, xw],
        )

    def lstm_cell(
        self, gates: str, c: str, hidden: int, w_hr_t: str, split: str, nodes: list[onnx.NodeProto] | None = None
    ) -> tuple[str, str]:
        """An LSTM with projections, one step from its gate pre-activations ``gates (B, 4H)`` (torch's
        order i, f, g, o) and ``c (B, H)``: ``c' = sigma(f) c + sigma(i) tanh(g)``, ``h' = (sigma(o)
        tanh(c')) W_hr^T``; returns ``(h', c')``. ``nodes``: a list to append to (a Scan body) instead
        of the graph's nodes; ``w_hr_t`` and ``split`` (the sizes ``[H]*4``) are names visible there."""
        h = self.h
        target = self.nodes if nodes is None else nodes

        def op(op_type, inputs, n_out=1):
            outs = [self.name(op_type.lower()) for _ in range(n_out)]
            target.append(
                h.make_node(
                    op_type, inputs, outs, name=self.name("n_" + op_type), **({"axis": 1} if op_type == "Split" else {})
                )
            )
            return outs[0] if n_out == 1 else outs

        i, f, g, o = op("Split", [gates, split], 4)
        c_new = op("Add", [op("Mul", [op("Sigmoid", [f]), c]), op("Mul", [op("Sigmoid", [i]), op("Tanh", [g])])])
        m = op("Mul", [op("Sigmoid", [o]), op("Tanh", [c_new])])
        return op("MatMul", [m, w_hr_t]), c_new

    def lstm_proj_scan(
        self, X: str, lw: LayerWeights, hidden: int, shape_bp: str, shape_bh: str, bias_column: bool
    ) -> str:
        """An LSTM with projections (``proj_size``) over time-major ``X (T, B, I)`` from zero states, as
        a Scan (the ONNX LSTM op has no projection); returns ``Y (T, B, P)``.

        ``x W_ih^T + b_ih + b_hh`` is one MatMul over all steps (``bias_column``: ``X`` ends in the
        momentum column, whose weight column is ``b_ih``); the body adds ``h W_hh^T`` and runs
        :meth:`lstm_cell`. The body's weights are its own initializers, as in :meth:`relu_scan`."""
        h = self.h
        P = _need(lw.w_hr).shape[0]
        w_in = np.concatenate([lw.w_ih, lw.b_ih[:, None]], 1) if bias_column else lw.w_ih
        bias = lw.b_hh if bias_column else lw.b_ih + lw.b_hh
        xw = self.op("Add", [self.op("MatMul", [X, self.init("w_ih_t", _f32(w_in.T))]), self.init("b", _f32(bias))])
        zeros = self.nh.from_array(np.zeros(1, np.float32))
        h0 = self.op("ConstantOfShape", [shape_bp], value=zeros)  # (B,P)
        c0 = self.op("ConstantOfShape", [shape_bh], value=zeros)  # (B,H)
        h_in, c_in, x_in = self.name("scan_h"), self.name("scan_c"), self.name("scan_xw")
        r_t, hr_t, split = self.name("scan_r_t"), self.name("scan_hr_t"), self.name("scan_split")
        nodes = []
        gates = self.name("scan_gates")
        rec = self.name("scan_rec")
        nodes.append(h.make_node("MatMul", [h_in, r_t], [rec], name=self.name("n_scan_MatMul")))
        nodes.append(h.make_node("Add", [x_in, rec], [gates], name=self.name("n_scan_Add")))
        h_new, c_new = self.lstm_cell(gates, c_in, hidden, hr_t, split, nodes)
        h_out, c_out, y_out = self.name("scan_h_out"), self.name("scan_c_out"), self.name("scan_y")
        nodes += [
            h.make_node("Identity", [h_new], [h_out], name=self.name("n_scan_state")),
            h.make_node("Identity", [c_new], [c_out], name=self.name("n_scan_cell")),
            h.make_node("Identity", [h_new], [y_out], name=self.name("n_scan_out")),
        ]
        return self.scan(
            "lstm_proj_step",
            nodes,
            [(h_in, P), (c_in, hidden), (x_in, 4 * hidden)],
            [(h_out, P), (c_out, hidden), (y_out, P)],
            {r_t: _f32(lw.w_hh.T), hr_t: _f32(_need(lw.w_hr).T), split: np.full(4, hidden, np.int64)},
            [h0, c0, xw],
        )

    def model(
        self,
        graph_name: str,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        metadata: dict,
        opset: int,
    ) -> onnx.ModelProto:
        h = self.h
        graph = h.make_graph(self.nodes, graph_name, inputs, outputs, self.inits)
        m = h.make_model(
            graph,
            opset_imports=[h.make_opsetid("", opset)],
            producer_name="namemodels",
            producer_version=metadata.get("namemodels.version", ""),
        )
        m.ir_version = min(m.ir_version, 8)
        h.set_model_props(m, metadata)
        return m


def _check(w: ModelWeights, opset: int) -> None:
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: the exporter needs opset >= {MIN_OPSET}")
    if w.mode not in MODES:
        raise ExportError(f"cannot export recurrence {w.mode!r} to ONNX")
    if w.mode == "rnn_relu" and w.momentum:
        raise ExportError("cannot export a momentum RNN with nonlinearity relu (not a shipped configuration)")


def classifier_graph(w: ModelWeights, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """``ids (B, T) int64, lengths (B,) int64 -> logprobs (B, C)``; an ensemble's members side by side,
    combined as ``recipe_torch.ensemble_log_probs`` (``logsumexp_k(lp_k) - log K``), its logsumexp
    written out as ``m + log(sum_k exp(lp_k - m))`` with ``m`` the element-wise max."""
    members = w.members or [w]
    for m in members:
        _check(m, opset)
    b = _Builder()
    TP, h = b.TP, b.h
    if len(members) == 1:
        _classifier_logprobs(b, w, opset, "logprobs")
    else:
        lps = [_classifier_logprobs(b, m, opset) for m in members]
        top = b.op("Max", lps)
        total = b.op("Sum", [b.op("Exp", [b.op("Sub", [lp, top])]) for lp in lps])
        shift = b.op("Sub", [top, b.const(np.log(len(lps)), np.float32)])
        b.nodes.append(h.make_node("Add", [b.op("Log", [total]), shift], ["logprobs"], name="output"))
    C = 2 if w.binary else w.head_w.shape[0]
    inputs = [
        h.make_tensor_value_info("ids", TP.INT64, ["batch", "time"]),
        h.make_tensor_value_info("lengths", TP.INT64, ["batch"]),
    ]
    outputs = [h.make_tensor_value_info("logprobs", TP.FLOAT, ["batch", C])]
    return b.model("namemodels_classifier", inputs, outputs, w.metadata(), opset)


def _classifier_logprobs(b: _Builder, w: ModelWeights, opset: int, out: str | None = None) -> str:
    """One classifier's nodes from ``ids`` and ``lengths`` to its log-probabilities (named ``out``)."""
    TP, h = b.TP, b.h
    i64 = np.int64
    H, D = w.hidden, w.directions
    OW = w.width  # each direction's output: proj_size wide with projections, else H
    x = b.op("Gather", [b.init("embedding", w.embedding), b.op("Transpose", ["ids"], perm=[1, 0])], axis=0)  # (T,B,E)
    width = w.embedding.shape[1]
    shape_b = b.op("Shape", ["lengths"])  # [B]
    Bs = b.op("Gather", [shape_b, b.const(0, i64)], axis=0)  # scalar B
    brange = b.op("Range", [b.const(0, i64), Bs, b.const(1, i64)])  # (B,)
    # recipe_torch.final_step: row (L_b - 1) * B + b of the time-major (T*B, width) view
    last = b.op("Sub", ["lengths", b.const(1, i64)])  # (B,)
    last_flat = b.op("Add", [b.op("Mul", [last, Bs]), brange])  # (B,) rows of (T*B, .)
    pool_max = w.pool == "max"
    tr = None
    T = None
    if D == 2 or w.momentum or pool_max or w.ngrams is not None:
        T = b.op("Gather", [b.op("Shape", ["ids"]), b.const(1, i64)], axis=0)  # scalar T
    if D == 2 or w.momentum or pool_max:
        tr = b.op("Range", [b.const(0, i64), _need(T), b.const(1, i64)])  # (T,)
    rev_flat = valid = None
    if D == 2 or pool_max:
        tcol = b.op("Unsqueeze", [_need(tr), b.const([1], i64)])  # (T,1)
        valid = b.op("Less", [tcol, "lengths"])  # (T,B) t < length
    if D == 2:  # recipe_torch.reverse_index, time-major, as flat rows
        ridx = b.op("Where", [_need(valid), b.op("Sub", [last, tcol]), tcol])  # (T,B)
        rev_flat = b.op("Add", [b.op("Mul", [ridx, Bs]), brange])  # (T,B)
    shape_bh = b.op("Concat", [shape_b, b.const([H], i64)], axis=0) if w.mode == "rnn_relu" or w.proj else None
    shape_bp = b.op("Concat", [shape_b, b.const([w.proj], i64)], axis=0) if w.proj else None
    M = rowsum3 = shape_1b1 = None
    if w.momentum:  # recipe_torch.momentum_matrix: M[t, k] = s mu^(t-k) where t >= k, else 0
        tf = b.op("Cast", [_need(tr)], to=TP.FLOAT)
        diff = b.op("Sub", [b.op("Unsqueeze", [tf, b.const([1], i64)]), b.op("Unsqueeze", [tf, b.const([0], i64)])])
        powers = b.op("Pow", [b.const(w.mu, np.float32), b.op("Relu", [diff])])
        M = b.op(
            "Where",
            [
                b.op("GreaterOrEqual", [diff, b.const(0.0, np.float32)]),
                b.op("Mul", [powers, b.const(w.s, np.float32)]),
                b.const(0.0, np.float32),
            ],
        )  # (T,T)
        rowsum3 = b.op(
            "Unsqueeze", [b.op("ReduceSum", [M, b.const([1], i64)], keepdims=1), b.const([1], i64)]
        )  # (T,1,1)
        shape_1b1 = b.op("Concat", [b.const([1], i64), shape_b, b.const([1], i64)], axis=0)

    def rows(t, wd):  # (T, .., B, wd) -> (T*B, wd)
        return b.op("Reshape", [t, b.const([-1, wd], i64)])

    def reverse(t, wd):  # each sequence reversed within its own length; (T,B,wd)
        return b.op("Gather", [rows(t, wd), _need(rev_flat)], axis=0)

    finals: list[str] = []
    for layer in range(w.layers):
        top = layer == w.layers - 1
        outs, finals = [], []
        for d in range(D):
            X = reverse(x, width) if d else x  # (T,B,I)
            if w.momentum:  # 2-D MatMul over (T, B*I): every runtime handles it with a symbolic T
                xm = b.op(
                    "Reshape",
                    [
                        b.op("MatMul", [_need(M), b.op("Reshape", [X, b.const([0, -1], i64)])]),
                        b.const([0, -1, width], i64),
                    ],
                )
                X = b.op("Concat", [xm, b.op("Expand", [_need(rowsum3), _need(shape_1b1)])], axis=2)  # (T,B,I+1)
            if w.mode == "rnn_relu":
                Y = b.relu_scan(X, w.rnn[layer][d], H, _need(shape_bh))  # (T,B,H)
            elif w.proj:  # LSTM with projections: a Scan (the LSTM op has none)
                Y = b.lstm_proj_scan(
                    X, w.rnn[layer][d], H, _need(shape_bp), _need(shape_bh), bias_column=w.momentum
                )  # (T,B,P)
            else:
                Y = b.native(w.mode, X, w.rnn[layer][d], H, bias_column=w.momentum, identity=False)[0]  # (T,1,B,H)
            finals.append(b.op("Gather", [rows(Y, OW), last_flat], axis=0))  # (B,O)
            if not top or pool_max:  # per-step outputs in forward-direction order, (T,B,O)
                outs.append(reverse(Y, OW) if d else b.op("Reshape", [Y, b.const([0, -1, OW], i64)]))
        if outs:
            x = outs[0] if len(outs) == 1 else b.op("Concat", outs, axis=2)  # (T,B,D*O)
            width = D * OW
    enc = finals[0] if len(finals) == 1 else b.op("Concat", finals, axis=1)  # (B, D*O)
    if pool_max:  # max over each sequence's own steps: padding -> -inf, then ReduceMax over time
        masked = b.op(
            "Where", [b.op("Unsqueeze", [_need(valid), b.const([2], i64)]), x, b.const(-np.inf, np.float32)]
        )  # (T,B,D*H)
        if opset >= 18:
            pooled = b.op("ReduceMax", [masked, b.const([0], i64)], keepdims=0)
        else:
            pooled = b.op("ReduceMax", [masked], axes=[0], keepdims=0)  # (B,D*H)
        enc = b.op("Concat", [enc, pooled], axis=1)  # (B, 2*D*H)
    logits = b.op("Gemm", [enc, b.init("head_w", w.head_w), b.init("head_b", w.head_b)], transB=1)
    if w.ngrams is not None:
        logits = b.op("Add", [logits, _ngram_logits(b, w, shape_b, _need(T))])
    if w.binary:  # recipe_torch.binary_log_probs as log_softmax([0, z]) (ONNX has no LogSigmoid)
        logits = b.op("Concat", [b.op("Mul", [logits, b.const(0.0, np.float32)]), logits], axis=1)
    if out is None:
        return b.op("LogSoftmax", [logits], axis=1)
    b.nodes.append(h.make_node("LogSoftmax", [logits], [out], axis=1, name="output"))
    return out


def _ngram_logits(b: _Builder, w: ModelWeights, shape_b: str, T: str) -> str:
    """The wide part of a classifier, ``(B, C)``: the n-gram ids of ``namemodels.models.ngram_buckets``
    from ``ids`` and ``lengths`` in ~30 nodes (each costs microseconds on a single name).

    ``X = [<bos>, ids, 0 * N]`` and ``Idx[p, k] = p + k`` (p < T+2, k < N) give every window
    ``S = X[:, Idx]`` (B, P, N) at once; ``Idx[p, n-1]`` is also where the n-gram at ``p`` ends, so
    ``<eos>`` goes where ``Idx == length + 1`` and the n-gram is valid where ``Idx <= length + 1``.
    The buckets of all n at once, ``(sum_k S[.., k] V^(n-1-k) + n * STRIDE) mod K``, computed modulo K
    term by term: ``Wc[k, n-1] = V^(n-1-k) mod K`` (k < n), Mul, Mod, ReduceSum, then the offset
    ``n * STRIDE mod K`` and a last Mod. Every intermediate stays below ``K * V`` and ``(N+1) * K``,
    under 2^24, because OpenVINO's CPU plugin does int64 arithmetic in float32 (the plain sum of
    ``S * V^(n-1-k)`` came out wrong there for 5-grams). Invalid n-grams read an extra all-zero row."""
    from namemodels.models import NGRAM_STRIDE

    i64 = np.int64
    V, K, N = w.embedding.shape[0], _need(w.ngrams).shape[0], w.ngram_max
    if K * V >= EXACT_INT or (N + 1) * K >= EXACT_INT:
        raise ExportError(
            f"the wide part's {K} buckets over {V} symbols need integers past 2^24, which some "
            "runtimes compute in float32; train with fewer --ngram-buckets"
        )
    wc = np.array([[pow(V, n - k, K) if k <= n else 0 for n in range(N)] for k in range(N)], i64)
    ofs = np.array([(n + 1) * NGRAM_STRIDE % K for n in range(N)], i64)

    def fill(v: int, cols: int) -> str:
        return b.op(
            "ConstantOfShape",
            [b.op("Concat", [shape_b, b.const([cols], i64)], axis=0)],
            value=b.nh.from_array(np.array([v], i64)),
        )

    X = b.op("Concat", [fill(CharTokenizer.bos_id, 1), "ids", fill(CharTokenizer.pad_id, N)], axis=1)  # (B, T+1+N)
    P = b.op("Add", [T, b.const(2, i64)])
    idx = b.op(
        "Add",
        [
            b.op("Unsqueeze", [b.op("Range", [b.const(0, i64), P, b.const(1, i64)]), b.const([1], i64)]),
            b.const(np.arange(N, dtype=i64)[None, :], i64),
        ],
    )  # (P, N): p + k
    end_at = b.op("Unsqueeze", [b.op("Add", ["lengths", b.const(1, i64)]), b.const([1, 2], i64)])  # (B,1,1)
    S = b.op("Gather", [X, idx], axis=1)  # (B, P, N)
    S = b.op("Where", [b.op("Equal", [idx, end_at]), b.const(CharTokenizer.eos_id, i64), S])  # <eos> after the name
    terms = b.op(
        "Mod", [b.op("Mul", [b.op("Unsqueeze", [S, b.const([3], i64)]), b.const(wc, i64)]), b.const(K, i64)]
    )  # (B, P, N, N), each < K
    codes = b.op("ReduceSum", [terms, b.const([2], i64)], keepdims=0)  # (B, P, N), < N K
    valid = b.op("LessOrEqual", [idx, end_at])  # (B, P, N)
    bucket = b.op(
        "Where", [valid, b.op("Mod", [b.op("Add", [codes, b.const(ofs, i64)]), b.const(K, i64)]), b.const(K, i64)]
    )
    table = np.concatenate([_need(w.ngrams), np.zeros((1, _need(w.ngrams).shape[1]), np.float32)])
    total = b.op(
        "ReduceSum", [b.op("Gather", [b.init("ngrams", table), bucket], axis=0), b.const([1, 2], i64)], keepdims=0
    )  # (B, C)
    count = b.op("ReduceSum", [b.op("Cast", [valid], to=b.TP.FLOAT), b.const([1, 2], i64)], keepdims=0)  # (B,)
    return b.op("Div", [total, b.op("Unsqueeze", [b.op("Sqrt", [count]), b.const([1], i64)])])


def step_state_layout(w: ModelWeights) -> dict:
    """The step graph's state inputs and outputs: ``namemodels.recipe.state_layout`` of ``w``."""
    return state_layout(w.mode, w.momentum, w.layers, w.hidden, w.gates, w.proj)


def step_graph(w: ModelWeights, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """``token (B,), h (L,B,H)[, c][, v][, category (B,)] -> logprobs (B,V), h_out[, c_out][, v_out]``."""
    _check(w, opset)
    if w.directions != 1:
        raise ExportError("a generator cannot be bidirectional")
    b = _Builder()
    TP, h = b.TP, b.h
    i64 = np.int64
    H = w.hidden
    x = b.op("Gather", [b.init("embedding", w.embedding), "token"], axis=0)  # (B,E)
    if w.category is not None:
        x = b.op("Concat", [x, b.op("Gather", [b.init("category_embedding", w.category), "category"], axis=0)], axis=1)
    new: dict[str, list[str]] = {"h": [], "c": [], "v": []}
    for layer in range(w.layers):
        lw = w.rnn[layer][0]

        def sl(name: str, layer: int = layer) -> str:
            return b.op("Slice", [name, b.const([layer], i64), b.const([layer + 1], i64), b.const([0], i64)])

        h0 = sl("h")
        if w.mode == "rnn_relu":  # plain MatMul/Add/Relu (see the module docstring)
            hp = b.op("Squeeze", [h0, b.const([0], i64)])  # (B,H)
            hn = b.op(
                "Relu",
                [
                    b.op(
                        "Add",
                        [
                            b.op("Gemm", [x, b.init("w_ih", lw.w_ih), b.init("b_ih", lw.b_ih)], transB=1),
                            b.op("Gemm", [hp, b.init("w_hh", lw.w_hh), b.init("b_hh", lw.b_hh)], transB=1),
                        ],
                    )
                ],
            )
            new["h"].append(b.op("Unsqueeze", [hn, b.const([0], i64)]))
            x = hn
            continue
        c0 = sl("c") if w.mode == "lstm" else None
        if w.proj:  # LSTM with projections, one step written out (the LSTM op has no projection)
            hp = b.op("Squeeze", [h0, b.const([0], i64)])  # (B,P)
            rec = b.op("Gemm", [hp, b.init("w_hh", lw.w_hh), b.init("b_hh", lw.b_hh)], transB=1)  # (B,4H)
            if w.momentum:  # v_t = mu v_{t-1} + s (W_ih x_t + b_ih) takes the input projection's place
                v0 = b.op("Squeeze", [sl("v"), b.const([0], i64)])
                u = b.op("Gemm", [x, b.init("w_ih", lw.w_ih), b.init("b_ih", lw.b_ih)], transB=1)
                vn = b.op(
                    "Add", [b.op("Mul", [v0, b.const(w.mu, np.float32)]), b.op("Mul", [u, b.const(w.s, np.float32)])]
                )
                new["v"].append(b.op("Unsqueeze", [vn, b.const([0], i64)]))
                gates = b.op("Add", [vn, rec])
            else:
                gates = b.op(
                    "Add", [b.op("Gemm", [x, b.init("w_ih", lw.w_ih), b.init("b_ih", lw.b_ih)], transB=1), rec]
                )
            hn, cn = b.lstm_cell(
                gates,
                b.op("Squeeze", [_need(c0), b.const([0], i64)]),
                H,
                b.init("w_hr_t", _f32(_need(lw.w_hr).T)),
                b.const([H] * 4, i64),
            )
            new["h"].append(b.op("Unsqueeze", [hn, b.const([0], i64)]))
            new["c"].append(b.op("Unsqueeze", [cn, b.const([0], i64)]))
            x = hn
            continue
        if w.momentum:
            v0 = b.op("Squeeze", [sl("v"), b.const([0], i64)])  # (B,G)
            u = b.op("Gemm", [x, b.init("w_ih", lw.w_ih), b.init("b_ih", lw.b_ih)], transB=1)
            vn = b.op("Add", [b.op("Mul", [v0, b.const(w.mu, np.float32)]), b.op("Mul", [u, b.const(w.s, np.float32)])])
            new["v"].append(b.op("Unsqueeze", [vn, b.const([0], i64)]))
            X = new["v"][-1]
        else:
            X = b.op("Unsqueeze", [x, b.const([0], i64)])  # (1,B,I)
        _, Yh, Yc = b.native(w.mode, X, lw, H, bias_column=False, identity=w.momentum, initial_h=h0, initial_c=c0)
        new["h"].append(Yh)
        if Yc is not None:
            new["c"].append(Yc)
        x = b.op("Squeeze", [Yh, b.const([0], i64)])
    logits = b.op("Gemm", [x, b.init("head_w", w.head_w), b.init("head_b", w.head_b)], transB=1)
    b.nodes.append(h.make_node("LogSoftmax", [logits], ["logprobs"], axis=1, name="output"))
    layout = step_state_layout(w)
    names = list(layout)
    for n in names:
        parts = new[n]
        src = parts[0] if len(parts) == 1 else b.op("Concat", parts, axis=0)
        b.nodes.append(h.make_node("Identity", [src], [n + "_out"], name=n + "_out"))
    inputs = [h.make_tensor_value_info("token", TP.INT64, ["batch"])]
    inputs += [h.make_tensor_value_info(n, TP.FLOAT, [layout[n][0], "batch", layout[n][1]]) for n in names]
    if w.category is not None:
        inputs.append(h.make_tensor_value_info("category", TP.INT64, ["batch"]))
    outputs = [h.make_tensor_value_info("logprobs", TP.FLOAT, ["batch", w.embedding.shape[0]])]
    outputs += [h.make_tensor_value_info(n + "_out", TP.FLOAT, [layout[n][0], "batch", layout[n][1]]) for n in names]
    return b.model("namemodels_step", inputs, outputs, w.metadata(), opset)


def build(w: ModelWeights, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    m = step_graph(w, opset) if w.generator else classifier_graph(w, opset)
    import onnx

    onnx.checker.check_model(m, full_check=True)
    return m
