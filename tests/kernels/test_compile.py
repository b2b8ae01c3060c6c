"""torch.compile of the layers and the registered custom ops (namemodels.kernels.ops).

``fullgraph=True`` makes any graph break an error, so each test checks that a whole 2-layer
bidirectional layer called with ``lengths`` traces as one graph: on the torch fallback (the packed
computation replaced by masking, lengths never read on the host) and on the fused kernels (one
registered op per layer, forward and backward). Marked ``compile``: ``pytest -m "not compile"`` skips
them. Backends: ``eager`` (Dynamo's capture, run as captured), ``aot_eager`` (also traces the
backward through AOTAutograd) and inductor, the default backend: every cell on the CPU fallback
(the LSTM runs step by step under compile) and the fused layer once. The Inductor
tests take most of this module's time (each compile builds a C++ kernel per fused group of every
unrolled step: 30-90 s per test on a busy 2-core machine).
"""

import pytest
import torch

pytest.importorskip("triton")

from namemodels.kernels import make_layer  # noqa: E402
from namemodels.kernels.cells import CELLS, REGISTRY  # noqa: E402
from namemodels.kernels.fused_recurrent import fused_forward  # noqa: E402
from namemodels.kernels.ops import fused_rnn_bwd, fused_rnn_fwd  # noqa: E402

pytestmark = [pytest.mark.compile, pytest.mark.usefixtures("single_thread")]
B, T, I, H = 3, 4, 4, 8  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _compare(cell, backend, compiler, learn=False, grad=True, **kw):
    """The compiled layer against the same layer run eagerly: outputs, states, input and parameter
    gradients."""
    torch.manual_seed(0)
    if learn:
        kw["learn_momentum"] = True
    layer = make_layer(cell, I, H, num_layers=2, bidirectional=True, batch_first=True, backend=backend, **kw)
    compiled = torch.compile(layer, fullgraph=True, backend=compiler)
    x = torch.randn(B, T, I)
    lengths = torch.tensor([T, 2, 3])
    results = []
    for fn in (layer, compiled):
        xi = x.clone().requires_grad_(grad)
        with torch.set_grad_enabled(grad):
            out, states = fn(xi, lengths=lengths)
        states = states if isinstance(states, tuple) else (states,)
        grads = ()
        if grad:
            loss = (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum() + sum(s.sum() for s in states)
            grads = torch.autograd.grad(loss, [xi] + list(layer.parameters()))
        results.append((out, states, grads))
    (o1, s1, g1), (o2, s2, g2) = results
    torch.testing.assert_close(o2, o1, **TOL)
    for a, b in zip(s1, s2):
        torch.testing.assert_close(b, a, **TOL)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(b, a, **TOL)
    assert bool((o2[1, 2:] == 0).all())
    return layer


@pytest.mark.parametrize("cell", CELLS)
def test_torch_fallback_compiles_without_graph_breaks(cell):
    """Every cell on the CPU fallback, forward and backward through the captured graph."""
    layer = _compare(cell, "torch", "eager", learn=REGISTRY[cell].momentum)
    assert layer.last_backend[0] == "torch"


@pytest.mark.parametrize("cell", ["lstm", "momentum_lstm"])
def test_proj_size_compiles_without_graph_breaks(cell):
    """An LSTM with projections under torch.compile (the stepped LSTM with weight_hr), through
    AOTAutograd, forward and backward, against eager (the native kernel's projection)."""
    layer = _compare(cell, "auto", "aot_eager", proj_size=3)
    assert layer.last_backend[0] == "torch" and "proj_size=3" in layer.last_backend[1]


@pytest.mark.parametrize("cell,learn", [("lstm", False), ("momentum_gru", True)])
def test_fused_ops_compile_forward_and_backward(cell, learn):
    """The fused path under torch.compile: the registered forward and backward ops, traced by
    AOTAutograd (learnable momentum: d mu and d s through the backward op)."""
    layer = _compare(cell, "triton", "aot_eager", learn=learn)
    assert layer.last_backend[0] == "triton"


@pytest.fixture
def one_compile_thread():
    """No pool of compile workers on a small machine. (Inductor's config module restores its options
    through ``patch``; pytest's monkeypatch would delete the option on undo.)"""
    import torch._inductor.config as inductor

    with inductor.patch(compile_threads=1):
        yield


@pytest.mark.usefixtures("one_compile_thread")
def test_inductor_compiles_the_fused_layer():
    _compare("momentum_lstm", "triton", "inductor", grad=False)


def _flat(result):
    out, states = result
    return [out] + (list(states) if isinstance(states, tuple) else [states])


@pytest.mark.usefixtures("one_compile_thread")
@pytest.mark.parametrize("cell", CELLS)
def test_inductor_compiles_every_cell_on_cpu(cell):
    """The default backend (Inductor) on the CPU layers, which used to fail for the
    LSTMs (Inductor's ``aten.mkldnn_rnn_layer``). One compiled function calls the layer without and
    with lengths (one compile for both; forward and backward) and must match the eager layer:
    outputs, states, input and parameter gradients. One bidirectional layer of two steps: each
    Inductor compile builds a C++ kernel per fused group of every unrolled step (tens of seconds per
    cell on a busy 2-core machine), and the stacking of layers is the same Python code Dynamo traced
    in the tests above."""
    torch.manual_seed(0)
    learn = REGISTRY[cell].momentum
    layer = make_layer(cell, I, H, bidirectional=True, batch_first=True, **({"learn_momentum": True} if learn else {}))

    def both(x, lengths):
        return _flat(layer(x)) + _flat(layer(x, lengths=lengths))

    compiled = torch.compile(both, fullgraph=True)
    x = torch.randn(2, 2, I)
    lengths = torch.tensor([2, 1])
    results = []
    for fn in (both, compiled):
        xi = x.clone().requires_grad_()
        outs = fn(xi, lengths)
        loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs)
        results.append((outs, torch.autograd.grad(loss, [xi] + list(layer.parameters()))))
    (o1, g1), (o2, g2) = results
    assert layer.last_backend[0] == "torch"
    for a, b in zip(o1 + list(g1), o2 + list(g2)):
        torch.testing.assert_close(b, a, **TOL)
    assert bool((o2[len(o2) // 2][1, 1:] == 0).all())  # padded steps of the call with lengths


# ---- the registered ops themselves -----------------------------------------------------------------
def _op_args(cell, D=2, learn=True):
    torch.manual_seed(1)
    spec = REGISTRY[cell]
    G = spec.gates * H
    r = lambda *s: (torch.randn(*s) * 0.5).requires_grad_()  # noqa: E731
    return dict(
        mode=spec.mode,
        x=r(B, T, I),
        lengths=torch.tensor([T, 1, 3]),
        h0=r(D, B, H),
        c0=r(D, B, H) if spec.mode == "lstm" else None,
        v0=r(D, B, G) if spec.momentum else None,
        w_ih=r(D, G, I),
        w_hh=r(D, G, H),
        b_ih=r(D, G),
        b_hh=r(D, G),
        mus=torch.tensor([0.6, 0.7], requires_grad=learn) if spec.momentum else None,
    )


@pytest.mark.parametrize("cell", ["lstm", "momentum_gru"])
def test_opcheck_forward(cell):
    a = _op_args(cell)
    torch.library.opcheck(fused_rnn_fwd, (*a.values(), True, a["mus"] is not None))


@pytest.mark.parametrize("cell", ["lstm", "momentum_rnn"])
def test_opcheck_backward(cell):
    a = _op_args(cell)
    d = {k: (v.detach() if torch.is_tensor(v) else v) for k, v in a.items()}
    momentum = d["mus"] is not None
    out, h_n, c_n, v_n, gi, gs, cs, vs = fused_forward(*d.values(), save=True, keep_gi=momentum)
    torch.manual_seed(2)
    ups = [torch.randn_like(t) if t is not None else None for t in (out, h_n, c_n, v_n)]
    torch.library.opcheck(
        fused_rnn_bwd,
        (
            d["mode"],
            d["x"],
            d["lengths"],
            d["h0"],
            d["c0"],
            d["v0"],
            d["w_ih"],
            d["w_hh"],
            d["mus"],
            out,
            gi,
            gs,
            cs,
            vs,
            *ups,
            [True] * 8 + [momentum],
        ),
    )
