"""The NumPy reference's hand-written BPTT against torch autograd (float64, to 1e-6)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from namemodels.kernels import numpy_reference as nr
from namemodels.kernels.cells import CELLS, REGISTRY
from namemodels.kernels.naive import naive_layer

TOL = dict(rtol=1e-6, atol=1e-8)
B, T, I, H = 3, 6, 4, 3  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
LENGTHS = np.array([6, 2, 4])


pytestmark = pytest.mark.usefixtures("single_thread")


def close(a, b, what=""):
    a = a.detach().numpy() if torch.is_tensor(a) else np.asarray(a)
    np.testing.assert_allclose(np.asarray(b), a, err_msg=what, **TOL)


def close_input_grads(grads, **inputs):
    """Each given input's (torch) gradient against the reference's gradient of the same name; None
    (no such input for this cell) is skipped."""
    for name, t in inputs.items():
        if t is not None:
            close(t.grad, grads[name], name)


def t64(a, grad=True):
    return None if a is None else torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def layer_args(tp, x, h0, c0, v0):
    """One torch-side layer call's arguments in :func:`naive_layer`'s order, ``x, lengths, h0, c0, v0,
    w_ih, w_hh, b_ih, b_hh``: the given tensors, :data:`LENGTHS`, and the weights from ``tp`` (torch
    copies of the reference's parameters; biases None when it has none)."""
    weights = tp["weight_ih"], tp["weight_hh"], tp.get("bias_ih"), tp.get("bias_hh")
    return (x, torch.tensor(LENGTHS), h0, c0, v0, *weights)


def random_case(cell, rng, mu=0.7, s=0.8, bias=True):
    mode, momentum = REGISTRY[cell].mode, REGISTRY[cell].momentum
    p = nr.init_params(cell, I, H, rng, bias=bias, mu=mu, s=s)
    G = p["weight_hh"].shape[0]
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H)) if mode == "lstm" else None
    v0 = rng.standard_normal((B, G)) if momentum else None
    return p, x, h0, c0, v0


def upstream(rng, mode, momentum, G):
    d_out = rng.standard_normal((B, T, H))
    d_h = rng.standard_normal((B, H))
    d_c = rng.standard_normal((B, H)) if mode == "lstm" else None
    d_v = rng.standard_normal((B, G)) if momentum else None
    return d_out, d_h, d_c, d_v


def weighted_loss(out, states, d_out, d_h, d_c, d_v):
    loss = (out * torch.tensor(d_out)).sum() + (states[0] * torch.tensor(d_h)).sum()
    if d_c is not None:
        loss = loss + (states[1] * torch.tensor(d_c)).sum()
    if d_v is not None:
        loss = loss + (states[2] * torch.tensor(d_v)).sum()
    return loss


# ---- one layer, one direction, against naive_layer ---------------------------------------------
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("with_state", [True, False], ids=["h0", "zero-state"])
@pytest.mark.parametrize("cell", CELLS)
def test_layer_grads_match_autograd(cell, with_state, bias, reverse):
    rng = np.random.default_rng(zlib.crc32(f"{cell}{with_state}{bias}{reverse}".encode()))
    mode, momentum = REGISTRY[cell].mode, REGISTRY[cell].momentum
    p, x, h0, c0, v0 = random_case(cell, rng, bias=bias)
    if not with_state:
        h0 = c0 = v0 = None
    G = p["weight_hh"].shape[0]
    out, st, cache = nr.forward(cell, x, p, h0, c0, v0, lengths=LENGTHS, reverse=reverse)
    ups = upstream(rng, mode, momentum, G)
    g = nr.backward(cache, *ups)

    tp = {k: t64(v) for k, v in p.items()}
    tx = t64(x)
    th = t64(h0 if h0 is not None else np.zeros((B, H)))
    tc = t64(c0 if c0 is not None else np.zeros((B, H))) if mode == "lstm" else None
    tv = t64(v0) if v0 is not None else None
    o, states = naive_layer(mode, *layer_args(tp, tx, th, tc, tv), mu=tp.get("mu"), s=tp.get("s"), reverse=reverse)
    close(o, out, "out")
    close(states[0], st["h"], "h_n")
    if mode == "lstm":
        close(states[1], st["c"], "c_n")
    if momentum:
        close(states[2], st["v"], "v_n")
    weighted_loss(o, states, *ups).backward()
    for k, t in tp.items():
        close(t.grad, g[k], k)
    close_input_grads(g, x=tx, h0=th, c0=tc, v0=tv)
    assert set(g) >= {"weight_ih", "weight_hh", "x", "h0"}
    assert ("bias_ih" in g) == bias and ("mu" in g) == momentum


def test_padded_steps_give_zero_output_and_no_gradient():
    rng = np.random.default_rng(1)
    p, x, h0, c0, v0 = random_case("momentum_lstm", rng)
    out, st, cache = nr.forward("momentum_lstm", x, p, h0, c0, v0, lengths=LENGTHS)
    assert np.all(out[1, 2:] == 0) and np.all(out[2, 4:] == 0)
    # Changing padded inputs changes nothing.
    x2 = x.copy()
    x2[1, 2:] = 100.0
    out2, st2, _ = nr.forward("momentum_lstm", x2, p, h0, c0, v0, lengths=LENGTHS)
    np.testing.assert_array_equal(out, out2)
    np.testing.assert_array_equal(st["v"], st2["v"])
    g = nr.backward(cache, np.ones_like(out))
    assert np.all(g["x"][1, 2:] == 0)


def test_full_length_equals_lengths_none_and_length_zero_keeps_state():
    rng = np.random.default_rng(2)
    p, x, h0, c0, v0 = random_case("gru", rng)
    a, sa, _ = nr.forward("gru", x, p, h0)
    b, sb, _ = nr.forward("gru", x, p, h0, lengths=np.full(B, T))
    np.testing.assert_array_equal(a, b)
    _, sc, _ = nr.forward("gru", x, p, h0, lengths=np.array([0, T, 1]))
    np.testing.assert_array_equal(sc["h"][0], h0[0])


# ---- stacks against torch.nn and the layer library --------------------------------------------
TORCH_NN = {
    "rnn_tanh": lambda *a, **k: nn.RNN(*a, nonlinearity="tanh", **k),
    "rnn_relu": lambda *a, **k: nn.RNN(*a, nonlinearity="relu", **k),
    "gru": nn.GRU,
    "lstm": nn.LSTM,
}


@pytest.mark.parametrize("cell", list(TORCH_NN))
def test_stack_matches_torch_nn(cell):
    """Two layers, bidirectional, mixed lengths, given initial states, float64: outputs, states and
    every parameter / input / state gradient of torch.nn's own layer."""
    rng = np.random.default_rng(3)
    torch.manual_seed(3)
    mode = REGISTRY[cell].mode
    L, D = 2, 2
    twin = TORCH_NN[cell](I, H, num_layers=L, bidirectional=True, batch_first=True).double()
    params = {k: v.detach().numpy().copy() for k, v in twin.state_dict().items()}
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((L * D, B, H))
    c0 = rng.standard_normal((L * D, B, H)) if mode == "lstm" else None
    out, st, cache = nr.stack_forward(cell, x, params, num_layers=L, bidirectional=True, h0=h0, c0=c0, lengths=LENGTHS)
    d_out = rng.standard_normal(out.shape)
    d_h = rng.standard_normal(h0.shape)
    d_c = rng.standard_normal(h0.shape) if mode == "lstm" else None
    g = nr.stack_backward(cache, d_out, d_h, d_c)

    tx, th = t64(x), t64(h0)
    tc = t64(c0) if c0 is not None else None
    packed = pack_padded_sequence(tx, torch.tensor(LENGTHS), batch_first=True, enforce_sorted=False)
    o, hs = twin(packed, (th, tc) if mode == "lstm" else th)
    o, _ = pad_packed_sequence(o, batch_first=True, total_length=T)
    hs = hs if mode == "lstm" else (hs,)
    close(o, out, "out")
    close(hs[0], st["h"], "h_n")
    loss = (o * torch.tensor(d_out)).sum() + (hs[0] * torch.tensor(d_h)).sum()
    if mode == "lstm":
        close(hs[1], st["c"], "c_n")
        loss = loss + (hs[1] * torch.tensor(d_c)).sum()
    loss.backward()
    for name, prm in twin.named_parameters():
        close(prm.grad, g[name], name)
    close_input_grads(g, x=tx, h0=th, c0=tc)


@pytest.mark.parametrize("cell", ["momentum_rnn", "momentum_gru", "momentum_lstm"])
def test_momentum_stack_matches_layer_with_learned_momentum(cell, learned_momentum_stack):
    """Momentum stack vs the library's layer (learn_momentum=True, float64): the reference gives
    dL/dmu and dL/ds; the layer's raw parameters get them times sigmoid' / softplus'."""
    rng = np.random.default_rng(4)
    torch.manual_seed(4)
    mode = REGISTRY[cell].mode
    layer = learned_momentum_stack(cell, I, H)
    L, D = layer.num_layers, layer.num_directions
    params = {k: v.detach().numpy().copy() for k, v in layer.named_parameters() if k.startswith(("weight", "bias"))}
    mu, s = float(layer.mu.detach()), float(layer.s.detach())
    params.update(mu=mu, s=s)
    G = params["weight_hh_l0"].shape[0]
    x = rng.standard_normal((B, T, I))
    h0 = rng.standard_normal((L * D, B, H))
    c0 = rng.standard_normal((L * D, B, H)) if mode == "lstm" else None
    v0 = rng.standard_normal((L * D, B, G))
    out, st, cache = nr.stack_forward(
        cell, x, params, num_layers=L, bidirectional=True, h0=h0, c0=c0, v0=v0, lengths=LENGTHS
    )
    d_out = rng.standard_normal(out.shape)
    d_h = rng.standard_normal(h0.shape)
    d_c = rng.standard_normal(h0.shape) if mode == "lstm" else None
    d_v = rng.standard_normal(v0.shape)
    g = nr.stack_backward(cache, d_out, d_h, d_c, d_v)

    tx, th, tv = t64(x), t64(h0), t64(v0)
    tc = t64(c0) if c0 is not None else None
    hx = (th, tc, tv) if mode == "lstm" else (th, tv)
    o, hs = layer(tx, hx, lengths=torch.tensor(LENGTHS))
    close(o, out, "out")
    close(hs[0], st["h"], "h_n")
    close(hs[-1], st["v"], "v_n")
    loss = (o * torch.tensor(d_out)).sum() + (hs[0] * torch.tensor(d_h)).sum() + (hs[-1] * torch.tensor(d_v)).sum()
    if mode == "lstm":
        close(hs[1], st["c"], "c_n")
        loss = loss + (hs[1] * torch.tensor(d_c)).sum()
    loss.backward()
    for name, prm in layer.named_parameters():
        if name.startswith(("weight", "bias")):
            close(prm.grad, g[name], name)
    raw_mu = layer.parametrizations.mu.original
    raw_s = layer.parametrizations.s.original
    close(raw_mu.grad, g["mu"] * mu * (1 - mu), "mu")
    close(raw_s.grad, g["s"] * float(torch.sigmoid(raw_s.detach())), "s")
    for name, t in (("x", tx), ("h0", th), ("v0", tv), ("c0", tc)):
        if t is not None:
            close(t.grad, g[name], name)


# ---- clipping and penalties ---------------------------------------------------------------------
def _grads_for_clipping(scale):
    rng = np.random.default_rng(5)
    return {
        "weight_ih": scale * rng.standard_normal((6, 4)),
        "weight_hh": scale * rng.standard_normal((6, 2)),
        "bias_ih": scale * rng.standard_normal(6),
        "mu": scale * 0.3,
        "x": rng.standard_normal((2, 3, 4)),
    }


@pytest.mark.parametrize("norm_type", [2.0, 1.0, np.inf])
@pytest.mark.parametrize("scale", [10.0, 0.01], ids=["clipped", "unchanged"])
def test_clip_grad_norm_matches_torch(scale, norm_type):
    grads = _grads_for_clipping(scale)
    keys = ["weight_ih", "weight_hh", "bias_ih", "mu"]
    clipped, total = nr.clip_grad_norm(grads, max_norm=1.5, norm_type=norm_type)
    tparams = []
    for k in keys:
        prm = torch.zeros(np.shape(grads[k]), dtype=torch.float64, requires_grad=True)
        prm.grad = torch.tensor(np.asarray(grads[k], dtype=np.float64))
        tparams.append(prm)
    ttotal = torch.nn.utils.clip_grad_norm_(tparams, max_norm=1.5, norm_type=norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for k, prm in zip(keys, tparams):
        close(prm.grad, clipped[k], k)
    # input gradients are not parameters: untouched and not counted
    np.testing.assert_array_equal(clipped["x"], grads["x"])
    if scale == 0.01:
        for k in keys:
            np.testing.assert_allclose(clipped[k], grads[k], rtol=1e-12)
    elif norm_type == 2.0:
        new_total = np.sqrt(sum(np.sum(np.square(clipped[k])) for k in keys))
        assert new_total == pytest.approx(1.5, rel=1e-5)


@pytest.mark.parametrize("include_bias", [False, True])
def test_l1_l2_penalty_value_and_gradient(include_bias):
    rng = np.random.default_rng(6)
    p = nr.init_params("momentum_gru", I, H, rng)
    p["weight_hh"][0, 0] = 0.0  # sign(0) = 0, like torch's abs subgradient
    l1, l2 = 0.01, 0.003
    value, g = nr.penalty(p, l1=l1, l2=l2, include_bias=include_bias)
    tp = {k: t64(v) for k, v in p.items()}
    names = [k for k in tp if k.startswith("weight") or (include_bias and k.startswith("bias"))]
    tval = sum(l1 * tp[k].abs().sum() + l2 * (tp[k] ** 2).sum() for k in names)
    tval.backward()
    assert value == pytest.approx(float(tval.detach()), rel=1e-12)
    assert set(g) == set(names)
    for k in names:
        close(tp[k].grad, g[k], k)


def test_penalty_adds_to_loss_gradient_and_training_step_reduces_loss():
    """Loss = sum(out * d_out) + penalty: the summed gradient matches autograd; and a few SGD steps with
    clipping reduce a squared-error loss."""
    rng = np.random.default_rng(7)
    cell = "lstm"
    p, x, h0, c0, _ = random_case(cell, rng)
    out, st, cache = nr.forward(cell, x, p, h0, c0, lengths=LENGTHS)
    d_out = rng.standard_normal(out.shape)
    pen, g_pen = nr.penalty(p, l1=0.02, l2=0.05)
    g = nr.add_grads(nr.backward(cache, d_out), g_pen)
    tp = {k: t64(v) for k, v in p.items()}
    o, _ = naive_layer("lstm", *layer_args(tp, t64(x, False), t64(h0, False), t64(c0, False), None))
    loss = (o * torch.tensor(d_out)).sum() + sum(
        0.02 * tp[k].abs().sum() + 0.05 * (tp[k] ** 2).sum() for k in ("weight_ih", "weight_hh")
    )
    loss.backward()
    for k in tp:
        close(tp[k].grad, g[k], k)

    target = rng.standard_normal(out.shape) * 0.5

    def loss_and_grads(params):
        o, _, c = nr.forward(cell, x, params, h0, c0, lengths=LENGTHS)
        diff = (o - target) * (o != 0)
        val, gp = nr.penalty(params, l2=1e-3)
        return float(np.sum(diff**2)) + val, nr.add_grads(nr.backward(c, 2 * diff), gp)

    first, _ = loss_and_grads(p)
    for _ in range(20):
        _, grads = loss_and_grads(p)
        grads, _ = nr.clip_grad_norm(grads, 1.0)
        p = nr.sgd_step(p, grads, lr=0.1)
    assert loss_and_grads(p)[0] < 0.9 * first


# ---- locked dropout ------------------------------------------------------------------------------
def test_locked_dropout_mask_values_and_constant_over_time():
    rng = np.random.default_rng(8)
    m = nr.locked_dropout_mask(rng, 200, 50, p=0.3)
    assert m.shape == (200, 50)
    assert set(np.unique(m)) <= {0.0, 1 / 0.7}
    assert abs((m == 0).mean() - 0.3) < 0.03
    assert np.array_equal(nr.locked_dropout_mask(rng, 2, 3, p=0.0), np.ones((2, 3)))
    with pytest.raises(ValueError, match="dropout probability"):
        nr.locked_dropout_mask(rng, 2, 3, p=1.0)
    # The input actually seen at each step is x_t * mask, with one mask for all steps.
    p, x, h0, c0, v0 = random_case("gru", rng)
    mx = nr.locked_dropout_mask(rng, B, I, p=0.5)
    mh = nr.locked_dropout_mask(rng, B, H, p=0.5)
    _, _, cache = nr.forward("gru", x, p, h0, input_mask=mx, hidden_mask=mh)
    for rec in cache["tape"]:
        np.testing.assert_array_equal(rec["xt"], x[:, rec["t"]] * mx)
        np.testing.assert_array_equal(rec["hd"], rec["h_prev"] * mh)
    # an input mask is the same as masking x beforehand
    a, _, _ = nr.forward("gru", x, p, h0, input_mask=mx)
    b, _, _ = nr.forward("gru", x * mx[:, None, :], p, h0)
    np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)


def masked_loop(mode, x, lengths, h0, c0, v0, w_ih, w_hh, b_ih, b_hh, mu, s, mx, mh, reverse):
    """Independent torch per-step loop with locked dropout: x_t * mx, and h * mh in W_hh's matmul only."""
    Bn, Tn, _ = x.shape
    h, c = h0, c0
    v = v0 if v0 is not None else x.new_zeros(Bn, w_ih.shape[0])
    outs = [None] * Tn
    for t in range(Tn - 1, -1, -1) if reverse else range(Tn):
        act = (t < lengths).unsqueeze(1).to(x.dtype)
        a = (x[:, t] * mx) @ w_ih.t() + b_ih
        gi = mu * v + s * a if mu is not None else a
        gh = (h * mh) @ w_hh.t() + b_hh
        c_new = None
        if mode == "rnn_tanh":
            h_new = torch.tanh(gi + gh)
        elif mode == "rnn_relu":
            h_new = torch.relu(gi + gh)
        elif mode == "gru":
            ar, az, an = gi.chunk(3, 1)
            hr, hz, hn = gh.chunk(3, 1)
            r, z = torch.sigmoid(ar + hr), torch.sigmoid(az + hz)
            h_new = (1 - z) * torch.tanh(an + r * hn) + z * h
        else:
            i, f, g, o = (gi + gh).chunk(4, 1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
        outs[t] = act * h_new
        h = act * h_new + (1 - act) * h
        if c is not None:
            c = act * c_new + (1 - act) * c
        if mu is not None:
            v = act * gi + (1 - act) * v
    return torch.stack(outs, 1), (h, c, v if mu is not None else None)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("cell", CELLS)
def test_backward_with_fixed_dropout_masks_matches_autograd(cell, reverse):
    rng = np.random.default_rng(9)
    mode, momentum = REGISTRY[cell].mode, REGISTRY[cell].momentum
    p, x, h0, c0, v0 = random_case(cell, rng)
    G = p["weight_hh"].shape[0]
    mx = nr.locked_dropout_mask(rng, B, I, p=0.4)
    mh = nr.locked_dropout_mask(rng, B, H, p=0.4)
    out, st, cache = nr.forward(cell, x, p, h0, c0, v0, lengths=LENGTHS, reverse=reverse, input_mask=mx, hidden_mask=mh)
    ups = upstream(rng, mode, momentum, G)
    g = nr.backward(cache, *ups)
    tp = {k: t64(v) for k, v in p.items()}
    tx, th, tc, tv = t64(x), t64(h0), t64(c0), t64(v0)
    mu, s = tp.get("mu"), tp.get("s")
    o, states = masked_loop(mode, *layer_args(tp, tx, th, tc, tv), mu, s, torch.tensor(mx), torch.tensor(mh), reverse)
    close(o, out, "out")
    weighted_loss(o, states, *ups).backward()
    for k, t in tp.items():
        close(t.grad, g[k], k)
    close_input_grads(g, x=tx, h0=th, c0=tc, v0=tv)


def test_stack_with_masks_and_validation():
    rng = np.random.default_rng(10)
    params = {}
    for layer in range(2):
        for d in range(2):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            lp = nr.init_params("rnn_tanh", I if layer == 0 else 2 * H, H, rng)
            params.update({k + sfx: v for k, v in lp.items()})
    x = rng.standard_normal((B, T, I))
    masks = [
        (nr.locked_dropout_mask(rng, B, I if k < 2 else 2 * H, 0.5), nr.locked_dropout_mask(rng, B, H, 0.5))
        for k in range(4)
    ]
    out, st, cache = nr.stack_forward(
        "rnn_tanh", x, params, num_layers=2, bidirectional=True, lengths=LENGTHS, masks=masks
    )
    out0, _, _ = nr.stack_forward("rnn_tanh", x, params, num_layers=2, bidirectional=True, lengths=LENGTHS)
    assert out.shape == (B, T, 2 * H) and st["h"].shape == (4, B, H) and st["c"] is None
    assert not np.allclose(out, out0)
    g = nr.stack_backward(cache, np.ones_like(out))
    assert g["x"].shape == x.shape and g["h0"].shape == (4, B, H)
    with pytest.raises(ValueError, match="unknown cell"):
        nr.forward("elman", x, params)
    with pytest.raises(ValueError, match="lengths"):
        nr.forward("rnn_tanh", x, nr.init_params("rnn_tanh", I, H, rng), lengths=np.array([T + 1, 1, 1]))
