"""The self-describing bundle (export --format bundle).

The encoder below is written from FORMAT.md and tokenizer.json alone -- it does not call namemodels'
text or tokenizer code -- as a port to another language would be; it must give conformance.json's
normalized names and ids exactly and refuse what it lists as refused. model.onnx from the bundle
runs in ONNX Runtime on the conformance ids within 5e-5 of the recorded eager log-probabilities, and
the name table's rule, re-applied here from name_table.json, gives the recorded final answers, which
the predictor gives too."""
import hashlib
import json
import unicodedata

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from anyascii import anyascii  # noqa: E402

from namemodels.errors import UsageError  # noqa: E402
from namemodels.export import export, load_torch_model  # noqa: E402
from namemodels.export import bundle as B  # noqa: E402

from helpers import make_model_dir  # noqa: E402


@pytest.fixture(scope="module")
def surnames_bundle(tmp_path_factory):
    model, config, directory = load_torch_model("surnames")
    out = tmp_path_factory.mktemp("b") / "surnames"
    export(model, config, "bundle", out, directory=directory)
    return out


def _load(d, name):
    return json.loads((d / name).read_text("utf-8"))


# ---- an encoder from tokenizer.json and FORMAT.md alone ---------------------------------------------
class Refused(Exception):
    pass


def port_encode(raw, spec):
    strip = {chr(int(u[2:], 16)) for u in spec["strip"]}
    allowed, table = set(spec["allowed"]), spec["fold_table"]
    s = raw
    while s and s[0] in strip:
        s = s[1:]
    while s and s[-1] in strip:
        s = s[:-1]
    if not s or len(s) > spec["max_raw_length"]:
        raise Refused(raw)

    def fold(ch):
        t = "".join(table.get(c, c) for c in ch)
        t = "".join(c for c in unicodedata.normalize("NFKD", t) if unicodedata.category(c) != "Mn")
        return "".join(table.get(c, c) for c in t)

    out, after, transliterated = [], False, False
    for ch in s:
        cat = unicodedata.category(ch)
        if ch in allowed:
            out.append(ch)
            after = False
        elif cat == "Zs":
            out.append(" ")
            after = False
        elif cat[0] == "M" and after:
            t = anyascii(ch)
            if not set(t) <= allowed:
                raise Refused(raw)
            out.append(t)
        elif cat == "Mn":
            continue
        elif cat[0] in "LP" and fold(ch) and set(fold(ch)) <= allowed:
            out.append(fold(ch))
            after = False
        elif cat[0] == "L" and anyascii(ch) and set(anyascii(ch)) <= allowed:
            out.append(anyascii(ch))
            after = transliterated = True
        else:
            raise Refused(raw)
    text = " ".join(w for w in "".join(out).split(" ") if w)
    if not any(c.isascii() and c.isalpha() for c in text) or len(text) > spec["max_length"]:
        raise Refused(raw)
    if spec["lowercase"]:
        text = text.lower()
    vocab = {c: i for i, c in enumerate(spec["vocab"])}
    return text, [vocab.get(c, spec["unk_id"]) for c in text], transliterated


def test_an_independent_encoder_gives_the_conformance_ids(surnames_bundle):
    spec, conf = _load(surnames_bundle, "tokenizer.json"), _load(surnames_bundle, "conformance.json")
    assert len(conf["cases"]) >= 250 and sum(c["transliterated"] for c in conf["cases"]) >= 15
    assert sum(not c["input"].isascii() for c in conf["cases"]) >= 50
    for case in conf["cases"]:
        assert port_encode(case["input"], spec) == (case["normalized"], case["ids"], case["transliterated"]), case
    for case in conf["refused"]:
        with pytest.raises(Refused):
            port_encode(case["input"], spec)
    byname = {c["input"]: c for c in conf["cases"]}
    assert byname["Иванов"]["normalized"] == "ivanov" and byname["王"]["normalized"] == "wang"


def test_model_onnx_of_the_bundle_gives_the_conformance_log_probabilities(surnames_bundle):
    conf = _load(surnames_bundle, "conformance.json")
    sess = ort.InferenceSession(str(surnames_bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    cases = conf["cases"]
    width = max(len(c["ids"]) for c in cases)
    ids = np.array([c["ids"] + [0] * (width - len(c["ids"])) for c in cases], np.int64)
    got = sess.run(None, {"ids": ids, "lengths": np.array([len(c["ids"]) for c in cases], np.int64)})[0]
    want = np.array([c["logprobs"] for c in cases])
    err = float(np.abs(got - want).max())
    print(f"\nconformance, ONNX Runtime vs eager: max |err| {err:.1e} over {len(cases)} names")
    assert err <= conf["tolerance"] == 5e-5
    assert (got.argmax(1) == want.argmax(1)).all()


def test_the_name_table_rule_from_name_table_json_gives_the_final_answers(surnames_bundle, shipped_surnames):
    conf, table = _load(surnames_bundle, "conformance.json"), _load(surnames_bundle, "name_table.json")
    index = {k: i for i, k in enumerate(table["names"])}
    alpha, known = table["alpha"], 0
    for case in conf["cases"]:
        p = np.exp(np.array(case["logprobs"], np.float64))
        n = np.zeros(len(table["labels"]))
        for j, count in table["counts"][index[case["normalized"]]] if case["normalized"] in index else []:
            n[j] = count
        want = np.log((n + alpha * p) / (n.sum() + alpha)) if n.sum() else np.log(p)
        known += bool(n.sum())
        np.testing.assert_allclose(case["final"]["logprobs"], want, atol=1e-9)
        assert case["final"]["source"] == ("data" if n.sum() else "model")
    assert known >= 100
    # the predictor (ONNX Runtime, the table's stored log-probabilities) agrees with the bundle
    got = shipped_surnames.predict_logproba([c["input"] for c in conf["cases"]])
    final = np.array([c["final"]["logprobs"] for c in conf["cases"]])
    assert float(np.abs(got - final).max()) <= 5e-5


def test_metadata_manifest_and_tables_come_from_the_code(surnames_bundle, shipped_surnames):
    import onnx

    from namemodels.text import ANYASCII_VERSION, LETTER_FOLD, TEXT_RULE
    spec = _load(surnames_bundle, "tokenizer.json")
    assert spec["fold_table"] == LETTER_FOLD and spec["text_rule"] == TEXT_RULE
    assert spec["anyascii_version"] == ANYASCII_VERSION
    meta = {p.key: p.value for p in onnx.load(str(surnames_bundle / "model.onnx")).metadata_props}
    assert json.loads(meta["namemodels.tokenizer_json"]) == spec
    assert json.loads(meta["namemodels.labels"]) == _load(surnames_bundle, "name_table.json")["labels"]
    assert meta["namemodels.text_rule"] == str(TEXT_RULE) and "cell: lstm" in meta["namemodels.model_card"]
    alpha = shipped_surnames.config["name_table"]["alpha"]   # whatever the shipped table's cross-validation chose
    assert json.loads(meta["namemodels.name_table_rule"])["alpha"] == alpha == _load(surnames_bundle,
                                                                                      "name_table.json")["alpha"]
    manifest = _load(surnames_bundle, "bundle.json")
    assert set(manifest["files"]) == {"model.onnx", "tokenizer.json", "name_table.json", "conformance.json",
                                      "FORMAT.md"}
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((surnames_bundle / name).read_bytes()).hexdigest() == digest
    text = (surnames_bundle / "FORMAT.md").read_text("utf-8")
    assert f"alpha = {alpha}" in text and "anyascii@0.3.3" in text


def test_a_generator_bundle_checks_step_by_step(tmp_path):
    d = make_model_dir(tmp_path / "lm", kind="lm", conditioned=True)
    model, config, directory = load_torch_model(d)
    out = export(model, config, "bundle", tmp_path / "lm-bundle", directory=directory)
    manifest = _load(out, "bundle.json")
    assert manifest["graph"] == "step" and set(manifest["state"]) == {"h", "c"} and "category" in manifest["inputs"]
    assert not (out / "name_table.json").exists()
    report = B.check(out)
    assert report["onnxruntime"]["status"] == "ok", report
    program = export(model, config, "pt2", tmp_path / "lm.pt2")   # the torch.export program, same names
    report = B.check(out, ("pt2",), pt2=program)
    assert report["pt2"]["status"] == "ok" and report["pt2"]["compared_rows"] > 1000, report


def test_a_failed_export_leaves_nothing_and_a_foreign_folder_is_refused(tmp_path, monkeypatch):
    d = make_model_dir(tmp_path / "m", kind="classifier")
    model, config, directory = load_torch_model(d)
    out = tmp_path / "out"

    def broken(*a, **k):
        raise RuntimeError("disk full")
    monkeypatch.setattr(B, "conformance", broken)
    with pytest.raises(RuntimeError):
        export(model, config, "bundle", out, directory=directory)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]       # no DIR, no temporary folder
    monkeypatch.undo()
    first = export(model, config, "bundle", out, directory=directory)
    export(model, config, "bundle", out, directory=directory)         # an earlier bundle is replaced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "out"] and (first / "bundle.json").is_file()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty and holds no namemodels bundle"):
        export(model, config, "bundle", tmp_path / "other", directory=directory)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_cli_bundle_with_verify(tmp_path, capsys):
    from namemodels.cli import main
    d = make_model_dir(tmp_path / "m", kind="classifier", binary=True)
    assert main(["export", str(d), "--format", "bundle", "--out", str(tmp_path / "b"), "--verify", "--no-timing"]) == 0
    out, err = capsys.readouterr()
    assert "conformance.json in onnxruntime: ok" in out and "wrote" in err
    assert main(["export", str(d), "--format", "bundle", "--out", str(tmp_path / "b" / "model.onnx")]) == 2
    assert "is a file" in capsys.readouterr().err
