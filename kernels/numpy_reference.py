"""A from-scratch NumPy reference: forward pass and hand-written backpropagation through time.

This module is for reading. It implements every cell of :mod:`namemodels.kernels` with NumPy only
(no torch import), one time step at a time, and derives each gradient by hand, so that the
equations can be followed line by line and checked against autograd (see
``tests/kernels/test_numpy_reference.py``). It is slow and meant for small shapes. What it teaches,
how the tests use it and an order to read it in: ``docs/numpy_rnn.md``.

Conventions (identical to :mod:`namemodels.kernels.naive` and to ``torch.nn``)
-------------------------------------------------------------------------------
* ``x`` is batch-first and padded: ``(B, T, I)``. ``lengths`` ``(B,)`` marks the valid steps of
  each sequence (``None`` = all ``T``). Outputs at padded steps are zero; final states are taken
  at each sequence's own last step; padded steps leave the state unchanged.
* Parameters use torch.nn's names for one layer and direction: ``weight_ih (G, I)``,
  ``weight_hh (G, H)``, optional ``bias_ih (G,)`` and ``bias_hh (G,)``, and for momentum cells the
  scalars ``mu`` and ``s``. ``G = gates * H`` with the gate rows in torch.nn's order:

  ============  =====  ==========================================================
  cell          gates  equations (``a = W_ih x_t + b_ih``, ``b = W_hh h + b_hh``)
  ============  =====  ==========================================================
  rnn_tanh      1      ``h' = tanh(a + b)``
  rnn_relu      1      ``h' = relu(a + b)``
  gru           3      ``r = σ(a_r + b_r)``, ``z = σ(a_z + b_z)``,
                       ``n = tanh(a_n + r * b_n)``, ``h' = (1 - z) n + z h``
  lstm          4      ``i, f, g, o = σ, σ, tanh, σ`` of ``(a + b)`` in that row order,
                       ``c' = f c + i g``, ``h' = o tanh(c')``
  ============  =====  ==========================================================

* Momentum cells (``momentum_rnn`` = tanh Elman, ``momentum_gru``, ``momentum_lstm``) keep one more
  state ``v`` of width ``G``: ``v_t = mu v_{t-1} + s a_t`` with ``v_0 = 0`` unless given, and
  ``v_t`` replaces ``a_t`` in the equations above.
* ``reverse=True`` runs each sequence backwards from its own last valid step (the second direction
  of a bidirectional layer).

Variational ("locked") dropout
------------------------------
Gal & Ghahramani's variational RNN dropout draws *one* mask per sequence and reuses it at every
time step (see :func:`locked_dropout_mask`). Two optional masks are supported, both scaled by
``1 / (1 - p)`` so that the expectation is unchanged:

* ``input_mask`` ``(B, I)`` multiplies the input: ``x_t -> x_t * input_mask`` before ``W_ih``.
* ``hidden_mask`` ``(B, H)`` multiplies the previous hidden state **only where it enters the
  recurrent matmul**: ``b = W_hh (h * hidden_mask) + b_hh``. The state that is carried on, the
  output, the GRU's ``z * h`` term and the LSTM cell ``c`` are *not* masked.

Multi-layer / bidirectional stacks are in :func:`stack_forward` / :func:`stack_backward`; training
helpers are :func:`clip_grad_norm` (torch.nn.utils.clip_grad_norm_'s semantics) and
:func:`penalty` (L1/L2 weight penalties, value and gradient).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .cells import CELLS, GATES  # noqa: F401  (CELLS: the cells this module implements)
from .cells import cell as cell_spec

Array = np.ndarray
Params = Mapping[str, Any]

PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "mu", "s")


def _spec(cell: str) -> tuple[str, bool]:
    """``(mode, momentum)`` of a cell name, from the registry."""
    spec = cell_spec(cell)
    return spec.mode, spec.momentum


def sigmoid(x: Array) -> Array:
    """Numerically stable logistic function."""
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def init_params(
    cell: str,
    input_size: int,
    hidden_size: int,
    rng: np.random.Generator,
    bias: bool = True,
    mu: float = 0.6,
    s: float = 0.6,
    dtype: DTypeLike = np.float64,
) -> dict[str, Any]:
    """Random parameters for one layer/direction, ``U(-1/sqrt(H), 1/sqrt(H))`` like torch.nn."""
    mode, momentum = _spec(cell)
    G, k = GATES[mode] * hidden_size, 1.0 / np.sqrt(hidden_size)
    shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G, input_size), "weight_hh": (G, hidden_size)}
    if bias:
        shapes.update(bias_ih=(G,), bias_hh=(G,))
    params: dict[str, Any] = {n: rng.uniform(-k, k, size=shp).astype(dtype) for n, shp in shapes.items()}
    if momentum:
        params.update(mu=float(mu), s=float(s))
    return params


def locked_dropout_mask(
    rng: np.random.Generator, batch: int, size: int, p: float, dtype: DTypeLike = np.float64
) -> Array:
    """One variational-dropout mask per sequence: ``(batch, size)`` of ``0`` or ``1/(1-p)``.

    The same row is applied at every time step of its sequence (that is what makes it "locked")."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {p}")
    keep = rng.random((batch, size)) >= p
    return keep.astype(dtype) / (1.0 - p)


# ---------------------------------------------------------------------------------------------
# One layer, one direction
# ---------------------------------------------------------------------------------------------
def _active_mask(lengths: Array | None, B: int, T: int) -> Array:
    """``active[t, b] = t < lengths[b]`` as a float ``(T, B, 1)`` array."""
    L = np.full(B, T) if lengths is None else np.asarray(lengths).reshape(B)
    if np.any(L < 0) or np.any(L > T):
        raise ValueError(f"lengths must lie in [0, T={T}], got {L.tolist()}")
    return (np.arange(T)[:, None] < L[None, :]).astype(float)[:, :, None]


def forward(
    cell: str,
    x: Array,
    params: Params,
    h0: Array | None = None,
    c0: Array | None = None,
    v0: Array | None = None,
    lengths: Array | None = None,
    reverse: bool = False,
    input_mask: Array | None = None,
    hidden_mask: Array | None = None,
) -> tuple[Array, dict[str, Array | None], dict]:
    """Run one recurrent layer in one direction, step by step.

    Args:
        cell: one of :data:`CELLS`.
        x: ``(B, T, I)`` padded, batch-first input.
        params: ``weight_ih``, ``weight_hh``, optional ``bias_ih``/``bias_hh``; ``mu``/``s`` for
            momentum cells.
        h0, c0, v0: initial states ``(B, H)``, ``(B, H)`` (LSTM), ``(B, G)`` (momentum); zeros if None.
        lengths: ``(B,)`` valid steps per sequence, or None for all ``T``.
        reverse: run each sequence from its own last valid step back to step 0.
        input_mask, hidden_mask: locked dropout masks ``(B, I)`` / ``(B, H)`` (see module docstring).

    Returns:
        ``out (B, T, H)`` (zero at padded steps), ``states = {"h": h_n, "c": c_n, "v": v_n}`` (``c``
        and ``v`` are None when the cell has no such state) and the ``cache`` that :func:`backward`
        needs.
    """
    mode, momentum = _spec(cell)
    x = np.asarray(x)
    B, T, I = x.shape  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
    W_ih, W_hh = np.asarray(params["weight_ih"]), np.asarray(params["weight_hh"])
    G, H = W_hh.shape
    b_ih = params.get("bias_ih")
    b_hh = params.get("bias_hh")
    b_ih = np.zeros(G, x.dtype) if b_ih is None else np.asarray(b_ih)
    b_hh = np.zeros(G, x.dtype) if b_hh is None else np.asarray(b_hh)
    mu = float(params["mu"]) if momentum else 0.0
    s = float(params["s"]) if momentum else 1.0
    mx = np.ones((B, I), x.dtype) if input_mask is None else np.asarray(input_mask)
    mh = np.ones((B, H), x.dtype) if hidden_mask is None else np.asarray(hidden_mask)

    h = np.zeros((B, H), x.dtype) if h0 is None else np.array(h0, dtype=x.dtype)
    c = (np.zeros((B, H), x.dtype) if c0 is None else np.array(c0, dtype=x.dtype)) if mode == "lstm" else None
    v = (np.zeros((B, G), x.dtype) if v0 is None else np.array(v0, dtype=x.dtype)) if momentum else None
    active = _active_mask(lengths, B, T)
    out = np.zeros((B, T, H), x.dtype)
    steps = list(range(T - 1, -1, -1)) if reverse else list(range(T))
    tape: list[dict] = []

    for t in steps:
        m = active[t]  # (B, 1): 1 where sequence b is still running
        xt = x[:, t] * mx  # locked input dropout
        a = xt @ W_ih.T + b_ih  # input projection, (B, G)
        rec = {"t": t, "m": m, "xt": xt, "a": a, "h_prev": h, "c_prev": c, "v_prev": v}
        if momentum:
            assert v is not None  # made above for a momentum cell
            v_new = mu * v + s * a  # momentum state
            gi = v_new
            rec["v_new"] = v_new
        else:
            gi = a
        hd = h * mh  # locked hidden dropout, recurrent matmul only
        gh = hd @ W_hh.T + b_hh  # (B, G)
        rec["hd"] = hd
        c_new = None
        if mode == "rnn_tanh":
            h_new = np.tanh(gi + gh)
        elif mode == "rnn_relu":
            pre = gi + gh
            h_new = np.maximum(pre, 0.0)
            rec["pre"] = pre
        elif mode == "gru":
            a_r, a_z, a_n = np.split(gi, 3, axis=1)
            g_r, g_z, g_n = np.split(gh, 3, axis=1)
            r = sigmoid(a_r + g_r)
            z = sigmoid(a_z + g_z)
            n = np.tanh(a_n + r * g_n)  # reset gate applied after the hidden matmul
            h_new = (1.0 - z) * n + z * h
            rec.update(r=r, z=z, n=n, g_n=g_n)
        else:  # lstm
            p_i, p_f, p_g, p_o = np.split(gi + gh, 4, axis=1)
            i, f, g, o = sigmoid(p_i), sigmoid(p_f), np.tanh(p_g), sigmoid(p_o)
            c_new = f * c + i * g
            tc = np.tanh(c_new)
            h_new = o * tc
            rec.update(i=i, f=f, g=g, o=o, tc=tc)
        rec["h_new"] = h_new
        tape.append(rec)
        # Padded steps keep the state and output zeros.
        out[:, t] = m * h_new
        h = m * h_new + (1.0 - m) * h
        if c is not None:
            c = m * c_new + (1.0 - m) * c
        if v is not None:
            v = m * rec["v_new"] + (1.0 - m) * v

    cache = {
        "cell": cell,
        "mode": mode,
        "momentum": momentum,
        "shape": (B, T, I, H, G),
        "tape": tape,
        "W_ih": W_ih,
        "W_hh": W_hh,
        "mu": mu,
        "s": s,
        "mx": mx,
        "mh": mh,
        "has_bias": params.get("bias_ih") is not None,
        "dtype": x.dtype,
    }
    return out, {"h": h, "c": c, "v": v}, cache


def backward(
    cache: dict,
    d_out: Array | None = None,
    d_h_n: Array | None = None,
    d_c_n: Array | None = None,
    d_v_n: Array | None = None,
) -> dict[str, Any]:
    """Backpropagation through time for one :func:`forward` call.

    Args:
        cache: the third value returned by :func:`forward`.
        d_out: ``dLoss/d out`` ``(B, T, H)`` (None = zeros).
        d_h_n, d_c_n, d_v_n: gradients w.r.t. the final states (None = zeros).

    Returns:
        A dict with the gradients of the parameters (``weight_ih``, ``weight_hh``, ``bias_ih``,
        ``bias_hh`` when the layer has biases, ``mu`` and ``s`` (floats) for momentum cells) and of
        the inputs: ``x (B, T, I)``, ``h0``, plus ``c0`` (LSTM) and ``v0`` (momentum).
    """
    mode, momentum = cache["mode"], cache["momentum"]
    B, T, I, H, G = cache["shape"]  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
    W_ih, W_hh, mu, s = cache["W_ih"], cache["W_hh"], cache["mu"], cache["s"]
    mx, mh, dt = cache["mx"], cache["mh"], cache["dtype"]
    zeros = lambda *shape: np.zeros(shape, dt)  # noqa: E731
    d_out = zeros(B, T, H) if d_out is None else np.asarray(d_out)

    dW_ih, dW_hh, db_ih, db_hh = zeros(G, I), zeros(G, H), zeros(G), zeros(G)
    d_mu, d_s = 0.0, 0.0
    dx = zeros(B, T, I)
    # Gradients w.r.t. the state *after* the step being processed (carried backwards in time).
    dh = zeros(B, H) if d_h_n is None else np.array(d_h_n, dtype=dt)
    dc = (zeros(B, H) if d_c_n is None else np.array(d_c_n, dtype=dt)) if mode == "lstm" else None
    dv = (zeros(B, G) if d_v_n is None else np.array(d_v_n, dtype=dt)) if momentum else None

    for rec in reversed(cache["tape"]):
        t, m = rec["t"], rec["m"]
        # Forward: h_after = m * h_new + (1 - m) * h_prev and out_t = m * h_new.
        dh_new = m * (dh + d_out[:, t])
        dh_prev = (1.0 - m) * dh
        h_new, h_prev = rec["h_new"], rec["h_prev"]

        # ---- cell: from dh_new (and dc) to the pre-activations d_gi (input side), d_gh (hidden side)
        if mode == "rnn_tanh":
            d_pre = dh_new * (1.0 - h_new**2)
            d_gi = d_gh = d_pre
        elif mode == "rnn_relu":
            d_pre = dh_new * (rec["pre"] > 0)
            d_gi = d_gh = d_pre
        elif mode == "gru":
            r, z, n, g_n = rec["r"], rec["z"], rec["n"], rec["g_n"]
            dn = dh_new * (1.0 - z)
            dz = dh_new * (h_prev - n)
            dh_prev = dh_prev + dh_new * z  # the direct z * h path
            dp_n = dn * (1.0 - n**2)  # n = tanh(a_n + r * g_n)
            dr = dp_n * g_n
            dp_r = dr * r * (1.0 - r)
            dp_z = dz * z * (1.0 - z)
            d_gi = np.concatenate([dp_r, dp_z, dp_n], axis=1)
            d_gh = np.concatenate([dp_r, dp_z, dp_n * r], axis=1)
        else:  # lstm
            i, f, g, o, tc = rec["i"], rec["f"], rec["g"], rec["o"], rec["tc"]
            dc_new = m * dc + dh_new * o * (1.0 - tc**2)  # c' feeds h' and the next step's c
            do = dh_new * tc
            di, df, dg = dc_new * g, dc_new * rec["c_prev"], dc_new * i
            d_pre = np.concatenate(
                [di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g**2), do * o * (1.0 - o)], axis=1
            )
            d_gi = d_gh = d_pre
            dc = (1.0 - m) * dc + dc_new * f

        # ---- hidden side: gh = (h_prev * mh) @ W_hh^T + b_hh
        dW_hh += d_gh.T @ rec["hd"]
        db_hh += d_gh.sum(0)
        dh_prev = dh_prev + (d_gh @ W_hh) * mh

        # ---- input side: gi = a (plain) or gi = v_new = mu * v_prev + s * a (momentum)
        if momentum:
            dv_new = m * dv + d_gi
            d_mu += float(np.sum(dv_new * rec["v_prev"]))
            d_s += float(np.sum(dv_new * rec["a"]))
            da = s * dv_new
            dv = (1.0 - m) * dv + mu * dv_new
        else:
            da = d_gi
        dW_ih += da.T @ rec["xt"]
        db_ih += da.sum(0)
        dx[:, t] = (da @ W_ih) * mx
        dh = dh_prev

    grads: dict[str, Any] = {"weight_ih": dW_ih, "weight_hh": dW_hh}
    if cache["has_bias"]:
        grads.update(bias_ih=db_ih, bias_hh=db_hh)
    if momentum:
        grads.update(mu=d_mu, s=d_s)
    grads.update(x=dx, h0=dh)
    if mode == "lstm":
        grads["c0"] = dc
    if momentum:
        grads["v0"] = dv
    return grads


# ---------------------------------------------------------------------------------------------
# Stacks: several layers, one or two directions
# ---------------------------------------------------------------------------------------------
def _suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction else "")


def layer_params(params: Params, layer: int, direction: int) -> dict[str, Any]:
    """Pick one layer/direction out of a torch-style flat dict (``weight_ih_l0_reverse``, ...).
    Momentum scalars ``mu``/``s`` are shared by all layers, as in the layer library."""
    sfx = _suffix(layer, direction)
    out = {n: params[n + sfx] for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if n + sfx in params}
    for n in ("mu", "s"):
        if n in params:
            out[n] = params[n]
    return out


def stack_forward(
    cell: str,
    x: Array,
    params: Params,
    num_layers: int = 1,
    bidirectional: bool = False,
    h0: Array | None = None,
    c0: Array | None = None,
    v0: Array | None = None,
    lengths: Array | None = None,
    masks: Sequence[tuple[Array | None, Array | None]] | None = None,
) -> tuple[Array, dict[str, Array | None], dict]:
    """Run a ``num_layers``-deep, optionally bidirectional stack, like ``torch.nn.LSTM`` & co.

    ``params`` uses torch.nn's flat names (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...; plus ``mu``,
    ``s``). States are ``(num_layers * D, B, size)``, index ``k = layer * D + direction``. Each
    direction of layer ``l`` reads the concatenated outputs of layer ``l - 1``. ``masks[k]`` is an
    optional ``(input_mask, hidden_mask)`` pair of locked dropout masks for run ``k``.

    Returns ``out (B, T, D*H)``, ``{"h": (L*D, B, H), "c": ..., "v": ...}`` and a cache for
    :func:`stack_backward`."""
    mode, momentum = _spec(cell)
    D = 2 if bidirectional else 1
    inp = np.asarray(x)
    caches, hs, cs, vs = [], [], [], []
    for layer in range(num_layers):
        outs = []
        for d in range(D):
            k = layer * D + d
            mx, mh = masks[k] if masks is not None else (None, None)
            out, st, cache = forward(
                cell,
                inp,
                layer_params(params, layer, d),
                h0=None if h0 is None else h0[k],
                c0=None if c0 is None else c0[k],
                v0=None if v0 is None else v0[k],
                lengths=lengths,
                reverse=bool(d),
                input_mask=mx,
                hidden_mask=mh,
            )
            outs.append(out)
            caches.append(cache)
            hs.append(st["h"])
            cs.append(st["c"])
            vs.append(st["v"])
        inp = np.concatenate(outs, axis=2)
    stack = lambda xs: None if xs[0] is None else np.stack(xs)  # noqa: E731
    return (
        inp,
        {"h": stack(hs), "c": stack(cs), "v": stack(vs)},
        {"caches": caches, "num_layers": num_layers, "D": D, "momentum": momentum, "mode": mode},
    )


def stack_backward(
    cache: dict,
    d_out: Array | None = None,
    d_h_n: Array | None = None,
    d_c_n: Array | None = None,
    d_v_n: Array | None = None,
) -> dict[str, Any]:
    """Backward of :func:`stack_forward`: gradients keyed by torch.nn's flat parameter names (``mu``
    and ``s`` summed over all runs), plus ``x``, ``h0`` (and ``c0``, ``v0``) stacked like the states."""
    L, D = cache["num_layers"], cache["D"]
    caches = cache["caches"]
    B, T, _, H, _ = caches[0]["shape"]
    grads: dict[str, Any] = {}
    per_run: dict[int, dict] = {}
    g_next = np.zeros((B, T, D * H), caches[0]["dtype"]) if d_out is None else np.asarray(d_out)
    for layer in reversed(range(L)):
        g_in = None
        for d in range(D):
            k = layer * D + d
            g = backward(
                caches[k],
                g_next[:, :, d * H : (d + 1) * H],
                None if d_h_n is None else d_h_n[k],
                None if d_c_n is None else d_c_n[k],
                None if d_v_n is None else d_v_n[k],
            )
            per_run[k] = g
            g_in = g["x"] if g_in is None else g_in + g["x"]
            for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if n in g:
                    grads[n + _suffix(layer, d)] = g[n]
            for n in ("mu", "s"):
                if n in g:
                    grads[n] = grads.get(n, 0.0) + g[n]
        assert g_in is not None  # a layer has at least one direction
        g_next = g_in
    grads["x"] = g_next
    for n in ("h0", "c0", "v0"):
        if n in per_run[0]:
            grads[n] = np.stack([per_run[k][n] for k in range(L * D)])
    return grads


# ---------------------------------------------------------------------------------------------
# Training helpers: gradient clipping and weight penalties
# ---------------------------------------------------------------------------------------------
INPUT_GRADS = ("x", "h0", "c0", "v0")


def clip_grad_norm(
    grads: Mapping[str, Any],
    max_norm: float,
    norm_type: float = 2.0,
    keys: Sequence[str] | None = None,
    eps: float = 1e-6,
) -> tuple[dict[str, Any], float]:
    """Global gradient-norm clipping with ``torch.nn.utils.clip_grad_norm_``'s semantics.

    The norm is taken over all selected gradients together (``keys``; default: every entry except
    the input gradients ``x``, ``h0``, ``c0``, ``v0``)::

        total = (sum_k ||g_k||_p^p)^(1/p)        (max |g| for norm_type=inf)
        coef  = min(1, max_norm / (total + eps))
        g_k  <- coef * g_k

    Returns the clipped gradients (a new dict; unselected entries are passed through) and the
    total norm *before* clipping."""
    keys = [k for k in grads if k not in INPUT_GRADS] if keys is None else list(keys)
    flat = [np.abs(np.asarray(grads[k], dtype=float)).ravel() for k in keys]
    if not flat:
        return dict(grads), 0.0
    if norm_type == np.inf:
        total = float(max(f.max() if f.size else 0.0 for f in flat))
    else:
        total = float(sum(np.sum(f**norm_type) for f in flat) ** (1.0 / norm_type))
    coef = min(1.0, max_norm / (total + eps))
    out = dict(grads)
    for k in keys:
        g = grads[k]
        out[k] = g * coef if isinstance(g, np.ndarray) else float(g) * coef
    return out, total


def penalty(
    params: Mapping[str, Any], l1: float = 0.0, l2: float = 0.0, include_bias: bool = False
) -> tuple[float, dict[str, Array]]:
    """L1/L2 weight penalty and its gradient.

    ``value = l1 * sum |w| + l2 * sum w^2`` over the weight matrices (names starting with
    ``weight``; biases too with ``include_bias=True``; ``mu``/``s`` never). The gradient is
    ``l1 * sign(w) + 2 * l2 * w`` (``sign(0) = 0``, the subgradient torch's ``abs`` uses).
    Add ``value`` to the loss and the gradients to the loss's with :func:`add_grads`."""
    value, grads = 0.0, {}
    for name, w in params.items():
        if not (name.startswith("weight") or (include_bias and name.startswith("bias"))):
            continue
        w = np.asarray(w)
        value += l1 * float(np.abs(w).sum()) + l2 * float((w * w).sum())
        grads[name] = l1 * np.sign(w) + 2.0 * l2 * w
    return value, grads


def add_grads(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """Sum two gradient dicts key by key (a key missing on one side counts as zero)."""
    out = dict(a)
    for k, g in b.items():
        out[k] = out[k] + g if k in out else g
    return out


def sgd_step(params: Mapping[str, Any], grads: Mapping[str, Any], lr: float) -> dict[str, Any]:
    """Plain gradient descent on the parameters that have a gradient (returns a new dict)."""
    return {k: (v - lr * grads[k] if k in grads else v) for k, v in params.items()}
