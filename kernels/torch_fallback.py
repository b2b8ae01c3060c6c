"""The torch path of every layer, in one form that runs eagerly, under ``torch.compile``, under
``torch.jit.script`` and under ``torch.export``.

Momentum without a Python loop: the recurrence ``v_t = mu v_{t-1} + s (W x_t + b)`` is linear, so
with ``v_0 = 0``

    v_t = W (s * sum_k mu^(t-k) x_k) + b (s * sum_k mu^(t-k)).

The sums are one small (T x T) lower-triangular matmul over the *inputs* (width I, not the gate
width G), and the second term is a time-dependent bias, fed as one extra input column whose
weight column is ``b_ih``. The native kernel then does exactly what it does for the plain cell.
A non-zero ``v_0`` adds ``mu^t v_0``, which no input column can carry; that rarer case runs the
scan in gate space and feeds ``v`` through an identity input weight.

Why one form for every runtime: the exports (``export/torchscript.py``, ``export/pt2.py``) used to
carry their own copy of this recurrence (a scriptable twin layer), which had to be kept equal to
this one by hand. Now :func:`layered` (a stack of layers) and :func:`torch_layer` (one layer and
direction) are TorchScript-compatible and :class:`ScriptableRecurrent` holds a trained layer's
weights for them, so the exports script or trace *this* code. What differs between runtimes is only
how a padded batch of different lengths is run (``static``):

* eager (``static=False``): packed for the native kernels when lengths differ (fast, exact);
* ``static=True`` -- TorchScript, torch.export, and ``torch.compile``, where packing's
  data-dependent shapes would break the graph: every step of the padded batch runs, with an input
  column that freezes the state past each sequence's end (:func:`masked_layer`);
* ``scan=True`` (torch.export of a classifier, ``export/pt2.py``): the same static form with the
  time loop as ``torch._higher_order_ops.scan`` (:func:`scan_layer`), so that the exported program's
  length stays dynamic (torch.export unrolls the native ops' loop, fixing the length).

Branches under ``if not torch.jit.is_scripting()`` are left out by the TorchScript compiler, which
is how the eager-only pieces (packing, the scan) sit in the same functions.
"""

from typing import Any, Final, NamedTuple, Optional

import torch
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

# The momentum matrix and the reversal within each length are shared with the exported models.
from namemodels.recipe_torch import gather_steps, momentum_matrix, reverse_index

LayerState = tuple[Tensor, Optional[Tensor], Optional[Tensor]]  # (h_n, c_n, v_n) of one layer and direction

_NATIVE = {"rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu, "gru": _VF.gru, "lstm": _VF.lstm}


def run_padded(
    mode: str,
    x: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    weights: list[Tensor],
    has_bias: bool,
    train: bool = False,
    scan: bool = False,
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """Every sequence of ``x (B, T, I)`` through all ``T`` steps of one forward-direction layer from
    ``h0 (B, P)``, ``c0 (B, H)`` (LSTM): ``(out (B, T, P), h_T (B, P), c_T (B, H) or None)``. The native
    op (``torch.lstm``/``gru``/``rnn_tanh``/``rnn_relu``, written out so that TorchScript compiles
    them), or with ``scan`` (eager and torch.export only) :func:`scan_layer`."""
    if not torch.jit.is_scripting():
        if scan:
            return scan_layer(mode, x, h0, c0, weights, has_bias)
    if mode == "lstm":
        assert c0 is not None
        out, h, c = torch.lstm(x, [h0.unsqueeze(0), c0.unsqueeze(0)], weights, has_bias, 1, 0.0, train, False, True)
        return out, h[0], c[0]
    if mode == "gru":
        out, h = torch.gru(x, h0.unsqueeze(0), weights, has_bias, 1, 0.0, train, False, True)
    elif mode == "rnn_relu":
        out, h = torch.rnn_relu(x, h0.unsqueeze(0), weights, has_bias, 1, 0.0, train, False, True)
    else:
        out, h = torch.rnn_tanh(x, h0.unsqueeze(0), weights, has_bias, 1, 0.0, train, False, True)
    return out, h[0], None


def scan_layer(
    mode: str, x: Tensor, h0: Tensor, c0: Optional[Tensor], weights: list[Tensor], has_bias: bool
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """:func:`run_padded` with the time loop as ``torch._higher_order_ops.scan``, a graph-level loop
    that keeps the length dynamic in a torch.export program (not scriptable; eager and export only).
    The equations are torch.nn's (:mod:`namemodels.kernels.naive` writes them out step by step); the
    input part ``W_ih x + b_ih`` of every step is one matmul before the loop."""
    from torch._higher_order_ops.scan import scan

    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if has_bias else (None, None)
    n = 4 if has_bias else 2
    w_hr = weights[n] if len(weights) > n else None
    xs = nn.functional.linear(x, w_ih, b_ih).transpose(0, 1)  # (T, B, gates*H)
    h = h0.clone()  # distinct tensors: scan's inputs must not alias (AOTInductor checks)
    if mode == "lstm":
        assert c0 is not None

        def lstm_step(carry, xt):
            h, c = carry
            i, f, g, o = (xt + nn.functional.linear(h, w_hh, b_hh)).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if w_hr is not None:
                h = nn.functional.linear(h, w_hr)
            return (h, c), h.clone()

        (h, c), ys = scan(lstm_step, (h, c0.clone()), xs)
        return ys.transpose(0, 1), h, c
    if mode == "gru":

        def step(carry, xt):
            (h,) = carry
            xr, xz, xn = xt.chunk(3, 1)
            hr, hz, hn = nn.functional.linear(h, w_hh, b_hh).chunk(3, 1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            h = (1 - z) * torch.tanh(xn + r * hn) + z * h
            return (h,), h.clone()
    else:
        act = torch.relu if mode == "rnn_relu" else torch.tanh

        def step(carry, xt):
            (h,) = carry
            h = act(xt + nn.functional.linear(h, w_hh, b_hh))
            return (h,), h.clone()

    (h,), ys = scan(step, (h,), xs)
    return ys.transpose(0, 1), h, None


def native_layer(
    mode: str,
    x: Tensor,
    lengths: Optional[Tensor],
    h0: Tensor,
    c0: Optional[Tensor],
    weights: list[Tensor],
    has_bias: bool,
    static: bool = False,
    scan: bool = False,
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """One forward-direction layer on the native kernel: ``(out, h_n, c_n)``, states at each
    sequence's own end. Eagerly it packs when lengths differ; with ``static`` (always under
    TorchScript), and under torch.compile, it masks instead (:func:`masked_layer`), since packing's
    data-dependent shapes would break the graph. Under torch.compile the LSTM runs
    :func:`stepped_lstm`, since Inductor cannot run the oneDNN LSTM its decomposition picks on the CPU.

    ``weights``: ``[w_ih, w_hh]``, then ``[b_ih, b_hh]`` with ``has_bias``, then ``w_hr`` for an
    LSTM with projections (torch.nn's layout; the native kernel sees the projection from ``h0``'s
    width)."""
    # cuDNN's "train" flag keeps what its backward needs (no dropout here): on whenever autograd is.
    train = torch.is_grad_enabled()
    if not torch.jit.is_scripting():
        if not static and torch.compiler.is_compiling():
            if mode == "lstm":
                assert c0 is not None
                return stepped_lstm(x, lengths, h0, c0, weights, has_bias)
        elif not static:  # eager: native_stack of one layer (packed when lengths differ)
            hx: Any = h0.unsqueeze(0)
            if mode == "lstm":
                assert c0 is not None
                hx = (hx, c0.unsqueeze(0))
            out, states = native_stack(mode, x, lengths, hx, NativeStack(weights, has_bias, 1, 0.0, train, False))
            if mode == "lstm":
                return out, states[0][0], states[1][0]
            return out, states[0], None
    if lengths is None:
        return run_padded(mode, x, h0, c0, weights, has_bias, train, scan)
    return masked_layer(mode, x, lengths, h0, c0, weights, has_bias, train, scan)


class NativeStack(NamedTuple):
    """A stack's settings as torch's native kernels (``torch._VF.rnn_tanh``, ``gru``, ``lstm``, ...)
    take them, after the input and ``hx``: ``weights`` in torch.nn's flat order."""

    weights: list[Tensor]
    has_bias: bool
    layers: int
    dropout: float
    train: bool
    bidirectional: bool


def native_stack(mode: str, x: Tensor, lengths: Optional[Tensor], hx: Any, stack: NativeStack) -> tuple[Tensor, Any]:
    """A whole stack on torch's native kernel (oneDNN/cuDNN), batch-first ``x (B, T, I)``: every step
    when all sequences are full, else packed, so that each state stops at its sequence's end. ``hx``:
    ``h0`` ``(layers x directions, B, H)``, or ``(h0, c0)`` for an LSTM. Returns
    ``out (B, T, directions x H)`` and ``h_n`` or ``(h_n, c_n)``."""
    fn: Any = _NATIVE[mode]  # torch._VF functions carry no type hints
    T = x.shape[1]
    if lengths is None or bool((lengths == T).all()):
        res = fn(x, hx, *stack, True)  # batch_first
        return res[0], ((res[1], res[2]) if mode == "lstm" else res[1])
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, states = native_packed(mode, packed, hx, stack)
    return pad_packed_sequence(out, batch_first=True, total_length=T)[0], states


def native_packed(mode: str, packed: PackedSequence, hx: Any, stack: NativeStack) -> tuple[PackedSequence, Any]:
    """:func:`native_stack` on a PackedSequence: ``hx`` and the returned states in the batch's own
    order (the kernel wants them in the packed, length-sorted order, and returns them so)."""
    fn: Any = _NATIVE[mode]
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    if order is not None:
        hx = tuple(h.index_select(1, order) for h in hx) if isinstance(hx, tuple) else hx.index_select(1, order)
    res = fn(packed.data, packed.batch_sizes, hx, *stack)
    states = tuple(r.index_select(1, unorder) if unorder is not None else r for r in res[1:])
    out = PackedSequence(res[0], packed.batch_sizes, order, unorder)
    return out, (states if mode == "lstm" else states[0])


def stepped_lstm(
    x: Tensor, lengths: Optional[Tensor], h0: Tensor, c0: Tensor, weights: list, has_bias: bool
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One forward-direction LSTM layer, one step at a time in elementwise ops and matmuls: the
    path under ``torch.compile``, which unrolls the loop into one graph. (Inductor lowers ``_VF.lstm``
    on the CPU to ``aten.mkldnn_rnn_layer`` whenever the input needs no gradient, and then cannot run
    it: ``TypeError: expected Tensor() for op``.) With ``G = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``
    split into the blocks ``i, f, g, o`` (``4 H`` rows in all)

    .. math::
        c_t = \sigma(f) \odot c_{t-1} + \sigma(i) \odot \tanh(g), \qquad
        h_t = \sigma(o) \odot \tanh(c_t)

    At steps past a sequence's length (``lengths``, on the input's device) the state is carried
    unchanged and the output is zero, as the packed computation gives. ``x (B, T, I)``, ``h0, c0
    (B, H)``; returns ``out (B, T, H), h_n, c_n``. A projection ``w_hr (P, H)`` (``weights[-1]``, after
    the biases) makes it :math:`h_t = W_{hr} (\sigma(o) \odot \tanh(c_t))`, ``h`` of width ``P``."""
    w_ih, w_hh = weights[0], weights[1]
    b_ih, b_hh = (weights[2], weights[3]) if has_bias else (None, None)
    w_hr = weights[4 if has_bias else 2] if len(weights) > (4 if has_bias else 2) else None
    B, T, _ = x.shape
    gi = torch.nn.functional.linear(x, w_ih, b_ih)  # (B, T, 4H)
    valid = None
    if lengths is not None:
        valid = (torch.arange(T, device=x.device)[None, :] < lengths.to(x.device)[:, None]).unsqueeze(2)
    h, c = h0, c0
    outs = []
    for t in range(T):
        i, f, g, o = (gi[:, t] + torch.nn.functional.linear(h, w_hh, b_hh)).chunk(4, 1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        if w_hr is not None:
            h_new = h_new @ w_hr.t()
        if valid is None:
            h, c = h_new, c_new
            outs.append(h_new)
        else:
            m = valid[:, t]
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outs.append(torch.where(m, h_new, torch.zeros_like(h_new)))
    return torch.stack(outs, 1), h, c


# A gate pre-activation of +-FREEZE saturates the sigmoid to exactly 1 or 0 in every float dtype.
FREEZE = 1e4


def masked_layer(
    mode: str,
    x: Tensor,
    lengths: Tensor,
    h0: Tensor,
    c0: Optional[Tensor],
    weights: list[Tensor],
    has_bias: bool,
    train: bool = False,
    scan: bool = False,
    freeze: float = FREEZE,
) -> tuple[Tensor, Tensor, Optional[Tensor]]:
    """The packed computation without packing (static shapes: torch.compile, TorchScript,
    torch.export): the native kernel runs all T steps on the padded batch with padding zeroed; one
    extra input column, 1 at padded steps, drives the LSTM's forget gate to exactly 1 and input gate
    to exactly 0 (the GRU's update gate to 1), so the cell state is carried unchanged past each
    sequence's end and those steps add exactly nothing to any gradient. Outputs past the end are
    zeroed and ``h_n`` is read at each sequence's last step (the Elman state cannot be frozen that
    way; its late steps reach nothing). ``freeze`` is :data:`FREEZE` (an argument, as TorchScript
    reads no module-level float)."""
    T = x.size(1)
    H = weights[0].size(0) // (4 if mode == "lstm" else (3 if mode == "gru" else 1))  # hidden, not proj_size
    lengths = lengths.to(x.device)
    pad = torch.arange(T, device=x.device).unsqueeze(0) >= lengths.unsqueeze(1)  # (B, T)
    inp = x.masked_fill(pad.unsqueeze(2), 0.0)
    weights = [w for w in weights]
    if mode == "lstm" or mode == "gru":
        col = torch.zeros(weights[0].size(0), 1, dtype=x.dtype, device=x.device)
        if mode == "lstm":
            col[:H] = -freeze  # input gate i -> 0
            col[H : 2 * H] = freeze  # forget gate f -> 1
        else:
            col[H : 2 * H] = freeze  # update gate z -> 1: h' = h
        inp = torch.cat([inp, pad.unsqueeze(2).to(x.dtype)], 2)
        weights[0] = torch.cat([weights[0], col], 1)
    out, _, c_n = run_padded(mode, inp, h0, c0, weights, has_bias, train, scan)
    last = (lengths - 1).clamp(min=0)
    h_n = gather_steps(out, last.view(-1, 1)).squeeze(1)
    out = out.masked_fill(pad.unsqueeze(2), 0.0)
    return out, h_n, c_n


def torch_layer(
    mode: str,
    x: Tensor,
    lengths: Optional[Tensor],
    h0: Tensor,
    c0: Optional[Tensor],
    v0: Optional[Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    mu: Optional[Tensor] = None,
    s: Optional[Tensor] = None,
    reverse: bool = False,
    w_hr: Optional[Tensor] = None,
    static: bool = False,
    scan: bool = False,
) -> tuple[Tensor, LayerState]:
    """Same contract as :func:`naive.naive_layer`, computed with native kernels (``w_hr``: the LSTM's
    projection, ``(P, H)``). ``mu``, ``s``: the momentum coefficients as 0-d tensors (eagerly floats
    work too), None for a plain cell; ``static``, ``scan``: see :func:`native_layer`."""
    B, T = x.size(0), x.size(1)
    rev = torch.zeros(0, dtype=torch.long)
    if reverse:
        full = lengths if lengths is not None else torch.full((B,), T, dtype=torch.long)
        rev = reverse_index(full.to(x.device), T)
        x = gather_steps(x, rev)
    has_bias = b_ih is not None
    v_n: Optional[Tensor] = None
    if mu is None or s is None:
        weights = [w_ih, w_hh]
        if b_ih is not None and b_hh is not None:
            weights = weights + [b_ih, b_hh]
        inp = x
    else:
        M = momentum_matrix(T, mu, s, x)
        if lengths is not None:
            last = (lengths.to(x.device) - 1).view(-1, 1)
        else:
            last = torch.full((B, 1), T - 1, dtype=torch.long, device=x.device)
        if v0 is None:
            inp = torch.matmul(M, x)
            w = w_ih
            if b_ih is not None:
                inp = torch.cat([inp, M.sum(1).view(1, T, 1).expand(B, T, 1)], 2)
                w = torch.cat([w_ih, b_ih.unsqueeze(1)], 1)
            v_n = nn.functional.linear(gather_steps(inp, last).squeeze(1), w)
        else:
            u = nn.functional.linear(x, w_ih, b_ih)
            mu_t = torch.as_tensor(mu, dtype=x.dtype, device=x.device)
            decay = mu_t ** torch.arange(1, T + 1, device=x.device, dtype=x.dtype)
            inp = torch.matmul(M, u) + decay.view(1, T, 1) * v0.unsqueeze(1)
            w = torch.eye(inp.size(2), dtype=x.dtype, device=x.device)
            v_n = gather_steps(inp, last).squeeze(1)
        weights = [w, w_hh]
        if b_ih is not None and b_hh is not None:
            weights = weights + [torch.zeros_like(b_hh), b_hh]
    if w_hr is not None:
        weights = weights + [w_hr]
    out, h_n, c_n = native_layer(mode, inp, lengths, h0, c0, weights, has_bias, static, scan)
    if reverse:
        out = gather_steps(out, rev)
    return out, (h_n, c_n, v_n)


def layered(
    mode: str,
    x: Tensor,
    lengths: Optional[Tensor],
    h0: Tensor,
    c0: Optional[Tensor],
    v0: Optional[Tensor],
    weights: list[Tensor],
    has_bias: bool,
    num_layers: int,
    num_directions: int,
    mu: Optional[Tensor] = None,
    s: Optional[Tensor] = None,
    dropout: float = 0.0,
    training: bool = False,
    static: bool = False,
    scan: bool = False,
) -> tuple[Tensor, Tensor, Optional[Tensor], Optional[Tensor]]:
    """A stack of layers, one layer and direction at a time (:func:`torch_layer`): ``out (B, T, D*P),
    h_n, c_n, v_n`` (states ``(layers*D, B, width)``; ``c_n`` LSTM only, ``v_n`` momentum only).
    ``weights`` is the layer's flat list in torch.nn's order (``w_ih, w_hh[, b_ih, b_hh][, w_hr]`` per
    layer and direction); ``h0 (layers*D, B, P)``, ``c0``, ``v0`` likewise, ``v0`` None for zeros.
    Dropout (``training``) between layers, as torch.nn."""
    per = len(weights) // (num_layers * num_directions)
    n = 4 if has_bias else 2
    hs: list[Tensor] = []
    cs: list[Tensor] = []
    vs: list[Tensor] = []
    inp = x
    for layer in range(num_layers):
        outs: list[Tensor] = []
        for d in range(num_directions):
            k = layer * num_directions + d
            ws = weights[per * k : per * k + per]
            b_ih: Optional[Tensor] = ws[2] if has_bias else None
            b_hh: Optional[Tensor] = ws[3] if has_bias else None
            w_hr: Optional[Tensor] = ws[n] if per > n else None
            out, (h, c, v) = torch_layer(
                mode,
                inp,
                lengths,
                h0[k],
                c0[k] if c0 is not None else None,
                v0[k] if v0 is not None else None,
                ws[0],
                ws[1],
                b_ih,
                b_hh,
                mu,
                s,
                d == 1,
                w_hr,
                static,
                scan,
            )
            outs.append(out)
            hs.append(h)
            if c is not None:
                cs.append(c)
            if v is not None:
                vs.append(v)
        inp = outs[0] if len(outs) == 1 else torch.cat(outs, 2)
        if dropout > 0 and training and layer < num_layers - 1:
            inp = nn.functional.dropout(inp, dropout, True)
    c_n: Optional[Tensor] = torch.stack(cs, 0) if len(cs) > 0 else None
    v_n: Optional[Tensor] = torch.stack(vs, 0) if len(vs) > 0 else None
    return inp, torch.stack(hs, 0), c_n, v_n


class ScriptableRecurrent(nn.Module):
    """A trained layer (:class:`namemodels.kernels.layers.RecurrentBase`), inference only, as a module
    ``torch.jit.script`` compiles and ``torch.export`` traces: its weights, detached, in float32, run
    by :func:`layered` with ``static=True`` -- the layer's own torch path, not a copy of it.

    ``forward(x (B, T, I), hx, lengths (B,)) -> (output (B, T, D*P), [h_n, c_n (LSTM), v_n (momentum)])``,
    states ``(layers*D, B, width)`` as the layers give them. ``hx`` None: zero initial state (a
    classifier's padded batch); momentum then feeds the plain cell ``[M x, M 1]``. ``hx`` given (a
    generator's decoding step): those states, momentum in gate space from ``v_0``. The export
    modules swap it in for each model's layer (``export/torchscript.py``, ``export/pt2.py``); a
    subclass may set ``scan`` (eager/export only) and keep the weights as buffers (:meth:`_weights`)."""

    mode: Final[str]
    num_layers: Final[int]
    num_directions: Final[int]
    hidden_size: Final[int]
    out_size: Final[int]
    has_bias: Final[bool]
    momentum: Final[bool]
    scan: Final[bool]
    mu: Final[float]
    s: Final[float]
    weights: list[Tensor]

    # layer: a kernels.layers.RecurrentBase (not imported: layers.py imports this module, and the import
    # graph has no cycles)
    def __init__(self, layer: Any, scan: bool = False) -> None:
        super().__init__()
        self.mode, self.num_layers = layer.mode, layer.num_layers
        self.num_directions, self.hidden_size = layer.num_directions, layer.hidden_size
        self.out_size = int(layer.out_size)
        self.has_bias = bool(layer.bias)
        self.momentum = bool(layer.momentum)
        self.scan = scan
        self.mu = float(layer.mu) if self.momentum else 0.0
        self.s = float(layer.s) if self.momentum else 0.0
        self.weights = [w.detach().float().clone() for w in layer._flat_weights]

    def _weights(self) -> list[Tensor]:
        return self.weights

    def forward(self, x: Tensor, hx: Optional[list[Tensor]], lengths: Tensor) -> tuple[Tensor, list[Tensor]]:
        LD, B = self.num_layers * self.num_directions, x.size(0)
        c0: Optional[Tensor] = None
        v0: Optional[Tensor] = None
        if hx is None:
            h0 = x.new_zeros(LD, B, self.out_size)
            if self.mode == "lstm":
                c0 = x.new_zeros(LD, B, self.hidden_size)
        else:
            h0 = hx[0]
            if self.mode == "lstm":
                c0 = hx[1]
            if self.momentum:
                v0 = hx[len(hx) - 1]
        mu: Optional[Tensor] = None
        s: Optional[Tensor] = None
        if self.momentum:
            mu, s = torch.tensor(self.mu), torch.tensor(self.s)
        out, h_n, c_n, v_n = layered(
            self.mode,
            x,
            lengths.to(x.device, torch.long),
            h0,
            c0,
            v0,
            self._weights(),
            self.has_bias,
            self.num_layers,
            self.num_directions,
            mu,
            s,
            static=True,
            scan=self.scan,
        )
        states = [h_n]
        if c_n is not None:
            states.append(c_n)
        if v_n is not None:
            states.append(v_n)
        return out, states
