"""The fused Triton kernels against the per-step reference (naive.py) and the torch fallback.

Runs in Triton's interpreter on the CPU (tests/conftest.py sets TRITON_INTERPRET=1 before triton is
imported); shapes are tiny so the whole file takes seconds. On a GPU machine the same tests run on
CUDA with ``NAMEMODELS_TEST_DEVICE=cuda TRITON_INTERPRET=0 pytest tests/test_triton_kernels.py``
(every tensor is then made on the GPU, and cuDNN's TF32 is switched off so that the torch
references are fp32 too); the CUDA-graph test runs only there.
"""

import collections
import os

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._python_dispatch import _push_mode as _push_mode_raw

pytest.importorskip("triton")

import namemodels.kernels.fused_recurrent as fr  # noqa: E402
from namemodels.kernels import make_layer  # noqa: E402
from namemodels.kernels import ops as fused_ops  # noqa: E402
from namemodels.kernels.cells import CELLS, GATES, REGISTRY  # noqa: E402
from namemodels.kernels.fused_recurrent import supports  # noqa: E402
from namemodels.kernels.naive import cell_step, naive_layer  # noqa: E402
from namemodels.kernels.ops import fused_layer  # noqa: E402

B, T, I, H = 3, 5, 4, 8  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
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


# In the interpreter the streamed variant is checked on these cells (every kernel mode); on CUDA on all.
STREAMED_CPU = ("rnn_relu", "gru", "momentum_lstm")


@pytest.fixture(params=[True, False], ids=["on_chip", "streamed"])
def weights_on_chip(request, monkeypatch):
    """Both ways of reading W_hh: held on chip for the whole sequence, or streamed in K-blocks."""
    if not request.param:
        cell = request.node.callspec.params.get("cell")
        if DEVICE == "cpu" and cell not in STREAMED_CPU:
            pytest.skip(f"the streamed variant runs on {', '.join(STREAMED_CPU)} in the interpreter")
        monkeypatch.setattr(fr, "ON_CHIP_BYTES", 0)
    return request.param


def test_interpreter_is_on():
    assert os.environ.get("TRITON_INTERPRET") == ("1" if DEVICE == "cpu" else "0")


def _rand(*shape, scale=0.5, grad=True):
    return (torch.randn(*shape) * scale).requires_grad_(grad)


def _stacked_args(cell, D=2, bias=True, states=True, learn=True, n_in=I):
    """Random arguments of :func:`fused_layer` for ``D`` directions (weights stacked over them)."""
    spec = REGISTRY[cell]
    G = spec.gates * H
    a = dict(
        x=_rand(B, T, n_in),
        h0=_rand(D, B, H) if states else None,
        c0=_rand(D, B, H) if states and spec.mode == "lstm" else None,
        v0=_rand(D, B, G) if states and spec.momentum else None,
        w_ih=_rand(D, G, n_in),
        w_hh=_rand(D, G, H),
        b_ih=_rand(D, G) if bias else None,
        b_hh=_rand(D, G) if bias else None,
        mus=None,
    )
    if spec.momentum:
        a["mus"] = torch.tensor([0.6, 0.7]).requires_grad_(learn)
    return a


def _loss_and_grads(out, states, leaves):
    torch.manual_seed(123)
    loss = (out * torch.randn_like(out)).sum()
    for st in states:
        if st is not None:
            loss = loss + (st * torch.randn_like(st)).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return dict(zip(leaves, grads))


def _fused(mode, a, lengths):
    """fused_layer on the stacked arguments: outputs, states (D, B, *) and every gradient."""
    out, h, c, v = fused_layer(
        mode, a["x"], lengths, a["h0"], a["c0"], a["v0"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["mus"]
    )
    leaves = {k: t for k, t in a.items() if torch.is_tensor(t) and t.requires_grad}
    return out, (h, c, v), _loss_and_grads(out, (h, c, v), leaves) if leaves and out.requires_grad else {}


def _naive(mode, a, lengths):
    """The per-step reference, one direction at a time (reverse for d = 1), on the same arguments."""
    D, _, Hh = a["w_hh"].shape
    outs, hs, cs, vs = [], [], [], []
    pick = lambda k, d: a[k][d] if a[k] is not None else None  # noqa: E731
    for d in range(D):
        h0 = pick("h0", d) if a["h0"] is not None else torch.zeros(B, Hh)
        c0 = pick("c0", d) if a["c0"] is not None else (torch.zeros(B, Hh) if mode == "lstm" else None)
        mu, s = (a["mus"][0], a["mus"][1]) if a["mus"] is not None else (None, None)
        out, (h, c, v) = naive_layer(
            mode,
            a["x"],
            lengths,
            h0,
            c0,
            pick("v0", d),
            a["w_ih"][d],
            a["w_hh"][d],
            pick("b_ih", d),
            pick("b_hh", d),
            mu=mu,
            s=s,
            reverse=bool(d),
        )
        outs.append(out), hs.append(h), cs.append(c), vs.append(v)
    out = torch.cat(outs, 2)
    st = tuple(torch.stack(x) if x[0] is not None else None for x in (hs, cs, vs))
    leaves = {k: t for k, t in a.items() if torch.is_tensor(t) and t.requires_grad}
    return out, st, _loss_and_grads(out, st, leaves) if leaves and out.requires_grad else {}


def _assert_same(ref, got, tol=TOL):
    """Outputs, final states (the same ones present) and every gradient of two results."""
    (ref_out, ref_st, ref_g), (out, st, g) = ref, got
    torch.testing.assert_close(out, ref_out, **tol)
    for r, f in zip(ref_st, st):
        assert (r is None) == (f is None)
        if r is not None:
            torch.testing.assert_close(f, r, **tol)
    assert set(g) == set(ref_g)
    for k in ref_g:
        torch.testing.assert_close(g[k], ref_g[k], **tol, msg=lambda m, k=k: f"grad {k}: {m}")


# ---- one layer, both directions in one launch, against the per-step oracle ---------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_layer_matches_naive(cell, weights_on_chip):
    """Both directions, mixed lengths, initial states (h0, c0, v0) and learnable mu/s: outputs,
    states and the gradients of x, states, weights, biases and mu/s."""
    torch.manual_seed(0)
    a = _stacked_args(cell)
    lengths = torch.tensor([5, 2, 4])
    got = _fused(REGISTRY[cell].mode, a, lengths)
    _assert_same(_naive(REGISTRY[cell].mode, a, lengths), got)
    assert bool((got[0][1, 2:] == 0).all()), "outputs at padding must be zero"


@pytest.mark.parametrize("cell", ["lstm", "gru", "momentum_rnn", "momentum_lstm"])
def test_no_bias_no_states_constant_momentum(cell):
    """No biases, no initial states (zeros inside the kernel), constant mu/s, full lengths, one
    direction."""
    torch.manual_seed(1)
    a = _stacked_args(cell, D=1, bias=False, states=False, learn=False)
    _assert_same(_naive(REGISTRY[cell].mode, a, None), _fused(REGISTRY[cell].mode, a, None))


def test_inference_path_without_grad():
    torch.manual_seed(2)
    a = _stacked_args("momentum_lstm")
    lengths = torch.tensor([1, 5, 3])
    with torch.no_grad():
        ref, got = _naive("lstm", a, lengths), _fused("lstm", a, lengths)
    _assert_same(ref, got)


@pytest.mark.parametrize("cell", CELLS)
def test_uninitialised_buffers_are_never_read(cell, monkeypatch):
    """Every torch.empty buffer filled with NaN first: results and gradients must not change. The
    kernels write every element of what they return and of the gradient buffers (zeros at padding)
    -- nothing is zero-filled on the host."""
    real_empty = torch.empty

    def nan_empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    torch.manual_seed(9)
    a = _stacked_args(cell)
    lengths = torch.tensor([5, 1, 3])
    ref = _naive(REGISTRY[cell].mode, a, lengths)
    monkeypatch.setattr(torch, "empty", nan_empty)
    _assert_same(ref, _fused(REGISTRY[cell].mode, a, lengths))


# ---- layers on the fused path against the torch fallback -------------------------------------------
def _pair(cell, **kw):
    torch.manual_seed(3)
    ref = make_layer(cell, I, H, backend="torch", **kw)
    tri = make_layer(cell, I, H, backend="triton", **kw)
    tri.load_state_dict(ref.state_dict())
    return ref, tri


def _run_layer(layer, x, hx, lengths, seed=7):
    xi = x.clone().requires_grad_()
    hxi = [t.clone().requires_grad_() for t in hx]
    out, states = layer(xi, (tuple(hxi) if len(hxi) > 1 else hxi[0]) if hxi else None, lengths=lengths)
    states = states if isinstance(states, tuple) else (states,)
    torch.manual_seed(seed)
    loss = (out * torch.randn_like(out)).sum() + sum((st * torch.randn_like(st)).sum() for st in states)
    params = [p for _, p in sorted(layer.named_parameters())]
    grads = torch.autograd.grad(loss, [xi] + hxi + params)
    return out, states, grads, [n for n, _ in sorted(layer.named_parameters())]


@pytest.mark.parametrize("cell", CELLS)
def test_make_layer_triton_vs_torch(cell):
    """2 layers, bidirectional, mixed lengths, initial states given, learnable momentum."""
    spec = REGISTRY[cell]
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    if spec.momentum:
        kw["learn_momentum"] = True
    ref, tri = _pair(cell, **kw)
    LD = 4
    x = torch.randn(B, T, I)
    hx = [torch.randn(LD, B, H) * 0.5]
    if spec.mode == "lstm":
        hx.append(torch.randn(LD, B, H) * 0.5)
    if spec.momentum:
        hx.append(torch.randn(LD, B, GATES[spec.mode] * H) * 0.5)
    lengths = torch.tensor([4, 5, 2])
    (o1, s1, g1, n1), (o2, s2, g2, n2) = _run_layer(ref, x, hx, lengths), _run_layer(tri, x, hx, lengths)
    assert tri.last_backend[0] == "triton"
    assert ref.last_backend[0] == "torch"
    assert n1 == n2
    torch.testing.assert_close(o2, o1, **TOL)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(b, a, **TOL)
    names = ["x"] + [f"hx{i}" for i in range(len(hx))] + n1
    if spec.momentum:
        assert any("mu" in n for n in n1) and any(n.endswith("s.original") or ".s." in n for n in n1)
    for name, a, b in zip(names, g1, g2):
        torch.testing.assert_close(b, a, **TOL, msg=lambda m, name=name: f"grad {name}: {m}")


@pytest.mark.parametrize("cell", ["lstm", "momentum_gru"])
def test_packed_sequence_on_the_fused_path(cell):
    """A PackedSequence (unsorted) gives the torch fallback's packed output, states and gradients."""
    ref, tri = _pair(cell, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([3, 5, 2], device="cpu")
    results = []
    for layer in (ref, tri):
        xi = x.clone().requires_grad_()
        out, states = layer(pack_padded_sequence(xi, lengths, batch_first=True, enforce_sorted=False))
        h_n = states[0] if isinstance(states, tuple) else states
        g = torch.autograd.grad((out.data**2).sum() + h_n.sum(), [xi])
        results.append((out, h_n, g[0]))
    (o1, h1, g1), (o2, h2, g2) = results
    assert tri.last_backend[0] == "triton"
    assert torch.equal(o1.batch_sizes, o2.batch_sizes) and torch.equal(o1.sorted_indices, o2.sorted_indices)
    torch.testing.assert_close(o2.data, o1.data, **TOL)
    torch.testing.assert_close(h2, h1, **TOL)
    torch.testing.assert_close(g2, g1, **TOL)


# (B, T, I, H): several 16-row batch blocks, a hidden size that is padded, several K-blocks of the
# streamed recurrent matmul. Kept small for the interpreter; GPU-sized on CUDA.
BIGGER = {"cpu": (18, 5, 5, 20), "cuda": (300, 33, 48, 200)}


@pytest.mark.parametrize("cell", CELLS)
def test_bigger_shapes_triton_vs_torch(cell, weights_on_chip):
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
def test_decode_step_matches_one_naive_step(cell):
    """A one-step inference call (generation) runs with the input projection inside the kernel: one
    launch per layer, no matmul on the host, the state of the per-step equations."""
    torch.manual_seed(4)
    spec = REGISTRY[cell]
    layer = make_layer(cell, I, H, num_layers=2, batch_first=True, backend="triton")
    x = torch.randn(B, 1, I)
    hx = [torch.randn(2, B, H) * 0.5]
    if spec.mode == "lstm":
        hx.append(torch.randn(2, B, H) * 0.5)
    if spec.momentum:
        hx.append(torch.randn(2, B, spec.gates * H) * 0.5)
    with torch.no_grad(), _Count() as count:
        out, states = layer(x, tuple(hx) if len(hx) > 1 else hx[0], lengths=torch.ones(B, dtype=torch.long))
    assert count.triton == {"_fwd_kernel": 2} and "addmm" not in count.ops and "mm" not in count.ops
    states = states if isinstance(states, tuple) else (states,)
    with torch.no_grad():
        inp = x[:, 0]
        for layer_i in range(2):
            w_ih, w_hh, b_ih, b_hh = layer._layer_weights(layer_i, 0)
            gi = inp @ w_ih.t() + b_ih
            v = None
            if spec.momentum:
                v = layer.mu * hx[-1][layer_i] + layer.s * gi
                gi = v
            h, c = cell_step(spec.mode, gi, hx[0][layer_i], hx[1][layer_i] if spec.mode == "lstm" else None, w_hh, b_hh)
            torch.testing.assert_close(states[0][layer_i], h, **TOL)
            if spec.mode == "lstm":
                torch.testing.assert_close(states[1][layer_i], c, **TOL)
            if spec.momentum:
                torch.testing.assert_close(states[-1][layer_i], v, **TOL)
            inp = h
    torch.testing.assert_close(out[:, 0], inp, **TOL)


# ---- launches per layer call -------------------------------------------------------------------------
_FREE = {
    "empty",
    "empty_strided",
    "view",
    "_unsafe_view",
    "reshape",
    "t",
    "transpose",
    "permute",
    "expand",
    "detach",
    "alias",
    "unsqueeze",
    "squeeze",
    "slice",
    "select",
    "as_strided",
    "split",
    "unbind",
    "split_with_sizes",
    "lift_fresh",
    "_to_copy",
    "to",
    "contiguous",
    "is_same_size",
    "set_",
    "clone",
}


def _float_args(args) -> bool:
    flat = [a for x in args for a in (x if isinstance(x, (list, tuple)) else [x])]
    return any(torch.is_tensor(a) and a.is_floating_point() for a in flat)


class _push:
    """The mode back on the dispatch stack (what ``with mode:`` does, without its ``__enter__``)."""

    def __init__(self, mode):
        self.mode = mode

    def __enter__(self):
        _push_mode_raw(self.mode)

    def __exit__(self, *exc):
        from torch.utils._python_dispatch import _pop_mode

        _pop_mode()


class _Count(TorchDispatchMode):
    """Torch operators on float tensors that compute (a CUDA kernel each; views and allocations
    excluded) and fused kernel launches during a block. Not counted: what the interpreter does inside
    a launch, and integer bookkeeping (the checks of CPU lengths, host work where CUDA is concerned)."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()
        self.triton = collections.Counter()
        self._inside = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if func.namespace == "namemodels":  # the fused layer's custom ops: count what their bodies run
            body = getattr(fused_ops, name)._init_fn  # the Python function the op was made from
            with _push(self):
                out = body(*args, **(kwargs or {}))
            return tuple(out) if isinstance(out, tuple) else out
        if not self._inside and name not in _FREE and _float_args(args):
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self._real = fr._launch

        def counted(kernel, grid, *args, **meta):
            self.triton[kernel.fn.__name__] += 1
            self._inside = True
            try:
                self._real(kernel, grid, *args, **meta)
            finally:
                self._inside = False

        fr._launch = counted
        return super().__enter__()

    def __exit__(self, *exc):
        fr._launch = self._real
        return super().__exit__(*exc)


@pytest.mark.parametrize("cell", ["momentum_lstm"])
def test_launches_per_layer_call(cell):
    """Inference: per layer one input-projection matmul and one launch for both directions, plus one
    concatenation per state over layers; nothing zero-filled and no value read back to the host in
    the forward or the backward."""
    layer = make_layer(cell, I, H, num_layers=2, bidirectional=True, batch_first=True, backend="triton")
    x = torch.randn(B, T, I)
    lengths = torch.tensor([5, 2, 4])
    with torch.no_grad():
        layer(x, lengths=lengths)  # fills the inference cache of stacked weights
        with _Count() as count:
            layer(x, lengths=lengths)
    n_states = 1 + (REGISTRY[cell].mode == "lstm") + REGISTRY[cell].momentum
    assert count.triton == {"_fwd_kernel": 2}
    assert count.ops == {"addmm": 2, "cat": n_states}, count.ops
    xi = x.clone().requires_grad_()
    with _Count() as fwd:
        out, states = layer(xi, lengths=lengths)
    with _Count() as bwd:
        (out.sum() + states[0].sum()).backward()
    assert fwd.triton == {"_fwd_kernel": 2} and bwd.triton == {"_bwd_kernel": 2}
    for c in (fwd, bwd):
        assert not {"zeros", "zero_", "fill_", "new_zeros", "_local_scalar_dense", "item"} & set(c.ops), c.ops
    assert fwd.ops["addmm"] == 2 and bwd.ops["bmm"] == 2  # dW_hh of both directions: one matmul per layer


def test_inference_cache_follows_weight_updates():
    """Inference reuses the weights stacked over directions until a weight changes in place (an
    optimizer step, load_state_dict) or moves; every call matches the torch fallback."""
    ref, tri = _pair("momentum_gru", num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([5, 3, 1])
    with torch.no_grad():
        for _step in range(3):
            torch.testing.assert_close(tri(x, lengths=lengths)[0], ref(x, lengths=lengths)[0], **TOL)
            for layer in (ref, tri):
                layer.weight_hh_l1_reverse.mul_(0.5)
                layer.bias_ih_l0.add_(0.1)
        tri.load_state_dict(make_layer("momentum_gru", I, H, num_layers=2, bidirectional=True).state_dict())
        ref.load_state_dict(tri.state_dict())
        torch.testing.assert_close(tri(x, lengths=lengths)[0], ref(x, lengths=lengths)[0], **TOL)


# ---- dtypes, limits, errors ----------------------------------------------------------------------------
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
    # Activations are saved in the input's dtype: gradients stay within half precision's tolerance of
    # the fp32 reference (relative to each gradient's scale).
    x32 = x.clone().requires_grad_()
    ref_out, _ = ref32(x32, lengths=lengths)
    ref_out.sum().backward()
    for got, want in [(xh.grad, x32.grad)] + [(p.grad, q.grad) for p, q in zip(tri.parameters(), ref32.parameters())]:
        scale = want.abs().max().clamp(min=1.0)
        torch.testing.assert_close(got.float() / scale, want / scale, atol=5e-2, rtol=0)


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


def test_weights_on_chip_limits():
    """Where W_hh stays on chip (one direction, padded): bf16 up to H = 128 for every cell, fp32 up
    to H = 64 (Elman: one size more)."""
    on = lambda H, dtype, mode: fr._config(H, dtype, GATES[mode])[2]  # noqa: E731
    for mode in ("lstm", "gru", "rnn_tanh"):
        assert on(128, torch.bfloat16, mode) and on(64, torch.float32, mode)
    assert not on(256, torch.bfloat16, "lstm") and not on(128, torch.float32, "lstm")
    assert on(256, torch.bfloat16, "rnn_tanh") and on(128, torch.float32, "rnn_tanh")


def test_triton_backend_unsupported_raises_clear_error():
    layer = make_layer("gru", I, H, backend="triton", dtype=torch.float64)
    with pytest.raises(ValueError, match="backend='triton'.*float64"):
        layer(torch.randn(T, B, I, dtype=torch.float64))
    big = make_layer("lstm", I, 300, backend="triton")
    with pytest.raises(ValueError, match="hidden_size=300"):
        big(torch.randn(T, B, I))
    with pytest.raises(ValueError, match="hidden_size"):
        fused_layer(
            "lstm",
            torch.randn(1, 2, I),
            None,
            None,
            None,
            None,
            torch.randn(1, 1200, I),
            torch.randn(1, 1200, 300),
            None,
            None,
            None,
        )


def test_auto_on_cpu_picks_torch():
    layer = make_layer("momentum_lstm", I, H, device="cpu")
    layer(torch.randn(T, B, I, device="cpu"))
    backend, why = layer.last_backend
    assert backend == "torch" and "CPU" in why


# ---- CUDA only ------------------------------------------------------------------------------------------
@pytest.mark.skipif(DEVICE != "cuda", reason="CUDA graphs need a CUDA device (NAMEMODELS_TEST_DEVICE=cuda)")
@pytest.mark.parametrize("cell", ["lstm", "momentum_gru"])
def test_cuda_graph_capture_and_replay(cell):
    """A 2-layer bidirectional layer with device lengths is captured in a CUDA graph and replayed
    with new inputs (no host synchronisation inside the forward, or capture would fail)."""
    layer = make_layer(cell, I, H, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.randn(B, T, I)
    lengths = torch.tensor([5, 2, 4], device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(2):
            layer(x, lengths=lengths)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        out, _ = layer(x, lengths=lengths)
    for seed in (1, 2):
        torch.manual_seed(seed)
        x.copy_(torch.randn(B, T, I))
        lengths.copy_(torch.tensor([T, 1, 3]))
        graph.replay()
        with torch.no_grad():
            ref, _ = layer(x, lengths=lengths)
        torch.testing.assert_close(out, ref, **TOL)
    assert layer.last_backend[0] == "triton"
