"""The device options: ``namemodels train --device`` and ``namemodels.load(..., device=)`` give a clear
error without CUDA; a training step on the fused kernels with the batch's own lengths (what
``--device cuda`` runs) is checked in Triton's interpreter."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_args import tiny_train_argv
from helpers import make_surnames

import namemodels
from namemodels.config import TrainConfig
from namemodels.errors import UsageError
from namemodels.models import build_model
from namemodels.tasks import make_task, model_spec
from namemodels.training.train import prepare

pytest.importorskip("triton")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_device_cuda_without_cuda_is_a_clear_error(tmp_path):
    data = make_surnames(tmp_path)
    out = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "namemodels.cli", *tiny_train_argv(data, out, "--device", "cuda")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2, r.stderr
    assert "no CUDA device" in r.stderr and "--device cpu" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists(), "nothing is made before the device is known to work"


@pytest.mark.parametrize("task,cell", [("classify", "lstm"), ("generate", "momentum_gru")])
def test_training_step_on_the_fused_kernels(tmp_path, task, cell):
    """The loss and every gradient of one training batch (mixed lengths, passed as lengths, not
    packed) are the same on the fused kernels as on the torch fallback."""
    data = make_surnames(tmp_path)
    cfg = TrainConfig(task=task, cell=cell, embed=8, hidden=8, layers=2, bidirectional=task == "classify", batch_size=8)
    _, train_ds, _, _, labels, tok = prepare(cfg, data)
    torch.manual_seed(0)
    ref = build_model(model_spec(cfg, len(tok), labels))
    fused = build_model(model_spec(cfg, len(tok), labels))
    fused.load_state_dict(ref.state_dict())
    fused.encoder.rnn.backend = "triton"
    task = make_task(cfg, labels, train_ds)
    batch = task.batch(tok, train_ds, np.arange(8)).to("cpu")
    assert len(set(batch.lengths.tolist())) > 1
    results = []
    for model in (ref, fused):
        loss = task.loss(model, batch)
        results.append((loss, torch.autograd.grad(loss, list(model.parameters()))))
    assert fused.encoder.rnn.last_backend[0] == "triton" and ref.encoder.rnn.last_backend[0] == "torch"
    torch.testing.assert_close(results[1][0], results[0][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_load_on_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(UsageError, match="no CUDA device"):
        namemodels.load("surnames", device="cuda")
    with pytest.raises(UsageError, match="ONNX backend runs on the CPU"):
        namemodels.load("surnames", backend="onnx", device="cuda")
    with pytest.raises(UsageError, match="use 'cpu' or 'cuda'"):
        namemodels.load("surnames", device="tpu")


def test_load_on_the_cpu_with_the_torch_backend_matches_onnx():
    names = ["Hinton", "Schmidhuber", "Nguyen"]
    onnx = namemodels.load("surnames").predict_logproba(names)
    torch_cpu = namemodels.load("surnames", backend="torch", device="cpu").predict_logproba(names)
    np.testing.assert_allclose(torch_cpu, onnx, atol=1e-4)
