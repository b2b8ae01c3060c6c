"""The self-describing bundle (export --format bundle).

The encoder below is written from FORMAT.md and tokenizer.json alone -- it does not call namemodels'
text or tokenizer code -- as a port to another language would be; it must give conformance.json's
normalized names and ids exactly and refuse what it lists as refused. model.onnx from the bundle
runs in ONNX Runtime on the conformance ids within 5e-5 of the recorded eager log-probabilities, and
the answer, re-applied here from FORMAT.md and the JSON files alone (temperature, name table, recent
counts, marked letters, scripts), gives the recorded final answers, which the predictor gives too."""

import hashlib
import json
import unicodedata

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from anyascii import anyascii  # noqa: E402
from helpers import make_model_dir  # noqa: E402

from namemodels.errors import UsageError  # noqa: E402
from namemodels.export import bundle as B  # noqa: E402
from namemodels.export import export, load_torch_model  # noqa: E402


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


def port_answer(case, table, answer):
    """FORMAT.md section 2, written from it and the JSON files alone (no namemodels code): the final
    log-probabilities of one conformance case, -inf for a label ruled out."""
    labels = answer["labels"]
    z = np.array(case["logprobs"], np.float64) / answer["temperature"]
    lp = z if answer["temperature"] == 1 else z - (z.max() + np.log(np.exp(z - z.max()).sum()))  # T = 1: as is

    def update(pairs, strength):
        nonlocal lp
        n = np.zeros(len(labels))
        for j, c in pairs:
            n[j] += c
        if n.sum() > 0:
            with np.errstate(divide="ignore"):
                lp = np.log(n + strength * np.exp(lp)) - np.log(n.sum() + strength)
        return int(n.sum())

    index = {k: i for i, k in enumerate(table["names"])} if table else {}
    # the name's row and its other spelling's (Müller: Mueller; the case's `respelled` key), counts added
    rows = {index[k] for k in (case["normalized"], case.get("respelled")) if k in index}
    row, count = (True if rows else None), 0
    if rows:
        count = update([p for r in rows for p in table["counts"][r]], table["alpha"])
        if table.get("recent"):
            update([p for r in rows for p in table["recent"]["counts"][r]], table["recent"]["beta"])
    typed = unicodedata.normalize("NFC", case["input"].strip()).lower()
    if answer["letters"]:  # a likelihood ratio: A = the labels of letters.lines, the others neutral
        L, k = np.zeros(len(labels)), answer["letters"]["k"]
        for j, n in answer["letters"]["lines"]:
            L[j] = n
        found = {ch for ch in typed if ch in answer["letters"]["counts"]}
        for ch in found:
            m = np.zeros(len(labels))
            for j, n in answer["letters"]["counts"][ch]:
                m[j] = n
            q = m.sum() / L.sum()
            with np.errstate(divide="ignore"):
                lp = lp + np.log(np.where(L > 0, (m + k * q) / (L + k) / q, 1.0))
        if found:
            lp = lp - (lp.max() + np.log(np.exp(lp - lp.max()).sum()))
    kept = None
    for s in answer["scripts"]:
        if any(lo <= ord(ch) <= hi for ch in case["input"] for lo, hi in s["ranges"]):
            kept = set(s["labels"]) if kept is None else kept & set(s["labels"])
    if kept:
        keep = np.array([lab in kept for lab in labels])
        lp = np.where(keep, lp - np.log(np.exp(lp[keep]).sum()), -np.inf)
    return lp, ("data" if row is not None else "model"), count


def test_the_rule_from_the_json_files_gives_the_final_answers(surnames_bundle, shipped_surnames):
    conf, table = _load(surnames_bundle, "conformance.json"), _load(surnames_bundle, "name_table.json")
    answer = _load(surnames_bundle, "answer.json")
    assert answer["temperature"] == shipped_surnames.config.get("calibration", {}).get("temperature", 1.0)
    known = ruled_out = 0
    for case in conf["cases"]:
        want, source, count = port_answer(case, table, answer)
        got = np.array([-np.inf if v is None else v for v in case["final"]["logprobs"]])
        assert (np.isneginf(got) == np.isneginf(want)).all(), case["input"]
        np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-9)
        assert case["final"]["source"] == source and case["final"]["count"] == count
        known += source == "data"
        ruled_out += bool(np.isneginf(want).any())
    assert known >= 100 and ruled_out >= 20  # the names of other scripts: Иванов, 王, 김, ...
    # the predictor (ONNX Runtime, the table's stored log-probabilities) agrees with the bundle
    got = shipped_surnames.predict_logproba([c["input"] for c in conf["cases"]])
    final = np.array([[-np.inf if v is None else v for v in c["final"]["logprobs"]] for c in conf["cases"]])
    assert (np.isneginf(got) == np.isneginf(final)).all()
    assert float(np.abs(got[np.isfinite(final)] - final[np.isfinite(final)]).max()) <= 5e-5


# ---- bundles of models with a temperature, marked letters and a recent layer ------------------------------
@pytest.fixture(scope="module")
def rule_bundles(tmp_path_factory):
    """A surnames copy with calibration and marked letters, a gender copy with a recent layer, and their
    bundles (tests/rule_bundles.py)."""
    from rule_bundles import build

    return build(tmp_path_factory.mktemp("rules"))


def test_bundles_with_temperature_letters_and_recent_counts(rule_bundles):
    import namemodels

    for name, (directory, bundle) in rule_bundles.items():
        conf, table = _load(bundle, "conformance.json"), _load(bundle, "name_table.json")
        answer = _load(bundle, "answer.json")
        cases = conf["cases"]
        for case in cases:
            want, source, count = port_answer(case, table, answer)
            got = np.array([-np.inf if v is None else v for v in case["final"]["logprobs"]])
            assert (np.isneginf(got) == np.isneginf(want)).all(), case["input"]
            np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-9)
            assert case["final"]["source"] == source and case["final"]["count"] == count
        pred = namemodels.load(directory).predict_logproba([c["input"] for c in cases])
        final = np.array([[-np.inf if v is None else v for v in c["final"]["logprobs"]] for c in cases])
        assert (np.isneginf(pred) == np.isneginf(final)).all()
        assert float(np.abs(pred[np.isfinite(final)] - final[np.isfinite(final)]).max()) <= 5e-5
        text = (bundle / "FORMAT.md").read_text("utf-8")
        if name == "surnames":
            assert answer["temperature"] == 1.3 and answer["letters"]["k"] == 2.0
            assert answer["letters"]["counts"]["ü"] == [[table["labels"].index("German"), 1]]
            at = table["labels"].index
            assert answer["letters"]["lines"] == sorted([[at("German"), 6], [at("Spanish"), 3], [at("French"), 2]])
            assert "`temperature` (here\n   1.3;" in text and "`k` = 2.0" in text
            by_input = {c["input"]: c for c in cases}
            assert by_input["Müller"]["final"]["label"] == "German" and by_input["王"]["final"]["label"] == "Chinese"
            # other spellings: Müller counts muller (German 1, Russian 1) and mueller (German 1); Bär only baer
            assert answer["respellings"]["ü"] == "ue" and answer["respellings"]["Ä"] == "Ae"
            assert (by_input["Müller"]["respelled"], by_input["Bär"]["respelled"]) == ("mueller", "baer")
            assert [by_input[n]["final"]["count"] for n in ("Müller", "Bär")] == [3, 1]
        else:
            assert table["recent"]["since"] == 2004 and table["recent"]["until"] == 2012
            assert answer["scripts"] == [] and answer["letters"] is None  # F and M: no script applies
            assert f"beta = {table['recent']['beta']}" in text
            assert any(c["normalized"] == "robin" for c in cases)  # a name with recent births is checked


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
    alpha = shipped_surnames.config["name_table"]["alpha"]  # whatever the shipped table's cross-validation chose
    assert (
        json.loads(meta["namemodels.name_table_rule"])["alpha"]
        == alpha
        == _load(surnames_bundle, "name_table.json")["alpha"]
    )
    manifest = _load(surnames_bundle, "bundle.json")
    assert set(manifest["files"]) == {
        "model.onnx",
        "tokenizer.json",
        "name_table.json",
        "answer.json",
        "conformance.json",
        "FORMAT.md",
    }
    assert json.loads(meta["namemodels.answer_json"]) == _load(surnames_bundle, "answer.json")
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
    program = export(model, config, "pt2", tmp_path / "lm.pt2")  # the torch.export program, same names
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no DIR, no temporary folder
    monkeypatch.undo()
    first = export(model, config, "bundle", out, directory=directory)
    export(model, config, "bundle", out, directory=directory)  # an earlier bundle is replaced
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
