"""Input rules: what is folded to ASCII, what is rejected (named), and that the Python API and the
command line give the same answer or the same error for any input (property-based over Unicode)."""

import json
import math
import re
import string
import unicodedata
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import namemodels
from namemodels.cli import main
from namemodels.data import loader
from namemodels.errors import UsageError
from namemodels.text import LETTER_FOLD, ascii_fold, check_name, check_name_details, check_names, fold_text
from namemodels.tokenizer import CharTokenizer

# ------------------------------------------------------------------------------------------ the fold

# How each language's speakers write these names in plain ASCII (written out by hand, not derived
# from the table under test).
FOLDED = {
    "Strauß": "Strauss",
    "Groß": "Gross",
    "Weiß": "Weiss",
    "STRAẞE": "STRASSE",
    "Wałęsa": "Walesa",
    "Marszałek": "Marszalek",
    "ŁÓDŹ": "LODZ",
    "Søren": "Soren",
    "ØRSTED": "ORSTED",
    "Ærø": "Aero",
    "Bræk": "Braek",
    "Œuvre": "Oeuvre",
    "Cœur": "Coeur",
    "Đoković": "Dokovic",
    "Þór": "Thor",
    "Guðrún": "Gudrun",
    "Yıldız": "Yildiz",
    "Ślusàrski": "Slusarski",
    "O’Brien": "O'Brien",
    "Smith‐Jones": "Smith-Jones",
    "Ｓｍｉｔｈ": "Smith",
    "ﬁnn": "finn",
    "Dvořák": "Dvorak",
    "Mal\u0301y": "Maly",  # a combining accent typed separately
    "Łukasz": "Lukasz",
    "Ørsted": "Orsted",
    "Æsa": "Aesa",
    "Đorđević": "Dordevic",
    "Arnþór": "Arnthor",
    "GUÐMUNDSDÓTTIR": "GUDMUNDSDOTTIR",
    "Buħaġiar": "Buhagiar",
    "Ħamrun": "Hamrun",
    "Máŧŧe": "Matte",
    "MÁŦŦE": "MATTE",
    "Coŀlell": "Collell",  # Catalan l·l written with the one character ŀ
    "COĿLELL": "COLLELL",
    "O‘Neill": "O'Neill",
    "DʼAngelo": "D'Angelo",
    "Lloyd\u2011George": "Lloyd-George",  # a non-breaking hyphen
    "Bowes–Lyon": "Bowes-Lyon",
    "Mac\u1680Giolla": "Mac Giolla",  # the ogham space mark
    "de\u00a0la\u2003Cruz": "de la Cruz",
    "Nguyễn": "Nguyen",
    "ǅemal": "Dzemal",
}


@pytest.mark.parametrize("raw, folded", sorted(FOLDED.items()))
def test_letters_fold_as_users_expect(raw, folded):
    assert check_name_details(raw) == (folded, False)  # what a user types, not transliterated
    assert ascii_fold(raw) == folded  # a line of a data file


def test_every_letter_of_the_fold_table_is_in_a_name_above():
    """FOLDED is the reference for the table: no letter of it goes unchecked."""
    assert set(LETTER_FOLD) <= set("".join(FOLDED)), sorted(set(LETTER_FOLD) - set("".join(FOLDED)))


def test_fold_table_is_ascii_and_case_consistent():
    allowed = set(string.ascii_letters + " .,;'-")
    for src, dst in LETTER_FOLD.items():
        assert dst and set(dst) <= allowed, src
        low = src.lower()
        if low != src and low in LETTER_FOLD:  # a capital folds to its small letter's spelling, capitalized
            assert LETTER_FOLD[src].lower() == LETTER_FOLD[low], src


@pytest.mark.parametrize(
    "raw, code",
    [
        ("Smith😀", "U+1F600"),
        ("Smi\tth", "U+0009"),
        ("Smi\x07th", "U+0007"),
        ("Smi\x00th", "U+0000"),
        ("Smith\nJones", "U+000A"),
        ("Smi\u200dth", "U+200D"),
        ("Smith/Jones", "U+002F"),
        ("™Smith", "U+2122"),
        ("Smith\u2028Jones", "U+2028"),
        ("Ro\u00adss", "U+00AD"),
    ],
)
def test_control_characters_and_symbols_are_named_errors(raw, code):
    with pytest.raises(UsageError) as exc:
        check_name(raw)
    msg = str(exc.value)
    assert code in msg and "\n" not in msg and "\t" not in msg and "\x00" not in msg


@pytest.mark.parametrize(
    "raw, words",
    [
        ("J0hn", "digits"),
        ("12345", "digits"),
        ("ʻOla", "no Latin transliteration here (ʻ)"),
        ("Иванов😀", "U+1F600"),
        ("Smith😀", "GRINNING FACE"),
        ("--..", "no letters"),
        ("", "empty"),
        ("   ", "empty"),
        ("   \t", "empty"),
        ("a" * 65, "limit is 64"),
    ],
)
def test_other_rejections(raw, words):
    with pytest.raises(UsageError, match=re.escape(words)):
        check_name(raw)


def test_surrounding_white_space_is_removed_and_inner_runs_collapsed():
    assert check_name("\t de \u00a0 la  Cruz\n") == "de la Cruz"


def test_check_names_keeps_positions():
    valid, errors = check_names(["Groß", "X1", "Søren"])
    assert valid == ["Gross", "Soren"] and list(errors) == [1]


@given(st.text(max_size=20))
@settings(max_examples=300, deadline=None)
def test_strict_fold_accepts_only_what_the_data_fold_keeps_unchanged(text):
    """One fold: whatever a user may type folds exactly as the same text in a data file."""
    try:
        folded = fold_text(text)
    except UsageError:
        return
    assert folded == ascii_fold(text)


def test_training_data_lines_fold_like_predictions(shared_data):
    """Every surname line made of letters is accepted by predict, and folds as the loader folds it
    (Groß, Weiß and Marszałek, for example, could not be predicted before)."""
    lines = [
        line.strip()
        for f in sorted((shared_data / "names").glob("*.txt"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    letters = [line for line in lines if all(unicodedata.category(c)[0] in "LMZ" or c in "'-.," for c in line)]
    assert len(letters) > len(lines) - 10
    assert [check_name(line) for line in letters] == [" ".join(ascii_fold(line).split()) for line in letters]
    assert {"Gross", "Weiss", "Marszalek"} <= {check_name(line) for line in letters}


def test_loader_and_tokenizer_use_the_same_fold(tmp_path):
    d = tmp_path / "names"
    d.mkdir()
    (d / "German.txt").write_text("Groß\nWeiß\nSchmidt\n", encoding="utf-8")
    (d / "Polish.txt").write_text("Marszałek\nNowak\n", encoding="utf-8")
    ds = loader.load(d)
    assert sorted(ds.names) == ["Gross", "Marszalek", "Nowak", "Schmidt", "Weiss"]
    tok = CharTokenizer.fit(ds.names, lowercase=True)
    assert tok.encode("Groß") == tok.encode("gross") and tok.unk_id not in tok.encode("Marszałek")


def test_same_fold_on_the_torch_and_onnx_paths():
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    for backend in ("onnx", "torch"):
        # the network alone: the name table's marked letters (ß, ł) add evidence of their own by design
        model = namemodels.load("surnames", backend=backend, table=False)
        a, b = model.predict_logproba(["Strauß", "Wałęsa"]), model.predict_logproba(["Strauss", "Walesa"])
        np.testing.assert_array_equal(a, b)
    onnx = namemodels.load("surnames", backend="onnx").predict_logproba(["Strauß"])
    torch_ = namemodels.load("surnames", backend="torch").predict_logproba(["Strauß"])
    np.testing.assert_allclose(onnx, torch_, atol=1e-4)


# ------------------------------------------------------------------------------------------ API arguments


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n must be between 1 and"),
        (dict(n=-5), "n must be between 1 and"),
        (dict(n=10**7), "n must be between 1 and 1,000,000"),
        (dict(n=2.5), "n must be a whole number"),
        (dict(temperature=0), "temperature must be above 0"),
        (dict(temperature=float("nan")), "finite"),
        (dict(temperature=float("inf")), "finite"),
        (dict(top_k=0), "top_k must be at least 1"),
        (dict(seed=-1), "seed must be at least 0"),
        (dict(start="Ro9"), "digits"),
        (dict(start="Ro😀"), "U+1F600"),
        (dict(start="Ro\t"), "U+0009"),
        (dict(start="x" * 40), "limit is 31"),
    ],
)
def test_generate_rejects_bad_arguments(shipped_first_names, kwargs, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        shipped_first_names.generate(**kwargs)


@pytest.mark.parametrize("top", [0, -1, 1.5, True, "3"])
def test_predict_rejects_bad_top(shipped_surnames, top):
    with pytest.raises(UsageError, match="top must be"):
        shipped_surnames.predict(["Smith"], top=top)


def test_predict_top_none_gives_every_label_summing_to_one(shipped_surnames):
    (answer,) = shipped_surnames.predict(["Smith"], top=None)
    assert sorted(label for label, _ in answer) == sorted(shipped_surnames.labels)
    assert sum(math.exp(p) for _, p in answer) == pytest.approx(1, abs=1e-5)
    assert [p for _, p in answer] == sorted((p for _, p in answer), reverse=True)
    # more than there are: all
    assert len(shipped_surnames.predict(["Smith"], top=99)[0]) == len(shipped_surnames.labels)


def test_predict_errors_return_answers_valid_names_in_place(shipped_surnames):
    out = shipped_surnames.predict(["Rossi", "Sm1th", "", "Groß"], top=2, errors="return")
    assert [type(x) for x in out] == [list, UsageError, UsageError, list]
    assert out[0] == shipped_surnames.predict(["Rossi"], top=2)[0]
    assert out[3] == shipped_surnames.predict(["Groß"], top=2)[0]  # not Gross: the table reads marked letters
    assert "digits" in str(out[1]) and "empty" in str(out[2])
    with pytest.raises(UsageError, match="digits"):
        shipped_surnames.predict(["Rossi", "Sm1th"])
    with pytest.raises(UsageError, match="errors must be"):
        shipped_surnames.predict(["Rossi"], errors="ignore")


def _greedy(model, prefix: str, category: int = 0, steps: int = 32) -> str:
    """Reference: the likeliest next character at each step (specials other than <eos> excluded)."""
    tok = model.tokenizer
    cat = np.array([category]) if model.config["model"].get("num_categories") else None
    state, ids = None, [tok.bos_id] + tok.encode(prefix)
    for t in ids:
        logp, state = model.backend.step(np.array([t]), state, cat)
    out = list(tok.encode(prefix))
    for _ in range(steps - len(prefix)):
        row = logp[0].astype(np.float64)
        row[[tok.pad_id, tok.bos_id, tok.unk_id]] = -np.inf
        nxt = int(row.argmax())
        if nxt == tok.eos_id:
            break
        out.append(nxt)
        logp, state = model.backend.step(np.array([nxt]), state, cat)
    return tok.decode(out).capitalize()


@pytest.mark.parametrize("temperature", [1e-320, 5e-324, 1e-30])
def test_tiny_temperature_is_greedy_without_warnings(shipped_first_names, temperature):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        names = shipped_first_names.generate(n=3, temperature=temperature, seed=1, category="F")
        assert names == [_greedy(shipped_first_names, "", shipped_first_names.category_index("F"))] * 3
        greedy = _greedy(shipped_first_names, "ro")
        assert shipped_first_names.generate(n=2, temperature=temperature, start="Ro") == [greedy] * 2


def test_novel_names_that_cannot_be_found_raise(shipped_first_names):
    """Greedy sampling gives one name over and over: at most one of them is new."""
    with pytest.raises(UsageError, match="novel names"):
        shipped_first_names.generate(n=5, temperature=1e-9, novel=True, max_tries=3)


def test_predict_iter_returns_errors_in_place(shipped_surnames):
    out = list(shipped_surnames.predict_iter(iter(["Rossi", "R0ssi", "Rossi"]), top=1, chunk=2, errors="return"))
    assert isinstance(out[1], UsageError) and out[0] == out[2] == shipped_surnames.predict(["Rossi"], top=1)[0]


def test_generate_runs_in_bounded_chunks(shipped_first_names, monkeypatch):
    from namemodels.inference import predictor

    monkeypatch.setattr(predictor, "SAMPLE_CHUNK", 64)
    widest = []
    step = shipped_first_names.backend.step

    def spy(tokens, state, category):
        widest.append(len(tokens))
        return step(tokens, state, category)

    monkeypatch.setattr(shipped_first_names.backend, "step", spy)
    names = shipped_first_names.generate(n=300, seed=0)
    assert len(names) == 300 and all(names) and max(widest) == 64


# ------------------------------------------------------------------------------------------ non-finite outputs


class _NaNBackend:
    """A backend whose network output is damaged."""

    def logprobs(self, ids, lengths):
        out = np.full((len(lengths), 18), -2.0, np.float32)
        out[-1, 3] = np.nan
        return out


def test_non_finite_log_probabilities_raise(shipped_surnames, monkeypatch, capsys):
    monkeypatch.setattr(shipped_surnames, "backend", _NaNBackend())
    # names the network answers (Smith and Jones are in the name table, answered without the network)
    with pytest.raises(UsageError, match="non-finite"):
        shipped_surnames.predict(["Zmithq", "Jonesqx"], errors="return")
    monkeypatch.setattr("namemodels.inference.predictor.load", lambda *a, **k: shipped_surnames)
    assert main(["predict", "--json", "Zmithq"]) == 2
    out, err = capsys.readouterr()
    assert "NaN" not in out and "non-finite" in err and "Traceback" not in err


def _nan_model_dir(tmp_path, kind):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from helpers import make_model_dir

    from namemodels.export import export_model_dir
    from namemodels.training.checkpoint import atomic_save_tensors, load_tensors

    d = make_model_dir(tmp_path / kind, kind=kind, cell="gru")
    weights = load_tensors(d / "model.safetensors")
    name = "head.weight"  # the output layer: every answer depends on it
    weights[name] = torch.full_like(weights[name], float("nan"))
    atomic_save_tensors(d / "model.safetensors", weights, {"format": "pt"})
    export_model_dir(d)
    return d


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_nan_weights_are_reported_not_answered(tmp_path, backend, capsys):
    cls = _nan_model_dir(tmp_path, "classifier")
    with pytest.raises(UsageError, match="non-finite"):
        namemodels.load(cls, backend=backend).predict(["Smith"])
    lm = _nan_model_dir(tmp_path, "lm")
    with pytest.raises(UsageError, match="non-finite"):
        namemodels.load(lm, backend=backend).generate(n=2, seed=0)
    if backend == "onnx":
        assert main(["predict", "--model", str(cls), "--json", "Smith"]) == 2
        out, err = capsys.readouterr()
        assert "NaN" not in out and "non-finite" in err


def test_json_output_has_no_nan():
    from namemodels.commands.common import json_text

    text = json_text({"roc_auc": float("nan"), "x": [1.0, float("inf")], "n": 3})
    assert json.loads(text) == {"roc_auc": None, "x": [1.0, None], "n": 3}


# ------------------------------------------------------------------------------------------ API == CLI, any input

# Plain text, and text rich in the characters the rules are about.
INTERESTING = "aZ' -.,ßłøæœđþðıÆØŁẞéǘ\t\n\x00\x07\u200d\u00a0😀李И0/™’‐"
names = st.one_of(st.text(max_size=16), st.text(alphabet=INTERESTING, max_size=12))
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _cli(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _api(fn):
    try:
        return fn(), None
    except UsageError as exc:
        return None, exc


@given(name=names)
@PROPERTY
def test_predict_api_and_cli_agree_on_any_text(shipped_surnames, capsys, name):
    (answer,) = shipped_surnames.predict([name], top=None, errors="return")
    code, out, err = _cli(capsys, ["predict", "--json", "--top", "99", "--", name])
    if isinstance(answer, UsageError):
        assert code == 2 and out.strip() == "[]" and err.strip() == f"namemodels predict: error: {answer}"
        return
    logp = np.array([p for _, p in answer])
    # -inf: a label ruled out by the name's script (probability 0), which the CLI does not list
    assert not np.isnan(logp).any() and not np.isposinf(logp).any() and np.exp(logp).sum() == pytest.approx(1, abs=1e-4)
    (row,) = json.loads(out)
    assert code == 0 and err == "" and row["name"] == name.strip()
    assert [(p["label"], p["logprob"]) for p in row["predictions"]] == [
        (label, round(p, 6)) for label, p in answer if p > -math.inf
    ]


@given(name=names)
@PROPERTY
def test_gender_api_and_cli_agree_on_any_text(shipped_gender, capsys, name):
    (answer,) = shipped_gender.predict([name], top=None, errors="return")
    code, out, err = _cli(capsys, ["gender", "--json", "--", name])
    if isinstance(answer, UsageError):
        assert code == 2 and json.loads(out) == [] and err.strip() == f"namemodels gender: error: {answer}"
        return
    probs = {label: math.exp(p) for label, p in answer}
    assert all(math.isfinite(p) for _, p in answer) and sum(probs.values()) == pytest.approx(1, abs=1e-4)
    (row,) = json.loads(out)
    assert code == 0 and row["p_female"] == round(probs["F"], 4) and row["label"] == ("F" if probs["F"] >= 0.5 else "M")


@given(start=names)
@PROPERTY
def test_generate_start_api_and_cli_agree_on_any_text(shipped_first_names, capsys, start):
    result, error = _api(lambda: shipped_first_names.generate(n=2, seed=0, start=start))
    code, out, err = _cli(capsys, ["generate", "--n", "2", "--seed", "0", "--json", f"--start={start}"])
    if error is not None:
        assert code == 2 and out == "" and err.strip() == f"namemodels generate: error: {error}"
        return
    assert code == 0 and json.loads(out) == result and len(result) == 2
    prefix = shipped_first_names.tokenizer.normalize(fold_text(start))
    assert all(n.lower().startswith(prefix) for n in result)
