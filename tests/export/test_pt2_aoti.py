"""export --format aoti: an AOTInductor package of a classifier (fixed maximum length, dynamic batch),
compiled with the machine's C++ compiler, loaded with torch._inductor.aoti_load_package and compared
with the eager model (5e-5 in log-probability, the same top label), through the command line and
verify's ``aoti`` runtime. Slow (one small model, compiled once: about a minute on a busy 2-core CPU)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from helpers import make_model_dir  # noqa: E402
from padded import padded_batches  # noqa: E402

from namemodels.export import load_torch_model, pt2  # noqa: E402

MAX_LENGTH = 6


def _compiler():
    """The C++ compiler Inductor would use, or None."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        return shutil.which(get_cpp_compiler())
    except Exception:  # no compiler found (Inductor raises), or an Inductor without the helper
        return shutil.which("g++") or shutil.which("clang++")


def test_classifier_package_matches_eager_and_refuses_longer_names(tmp_path, capsys, single_thread):
    if _compiler() is None:
        pytest.skip("AOTInductor needs a C++ compiler (g++ or clang++), and none is installed")
    from namemodels.cli import main

    d = make_model_dir(tmp_path / "m", kind="classifier", cell="gru", pool="max", ngram_buckets=64, ngram_max=3)
    out = tmp_path / "model.pt2"
    rc = main(
        [
            "export",
            str(d),
            "--format",
            "aoti",
            "--max-length",
            str(MAX_LENGTH),
            "--out",
            str(out),
            "--verify",
            "--no-timing",
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == 0, report
    (row,) = report["rows"]
    assert row["runtime"] == "aoti" and row["status"] == "ok", row
    assert row["max_abs_err"] <= 5e-5 and row["top1_mismatches"] == 0 and row["compared_rows"] > 0, row

    model, config, _ = load_torch_model(d)
    classify, files = pt2.load_aoti(out)
    assert files["namemodels.json"]["aoti_max_length"] == MAX_LENGTH
    assert files["labels.json"] == config["labels"]
    shapes = ((1, 1), (9, MAX_LENGTH), (3, 4))  # batch and length other than the traced (3, 5)
    for B, T, ids, lengths in padded_batches(shapes, len(files["vocab.json"]), seed=1):
        with torch.inference_mode():
            got, want = classify(ids, lengths), model.log_probs(ids, lengths)
        assert float((got - want).abs().max()) <= 5e-5, (B, T)
        assert torch.equal(got.argmax(1), want.argmax(1))
    with pytest.raises(ValueError, match=f"at most {MAX_LENGTH} characters"):
        classify(torch.full((2, MAX_LENGTH + 1), 5), torch.tensor([MAX_LENGTH + 1, 2]))
    # what a C++ caller gets: the package itself refuses a longer batch under AOTInductor's input checks
    code = (
        "import torch\n"
        f"m = torch._inductor.aoti_load_package({str(out)!r})\n"
        f"m(torch.full((2, {MAX_LENGTH}), 5), torch.tensor([{MAX_LENGTH}, 2]))\n"
        f"m(torch.full((2, {MAX_LENGTH + 1}), 5), torch.tensor([{MAX_LENGTH + 1}, 2]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "AOTI_RUNTIME_CHECK_INPUTS": "1"},
    )
    assert r.returncode != 0 and f"expected to be <= {MAX_LENGTH}" in r.stderr, r.stderr[-2000:]


def test_max_length_is_only_for_aoti(tmp_path, capsys):
    from namemodels.cli import main

    d = make_model_dir(tmp_path / "m", kind="classifier", cell="gru")
    assert main(["export", str(d), "--format", "pt2", "--max-length", "8", "--out", str(tmp_path / "m.pt2")]) == 2
    assert "--max-length is for --format aoti" in capsys.readouterr().err
    assert not (tmp_path / "m.pt2").exists()
