"""The whole answer (namemodels/inference/name_table.py's Rule): calibration, the name's counts, a recent
layer, marked letters and scripts, each checked against the equations computed here by hand with NumPy
(and torch's softmax for the temperature), on small models and data made here; the builder's letter and
recent counts against counts read with the csv module and the raw files."""

import csv
import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from rule_bundles import surnames_with_rules, write_by_year, write_people

import namemodels
from namemodels.errors import UsageError
from namemodels.inference import name_table as nt
from namemodels.inference.predictor import load as predictor_load
from namemodels.training.name_tables import add_name_table

PRETRAINED = __import__("pathlib").Path(namemodels.__file__).parent / "pretrained"


# ---- the pieces, by hand ----------------------------------------------------------------------------
def test_rule_steps_by_hand():
    torch = pytest.importorskip("torch")
    labels = ["Chinese", "German", "Japanese", "Korean", "Russian"]
    raw = np.log(np.array([[0.1, 0.2, 0.3, 0.15, 0.25]]))
    rule = nt.Rule(
        labels,
        temperature=1.7,
        alpha=2.0,
        beta=3.0,
        letters={"ü": np.array([0, 9.0, 0, 0, 1]), "é": np.array([0, 2.0, 0, 0, 0])},
        lines=np.array([0, 40.0, 0, 0, 60]),
        k=1.5,
    )
    p = torch.softmax(torch.tensor(raw) / 1.7, dim=-1).numpy()[0]  # step 1, by torch
    np.testing.assert_allclose(np.exp(rule.model(raw)[0]), p, rtol=1e-6)
    n, r = np.array([4.0, 1, 0, 3, 0]), np.array([1.0, 0, 0, 2, 0])
    p_all = (n + 2.0 * p) / (n.sum() + 2.0)  # step 2
    p_rec = (r + 3.0 * p_all) / (r.sum() + 3.0)  # step 3
    got = rule.known(raw, n[None], r[None])[0]
    np.testing.assert_allclose(np.exp(got), p_rec, rtol=1e-6)
    # step 4: the marked letters of the name as typed; step 5: the script's labels
    # step 4, a likelihood ratio: A = German and Russian (their lines hold marked letters), the others neutral
    inside = np.array([False, True, False, False, True])
    L = np.array([0, 40.0, 0, 0, 60])

    def ratio(m):  # rate_c / q by the equations: q pooled over A
        q = m.sum() / L[inside].sum()
        return np.where(inside, (m + 1.5 * q) / (L + 1.5) / q, 1.0)

    note = rule.evidence("Müller")
    want_ratio = ratio(np.array([0, 9.0, 0, 0, 1]))
    assert note["letters"] == {"ü": {"German": 9, "Russian": 1}}
    assert note["ratio"] == {
        "German": pytest.approx(want_ratio[1], rel=1e-3),
        "Russian": pytest.approx(want_ratio[4], rel=1e-3),
    }
    post = p_rec * want_ratio
    np.testing.assert_allclose(np.exp(rule.adjust(got, note)), post / post.sum(), rtol=1e-6)
    both = p_rec * want_ratio * ratio(np.array([0, 2.0, 0, 0, 0]))  # two letters: the factors multiply
    np.testing.assert_allclose(np.exp(rule.adjust(got, rule.evidence("Müllé"))), both / both.sum(), rtol=1e-6)
    assert rule.evidence("Müllé")["letters"].keys() == {"ü", "é"}
    assert rule.evidence("Dvořák") is None  # letters no line holds: ignored
    note = rule.evidence("王")
    assert note == {"scripts": ["Han"], "labels": ["Chinese", "Japanese"]}
    want = np.where([True, False, True, False, False], p_rec, 0.0)
    out = rule.adjust(got, note)
    np.testing.assert_allclose(np.exp(out), want / want.sum(), rtol=1e-6)
    assert np.isneginf(out[[1, 3, 4]]).all()
    assert rule.evidence("Mueller") is None and rule.evidence("Müller".upper())["letters"]  # NFC, lower-cased
    # T = 1, nothing known, nothing typed: the model's answer bit for bit
    plain = nt.Rule(labels)
    assert np.array_equal(plain.adjust(plain.known(raw, np.zeros((1, 5)))[0], plain.evidence("Li")), raw[0])


def test_scripts_table():
    labels = ["Arabic", "Chinese", "English", "Greek", "Japanese", "Korean", "Russian"]
    cases = {
        "王": (["Han"], ["Chinese", "Japanese"]),
        "김": (["Hangul"], ["Korean"]),
        "カタカナ": (["Kana"], ["Japanese"]),
        "ｶﾀｶﾅ": (["Kana"], ["Japanese"]),
        "田中さん": (["Han", "Kana"], ["Japanese"]),
        "Иванов": (["Cyrillic"], ["Russian"]),
        "Ἀθηνᾶ": (["Greek"], ["Greek"]),
        "محمد": (["Arabic"], ["Arabic"]),
        "Müller": ([], None),
        "דוד": ([], None),
        "Иван 王": (["Han", "Cyrillic"], None),
    }  # no label in common: no restriction
    for text, (scripts, kept) in cases.items():
        assert nt.scripts_in(text) == scripts, text
        assert nt.script_labels(scripts, labels) == kept, text
    assert nt.script_labels(["Han"], ["F", "M"]) is None  # a gender model: never restricted
    assert nt.script_labels(["Han"], ["Chinese", "English"]) == ["Chinese"]
    assert nt.marked_letters("Ñúñez Groß Łukasz Dvořák") == ["ñ", "ú", "ß", "ł", "ř", "á"]
    assert nt.marked_letters("Иванов 王 O'Brien") == []


def test_restrict_renormalises():
    lp = np.log(np.array([0.5, 0.3, 0.2]))
    out = nt.restrict(lp, np.array([True, False, True]))
    np.testing.assert_allclose(np.exp(out), [0.5 / 0.7, 0.0, 0.2 / 0.7], rtol=1e-12)


def test_choose_beta_finds_the_concentration_of_recent_shares():
    """Recent shares drawn from Beta(k q, k (1 - q)) around each name's all-years share q: the best beta
    is about k; the held-out half is left out of the prior (a recent count above all counts is refused)."""
    rng = np.random.default_rng(2)
    for k in (5.0, 500.0):
        q = rng.uniform(0.05, 0.95, 20000)
        old = rng.integers(2000, 4000, len(q))
        f_old = rng.binomial(old, q)
        s = rng.beta(k * q, k * (1 - q))
        new = rng.integers(2, 60, len(q))
        f_new = rng.binomial(new, s)
        recent = np.stack([f_new, new - f_new], 1)
        counts = np.stack([f_old, old - f_old], 1) + recent
        logp = np.log(np.full((len(q), 2), 0.5))
        beta, report = nt.choose_beta(recent, counts, logp, alpha=1.0, repeats=2)
        assert k / 4 <= beta <= k * 4, (k, beta)
        assert report["betas"][int(np.argmin(report["loss"]))] == beta
    with pytest.raises(ValueError, match="exceeds"):
        nt.choose_beta(counts + 1, counts, logp, 1.0)


# ---- a surnames model with letters and a temperature, a gender model with a recent layer ------------------
LINES = {
    "German": ["Müller", "Müller", "Schön", "Groß", "Weber", "Mueller", "Baer"],
    "Spanish": ["Núñez", "Peña", "García", "García"],
    "French": ["Lefèvre", "Dupont"],
    "Russian": ["Muller", "Ivanov"],
    "Chinese": ["Wang"],
    "Korean": ["Wang", "Kim"],
}


@pytest.fixture(scope="module")
def surnames_copy(tmp_path_factory):
    return surnames_with_rules(tmp_path_factory.mktemp("letters"), LINES)


def test_letter_counts_are_the_raw_lines(surnames_copy):
    _, data, section = surnames_copy
    want = {}
    for f in sorted(data.glob("*.txt")):  # read here: lines per label holding each non-ASCII letter
        for line in f.read_text(encoding="utf-8").splitlines():
            for ch in set(line.lower()):
                if not ch.isascii():
                    want.setdefault(ch, {}).setdefault(f.stem, 0)
                    want[ch][f.stem] += 1
    lines = {
        f.stem: len(f.read_text(encoding="utf-8").splitlines())
        for f in data.glob("*.txt")
        if any(stem == f.stem for per in want.values() for stem in per)
    }  # A: labels with a marked line
    assert section["letters"]["counts"] == want and section["letters"]["k"] == 2.0  # alpha given: k = alpha
    assert section["letters"]["lines"] == lines == {"French": 2, "German": 7, "Spanish": 4}
    assert want["ü"] == {"German": 2}


def test_a_name_at_the_length_limit_whose_other_spelling_is_longer(surnames_copy):
    """Written out, each umlaut grows by a letter: a valid name of 64 letters has no valid other
    spelling. It is answered like any name without one (here by the model), in every path, and a
    whole batch does not fail for it."""
    from namemodels.inference.name_table import respelled
    from namemodels.text import MAX_NAME, check_name

    model_dir, _, _ = surnames_copy
    model = namemodels.load(model_dir)
    name = "Müller" + "a" * (MAX_NAME - 6)
    assert len(check_name(name)) == MAX_NAME and respelled(name) is None and respelled("Müller") == "Mueller"
    a = model.predict([name], details=True)[0]
    assert a.source == "model" and "also_spelled" not in (a.evidence or {})
    assert model.predict(["Muller", name, "Rafaj1"], errors="return")[1] == model.predict([name])[0]
    frame = model.predict_frame(pd.DataFrame({"name": ["Muller", name]}), "name")
    assert list(frame["source"]) == ["data", "model"]


def test_predictor_gives_the_rule_by_hand(surnames_copy):
    model_dir, _, section = surnames_copy
    model = namemodels.load(model_dir)
    raw = predictor_load(model_dir, table=False, calibrate=False)  # the network alone, untempered
    labels = model.labels
    col = {lab: j for j, lab in enumerate(labels)}

    def p_model(name):
        z = raw.predict_logproba([name])[0].astype(np.float64) / 1.3
        return np.exp(z - z.max()) / np.exp(z - z.max()).sum()

    tempered = namemodels.load(model_dir, table=False)  # the model alone: tempered, nothing else
    np.testing.assert_allclose(tempered.predict_proba(["Hinton"])[0], p_model("Hinton"), rtol=1e-5)
    # Müller: its counts (the key Muller: German 2 lines of Müller, Russian 1 of Muller; its other spelling
    # Mueller: German 1), then the letter ü (German 2 lines of 7; A = German 7, Spanish 4, French 2 lines;
    # q = 2 / 13), alpha = k = 2
    n = np.zeros(len(labels))
    n[col["Russian"]], n[col["German"]] = 1, 3
    p_all = (n + 2.0 * p_model("Muller")) / (4 + 2.0)
    q = 2 / 13
    ratio = np.ones(len(labels))
    ratio[col["German"]] = (2 + 2.0 * q) / (7 + 2.0) / q
    ratio[col["Spanish"]] = (0 + 2.0 * q) / (4 + 2.0) / q
    ratio[col["French"]] = (0 + 2.0 * q) / (2 + 2.0) / q
    want = p_all * ratio / (p_all * ratio).sum()
    a = model.predict(["Müller"], details=True, top=None)[0]
    np.testing.assert_allclose(model.predict_proba(["Müller"])[0], want, rtol=1e-5)
    np.testing.assert_allclose(model.predict_proba(["Müller", "Hinton"])[0], want, rtol=1e-5)  # in a chunk
    assert a.source == "data" and a.count == 4 and a.evidence["letters"] == {"ü": {"German": 2}}
    assert a.evidence["also_spelled"] == "Mueller"
    # Bär: not in the table as Bar, but as Baer (German 1): the network reads Bar, the counts are Baer's;
    # ä is no marked letter of these lines (no ratio)
    n = np.zeros(len(labels))
    n[col["German"]] = 1
    want = (n + 2.0 * p_model("Bar")) / (1 + 2.0)
    for names in (["Bär"], ["Bär", "Hinton", "Bär"]):  # alone (one row) and in a chunk
        np.testing.assert_allclose(model.predict_proba(names)[0], want, rtol=1e-5)
    b = model.predict(["Bär"], details=True)[0]
    assert (b.source, b.count, b.evidence) == ("data", 1, {"also_spelled": "Baer"})
    assert a.evidence["ratio"] == {
        label: pytest.approx(ratio[col[label]], rel=1e-3) for label in ("French", "German", "Spanish")
    }
    # Muller typed without the letter: its own counts alone (no other spelling, no letter)
    n = np.zeros(len(labels))
    n[col["Russian"]], n[col["German"]] = 1, 2
    np.testing.assert_allclose(model.predict_proba(["Muller"])[0], (n + 2.0 * p_model("Muller")) / 5.0, rtol=1e-5)
    # 王: Wang (Chinese 1, Korean 1), restricted to Chinese and Japanese
    n = np.zeros(len(labels))
    n[[col["Chinese"], col["Korean"]]] = 1
    p_all = (n + 2.0 * p_model("Wang")) / (2 + 2.0)
    keep = np.isin(labels, ["Chinese", "Japanese"])
    want = np.where(keep, p_all, 0) / p_all[keep].sum()
    got = model.predict_proba(["王", "Hinton"])[0]  # in a chunk, not alone
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    a = model.predict(["王"], details=True)[0]
    assert a.label == "Chinese" and a.evidence == {"scripts": ["Han"], "labels": ["Chinese", "Japanese"]}
    # an ASCII name not in the table: the tempered model, nothing else
    np.testing.assert_allclose(model.predict_proba(["Hinton"])[0], p_model("Hinton"), rtol=1e-5)


def test_five_names_of_other_scripts_and_letters(surnames_copy):
    model = namemodels.load(surnames_copy[0])
    got = {a.name: a.label for a in model.predict(["Иванов", "Παπαδόπουλος", "王", "Nguyễn", "Müller"], details=True)}
    assert got == {
        "Иванов": "Russian",
        "Παπαδόπουλος": "Greek",
        "王": "Chinese",
        "Nguyễn": "Vietnamese",
        "Müller": "German",
    }


def test_cli_json_shows_the_evidence(surnames_copy, capsys):
    from namemodels.cli import main

    assert main(["predict", "--model", str(surnames_copy[0]), "Müller", "王", "--json", "--top", "3"]) == 0
    out = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert out["Müller"]["evidence"]["letters"] == {"ü": {"German": 2}}
    assert set(out["Müller"]["evidence"]["ratio"]) == {"French", "German", "Spanish"}  # A; the others: 1
    assert out["王"]["evidence"] == {"scripts": ["Han"], "labels": ["Chinese", "Japanese"]}
    assert [p["label"] for p in out["王"]["predictions"]] == ["Chinese", "Japanese"]  # ruled-out labels not listed
    assert main(["predict", "--model", str(surnames_copy[0]), "Müller"]) == 0
    assert "letters ü: German 2" in capsys.readouterr().out


BIRTHS = [
    (1990, "Joan", "F", 30),
    (1990, "Joan", "M", 10),
    (2010, "Joan", "F", 2),
    (2010, "Joan", "M", 8),
    (2012, "Joan", "M", 5),
    (1995, "Zed", "M", 5),
    (2011, "Ann", "F", 3),
    (2015, "Ann", "F", 2),
    (2011, "Nobody", "F", 7),
]


@pytest.fixture(scope="module")
def gender_recent(tmp_path_factory):
    root = tmp_path_factory.mktemp("recent")
    data, by_year = root / "people.csv", root / "by_year.csv.gz"
    write_people(data, [b for b in BIRTHS if b[1] != "Nobody"])  # Nobody: in the by-year file only
    write_by_year(by_year, BIRTHS)
    out = root / "gender-recent"
    section = add_name_table("gender", data, any_data=True, recent=by_year, since=2004, out=out)
    return out, data, section


def test_recent_counts_and_the_nested_rule(gender_recent):
    model_dir, _, section = gender_recent
    recent = section["recent"]
    assert (recent["since"], recent["until"]) == (2004, 2015) and section["span"] == {"since": 2004, "until": 2015}
    assert recent["total"] == 2 + 8 + 5 + 3 + 2 and recent["unmatched"] == {"names": 1, "births": 7}
    alpha, beta = section["alpha"], recent["beta"]
    model = namemodels.load(model_dir)
    alone = namemodels.load(model_dir, table=False)
    p_f = alone.predict_proba(["Joan"])[0][model.labels.index("F")]
    p_all_f = (32 + alpha * p_f) / (55 + alpha)  # all years: F 32, M 23
    want_f = (2 + beta * p_all_f) / (15 + beta)  # 2004-2015: F 2, M 13
    a = model.predict(["Joan"], details=True, top=None)[0]
    assert math.exp(dict(a.top)["F"]) == pytest.approx(want_f, rel=1e-5)
    assert a.source == "data" and a.count == 55 and a.recent == {"span": "2004-2015", "count": 15}
    z = model.predict(["Zed"], details=True)[0]  # no recent births: the all-years answer
    assert z.recent == {"span": "2004-2015", "count": 0}
    assert model.predict(["Zorblax"], details=True)[0].recent is None
    # the shipped folder is untouched (--out wrote a copy)
    assert (
        "recent" not in (json.loads((PRETRAINED / "gender" / "config.json").read_text())["name_table"] or {})
        or json.loads((PRETRAINED / "gender" / "config.json").read_text())["name_table"].get("recent") is None
    )


def test_gender_json_says_which_span(gender_recent, capsys):
    from namemodels.cli import main

    assert main(["gender", "--model", str(gender_recent[0]), "Joan", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["recent"] == {"span": "2004-2015", "count": 15} and row["count"] == 55 and row["source"] == "data"


def test_recent_options_are_checked(gender_recent, tmp_path):
    model_dir, data, _ = gender_recent
    with pytest.raises(UsageError, match="give --recent too"):
        add_name_table(model_dir, data, any_data=True, since=2004)
    with pytest.raises(UsageError, match="not an empty folder"):
        add_name_table("gender", data, any_data=True, out=model_dir)
    with pytest.raises(UsageError, match="for a gender model"):  # a failed build leaves no copy
        add_name_table("surnames", data, any_data=True, recent=data, out=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_every_path_gives_the_same_answer(surnames_copy, tmp_path, capsys):
    """The torch backend, predict_frame, a scored file and Dask all go through the same Rule."""
    model_dir = surnames_copy[0]
    names = ["Müller", "王", "Иванов", "Hinton", "Núñez", "Wang"]
    onnx = namemodels.load(model_dir)
    want = onnx.predict_logproba(names)
    pytest.importorskip("torch")
    torch_model = predictor_load(model_dir, backend="torch")
    got = torch_model.predict_logproba(names)
    assert (np.isneginf(got) == np.isneginf(want)).all()
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=5e-5)
    labels = [onnx.labels[i] for i in want.argmax(1)]
    assert labels[:3] == ["German", "Chinese", "Russian"]
    pd = pytest.importorskip("pandas")
    frame = onnx.predict_frame(pd.DataFrame({"name": names}), "name")
    assert frame["label"].tolist() == labels
    np.testing.assert_allclose(frame["logprob"].to_numpy(float), want.max(1), atol=1e-6)
    from namemodels.cli import main

    (tmp_path / "names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    assert (
        main(
            [
                "predict",
                "--model",
                str(model_dir),
                "--input",
                str(tmp_path / "names.txt"),
                "--output",
                str(tmp_path / "out.csv"),
                "--quiet",
            ]
        )
        == 0
    )
    with open(tmp_path / "out.csv", encoding="utf-8") as f:
        assert [r["label"] for r in csv.DictReader(f)] == labels
    dd = pytest.importorskip("dask.dataframe")
    import dask

    from namemodels import dask as nm_dask

    with dask.config.set(scheduler="synchronous"):
        lazy = nm_dask.predict(
            dd.from_pandas(pd.DataFrame({"name": names}), npartitions=2), "name", model=str(model_dir)
        )
        assert lazy.compute()["label"].tolist() == labels


def test_choose_smoothing_leaves_one_line_out_by_hand():
    """Four labels (the last never has a marked line: neutral); lines (label, letters). Each held-out line:
    its letters' counts less one for its label, its label's lines less one, A without it, the ratio and
    the renormalised answer by hand."""
    letters = {"ü": np.array([3.0, 1, 0, 0]), "é": np.array([0.0, 2, 1, 0])}
    lines = np.array([10.0, 8, 1, 20])
    held = [(0, ["ü"]), (0, ["ü"]), (0, ["ü"]), (1, ["ü", "é"]), (1, ["é"]), (2, ["é"])]
    rng = np.random.default_rng(0)
    prior = np.log(rng.dirichlet(np.ones(4), len(held)))
    grid = (0.5, 5.0, 500.0)
    k, report = nt.choose_smoothing(held, prior, letters, lines, grid=grid)
    want_loss, want_acc = [], []
    for kk in grid:
        loss = right = 0.0
        for i, (label, found) in enumerate(held):
            m = {c: letters[c].copy() for c in letters}
            for c in found:
                m[c][label] -= 1
            L = lines.copy()
            L[label] -= 1
            inside = sum(m.values()) > 0  # the labels with a marked line left: the third
            post = np.exp(prior[i])  # drops out when its only line is held out
            for c in found:
                if m[c].sum() == 0:
                    continue  # no other line holds it: skipped
                q = m[c].sum() / L[inside].sum()
                post = post * np.where(inside, (m[c] + kk * q) / (L + kk) / q, 1.0)
            post /= post.sum()
            loss -= math.log(post[label])
            right += int(np.argmax(post) == label)
        want_loss.append(loss / len(held))
        want_acc.append(right / len(held))
    np.testing.assert_allclose(report["loss"], want_loss, rtol=1e-5)
    np.testing.assert_allclose(report["accuracy"], want_acc, atol=1e-6)
    assert k == grid[int(np.argmin(want_loss))] and report["lines"] == 6
    plain = np.exp(prior)
    y = [label for label, _ in held]
    assert report["loss_without_letters"] == pytest.approx(-np.log(plain[np.arange(6), y]).mean(), rel=1e-5)
    # nothing shared: no choice
    assert nt.choose_smoothing([(0, ["ü"])], prior[:1], {"ü": np.array([1.0, 0, 0, 0])}, lines)[0] is None


def test_letter_log_ratio_by_hand():
    m = np.array([[4.0, 0, 1, 0], [0.0, 3, 0, 0]])
    lines = np.array([50.0, 30, 20, 0])  # the fourth label is not in A
    q = m.sum(1) / 100
    want = sum(np.log(np.where(lines > 0, (row + 7 * qq) / (lines + 7) / qq, 1.0)) for row, qq in zip(m, q))
    np.testing.assert_allclose(nt.letter_log_ratio(m, lines, 7.0), want, rtol=1e-12)
    assert nt.letter_log_ratio(m, lines, 1e12)[:3] == pytest.approx(np.zeros(3), abs=1e-9)  # k -> inf: no effect
    with pytest.raises(ValueError):
        nt.letter_log_ratio(m, lines, 0.0)


def test_a_table_of_the_earlier_letters_rule_is_refused():
    config = {
        "labels": ["A", "B"],
        "name_table": {"alpha": 1.0, "letters": {"counts": {"ü": {"A": 2}}, "strength": 1.0}},
    }
    with pytest.raises(UsageError, match="rebuild the table"):
        nt.Rule.of(config)


def test_letter_smoothing_is_cross_validated_when_alpha_is(surnames_copy, tmp_path):
    _, data, _ = surnames_copy
    model = tmp_path / "surnames"
    shutil.copytree(PRETRAINED / "surnames", model)
    section = add_name_table(model, data, any_data=True)
    choice = section["letters"]["k_choice"]
    marked = sum(
        1 for f in data.glob("*.txt") for line in f.read_text(encoding="utf-8").splitlines() if not line.isascii()
    )
    assert (
        choice["lines"] == marked == 9 and "leaving out one at a time the 9 lines" in choice["how"]
    )  # LINES: 9 with marks
    assert section["letters"]["k"] == choice["k"][int(np.argmin(choice["loss"]))]
    assert "all_lines" not in section["letters"]
    card = (model / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert f"k = {section['letters']['k']:g} lines" in card and "likelihood ratio" in card


# ---- the shipped surnames model on its real training data (skipped without it) ------------------------
DATA = __import__("pathlib").Path("/work/shared/data/names")
OOF = __import__("pathlib").Path(__file__).resolve().parents[2] / "runs" / "oof-surnames"


@pytest.mark.skipif(not DATA.is_dir() or not OOF.is_dir(), reason="needs the surnames data and runs/oof-surnames")
def test_marked_letters_on_the_real_data(tmp_path):
    """The table of the shipped surnames model built (into a copy) from its data with out-of-fold priors:
    names typed with accents, among them Czech's (whose data has no accents: neutral)."""
    section = add_name_table(PRETRAINED / "surnames", DATA, cv=OOF, out=tmp_path / "surnames")
    letters = section["letters"]
    assert "Czech" not in letters["lines"] and "German" in letters["lines"] and "Spanish" in letters["lines"]
    choice = letters["k_choice"]
    best = choice["k"].index(letters["k"])
    print(
        f"\nk {letters['k']}: LOO on {choice['lines']} accented lines: loss {choice['loss'][best]:.4f}, accuracy "
        f"{choice['accuracy'][best]:.4f}; without letters {choice['loss_without_letters']:.4f}, "
        f"{choice['accuracy_without_letters']:.4f}"
    )
    assert choice["loss"][best] < choice["loss_without_letters"]
    model = namemodels.load(tmp_path / "surnames")
    got = {
        a.name: a.label for a in model.predict(["Dvořák", "Lefèvre", "Núñez", "Groß", "Müller", "José"], details=True)
    }
    print(got)
    # José is shown, not asserted: the model gives Jose under 2% Spanish, and e-acute is in a larger share
    # of French lines (12 / 247) than of Spanish ones (6 / 267). Müller: the data's only Muller line is
    # Russian's, but German.txt writes Mueller, whose line the other spelling adds.
    assert {n: got[n] for n in ("Dvořák", "Lefèvre", "Núñez", "Groß", "Müller")} == {
        "Dvořák": "Czech",
        "Lefèvre": "French",
        "Núñez": "Spanish",
        "Groß": "German",
        "Müller": "German",
    }
