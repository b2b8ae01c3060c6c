"""A bundle's conformance data built in memory (``bundle.expected``, ``bundle.check_model``: what
``export --format pt2 --verify`` runs) is what a written bundle holds, and checking a program against
it writes nothing."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from helpers import make_model_dir  # noqa: E402

from namemodels.export import bundle as B  # noqa: E402
from namemodels.export import export, load_torch_model  # noqa: E402
from namemodels.export.weights import extract  # noqa: E402


@pytest.mark.parametrize("kw", [dict(kind="lm", conditioned=True), dict(kind="classifier")])
def test_in_memory_conformance_is_the_written_bundles(tmp_path, kw):
    model, config, directory = load_torch_model(make_model_dir(tmp_path / "m", **kw))
    written = B.Conformance.read(export(model, config, "bundle", tmp_path / "b", directory=directory))
    w = extract(model, config)
    table = B.name_table_spec(directory, config) if not w.generator else None
    assert B.expected(model, config, w, table) == written  # the JSON files' content, field by field


def test_check_model_runs_the_program_without_writing_a_bundle(tmp_path):
    model, config, directory = load_torch_model(make_model_dir(tmp_path / "lm", kind="lm", conditioned=True))
    program = export(model, config, "pt2", tmp_path / "lm.pt2")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    report = B.check_model(model, config, directory, program)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    # the same check on a written bundle gives the same report
    bundle = export(model, config, "bundle", tmp_path / "b", directory=directory)
    assert report == B.check(bundle, ("pt2",), pt2=program)
    assert report["pt2"]["status"] == "ok" and report["pt2"]["compared_rows"] > 1000, report
