"""torch.export (export --format pt2): tiny models exported with dynamic batch and
length, loaded with torch.export.load alone and compared with the eager model at shapes other than
the one traced; verify's pt2 runtime; TorchScript's deprecation warnings kept from our commands."""

import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from helpers import make_model_dir  # noqa: E402
from padded import padded_batches  # noqa: E402

from namemodels.export import (  # noqa: E402
    export,
    extract,
    load_torch_model,
    pt2,  # noqa: E402
)
from namemodels.export import verify as V  # noqa: E402

SHAPES = ((1, 1), (2, 1), (4, 9), (7, 23))  # (batch, time); the program was traced at (3, 5)


@pytest.mark.parametrize(
    "spec",
    [
        dict(cell="lstm", bidirectional=True, pool="max", ngram_buckets=64, ngram_max=4),  # the shipped surnames' kind
        dict(cell="gru", bidirectional=True, binary=True),  # the shipped gender's kind
        dict(cell="momentum_rnn", layers=2),
    ],
    ids=["lstm-bi-max-ngrams", "gru-bi-binary", "momentum_rnn-2layers"],
)
def test_classifier_program_matches_eager_at_any_batch_and_length(tmp_path, spec, single_thread):
    d = make_model_dir(tmp_path / "m", kind="classifier", **spec)
    model, config, _ = load_torch_model(d)
    out = export(model, config, "pt2", tmp_path / "m.pt2")
    module, files = pt2.load(out)
    assert files["labels.json"] == config["labels"] and files["namemodels.json"]["namemodels.graph"] == "classifier"
    for B, T, ids, lengths in padded_batches(SHAPES, len(files["vocab.json"]), seed=0):
        with torch.inference_mode():
            got, want = module(ids, lengths), model.log_probs(ids, lengths)
        assert got.shape == want.shape
        assert float((got - want).abs().max()) <= 1e-5, (B, T)


def test_generator_step_and_verify_runtime(tmp_path, single_thread):
    d = make_model_dir(tmp_path / "lm", kind="lm", conditioned=True)
    model, config, _ = load_torch_model(d)
    out = export(model, config, "pt2", tmp_path / "lm.pt2")
    report = V.verify(model, config, pt2_path=out, runtimes=("pt2",), timing=False, cases="quick")
    row = report["rows"][0]
    assert row["status"] == "ok" and row["format"] == "pt2" and row["max_abs_err"] <= 1e-5, row
    # the program's batch is dynamic: a batch of 5 (traced with 3)
    module, _ = pt2.load(out)
    w = extract(model, config)
    state = [torch.zeros(layers, 5, width) for layers, width in V.step_state_layout(w).values()]
    token, cat = torch.tensor([1, 5, 6, 7, 8]), torch.tensor([0, 1, 2, 0, 1])
    with torch.inference_mode():
        got, _ = module(token, state, cat)
        want, _ = model.step(token, None, cat)
    assert float((got - want).abs().max()) <= 1e-5


def test_commands_show_no_torchscript_deprecation_warnings(tmp_path, capsys):
    from namemodels.cli import main

    d = make_model_dir(tmp_path / "m", kind="classifier", cell="gru")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert (
            main(
                [
                    "export",
                    str(d),
                    "--format",
                    "torchscript",
                    "--out",
                    str(tmp_path / "m.pt"),
                    "--verify",
                    "--no-timing",
                ]
            )
            == 0
        )
        assert (
            main(["export", str(d), "--format", "pt2", "--out", str(tmp_path / "m.pt2"), "--verify", "--no-timing"])
            == 0
        )
    out = capsys.readouterr().out
    assert out.count(" ok ") == 2, out
    assert "conformance.json in pt2: ok, max |err|" in out  # the program on a bundle's conformance names
    shown = [str(w.message) for w in caught if "deprecat" in str(w.message).lower()]
    assert not shown, shown[:3]
    with warnings.catch_warnings(record=True) as caught:  # torch itself does warn (so the above means something)
        warnings.simplefilter("always")
        torch.jit.script(torch.nn.Linear(1, 1))
    assert any("deprecated" in str(w.message) for w in caught)


def test_aoti_refuses_a_classifier_program_with_a_reason(tmp_path):
    """torch 2.13's Inductor cannot lower the classifier's dynamic-length scan: a clear ExportError
    instead of Inductor's KeyError (generator steps compile; measured, not run here: ~100 s)."""
    from namemodels.export import ExportError

    d = make_model_dir(tmp_path / "m", kind="classifier", cell="gru")
    model, config, _ = load_torch_model(d)
    out = export(model, config, "pt2", tmp_path / "m.pt2")
    with pytest.raises(ExportError, match="dynamic length"):
        pt2.aoti_package(out, tmp_path / "m-aoti.pt2")
    assert not (tmp_path / "m-aoti.pt2").exists()


@pytest.mark.parametrize(
    "spec",
    [
        dict(kind="classifier", cell="lstm", layers=2, bidirectional=True, pool="max"),
        dict(kind="classifier", cell="momentum_lstm", layers=2),
        dict(kind="lm", cell="lstm", layers=2, conditioned=True),
    ],
    ids=["lstm-bi-2layers-max", "momentum_lstm-2layers", "lm-lstm-2layers"],
)
def test_lstm_with_projections(tmp_path, spec, single_thread):
    """proj_size: the classifier's scan and the generator's native step carry W_hr; the program equals
    the eager model at batches and lengths other than the traced one."""
    d = make_model_dir(tmp_path / "m", proj_size=5, **spec)
    model, config, _ = load_torch_model(d)
    out = export(model, config, "pt2", tmp_path / "m.pt2")
    report = V.verify(model, config, pt2_path=out, runtimes=("pt2",), timing=False, cases="quick")
    row = report["rows"][0]
    assert row["status"] == "ok" and row["max_abs_err"] <= 1e-5, row
    if spec["kind"] == "classifier":
        module, _ = pt2.load(out)
        for B, T, ids, lengths in padded_batches(SHAPES, 20, seed=0):
            with torch.inference_mode():
                got, want = module(ids, lengths), model.log_probs(ids, lengths)
            assert float((got - want).abs().max()) <= 1e-5, (B, T)
