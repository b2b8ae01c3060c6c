"""Fused Triton kernels (issue 4) against the per-step reference and the torch fallback.

Runs in Triton's interpreter on the CPU (tests/conftest.py sets TRITON_INTERPRET=1 before triton is
imported); shapes are tiny so the whole file takes seconds. On a GPU machine the same tests run on
CUDA with ``NAMEMODELS_TEST_DEVICE=cuda TRITON_INTERPRET=0 pytest tests/test_triton_kernels.py``
(every tensor is then made on the GPU, and cuDNN's TF32 is switched off so that the torch
references are fp32 too).
"""
import os

import pytest
import torch

pytest.importorskip("triton")

from namemodels.kernels import make_layer  # noqa: E402
from namemodels.kernels.fused_recurrent import (fused_recurrent_layer, fused_step,  # noqa: E402
                                                 supports)
from namemodels.kernels.cells import CELLS, GATES, MODE_OF as MODES  # noqa: E402
from namemodels.kernels.naive import cell_step, naive_layer  # noqa: E402
B, T, I, H = 3, 5, 4, 8
TOL = dict(atol=1e-4, rtol=1e-4)
DEVICE = os.environ.get("NAMEMODELS_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True, scope="module")
def on_device():
    """Make every tensor of these tests on DEVICE (the CPU under the interpreter, or CUDA)."""
    if DEVICE == "cpu":
        yield
        return
    if not torch.cuda.is_available():
        pytest.fail(f"NAMEMODELS_TEST_DEVICE={DEVICE} but torch sees no CUDA device")
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.set_default_device(DEVICE)
    yield
    torch.set_default_device("cpu")
    torch.backends.cudnn.allow_tf32 = tf32


def test_interpreter_is_on():
    assert os.environ.get("TRITON_INTERPRET") == ("1" if DEVICE == "cpu" else "0")


def _rand(*shape, scale=0.5, grad=True):
    return (torch.randn(*shape) * scale).requires_grad_(grad)


def _layer_args(mode, momentum, bias=True, v0=True, learn=True):
    G = GATES[mode] * H
    return dict(
        x=_rand(B, T, I), h0=_rand(B, H), c0=_rand(B, H) if mode == "lstm" else None,
        v0=_rand(B, G) if momentum and v0 else None, w_ih=_rand(G, I), w_hh=_rand(G, H),
        b_ih=_rand(G) if bias else None, b_hh=_rand(G) if bias else None,
        mu=(torch.tensor(0.6, requires_grad=learn) if learn else 0.6) if momentum else None,
        s=(torch.tensor(0.7, requires_grad=learn) if learn else 0.7) if momentum else None)


def _run(fn, mode, a, lengths, reverse):
    out, (h, c, v) = fn(mode, a["x"], lengths, a["h0"], a["c0"], a["v0"], a["w_ih"], a["w_hh"], a["b_ih"],
                        a["b_hh"], mu=a["mu"], s=a["s"], reverse=reverse)
    torch.manual_seed(123)
    loss = (out * torch.randn_like(out)).sum() + (h * torch.randn_like(h)).sum()
    if c is not None:
        loss = loss + (c * torch.randn_like(c)).sum()
    if v is not None:
        loss = loss + (v * torch.randn_like(v)).sum()
    leaves = {k: t for k, t in a.items() if torch.is_tensor(t) and t.requires_grad}
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return out, (h, c, v), dict(zip(leaves, grads))


def _assert_same(ref, got):
    """Outputs, final states (the same ones present) and every gradient of two ``_run`` results."""
    (ref_out, ref_st, ref_g), (out, st, g) = ref, got
    torch.testing.assert_close(out, ref_out, **TOL)
    for r, f in zip(ref_st, st):
        assert (r is None) == (f is None)
        if r is not None:
            torch.testing.assert_close(f, r, **TOL)
    assert set(g) == set(ref_g)
    for k in ref_g:
        torch.testing.assert_close(g[k], ref_g[k], **TOL, msg=lambda m, k=k: f"grad {k}: {m}")


# make_layer's test below runs every cell in both directions; these direct calls check the contract
# against the per-step oracle itself (v0 given, learnable mu/s), a few combinations to stay fast.
@pytest.mark.parametrize("cell,reverse", [("rnn_tanh", True), ("rnn_relu", False), ("gru", True),
                                          ("lstm", False), ("momentum_rnn", False), ("momentum_lstm", True),
                                          ("momentum_gru", False)])
def test_layer_matches_naive(cell, reverse):
    torch.manual_seed(0)
    mode, momentum = MODES[cell], cell.startswith("momentum")
    a = _layer_args(mode, momentum)
    lengths = torch.tensor([5, 2, 4])
    got = _run(fused_recurrent_layer, mode, a, lengths, reverse)
    _assert_same(_run(naive_layer, mode, a, lengths, reverse), got)
    assert bool((got[0][1, 2:] == 0).all()), "outputs at padding must be zero"


@pytest.mark.parametrize("mode,momentum", [("lstm", True), ("gru", False), ("rnn_relu", True)])
def test_layer_no_bias_no_v0_constant_momentum(mode, momentum):
    """No biases, v0 = None, mu/s python floats; full lengths (lengths=None)."""
    torch.manual_seed(1)
    a = _layer_args(mode, momentum, bias=False, v0=False, learn=False)
    _assert_same(_run(naive_layer, mode, a, None, False), _run(fused_recurrent_layer, mode, a, None, False))


def test_inference_path_without_grad():
    torch.manual_seed(2)
    a = _layer_args("lstm", True)
    with torch.no_grad():
        ref = naive_layer("lstm", a["x"], torch.tensor([1, 5, 3]), a["h0"], a["c0"], a["v0"], a["w_ih"],
                          a["w_hh"], a["b_ih"], a["b_hh"], mu=a["mu"], s=a["s"], reverse=True)
        got = fused_recurrent_layer("lstm", a["x"], torch.tensor([1, 5, 3]), a["h0"], a["c0"], a["v0"],
                                    a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], mu=a["mu"], s=a["s"],
                                    reverse=True)
    torch.testing.assert_close(got[0], ref[0], **TOL)
    for r, f in zip(ref[1], got[1]):
        torch.testing.assert_close(f, r, **TOL)


@pytest.mark.parametrize("cell", CELLS)
def test_uninitialised_buffers_are_never_read(cell, monkeypatch):
    """Every torch.empty buffer filled with NaN first: results and gradients must not change (a
    momentum buffer left unwritten at padding once gave NaN d mu, depending on what memory held)."""
    real_empty = torch.empty

    def nan_empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    torch.manual_seed(9)
    mode, momentum = MODES[cell], cell.startswith("momentum")
    a = _layer_args(mode, momentum)
    lengths = torch.tensor([5, 1, 3])
    ref = _run(naive_layer, mode, a, lengths, True)
    monkeypatch.setattr(torch, "empty", nan_empty)
    _assert_same(ref, _run(fused_recurrent_layer, mode, a, lengths, True))


def _pair(cell, **kw):
    torch.manual_seed(3)
    ref = make_layer(cell, I, H, backend="torch", **kw)
    tri = make_layer(cell, I, H, backend="triton", **kw)
    tri.load_state_dict(ref.state_dict())
    return ref, tri


@pytest.mark.parametrize("cell", CELLS)
def test_make_layer_triton_vs_torch(cell):
    """2 layers, bidirectional, mixed lengths, initial states given, learnable momentum."""
    momentum = cell.startswith("momentum")
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    if momentum:
        kw["learn_momentum"] = True
    ref, tri = _pair(cell, **kw)
    mode = MODES[cell]
    LD = 4
    x = torch.randn(B, T, I)
    hx = [torch.randn(LD, B, H) * 0.5]
    if mode == "lstm":
        hx.append(torch.randn(LD, B, H) * 0.5)
    if momentum:
        hx.append(torch.randn(LD, B, GATES[mode] * H) * 0.5)
    lengths = torch.tensor([4, 5, 2])
    results = []
    for layer in (ref, tri):
        xi = x.clone().requires_grad_()
        hxi = [t.clone().requires_grad_() for t in hx]
        out, states = layer(xi, tuple(hxi) if len(hxi) > 1 else hxi[0], lengths=lengths)
        states = states if isinstance(states, tuple) else (states,)
        torch.manual_seed(7)
        loss = (out * torch.randn_like(out)).sum() + sum((st * torch.randn_like(st)).sum() for st in states)
        params = [p for _, p in sorted(layer.named_parameters())]
        grads = torch.autograd.grad(loss, [xi] + hxi + params)
        results.append((out, states, grads, [n for n, _ in sorted(layer.named_parameters())]))
    assert tri.last_backend[0] == "triton"
    assert ref.last_backend[0] == "torch"
    (o1, s1, g1, n1), (o2, s2, g2, n2) = results
    assert n1 == n2
    torch.testing.assert_close(o2, o1, **TOL)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(b, a, **TOL)
    names = ["x"] + [f"hx{i}" for i in range(len(hx))] + n1
    if momentum:
        assert any("mu" in n for n in n1) and any(n.endswith("s.original") or ".s." in n for n in n1)
    for name, a, b in zip(names, g1, g2):
        torch.testing.assert_close(b, a, **TOL, msg=lambda m, name=name: f"grad {name}: {m}")


# (B, T, I, H): several 16-row batch blocks, a hidden size that is padded, several K-blocks of the
# recurrent matmul. Kept small for the interpreter; GPU-sized on CUDA.
BIGGER = {"cpu": (20, 6, 5, 20), "cuda": (300, 33, 48, 200)}


@pytest.mark.parametrize("cell", CELLS)
def test_bigger_shapes_triton_vs_torch(cell):
    """Bidirectional, random lengths 1..T, default zero states: outputs, h_n and every gradient."""
    Bb, Tb, Ib, Hb = BIGGER["cuda" if DEVICE != "cpu" else "cpu"]
    torch.manual_seed(8)
    ref = make_layer(cell, Ib, Hb, bidirectional=True, batch_first=True, backend="torch")
    tri = make_layer(cell, Ib, Hb, bidirectional=True, batch_first=True, backend="triton")
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(Bb, Tb, Ib)
    lengths = torch.randint(1, Tb + 1, (Bb,), device="cpu")
    lengths[0] = Tb
    g_out = torch.randn(Bb, Tb, 2 * Hb)
    results = []
    for layer in (ref, tri):
        xi = x.clone().requires_grad_()
        out, states = layer(xi, lengths=lengths)
        h_n = states[0] if isinstance(states, tuple) else states
        params = [p for _, p in sorted(layer.named_parameters())]
        grads = torch.autograd.grad((out * g_out).sum() + h_n.sum(), [xi] + params)
        results.append((out, h_n, grads))
    assert tri.last_backend[0] == "triton"
    (o1, h1, g1), (o2, h2, g2) = results
    torch.testing.assert_close(o2, o1, **TOL)
    torch.testing.assert_close(h2, h1, **TOL)
    names = ["x"] + [n for n, _ in sorted(ref.named_parameters())]
    for name, a, b in zip(names, g1, g2):
        # Weight gradients sum over B*T terms: relative tolerance scaled for that sum.
        torch.testing.assert_close(b, a, atol=1e-3, rtol=1e-4, msg=lambda m, name=name: f"grad {name}: {m}")


@pytest.mark.parametrize("cell", ["lstm", "momentum_gru", "momentum_rnn"])
def test_fused_step_matches_one_naive_step(cell):
    torch.manual_seed(4)
    mode, momentum = MODES[cell], cell.startswith("momentum")
    a = _layer_args(mode, momentum, learn=False)
    x_t = a["x"][:, 0].detach()
    with torch.no_grad():
        gi = x_t @ a["w_ih"].t() + a["b_ih"]
        v_ref = None
        if momentum:
            v_ref = a["mu"] * a["v0"] + a["s"] * gi
            gi = v_ref
        h_ref, c_ref = cell_step(mode, gi, a["h0"], a["c0"], a["w_hh"], a["b_hh"])
        h, c, v = fused_step(mode, x_t, a["h0"], a["c0"], a["v0"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"],
                             mu=a["mu"], s=a["s"])
    torch.testing.assert_close(h, h_ref, **TOL)
    if mode == "lstm":
        torch.testing.assert_close(c, c_ref, **TOL)
    else:
        assert c is None
    if momentum:
        torch.testing.assert_close(v, v_ref, **TOL)
    else:
        assert v is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_smoke(dtype):
    torch.manual_seed(5)
    ref, _ = _pair("momentum_lstm")
    tri = make_layer("momentum_lstm", I, H, backend="triton", batch_first=True).to(dtype)
    tri.load_state_dict(ref.state_dict())
    x = torch.randn(B, T, I)
    lengths = torch.tensor([5, 3, 1])
    ref32 = make_layer("momentum_lstm", I, H, backend="torch", batch_first=True)
    ref32.load_state_dict(ref.state_dict())
    ref_out, ref_states = ref32(x, lengths=lengths)
    xh = x.to(dtype).requires_grad_()
    out, states = tri(xh, lengths=lengths)
    assert out.dtype == dtype and all(st.dtype == dtype for st in states)
    assert tri.last_backend[0] == "triton"
    torch.testing.assert_close(out.float(), ref_out, atol=3e-2, rtol=3e-2)
    for a, b in zip(ref_states, states):
        torch.testing.assert_close(b.float(), a, atol=3e-2, rtol=3e-2)
    out.float().sum().backward()
    assert xh.grad is not None and xh.grad.dtype == dtype and bool(torch.isfinite(xh.grad).all())
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in tri.parameters())


def test_supports():
    for mode in ("rnn_tanh", "rnn_relu", "gru", "lstm"):
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            assert supports(mode, 8, dtype)[0]
            assert supports(mode, 256, dtype)[0]
    ok, why = supports("lstm", 257, torch.float32)
    assert not ok and "hidden_size" in why
    ok, why = supports("lstm", 8, torch.float64)
    assert not ok and "float64" in why
    ok, why = supports("mgu", 8, torch.float32)
    assert not ok and "mgu" in why


def test_triton_backend_unsupported_raises_clear_error():
    layer = make_layer("gru", I, H, backend="triton", dtype=torch.float64)
    with pytest.raises(ValueError, match="backend='triton'.*float64"):
        layer(torch.randn(T, B, I, dtype=torch.float64))
    big = make_layer("lstm", I, 300, backend="triton")
    with pytest.raises(ValueError, match="hidden_size=300"):
        big(torch.randn(T, B, I))
    with pytest.raises(ValueError, match="hidden_size"):
        fused_recurrent_layer("lstm", torch.randn(1, 2, I), None, torch.zeros(1, 300), torch.zeros(1, 300), None,
                              torch.randn(1200, I), torch.randn(1200, 300), None, None)


def test_auto_on_cpu_picks_torch():
    layer = make_layer("momentum_lstm", I, H, device="cpu")
    layer(torch.randn(T, B, I, device="cpu"))
    backend, why = layer.last_backend
    assert backend == "torch" and "CPU" in why
