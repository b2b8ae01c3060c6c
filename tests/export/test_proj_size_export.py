"""Export of an LSTM with projections (``proj_size > 0``): refused with an error that names
``proj_size``, never a graph that silently drops the projection."""
import pytest

torch = pytest.importorskip("torch")

from namemodels.export import ExportError, export, load_torch_model  # noqa: E402
from namemodels.export.torchscript import NativeRecurrent  # noqa: E402
from namemodels.kernels import LSTM, MomentumLSTM  # noqa: E402

from helpers import make_model_dir  # noqa: E402


@pytest.mark.parametrize("cls", [LSTM, MomentumLSTM])
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_refuses_proj_size(tmp_path, cls, fmt):
    cell = "momentum_lstm" if cls is MomentumLSTM else "lstm"
    model, cfg, _ = load_torch_model(make_model_dir(tmp_path / "m", cell=cell))
    rnn = model.encoder.rnn
    model.encoder.rnn = cls(rnn.input_size, rnn.hidden_size, batch_first=rnn.batch_first, proj_size=4)
    with pytest.raises(ExportError, match=r"proj_size=4"):
        export(model, cfg, fmt, tmp_path / f"m.{fmt}")
    assert not (tmp_path / f"m.{fmt}").exists()


def test_scriptable_twin_refuses_proj_size():
    with pytest.raises(ValueError, match=r"proj_size=2"):
        NativeRecurrent(LSTM(3, 5, proj_size=2))
