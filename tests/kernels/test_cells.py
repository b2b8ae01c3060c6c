"""The cell registry (namemodels.kernels.cells) against torch.nn and the ONNX operator spec, and the
import layering it allows (production code never imports the test references)."""

import subprocess
import sys

import pytest
from torch import nn

from namemodels.kernels import cells, make_layer
from namemodels.kernels.layers import GRU, LSTM, RNN, MomentumGRU, MomentumLSTM, MomentumRNN

TWINS = {"rnn_tanh": nn.RNN, "rnn_relu": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
# The ONNX operators' gate letters (onnx.ai Operators: LSTM "iofc", GRU "zrh") in torch.nn's letters.
ONNX_GATES = {"lstm": "iofg", "gru": "zrn", "rnn_tanh": "h", "rnn_relu": "h"}


@pytest.mark.parametrize("name", cells.CELLS)
def test_registry_matches_torch_nn(name):
    spec = cells.cell(name)
    layer = make_layer(name, 3, 5)
    assert type(layer).__name__ == spec.layer
    assert (layer.mode, layer.momentum) == (spec.mode, spec.momentum)
    twin = TWINS[spec.mode](3, 5, **({"nonlinearity": spec.mode[4:]} if spec.mode.startswith("rnn_") else {}))
    assert twin.weight_ih_l0.shape[0] == spec.gates * 5 == cells.GATES[spec.mode] * 5
    assert {n: p.shape for n, p in twin.named_parameters()} == {
        n: p.shape for n, p in layer.named_parameters() if not n.startswith("parametrizations")
    }
    assert cells.MODE_OF[name] == spec.mode
    assert cells.cell_name(spec.mode, spec.momentum) == name
    assert cells.cell(spec.plain).momentum is False and cells.cell(spec.plain).mode == spec.mode


@pytest.mark.parametrize("mode", list(cells.MODES))
def test_onnx_gate_order(mode):
    m = cells.MODES[mode]
    assert "".join(m.gate_names[k] for k in m.onnx_order) == ONNX_GATES[mode]


def test_unknown_cell_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown cell 'mgu'; choose one of rnn_tanh"):
        cells.cell("mgu")
    with pytest.raises(ValueError, match="unknown cell"):
        make_layer("mgu", 3, 4)
    assert cells.cell_name("rnn_relu", True) is None


def test_layer_classes_are_real_classes_with_docstrings():
    for cls in (RNN, GRU, LSTM, MomentumRNN, MomentumGRU, MomentumLSTM):
        assert cls.__module__ == "namemodels.kernels.layers"
        doc = cls.__doc__
        for section in ("math::", "Args:", "Inputs:", "Outputs:", "Attributes:", "weight_hh_l[k]"):
            assert section in doc, (cls.__name__, section)
        assert ("v_t = \\mu v_{t-1}" in doc) == cls.momentum
    assert "i_t" in LSTM.__doc__ and "n_t" in GRU.__doc__


@pytest.mark.parametrize(
    "imports, absent",
    [
        (  # production code never imports the test references
            "namemodels.kernels.layers, namemodels.kernels.fused_recurrent, namemodels.models",
            ("namemodels.kernels.naive", "namemodels.kernels.numpy_reference"),
        ),
        (  # torch-free code may read the registry and the NumPy reference
            "namemodels.kernels.cells, namemodels.kernels.numpy_reference, namemodels.bench.cells",
            ("torch",),
        ),
    ],
    ids=["production-without-references", "registry-and-numpy-reference-without-torch"],
)
def test_import_layering(imports, absent):
    """Importing ``imports`` in a fresh interpreter (what a module imports shows only there) loads
    none of the modules ``absent``."""
    code = (
        "import sys\n"
        f"import {imports}\n"
        f"bad = [m for m in {absent!r} if m in sys.modules]\n"
        "assert not bad, bad\n"
        "print('OK')"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr
