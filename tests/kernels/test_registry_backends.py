"""Every entry of the cell registry (``kernels/cells.py``) reaches every backend, and they agree.

For each cell in :data:`namemodels.kernels.cells.REGISTRY`, one two-layer bidirectional layer (mixed
lengths, so padding, per-sequence reversal and final states at each length all matter) runs

* through the fused Triton kernels (``backend="triton"``, in Triton's interpreter on the CPU),
* through the torch fallback (``backend="torch"``: the native stack, or ``layered`` for momentum),
* as a TorchScript module (``torch.jit.script`` of ``ScriptableRecurrent``, the fallback's static form),
* as a torch.export program (``export/pt2.py``'s ``ScanRecurrent``, the scan form), traced at one
  shape and run at another,

and each is compared with an independent reference: the per-step equations of
:func:`namemodels.kernels.naive.naive_layer`, stacked here by hand (layer by layer, the reverse
direction with ``reverse=True``), in float64 on the same weights. A cell added to the table without
a path in one of the backends fails here.
"""

import pytest
import torch

pytest.importorskip("triton")

from namemodels.kernels import make_layer  # noqa: E402
from namemodels.kernels.cells import REGISTRY  # noqa: E402
from namemodels.kernels.naive import naive_layer  # noqa: E402
from namemodels.kernels.torch_fallback import ScriptableRecurrent  # noqa: E402

I, H, NL = 4, 8, 2  # noqa: E741 (I: the input width, as in the shapes (B, T, I))
LENGTHS = torch.tensor([5, 2, 4])
TOL = dict(atol=2e-5, rtol=1e-4)


def _naive_stack(layer, x: torch.Tensor, lengths: torch.Tensor):
    """The stack written out with the per-step reference, in float64: ``(out, [h_n, c_n?, v_n?])``."""
    mu, s = (float(layer.mu), float(layer.s)) if layer.momentum else (None, None)
    B = x.shape[0]
    inp = x.double()
    hs, cs, vs = [], [], []
    for lay in range(layer.num_layers):
        outs = []
        for d in range(layer.num_directions):
            w_ih, w_hh, b_ih, b_hh = (t.detach().double() for t in layer._layer_weights(lay, d))
            h0 = torch.zeros(B, layer.hidden_size, dtype=torch.float64)
            c0 = torch.zeros_like(h0) if layer.mode == "lstm" else None
            out, (h, c, v) = naive_layer(
                layer.mode, inp, lengths, h0, c0, None, w_ih, w_hh, b_ih, b_hh, mu=mu, s=s, reverse=bool(d)
            )
            outs.append(out)
            hs.append(h), cs.append(c), vs.append(v)
        inp = torch.cat(outs, 2)
    states = [torch.stack(hs)]
    if layer.mode == "lstm":
        states.append(torch.stack(cs))
    if layer.momentum:
        states.append(torch.stack(vs))
    return inp, states


def _as_list(states):
    return [states] if torch.is_tensor(states) else list(states)


def _check(name, got, want):
    out, states = got
    torch.testing.assert_close(out.double(), want[0], **TOL, msg=lambda m: f"{name} output: {m}")
    assert len(states) == len(want[1]), name
    for k, (g, w) in enumerate(zip(states, want[1])):
        torch.testing.assert_close(g.double(), w, **TOL, msg=lambda m, k=k: f"{name} state {k}: {m}")


@pytest.mark.parametrize("cell", list(REGISTRY))
def test_every_registered_cell_agrees_on_every_backend(cell, single_thread):
    from namemodels.export.pt2 import ScanRecurrent

    torch.manual_seed(0)
    layer = make_layer(cell, I, H, num_layers=NL, bidirectional=True, batch_first=True).eval()
    x = torch.randn(len(LENGTHS), int(LENGTHS.max()), I)
    want = _naive_stack(layer, x, LENGTHS)

    with torch.no_grad():
        layer.backend = "triton"
        _check("fused", _as_list_pair(layer(x, lengths=LENGTHS)), want)
        assert layer.last_backend[0] == "triton", layer.last_backend
        layer.backend = "torch"
        _check("fallback", _as_list_pair(layer(x, lengths=LENGTHS)), want)

    scripted = torch.jit.script(ScriptableRecurrent(layer))
    _check("torchscript", scripted(x, None, LENGTHS), want)

    # torch.export traced at (3, 5), run at another batch and length: the scan keeps both dynamic
    batch, time = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("time", min=1, max=64)
    ep = torch.export.export(
        _Program(ScanRecurrent(layer)).eval(),
        (x, LENGTHS),
        dynamic_shapes={"x": {0: batch, 1: time}, "lengths": {0: batch}},
    )
    x2, lengths2 = torch.randn(4, 7, I), torch.tensor([7, 1, 3, 6])
    with torch.no_grad():
        _check("pt2", ep.module()(x2, lengths2), _naive_stack(layer, x2, lengths2))


def _as_list_pair(result):
    out, states = result
    return out, _as_list(states)


class _Program(torch.nn.Module):
    """The layer's call as the exported models make it: zero state, padded batch with lengths."""

    def __init__(self, rnn: torch.nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        return self.rnn(x, None, lengths)
