"""Acceptance tests for the layer library (namemodels.kernels.layers) on the torch path.

* Standard cells against their torch.nn twins (strict ``load_state_dict``), on the native stack and
  on the per-layer path (a momentum layer with ``mu=0, s=1``).
* Momentum cells against ``naive_layer`` stacked by hand, incl. ``v_0`` / ``v_n`` and learned mu, s.
* gradcheck in float64, bad input, unbatched input, dropout between layers.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from namemodels.kernels import CELLS, GRU, LSTM, RNN, MomentumGRU, MomentumLSTM, MomentumRNN, make_layer
from namemodels.kernels.cells import GATES, MODE_OF
from namemodels.kernels.naive import naive_layer

I, H, NL = 3, 4, 2  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
LENGTHS = torch.tensor([5, 2, 7, 1])  # mixed and unsorted; T = max = 7
B, T = len(LENGTHS), int(LENGTHS.max())
TOL32 = dict(rtol=1e-5, atol=1e-5)
STANDARD = ("rnn_tanh", "rnn_relu", "gru", "lstm")
MOMENTUM = ("momentum_rnn", "momentum_gru", "momentum_lstm")
TWINS = {
    "rnn_tanh": lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", **k),
    "rnn_relu": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
    "gru": nn.GRU,
    "lstm": nn.LSTM,
}
# The momentum twin of each plain cell (relu Elman has no name in CELLS; build it directly).
MOMENTUM_OF = {
    "rnn_tanh": lambda *a, **k: MomentumRNN(*a, nonlinearity="tanh", **k),
    "rnn_relu": lambda *a, **k: MomentumRNN(*a, nonlinearity="relu", **k),
    "gru": MomentumGRU,
    "lstm": MomentumLSTM,
}
BASE_MODE = MODE_OF  # momentum cell -> the mode of its equations


pytestmark = pytest.mark.usefixtures("single_thread")


def assert_close(actual, expected, what="", **tol):
    torch.testing.assert_close(actual, expected, msg=lambda m: f"{what}: {m}", **(tol or TOL32))


def make_input(batch_first: bool, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, I, generator=g, dtype=dtype)
    for b, n in enumerate(LENGTHS.tolist()):  # garbage in the padding must not leak anywhere
        x[b, n:] = 50.0 * torch.randn(T - n, I, generator=g, dtype=dtype)
    return (x if batch_first else x.transpose(0, 1).contiguous()).requires_grad_()


def make_states(mode: str, momentum: bool, which: str, dtype=torch.float32, seed: int = 1, batch: int = B):
    """``which``: 'none' -> None; 'hx' -> the plain cell's hx; 'full' -> plus v_0."""
    if which == "none":
        return None
    g = torch.Generator().manual_seed(seed)
    LD = NL * 2
    parts = [torch.randn(LD, batch, H, generator=g, dtype=dtype)]
    if mode == "lstm":
        parts.append(torch.randn(LD, batch, H, generator=g, dtype=dtype))
    if which == "full":
        assert momentum
        parts.append(torch.randn(LD, batch, GATES[mode] * H, generator=g, dtype=dtype))
    parts = [p.requires_grad_() for p in parts]
    return parts[0] if len(parts) == 1 else tuple(parts)


def as_list(states):
    return [states] if torch.is_tensor(states) else list(states)


def weighted_sum(tensors, seed=2):
    """A loss that weights every element differently, so that all gradients are exercised."""
    g = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in tensors)


def grads_of(loss, tensors):
    return torch.autograd.grad(loss, tensors, allow_unused=False)


# ---- standard cells vs torch.nn -------------------------------------------------------------------
@pytest.mark.parametrize("feed", ["packed", "lengths"])
@pytest.mark.parametrize("hx_mode", ["none", "hx"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("path", ["native", "per_layer"])
@pytest.mark.parametrize("cell", STANDARD)
def test_standard_cells_match_torch_nn(cell, path, batch_first, hx_mode, feed):
    """Outputs, final states and gradients (parameters, input, hx) of the torch.nn twin, fp32, 1e-5,
    on 2-layer bidirectional stacks with mixed lengths. ``per_layer`` forces the per-layer
    ``torch_layer`` path through a momentum layer with ``mu=0, s=1`` (which is the plain cell)."""
    torch.manual_seed(0)
    kw = dict(num_layers=NL, bidirectional=True, batch_first=batch_first)
    twin = TWINS[cell](I, H, **kw)
    if path == "native":
        ours = make_layer(cell, I, H, backend="torch", **kw)
    else:
        ours = MOMENTUM_OF[cell](I, H, backend="torch", mu=0.0, s=1.0, **kw)
    ours.load_state_dict(twin.state_dict(), strict=True)
    mode = "lstm" if cell == "lstm" else cell
    x_t, x_o = make_input(batch_first), make_input(batch_first)
    hx_t, hx_o = make_states(mode, False, hx_mode), make_states(mode, False, hx_mode)

    out_t, st_t = twin(pack_padded_sequence(x_t, LENGTHS, batch_first=batch_first, enforce_sorted=False), hx_t)
    if feed == "packed":
        out_o, st_o = ours(pack_padded_sequence(x_o, LENGTHS, batch_first=batch_first, enforce_sorted=False), hx_o)
        assert isinstance(out_o, PackedSequence)
        assert torch.equal(out_o.batch_sizes, out_t.batch_sizes)
        assert torch.equal(out_o.unsorted_indices, out_t.unsorted_indices)
        out_o = out_o.data
    else:
        out_o, st_o = ours(x_o, hx_o, lengths=LENGTHS)
        # compare on the padded layout; torch.nn's padding is zero too
        out_o = pack_padded_sequence(out_o, LENGTHS, batch_first=batch_first, enforce_sorted=False).data
    out_t = out_t.data
    st_t = as_list(st_t)
    st_o = as_list(st_o)[: len(st_t)]  # momentum layers add v_n at the end
    assert_close(out_o, out_t, "output")
    for k, (a, b) in enumerate(zip(st_o, st_t)):
        assert_close(a, b, f"state {k}")

    names = [n for n, _ in twin.named_parameters()]
    leaf_t = [dict(twin.named_parameters())[n] for n in names] + [x_t] + (as_list(hx_t) if hx_t is not None else [])
    leaf_o = [dict(ours.named_parameters())[n] for n in names] + [x_o] + (as_list(hx_o) if hx_o is not None else [])
    g_t = grads_of(weighted_sum([out_t] + st_t), leaf_t)
    g_o = grads_of(weighted_sum([out_o] + st_o), leaf_o)
    for name, a, b in zip(names + ["input"] + ["h_0", "c_0"], g_o, g_t):
        assert_close(a, b, f"grad {name}")


# ---- momentum cells vs the per-step loop ----------------------------------------------------------
def reference_stack(layer, x, lengths, h0, c0, v0):
    """``naive_layer`` stacked by hand; x batch-first padded; returns out and (h_n, c_n, v_n)."""
    D = layer.num_directions
    inp, hs, cs, vs = x, [], [], []
    for layer_idx in range(layer.num_layers):
        outs = []
        for d in range(D):
            k, sfx = layer_idx * D + d, f"_l{layer_idx}" + ("_reverse" if d else "")
            w = [
                getattr(layer, n + sfx) if layer.bias or n.startswith("weight") else None
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            out, (h, c, v) = naive_layer(
                layer.mode,
                inp,
                lengths,
                h0[k],
                None if c0 is None else c0[k],
                None if v0 is None else v0[k],
                *w,
                mu=layer.mu,
                s=layer.s,
                reverse=bool(d),
            )
            outs.append(out)
            hs.append(h), cs.append(c), vs.append(v)
        inp = torch.cat(outs, 2)
    return inp, (torch.stack(hs), torch.stack(cs) if c0 is not None else None, torch.stack(vs))


def split_hx(mode, hx, x_bf, dtype):
    parts = as_list(hx) if hx is not None else []
    h0 = parts[0] if parts else torch.zeros(NL * 2, x_bf.shape[0], H, dtype=dtype)
    c0 = (
        (parts[1] if len(parts) > 1 else torch.zeros(NL * 2, x_bf.shape[0], H, dtype=dtype)) if mode == "lstm" else None
    )
    full = len(parts) == (3 if mode == "lstm" else 2)
    return h0, c0, (parts[-1] if full else None)


@pytest.mark.parametrize("feed", ["packed", "lengths"])
@pytest.mark.parametrize("hx_mode", ["none", "hx", "full"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tmajor", "bfirst"])
@pytest.mark.parametrize("cell", MOMENTUM)
def test_momentum_cells_match_per_step_loop(cell, batch_first, hx_mode, feed):
    torch.manual_seed(0)
    mode = BASE_MODE[cell]
    layer = make_layer(cell, I, H, num_layers=NL, bidirectional=True, batch_first=batch_first, mu=0.7, s=0.8)
    x = make_input(batch_first)
    hx = make_states(mode, True, hx_mode)
    if feed == "packed":
        out, st = layer(pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False), hx)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)
    else:
        out, st = layer(x, hx, lengths=LENGTHS)
        out = out if batch_first else out.transpose(0, 1)
    st = as_list(st)
    assert len(st) == (3 if mode == "lstm" else 2)
    assert st[-1].shape == (NL * 2, B, GATES[mode] * H)

    x_bf = x if batch_first else x.transpose(0, 1)
    h0, c0, v0 = split_hx(mode, hx, x_bf, x.dtype)
    ref_out, (rh, rc, rv) = reference_stack(layer, x_bf, LENGTHS, h0, c0, v0)
    ref_st = [rh] + ([rc] if mode == "lstm" else []) + [rv]
    assert_close(out, ref_out, "output")
    for name, a, b in zip(["h_n", "c_n", "v_n"] if mode == "lstm" else ["h_n", "v_n"], st, ref_st):
        assert_close(a, b, name)

    leaves = list(layer.parameters()) + [x] + (as_list(hx) if hx is not None else [])
    g_o = grads_of(weighted_sum([out] + st), leaves)
    g_r = grads_of(weighted_sum([ref_out] + ref_st), leaves)
    for k, (a, b) in enumerate(zip(g_o, g_r)):
        assert_close(a, b, f"grad of leaf {k}")


@pytest.mark.parametrize("cell", MOMENTUM)
def test_learned_momentum_gradients(cell, learned_momentum_stack):
    """learn_momentum=True: gradients of the raw mu/s parameters match autograd of the per-step loop
    and central finite differences (float64)."""
    torch.manual_seed(0)
    mode = BASE_MODE[cell]
    layer = learned_momentum_stack(cell, I, H)
    raw = [layer.parametrizations.mu.original, layer.parametrizations.s.original]
    assert float(layer.mu.detach()) == pytest.approx(0.7) and float(layer.s.detach()) == pytest.approx(0.8)
    x = make_input(True, torch.float64).detach()
    hx = tuple(t.detach() for t in as_list(make_states(mode, True, "full", torch.float64)))

    def loss_layer():
        out, st = layer(x, hx, lengths=LENGTHS)
        return weighted_sum([out] + as_list(st))

    def loss_ref():
        out, st = reference_stack(layer, x, LENGTHS, *split_hx(mode, hx, x, torch.float64))
        return weighted_sum([out] + [t for t in st if t is not None])

    g_layer = grads_of(loss_layer(), raw)
    g_ref = grads_of(loss_ref(), raw)
    eps = 1e-6
    for k, p in enumerate(raw):
        assert_close(g_layer[k], g_ref[k], "autograd", rtol=1e-9, atol=1e-9)
        with torch.no_grad():
            p += eps
            up = float(loss_layer())
            p -= 2 * eps
            down = float(loss_layer())
            p += eps
        assert float(g_layer[k]) == pytest.approx((up - down) / (2 * eps), rel=1e-6, abs=1e-7)


# ---- gradcheck ------------------------------------------------------------------------------------
def build(cell, **kw):
    return make_layer(cell, 2, 2, **kw)


@pytest.mark.parametrize("cell", CELLS)
def test_gradcheck_float64(cell):
    """gradcheck w.r.t. input, every hx part and every parameter (incl. raw mu/s), 2 layers,
    bidirectional, mixed lengths."""
    momentum = cell.startswith("momentum")
    mode = BASE_MODE.get(cell, cell)
    layer = build(
        cell,
        num_layers=2,
        bidirectional=True,
        batch_first=True,
        dtype=torch.float64,
        **({"mu": 0.5, "s": 0.9, "learn_momentum": True} if momentum else {}),
    )
    lengths = torch.tensor([3, 1, 2])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    shapes = [(4, 3, 2)] + ([(4, 3, 2)] if mode == "lstm" else []) + ([(4, 3, 2 * GATES[mode])] if momentum else [])
    hx = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    if momentum:
        assert "parametrizations.mu.original" in names and "parametrizations.s.original" in names

    def fn(x, *rest):
        h, ps = rest[: len(hx)], rest[len(hx) :]
        out, st = torch.func.functional_call(
            layer, dict(zip(names, ps)), (x, tuple(h) if len(h) > 1 else h[0]), {"lengths": lengths}
        )
        return (out,) + tuple(as_list(st))

    assert torch.autograd.gradcheck(fn, (x, *hx, *params), eps=1e-6, atol=1e-6, fast_mode=True)


# ---- proj_size (LSTM with projections) -------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "momentum_lstm"])
@pytest.mark.parametrize("given", [False, True])
def test_gradcheck_float64_proj_size(cell, given):
    """proj_size on the torch path (the native kernel with weight_hr; the momentum layer's
    per-layer path with the projection): gradcheck w.r.t. input, states and every parameter,
    weight_hr included, 2 bidirectional layers, mixed lengths, from zero or given states."""
    momentum = cell.startswith("momentum")
    layer = make_layer(
        cell,
        2,
        3,
        num_layers=2,
        bidirectional=True,
        batch_first=True,
        proj_size=2,
        dtype=torch.float64,
        **({"mu": 0.5, "s": 0.9, "learn_momentum": True} if momentum else {}),
    )
    assert layer.weight_hr_l1_reverse.shape == (2, 3) and layer.weight_hh_l0.shape == (12, 2)
    lengths = torch.tensor([3, 1, 2])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    shapes = [(4, 3, 2), (4, 3, 3)] + ([(4, 3, 12)] if momentum else [])
    hx = [torch.randn(s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes] if given else []
    names = [n for n, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]

    def fn(x, *rest):
        h, ps = rest[: len(hx)], rest[len(hx) :]
        out, st = torch.func.functional_call(
            layer, dict(zip(names, ps)), (x, tuple(h) if h else None), {"lengths": lengths}
        )
        assert out.shape == (3, 3, 4) and st[0].shape == (4, 3, 2) and st[1].shape == (4, 3, 3)
        return (out,) + tuple(st)

    assert torch.autograd.gradcheck(fn, (x, *hx, *params), eps=1e-6, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("batch_first", [True, False])
def test_momentum_lstm_proj_size_matches_naive(batch_first):
    """MomentumLSTM with proj_size against naive_layer (h = W_hr (o * tanh c)) stacked by hand, with
    lengths, given (h_0, c_0, v_0), float64."""
    P = 2
    layer = MomentumLSTM(
        I,
        H,
        num_layers=NL,
        bidirectional=True,
        batch_first=batch_first,
        proj_size=P,
        mu=0.7,
        s=0.4,
        dtype=torch.float64,
    )
    x = make_input(batch_first, torch.float64)
    g = torch.Generator().manual_seed(3)
    h0, c0, v0 = (torch.randn(NL * 2, B, n, generator=g, dtype=torch.float64) for n in (P, H, 4 * H))
    out, (h_n, c_n, v_n) = layer(x, (h0, c0, v0), lengths=LENGTHS)
    inp = x if batch_first else x.transpose(0, 1)
    hs, cs, vs = [], [], []
    for lay in range(NL):
        outs = []
        for d in range(2):
            k, sfx = lay * 2 + d, f"_l{lay}" + ("_reverse" if d else "")
            w = [getattr(layer, n + sfx) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")]
            o, (h, c, v) = naive_layer(
                "lstm", inp, LENGTHS, h0[k], c0[k], v0[k], *w[:4], mu=0.7, s=0.4, reverse=bool(d), w_hr=w[4]
            )
            outs.append(o), hs.append(h), cs.append(c), vs.append(v)
        inp = torch.cat(outs, 2)
    ref = inp if batch_first else inp.transpose(0, 1)
    tol = dict(rtol=1e-10, atol=1e-10)
    assert_close(out, ref, "output", **tol)
    for got, want, what in ((h_n, hs, "h_n"), (c_n, cs, "c_n"), (v_n, vs, "v_n")):
        assert_close(got, torch.stack(want), what, **tol)


def test_proj_size_as_torch():
    """Parameter names and shapes, state shapes, repr and errors as torch.nn.LSTM's; values are in
    tests/kernels/test_module_db.py (torch's own samples with proj_size=2)."""
    ours, theirs = LSTM(3, 5, 2, True, True, 0.0, True, 3), nn.LSTM(3, 5, 2, True, True, 0.0, True, 3)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [(n, p.shape) for n, p in theirs.named_parameters()]
    assert repr(ours) == repr(theirs) == "LSTM(3, 5, proj_size=3, num_layers=2, batch_first=True, bidirectional=True)"
    out, (h, c) = ours(torch.zeros(2, 4, 3))
    assert out.shape == (2, 4, 6) and h.shape == (4, 2, 3) and c.shape == (4, 2, 5)
    for bad, err in ((5, "proj_size has to be smaller than hidden_size"), (-1, "positive integer or zero")):
        with pytest.raises(ValueError, match=err):
            nn.LSTM(3, 5, proj_size=bad)
        with pytest.raises(ValueError, match=err):
            LSTM(3, 5, proj_size=bad)
    for cls in (nn.LSTM, LSTM):  # given by position and by keyword: Python's own error, as torch.nn's
        with pytest.raises(TypeError, match="multiple values for argument 'proj_size'"):
            cls(3, 5, 1, True, False, 0.0, False, 3, proj_size=2)
    with pytest.raises(TypeError, match="multiple values for argument 'nonlinearity'"):
        RNN(3, 5, 1, "relu", nonlinearity="tanh")
    with pytest.raises(ValueError, match="only supported for LSTM"):
        GRU(3, 5, proj_size=0)


def test_proj_size_backend_choice():
    """The fused kernels have no projection: 'auto' runs the torch fallback and says why, an explicit
    backend='triton' refuses the call naming proj_size."""
    layer = LSTM(3, 5, proj_size=2)
    layer(torch.zeros(4, 2, 3))
    assert layer.last_backend[0] == "torch" and "proj_size=2" in layer.last_backend[1]
    with pytest.raises(ValueError, match=r"backend='triton' cannot run this call: proj_size=2"):
        MomentumLSTM(3, 5, proj_size=2, backend="triton")(torch.zeros(4, 2, 3))


# ---- mu=0, s=1 is the plain cell ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell", STANDARD)
def test_zero_momentum_equals_plain_cell(cell, dtype):
    torch.manual_seed(0)
    kw = dict(num_layers=NL, bidirectional=True, batch_first=True, dtype=dtype)
    plain = make_layer(cell, I, H, **kw)
    mom = MOMENTUM_OF[cell](I, H, mu=0.0, s=1.0, **kw)
    mom.load_state_dict(plain.state_dict(), strict=True)
    x = make_input(True, dtype)
    hx = make_states(cell, False, "hx", dtype)
    out_p, st_p = plain(x, hx, lengths=LENGTHS)
    out_m, st_m = mom(x, hx, lengths=LENGTHS)
    # Same equations; only the floating-point summation order differs (the per-layer path folds
    # b_ih into the input matmul), hence a rounding-level tolerance rather than bitwise equality.
    tol = dict(rtol=0, atol=1e-6) if dtype == torch.float32 else dict(rtol=0, atol=1e-13)
    assert_close(out_m, out_p, "output", **tol)
    st_p, st_m = as_list(st_p), as_list(st_m)
    assert len(st_m) == len(st_p) + 1
    for a, b in zip(st_m, st_p):
        assert_close(a, b, "state", **tol)
    # v_n is then just the last step's input projection W_ih x + b_ih (layer 0, forward direction)
    last = x[torch.arange(B), LENGTHS - 1]
    assert_close(st_m[-1][0], last @ mom.weight_ih_l0.t() + mom.bias_ih_l0, "v_n", **tol)
    params = list(plain.parameters())
    for a, b in zip(
        grads_of(weighted_sum([out_m] + st_m[:-1]), list(mom.parameters())),
        grads_of(weighted_sum([out_p] + st_p), params),
    ):
        assert_close(a, b, "grad", rtol=0, atol=10 * tol["atol"])


# ---- bad input ------------------------------------------------------------------------------------
@pytest.fixture(params=CELLS)
def layer(request):
    return make_layer(request.param, I, H, num_layers=NL, bidirectional=True)


def test_bad_rank(layer):
    with pytest.raises(ValueError, match=r"3 dimensions.*\(seq, batch, feature\).*got shape \(2, 3, 4, 3\)"):
        layer(torch.zeros(2, 3, 4, 3))
    with pytest.raises(ValueError, match=r"3 dimensions.*got shape \(3,\)"):
        layer(torch.zeros(3))


def test_relu_state_overflow_is_reported():
    """Finite inputs, a ReLU recurrence whose state explodes past float32: a clear error, not infs."""
    rnn = RNN(2, 4, nonlinearity="relu")
    with torch.no_grad():
        rnn.weight_hh_l0.fill_(1e6)
        rnn.weight_ih_l0.fill_(1.0)
    with pytest.raises(FloatingPointError, match="non-finite outputs from finite inputs.*overflowed"):
        rnn(torch.ones(12, 1, 2))
    with pytest.raises(FloatingPointError, match="overflowed"):  # packed input, shorter second sequence
        rnn(pack_padded_sequence(torch.ones(12, 2, 2), torch.tensor([12, 9]), enforce_sorted=False))
    out, _ = RNN(2, 4)(torch.ones(12, 1, 2))  # tanh keeps the state bounded
    assert bool(torch.isfinite(out).all())


def test_bad_feature_size(layer):
    with pytest.raises(ValueError, match=r"input_size=3.*got shape \(5, 2, 4\).*last dimension 4"):
        layer(torch.zeros(5, 2, 4))


def test_bad_hx_shape(layer):
    mode = BASE_MODE.get(layer_cell(layer), layer_cell(layer))
    good = as_list(make_states(mode, layer.momentum, "full" if layer.momentum else "hx", batch=2))
    x = torch.zeros(5, 2, I)
    layer(x, tuple(good) if len(good) > 1 else good[0])  # the right shapes are accepted
    names = ["h_0"] + (["c_0"] if mode == "lstm" else []) + (["v_0"] if layer.momentum else [])
    for k, name in enumerate(names):
        bad = list(good)
        bad[k] = torch.zeros(4, 2, bad[k].shape[-1] + 1)
        expected = tuple(good[k].shape)
        got = tuple(bad[k].shape)
        with pytest.raises(ValueError, match=rf"{name} must have shape {re_tuple(expected)}.*got {re_tuple(got)}"):
            layer(x, tuple(bad) if len(bad) > 1 else bad[0])
    # batch mismatch and wrong number of layers
    with pytest.raises(ValueError, match=r"h_0 must have shape \(4, 2, 4\).*got \(4, 3, 4\)"):
        layer(x, tuple([torch.zeros(4, 3, H)] + good[1:]) if len(good) > 1 else torch.zeros(4, 3, H))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(4, 2, 4\).*got \(2, 2, 4\)"):
        layer(x, tuple([torch.zeros(2, 2, H)] + good[1:]) if len(good) > 1 else torch.zeros(2, 2, H))
    with pytest.raises(ValueError, match=r"dtype"):
        layer(x, tuple([good[0].double()] + good[1:]) if len(good) > 1 else good[0].double())


def layer_cell(layer):
    if layer.momentum:
        return {"rnn_tanh": "momentum_rnn", "gru": "momentum_gru", "lstm": "momentum_lstm"}[layer.mode]
    return layer.mode


def re_tuple(shape):
    return "\\(" + ", ".join(str(s) for s in shape) + "\\)"


def test_zero_length_sequences(layer):
    x = torch.zeros(5, 3, I)
    with pytest.raises(ValueError, match=r"at least one step.*length of 0"):
        layer(x, lengths=torch.tensor([5, 0, 2]))
    with pytest.raises(ValueError, match=r"zero time steps.*shape \(0, 3, 3\)"):
        layer(torch.zeros(0, 3, I))
    bf = make_layer(layer_cell(layer), I, H, batch_first=True)
    with pytest.raises(ValueError, match=r"zero time steps.*shape \(3, 0, 3\)"):
        bf(torch.zeros(3, 0, I))
    with pytest.raises(ValueError, match=r"zero time steps.*shape \(0, 3\)"):
        bf(torch.zeros(0, I))


def test_lengths_longer_than_input(layer):
    with pytest.raises(ValueError, match=r"length of 7 exceeds the padded input's 5 time steps"):
        layer(torch.zeros(5, 3, I), lengths=torch.tensor([5, 7, 2]))
    with pytest.raises(ValueError, match=r"lengths must be an integer tensor of shape \(3,\), got \(2,\)"):
        layer(torch.zeros(5, 3, I), lengths=torch.tensor([5, 2]))
    with pytest.raises(ValueError, match=r"lengths must be an integer tensor.*torch.float32"):
        layer(torch.zeros(5, 3, I), lengths=torch.tensor([5.0, 2.0, 1.0]))


def test_integer_input(layer):
    with pytest.raises(ValueError, match=r"floating-point.*got dtype torch.int64"):
        layer(torch.zeros(5, 3, I, dtype=torch.long))
    with pytest.raises(ValueError, match=r"floating-point.*got dtype torch.int32"):
        layer(torch.zeros(5, 3, I, dtype=torch.int32))


def test_packed_input_with_lengths_is_rejected(layer):
    packed = pack_padded_sequence(torch.zeros(5, 2, I), torch.tensor([5, 3]))
    with pytest.raises(ValueError, match="lengths only with a padded tensor"):
        layer(packed, lengths=torch.tensor([5, 3]))


@pytest.mark.parametrize(
    "args,kwargs",
    [
        ((3, 5), {"dropout": True}),
        ((3, 5), {"dropout": 1.5}),
        ((3, 5), {"dropout": "0.1"}),
        ((3, 5), {"bias": 0}),
        ((3, 5), {"batch_first": "True"}),
        ((3.0, 5), {}),
        ((3, "5"), {}),
        ((3, 5, 0), {}),
        ((3, 5, 2.0), {}),
        ((3, 5), {"nonlinearity": "sigmoid"}),
        ((3, 5), {"proj_size": 2}),
    ],
)
def test_constructor_errors_are_torchs(args, kwargs):
    """Bad constructor input raises what torch.nn.RNN raises (type and message), checked against
    torch itself (num_layers=2.0 fails inside torch with a TypeError of its own; ours names it)."""
    with pytest.raises(Exception) as theirs:
        nn.RNN(*args, **kwargs)
    with pytest.raises(theirs.type) as ours:
        RNN(*args, **kwargs)
    if args[2:] != (2.0,):
        assert str(ours.value).startswith(str(theirs.value).split(",")[0].split(".")[0])


def test_constructor_beyond_torch():
    with pytest.raises(TypeError, match="bidirectional should be of type bool, got: int"):
        GRU(3, 5, bidirectional=1)  # torch.nn accepts any truthy value here; these layers want a bool
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        LSTM(3, 5, dropout=0.5)
    # torch.nn.RNN's positional order: (input_size, hidden_size, num_layers, nonlinearity, bias, ...)
    layer = RNN(3, 5, 2, "relu", False)
    assert (layer.mode, layer.bias, layer.num_layers) == ("rnn_relu", False, 2)
    assert repr(RNN(2, 3, num_layers=2)) == repr(nn.RNN(2, 3, num_layers=2)) == "RNN(2, 3, num_layers=2)"
    assert repr(RNN(2, 3, nonlinearity="relu")) == "RNN(2, 3, nonlinearity='relu')"


def test_dtype_mismatch_is_torchs_value_error():
    with pytest.raises(
        ValueError,
        match=r"RNN input dtype \(torch.float64\) does not match weight dtype "
        r"\(torch.float32\)\. Convert input: input\.to\(torch.float32\), "
        r"or convert model: model\.to\(torch.float64\)",
    ):
        GRU(3, 5)(torch.zeros(2, 4, 3, dtype=torch.float64))


def test_shape_errors_are_also_runtime_errors():
    """torch.nn raises RuntimeError for a wrong feature size or state shape; these layers raise an
    error that is both (ValueError, as before)."""
    with pytest.raises(RuntimeError, match=r"input.size\(-1\) must be equal to input_size. Expected 3, got 4"):
        LSTM(3, 5)(torch.zeros(2, 4, 4))
    with pytest.raises(RuntimeError, match=r"Expected hidden size \(1, 4, 5\), got \[1, 3, 5\]"):
        GRU(3, 5)(torch.zeros(2, 4, 3), torch.zeros(1, 3, 5))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="unknown cell 'elman'"):
        make_layer("elman", I, H)
    with pytest.raises(ValueError, match="hidden_size must be greater than zero, got 0"):
        LSTM(I, 0)
    with pytest.raises(ValueError, match="nonlinearity"):
        RNN(I, H, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="0 <= mu < 1"):
        MomentumGRU(I, H, mu=1.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        GRU(I, H, backend="cuda")


# ---- unbatched input and dropout ------------------------------------------------------------------
@pytest.mark.parametrize("with_hx", [False, True], ids=["no-hx", "hx"])
@pytest.mark.parametrize("cell", CELLS)
def test_unbatched_input(cell, with_hx):
    torch.manual_seed(0)
    mode = BASE_MODE.get(cell, cell)
    momentum = cell in MOMENTUM
    layer = make_layer(cell, I, H, num_layers=NL, bidirectional=True)
    x = torch.randn(T, I)
    hx = make_states(mode, momentum, ("full" if momentum else "hx") if with_hx else "none", batch=1)
    hx1 = None if hx is None else tuple(t.detach()[:, 0] for t in as_list(hx))
    hx1 = hx1[0] if hx1 is not None and len(hx1) == 1 else hx1
    out, st = layer(x, hx1)
    ref, ref_st = layer(x.unsqueeze(1), None if hx is None else hx)
    assert out.shape == (T, 2 * H)
    assert_close(out, ref.squeeze(1), "output")
    for a, b in zip(as_list(st), as_list(ref_st)):
        assert a.shape == b.shape[:1] + b.shape[2:]
        assert_close(a, b.squeeze(1), "state")
    if cell in STANDARD:
        twin = TWINS[cell](I, H, num_layers=NL, bidirectional=True)
        twin.load_state_dict(layer.state_dict(), strict=True)
        out_t, st_t = twin(x, hx1)
        assert_close(out, out_t, "torch.nn unbatched")
        for a, b in zip(as_list(st), as_list(st_t)):
            assert_close(a, b, "torch.nn unbatched state")


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_between_layers(cell):
    torch.manual_seed(0)
    layer = make_layer(cell, I, H, num_layers=NL, bidirectional=True, dropout=0.5, batch_first=True)
    no_drop = make_layer(cell, I, H, num_layers=NL, bidirectional=True, batch_first=True)
    no_drop.load_state_dict(layer.state_dict(), strict=True)
    x = torch.randn(B, T, I)
    layer.train()
    a, _ = layer(x, lengths=LENGTHS)
    b, _ = layer(x, lengths=LENGTHS)
    ref, _ = no_drop(x, lengths=LENGTHS)
    assert not torch.allclose(a, ref, atol=1e-4), "train-mode dropout should change the output"
    assert not torch.allclose(a, b, atol=1e-4), "a fresh dropout mask per call"
    layer.eval()
    c, _ = layer(x, lengths=LENGTHS)
    d, _ = layer(x, lengths=LENGTHS)
    assert torch.equal(c, d)
    assert_close(c, ref, "eval output equals the dropout-free layer", rtol=0, atol=1e-6)
    # The last layer's output is never dropped: its first layer alone is unaffected.
    one = make_layer(cell, I, H, num_layers=1, bidirectional=True, batch_first=True)
    one.load_state_dict({k: v for k, v in layer.state_dict().items() if "_l1" not in k}, strict=True)
    layer.train()
    torch.manual_seed(1)
    _, st = layer(x, lengths=LENGTHS)
    _, st1 = one(x, lengths=LENGTHS)
    assert_close(as_list(st)[0][:2], as_list(st1)[0], "layer 0 states are dropout-free", rtol=0, atol=1e-6)


# ---- packing variants and bias=False --------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_presorted_packed_sequence(cell):
    """A PackedSequence made with enforce_sorted=True has sorted_indices=None; it must work too."""
    torch.manual_seed(0)
    layer = make_layer(cell, I, H, num_layers=NL, bidirectional=True)
    x = make_input(False).detach()
    order = torch.argsort(LENGTHS, descending=True)
    xs, ls = x[:, order], LENGTHS[order]
    out_s, st_s = layer(pack_padded_sequence(xs, ls, enforce_sorted=True))
    assert out_s.sorted_indices is None
    out_u, st_u = layer(pack_padded_sequence(xs, ls, enforce_sorted=False))
    assert_close(out_s.data, out_u.data, "output", rtol=0, atol=0)
    for a, b in zip(as_list(st_s), as_list(st_u)):
        assert_close(a, b, "state", rtol=0, atol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_without_bias(cell):
    torch.manual_seed(0)
    mode = BASE_MODE.get(cell, cell)
    kw = dict(num_layers=NL, bidirectional=True, batch_first=True, bias=False)
    layer = make_layer(cell, I, H, mu=0.7, s=0.8, **kw) if cell in MOMENTUM else make_layer(cell, I, H, **kw)
    assert not any("bias" in n for n, _ in layer.named_parameters())
    x = make_input(True)
    out, st = layer(x, lengths=LENGTHS)
    if cell in STANDARD:
        twin = TWINS[cell](I, H, **kw)
        twin.load_state_dict(layer.state_dict(), strict=True)
        ref, ref_st = twin(pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False))
        ref, _ = pad_packed_sequence(ref, batch_first=True, total_length=T)
        ref_st = as_list(ref_st)
    else:
        ref, (rh, rc, rv) = reference_stack(layer, x, LENGTHS, *split_hx(mode, None, x, x.dtype))
        ref_st = [rh] + ([rc] if mode == "lstm" else []) + [rv]
    assert_close(out, ref, "output")
    for a, b in zip(as_list(st), ref_st):
        assert_close(a, b, "state")
    params = list(layer.parameters())
    ref_params = params if cell in MOMENTUM else list(twin.parameters())
    for a, b in zip(
        grads_of(weighted_sum([out] + as_list(st)), params + [x]),
        grads_of(weighted_sum([ref] + ref_st), ref_params + [x]),
    ):
        assert_close(a, b, "grad")


def test_a_cuda_layer_the_fused_kernels_cannot_run_says_so_once(monkeypatch, caplog):
    """backend='auto' on a CUDA input asks for the fused kernels; when they cannot run (here hidden 512,
    beyond their range) the torch fallback runs and a warning names the reason, once per layer and
    reason. Checked without a GPU: the input only needs to say it is on CUDA."""
    import logging
    from types import SimpleNamespace

    from namemodels.kernels import dispatch
    from namemodels.kernels.fused_recurrent import supports
    from namemodels.kernels.layers import GRU

    layer = GRU(8, 512, batch_first=True)
    monkeypatch.setattr(dispatch, "triton_available", lambda: (True, "triton importable"))
    cuda_input = SimpleNamespace(is_cuda=True, dtype=torch.float32)
    want = supports("gru", 512, torch.float32)[1]
    with caplog.at_level(logging.WARNING, logger="namemodels.kernels"):
        assert layer._choose_backend(cuda_input) == ("torch", want)
        assert layer._choose_backend(cuda_input) == ("torch", want)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "hidden_size=512" in said[0] and "torch fallback (cuDNN) runs" in said[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="namemodels.kernels"):  # on the CPU the torch path is the plan
        assert layer._choose_backend(torch.zeros(1, 2, 8))[0] == "torch"
    assert not caplog.records
