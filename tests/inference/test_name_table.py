"""The name table (namemodels/inference/name_table.py, namemodels/training/name_tables.py): the combination rule
checked by hand, alpha's cross-validation on counts with a known answer, the file round trip, and a
shipped classifier with a table built from a small CSV made here (counts computed with the csv module)."""

import csv
import json
import math
import shutil

import numpy as np
import pytest

import namemodels
from namemodels.errors import UsageError
from namemodels.inference import name_table as nt
from namemodels.inference.predictor import Answer
from namemodels.training.name_tables import add_name_table

PRETRAINED = __import__("pathlib").Path(namemodels.__file__).parent / "pretrained"


# ---- the rule ---------------------------------------------------------------------------------------
def test_combine_by_hand():
    counts = np.array([[3, 1], [0, 0], [5, 0]])
    p = np.array([[0.2, 0.8], [0.3, 0.7], [0.5, 0.5]])
    logp = np.log(p).astype(np.float32)
    out = np.exp(nt.combine(counts, logp, alpha=2.0).astype(np.float64))
    # (n_c + alpha p_c) / (N + alpha): (3 + 0.4) / 6, (1 + 1.6) / 6 ; (5 + 1) / 7, (0 + 1) / 7
    np.testing.assert_allclose(out[0], [3.4 / 6, 2.6 / 6], rtol=1e-6)
    np.testing.assert_allclose(out[2], [6 / 7, 1 / 7], rtol=1e-6)
    assert np.array_equal(nt.combine(counts, logp, 2.0)[1], logp[1])  # unseen: the model's answer, bit for bit
    with pytest.raises(ValueError, match="alpha must be above 0"):
        nt.combine(counts, logp, 0.0)


def test_choose_alpha_finds_the_concentration_of_the_data():
    """Shares drawn from Beta(k p, k (1 - p)) around the model's p: the best prior strength is about k."""
    rng = np.random.default_rng(1)
    for k in (3.0, 300.0):
        p = rng.uniform(0.05, 0.95, 20000)
        q = rng.beta(k * p, k * (1 - p))
        n = rng.integers(2, 60, len(p))
        f = rng.binomial(n, q)
        counts = np.stack([f, n - f], 1)
        logp = np.log(np.stack([p, 1 - p], 1)).astype(np.float32)
        alpha, report = nt.choose_alpha(counts, logp, repeats=2)
        assert k / 4 <= alpha <= k * 4, (k, alpha, report["loss"])
        assert report["alphas"][int(np.argmin(report["loss"]))] == alpha


# ---- the file ---------------------------------------------------------------------------------------
def test_write_and_look_up(tmp_path):
    keys = ["joan", "al", "zed", "mary ann", "b"]
    counts = np.array([[40, 10], [0, 7], [1, 1], [5, 0], [2**32 - 1, 0]])
    logp = np.log(np.full((5, 2), 0.5)).astype(np.float32)
    nt.write_table(tmp_path / nt.FILE, keys, counts, logp)
    table = nt.NameTable(tmp_path / nt.FILE, alpha=1.0, lowercase=True)
    assert table.keys() == sorted(keys) and len(table) == 5
    queries = ["zed", "joan", "nobody", "mary ann", "", "b", "a", "al"]
    small = table.lookup(queries)  # binary search
    table._index = None
    big = table.lookup(queries * 20)[: len(queries)]  # the dictionary
    assert small.tolist() == big.tolist()
    found = {q: r for q, r in zip(queries, small.tolist())}
    assert found["nobody"] == found[""] == found["a"] == -1
    got, _ = table.rows(np.array([found[k] for k in keys]))
    assert got.tolist() == counts.tolist()
    with np.load(tmp_path / nt.FILE, allow_pickle=False) as z:  # the documented layout
        assert bytes(z["names"]).decode() == "".join(k + "\n" for k in sorted(keys))
        assert z["counts"].dtype == np.dtype("<u4") and z["logp"].dtype == np.dtype("<f4")
    assert not nt.NameTable(None) and nt.NameTable(None).lookup(["joan"]).tolist() == [-1]


def test_name_key_matches_what_the_model_reads():
    from namemodels.text import check_name

    assert {nt.name_key(check_name(n), True) for n in ("Joan", "JOAN", " joan ", "Jóan")} == {"joan"}
    assert nt.name_key(check_name("Mary  Ann"), False) == "Mary Ann"


# ---- a shipped model with a table made from a small CSV ------------------------------------------------
ROWS = [("Joan", "F", 30), ("Joan", "M", 10), ("Zed", "M", 5), ("Ann", "F", 3), ("Ann", "F", 2), ("Åsa", "F", 4)]


@pytest.fixture(scope="module")
def gender_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("gender")
    model = root / "gender"
    shutil.copytree(PRETRAINED / "gender", model)
    for extra in ("name_table.npz",):
        (model / extra).unlink(missing_ok=True)
    data = root / "people.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["name", "sex", "count"])
        w.writerows(ROWS)
    section = add_name_table(model, data, any_data=True)
    return model, data, section


def _expected_counts(path):
    """Births per (lower-cased, folded) name and sex, read with the csv module."""
    import unicodedata

    out = {}
    with open(path, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            key = "".join(c for c in unicodedata.normalize("NFKD", row["name"]) if not unicodedata.combining(c))
            out.setdefault(key.lower(), {"F": 0, "M": 0})[row["sex"]] += int(row["count"])
    return out


def test_table_answers_by_the_rule(gender_copy):
    model_dir, data, section = gender_copy
    alpha = section["alpha"]
    table = namemodels.load(model_dir)
    alone = namemodels.load(model_dir, table=False)
    expected = _expected_counts(data)
    assert section["names"] == len(expected) == 4 and section["unit"] == "births"
    assert section["total"] == sum(c for _, _, c in ROWS)
    for name, key in (("Joan", "joan"), ("JOAN", "joan"), (" joan ", "joan"), ("Ann", "ann"), ("Asa", "asa")):
        a = table.predict([name], details=True)[0]
        p_f = math.exp(dict(alone.predict([name], top=None)[0])["F"])
        f, m = expected[key]["F"], expected[key]["M"]
        want_f = (f + alpha * p_f) / (f + m + alpha)
        assert a.source == "data" and a.count == f + m and a.unit == "births"
        assert math.exp(dict(a.top)["F"]) == pytest.approx(want_f, rel=1e-5)
        assert a.label == ("F" if want_f >= 0.5 else "M") and a.probability == pytest.approx(max(want_f, 1 - want_f))
    # an unseen name: exactly the model's answer, and said so
    for name in ("Hinton", "Xavieranna"):
        a = table.predict([name], details=True, top=None)[0]
        assert a.source == "model" and a.count == 0 and a.top == alone.predict([name], top=None)[0]
    # a chunk with known, unknown and bad names: the same answers, in place
    mixed = ["Zed", "Hinton", "4", "joan", "Zed"]
    got = table.predict(mixed, details=True, errors="return")
    assert isinstance(got[2], UsageError)
    assert [(a.source, a.count) for a in got if not isinstance(a, Exception)] == [
        ("data", 5),
        ("model", 0),
        ("data", 40),
        ("data", 5),
    ]
    np.testing.assert_allclose(table.predict_proba(["Joan"]), table.predict_proba(["Zed", "Joan"])[1:], rtol=1e-6)


def test_known_names_skip_the_network(gender_copy):
    model_dir, _, _ = gender_copy
    pred = namemodels.load(model_dir)
    calls = []
    real = pred.backend.logprobs
    pred.backend.logprobs = lambda *a: calls.append(1) or real(*a)
    pred.predict(["Joan", "Zed", "ann"])
    assert not calls
    pred.predict(["Joan", "Hinton"])
    assert calls


def test_min_prob_abstains_with_the_reason(gender_copy):
    model_dir, _, _ = gender_copy
    pred = namemodels.load(model_dir)
    joan = pred.predict(["Joan"], details=True)[0]  # (30 + alpha p) / (40 + alpha): about 0.75
    held = pred.predict(["Joan", "Zed"], details=True, min_prob=joan.probability + 0.01)
    assert held[0].label == "unknown" and "below min_prob" in held[0].reason and held[0].source == "data"
    assert pred.predict(["Joan"], details=True, min_prob=joan.probability)[0].label == joan.label
    with pytest.raises(UsageError, match="min_prob must be a probability"):
        pred.predict(["Joan"], details=True, min_prob=1.5)
    with pytest.raises(UsageError, match="needs details=True"):
        pred.predict(["Joan"], min_prob=0.5)
    assert isinstance(held[1], Answer) and held[1].to_dict()["source"] == "data"


def test_table_is_hash_checked(gender_copy, tmp_path):
    model_dir, _, _ = gender_copy
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    assert config["sha256"][nt.FILE] and config["sha256"]["name_table"]
    raw = bytearray((copy / nt.FILE).read_bytes())
    raw[len(raw) // 2] ^= 1
    (copy / nt.FILE).write_bytes(bytes(raw))
    pred = namemodels.load(copy)
    with pytest.raises(UsageError, match="name_table.npz: the file is damaged"):
        pred.predict(["Joan"])
    config["name_table"]["alpha"] = 1e6  # an edited alpha changes answers: refused
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="name_table section was changed"):
        namemodels.load(copy)


def test_builder_refuses_other_data_and_generators(gender_copy, tmp_path):
    model_dir, data, _ = gender_copy
    with pytest.raises(UsageError, match="not the data this model was trained on"):
        add_name_table(model_dir, data)
    with pytest.raises(UsageError, match="name table is for classifiers"):
        add_name_table(PRETRAINED / "first-names", data)


# ---- the shipped models -------------------------------------------------------------------------------
EIGHT = {"Joan": "F", "Francis": "M", "Eddie": "M", "Shane": "M", "Andy": "M", "Kim": "F", "Robin": "F", "Marion": "F"}


def test_shipped_gender_answers_the_eight_names_from_the_data(shipped_gender):
    answers = shipped_gender.predict(list(EIGHT), details=True)
    assert {a.name: a.label for a in answers} == EIGHT
    assert all(a.source == "data" and a.count > 50000 for a in answers)


def test_shipped_counts_are_the_data(shipped_gender, shared_data):
    counts = {}
    with open(shared_data / "first_names.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["name"] in EIGHT:
                counts.setdefault(row["name"], {})[row["sex"]] = int(row["count"])
    for a in shipped_gender.predict(list(EIGHT), details=True):
        c = counts[a.name]
        assert a.count == sum(c.values())
        assert a.label == max(c, key=c.get)
        assert a.probability == pytest.approx(max(c.values()) / sum(c.values()), abs=1e-4)


# ---- train writes a table of its training part ----------------------------------------------------
def test_train_writes_the_table_of_its_training_lines(classifier_dir, surnames):
    """The names of the training part are answered from the table with their line counts; the held-out
    (test) names, which the model never saw, by the model alone."""
    from namemodels.config import TrainConfig
    from namemodels.data.loader import load as load_data
    from namemodels.data.run_parts import split_parts

    config = json.loads((classifier_dir / "config.json").read_text())
    section = config["name_table"]
    recorded = config["data"]["split"]
    train, _, test = split_parts(load_data(surnames), TrainConfig(split_seed=recorded["seed"], train_on="split"))
    lines = {}
    for lang_file in sorted(surnames.glob("*.txt")):  # line counts read from the files themselves
        for line in lang_file.read_text(encoding="utf-8").splitlines():
            lines[(line.strip().lower(), lang_file.stem)] = lines.get((line.strip().lower(), lang_file.stem), 0) + 1
    train_names = {r.name.lower() for r in train}
    assert section["names"] == len(train_names) and section["unit"] == "lines"
    assert section["total"] == len(train) and config["sha256"]["name_table.npz"]
    pred = namemodels.load(classifier_dir)
    for r in list(train)[:20]:
        a = pred.predict([r.name], details=True)[0]
        assert a.source == "data" and a.count == sum(n for (k, _), n in lines.items() if k == r.name.lower())
    held_out = [r.name for r in test]
    assert held_out and all(a.source == "model" and a.count == 0 for a in pred.predict(held_out, details=True))


def test_name_table_data_leaves_out_the_recorded_test_part(classifier_dir, surnames, tmp_path):
    """`data name-table --data` on a model trained with a test part counts the training and validation
    lines only, so the test names stay unseen for `evaluate`; its training names keep their counts."""
    from namemodels.config import TrainConfig
    from namemodels.data.loader import load as load_data
    from namemodels.data.run_parts import split_parts
    from namemodels.training.name_tables import add_name_table

    recorded = json.loads((classifier_dir / "config.json").read_text())["data"]["split"]
    assert recorded["test"] > 0
    train, valid, test = split_parts(load_data(surnames), TrainConfig(split_seed=recorded["seed"], train_on="split"))
    section = add_name_table(classifier_dir, surnames, alpha=1.0, out=tmp_path / "copy")
    assert section["total"] == len(train) + len(valid)
    pred = namemodels.load(tmp_path / "copy")
    seen = {r.name.lower() for r in list(train) + list(valid)}
    only_test = [r.name for r in test if r.name.lower() not in seen]
    assert only_test and all(a.source == "model" for a in pred.predict(only_test, details=True))
    assert all(a.source == "data" for a in pred.predict([r.name for r in list(valid)[:20]], details=True))


def test_name_table_cv_cuts_the_folds_from_all_the_data(classifier_dir, surnames, tmp_path, monkeypatch):
    """With a recorded test part the table counts fewer lines than the data holds, but --cv's fold parts
    are recomputed from all of it: cut from the smaller set, a fold's held-out part would hold names
    its model trained on."""
    from namemodels.data.loader import load as load_data
    from namemodels.training import name_tables

    class Seen(Exception):
        pass

    def out_of_fold(cv, data_path, keys, lowercase, labels, full=None):
        given.append(full)
        raise Seen

    given: list = []
    monkeypatch.setattr(name_tables, "out_of_fold", out_of_fold)
    with pytest.raises(Seen):
        name_tables.add_name_table(classifier_dir, surnames, cv=tmp_path / "cv", out=tmp_path / "copy")
    assert len(given[0]) == len(load_data(surnames))
    assert not (tmp_path / "copy").exists()  # the failed build left no copy


def test_alpha_from_out_of_fold_probabilities(small_surnames, tmp_path):
    """--cv: alpha is chosen on the names the fold models held out, each with the probabilities of the
    fold model that never saw it."""
    from helpers import FAST, QUIET

    from namemodels.config import TrainConfig
    from namemodels.training.train import train

    for fold in (0, 1):
        train(
            TrainConfig(task="classify", epochs=1, folds=2, fold=fold, train_on="all", **FAST),
            small_surnames,
            tmp_path / "cv" / f"fold-{fold}" / "model",
            **QUIET,
        )
    model = tmp_path / "all"
    train(TrainConfig(task="classify", epochs=1, train_on="all", **FAST), small_surnames, model, **QUIET)
    section = add_name_table(model, small_surnames, cv=tmp_path / "cv")
    assert f"the {section['names']:,} names held out by the 2 fold model(s)" in section["alpha_choice"]["how"]
    from namemodels.training.name_tables import out_of_fold

    keys = namemodels.load(model).table.keys()
    labels = json.loads((model / "config.json").read_text())["labels"]
    logp, held, folds = out_of_fold(tmp_path / "cv", small_surnames, keys, True, labels)
    assert held.all() and folds == 2
    config0 = json.loads((tmp_path / "cv" / "fold-0" / "model" / "config.json").read_text())
    fold0 = namemodels.load(tmp_path / "cv" / "fold-0" / "model", table=False)
    in_fold0 = [
        i
        for i, k in enumerate(keys)
        if fold0.table is not None
        and namemodels.load(tmp_path / "cv" / "fold-0" / "model").predict([k], details=True)[0].source == "model"
    ]
    assert in_fold0 and config0["data"]["split"]["fold"] == 0  # fold 0's held-out names: scored by fold 0's model
    np.testing.assert_allclose(logp[in_fold0], fold0.predict_logproba([keys[i] for i in in_fold0]), atol=1e-5)
    # the temperature: fitted on the same out-of-fold probabilities, weighted by the lines; alpha on the tempered prior
    from namemodels.inference.calibration import fit_temperature

    config = json.loads((model / "config.json").read_text())
    cal = config["calibration"]
    counts = namemodels.load(model).table.rows(np.arange(len(keys)))[0]
    assert "out-of-fold" in cal["how"] and cal["items"] == section["names"]
    assert cal["fitted"] == pytest.approx(fit_temperature(logp, counts), rel=1e-4)
    assert cal["temperature"] == (pytest.approx(cal["fitted"], abs=1e-6) if cal["kept"] else 1.0)
    assert f"tempered by T = {cal['temperature']:.4g}" in section["alpha_choice"]["how"]
    card = (model / "MODEL_CARD.md").read_text()
    assert (f"T = {cal['temperature']:.4g}" if cal["kept"] else "untempered (T = 1") in card
    with pytest.raises(UsageError, match="no finished fold model"):
        add_name_table(model, small_surnames, cv=tmp_path)


# ---- choosing min_prob: accuracy against coverage --------------------------------------------------
def test_coverage_curve_by_hand():
    from namemodels.inference.scoring import coverage_curve

    prob = [0.55, 0.65, 0.95, 0.99]
    right = [0, 1, 1, 0.5]  # the last answer is right for half of its births
    weight = [10, 10, 20, 60]
    curve = {c["min_prob"]: c for c in coverage_curve(prob, right, weight, steps=(0.5, 0.6, 0.96, 0.995))}
    assert curve[0.5]["coverage"] == 1.0 and curve[0.5]["accuracy"] == pytest.approx((10 + 20 + 30) / 100)
    assert curve[0.6]["coverage"] == 0.9 and curve[0.6]["accuracy"] == pytest.approx(60 / 90)
    assert curve[0.96]["coverage"] == 0.6 and curve[0.96]["accuracy"] == pytest.approx(0.5)
    assert curve[0.995]["coverage"] == 0.0 and curve[0.995]["accuracy"] is None


def test_evaluate_reports_coverage(classifier_dir, surnames, capsys, tmp_path):
    from namemodels.cli import main

    assert (
        main(
            [
                "evaluate",
                str(classifier_dir),
                "--data",
                str(surnames),
                "--json",
                "--coverage-plot",
                str(tmp_path / "c.png"),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    curve = result["coverage"]
    assert [c["min_prob"] for c in curve] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99]
    from namemodels.config import TrainConfig
    from namemodels.data.loader import load as load_data
    from namemodels.data.run_parts import split_parts

    recorded = json.loads((classifier_dir / "config.json").read_text())["data"]["split"]
    test = split_parts(load_data(surnames), TrainConfig(split_seed=recorded["seed"], train_on="split"))[2]
    model = namemodels.load(classifier_dir, table=False)
    proba = model.predict_proba(test.names)
    right = proba.argmax(1) == np.array([model.labels.index(r.label) for r in test])
    for c in curve:  # the same shares and accuracies, computed here from the predictor's probabilities
        keep = proba.max(1) >= c["min_prob"]
        assert c["coverage"] == pytest.approx(keep.mean(), abs=0.02)
        if keep.sum() > 5:
            assert c["accuracy"] == pytest.approx(right[keep].mean(), abs=0.05)
    assert all(a["coverage"] >= b["coverage"] for a, b in zip(curve, curve[1:]))
    assert (tmp_path / "c.png").stat().st_size > 1000


def test_frames_and_dask_carry_the_evidence_and_abstain(shipped_gender):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"first": ["Joan", "Kim", "Zorblax", None]})
    out = shipped_gender.predict_frame(df, "first", kind="gender", min_prob=0.9)
    assert list(out.columns) == ["first", "label", "probability", "source", "count", "reason", "error"]
    assert out["label"].tolist()[:3] == ["F", "unknown", "M"] and out["source"].tolist()[:3] == [
        "data",
        "data",
        "model",
    ]
    assert str(out["count"].dtype) == "Int64" and out["count"].tolist()[2] == 0 and out["count"].isna().tolist()[3]
    assert "below min_prob 0.9" in out["reason"][1] and out["reason"].isna()[0]
    dd = pytest.importorskip("dask.dataframe")
    import dask

    import namemodels.dask

    lazy = namemodels.dask.gender(dd.from_pandas(df, npartitions=2), "first", min_prob=0.9)
    with dask.config.set(scheduler="synchronous"):
        got = lazy.compute()
    assert list(got.columns) == list(out.columns) and got["label"].tolist()[:3] == out["label"].tolist()[:3]
    assert got["count"].tolist()[:3] == out["count"].tolist()[:3]


def test_a_missing_table_file_is_a_usage_error(gender_copy, tmp_path, capsys):
    model_dir, _, _ = gender_copy
    copy = tmp_path / "m"
    shutil.copytree(model_dir, copy)
    (copy / nt.FILE).unlink()
    with pytest.raises(UsageError, match="name table that cannot be read.*namemodels data name-table"):
        namemodels.load(copy).predict(["Joan"])
    from namemodels.cli import main

    assert main(["gender", "--model", str(copy), "Joan"]) == 2
    err = capsys.readouterr().err
    assert "cannot be read" in err and "Traceback" not in err


def test_out_of_fold_refuses_folds_that_held_out_lines(tmp_path):
    """A line split's test part shares names with its training part: its model has seen them, so its
    probabilities are not out-of-fold for the name table, and --cv with such a run is refused."""
    from helpers import make_surnames

    from namemodels.training.name_tables import out_of_fold

    data = make_surnames(tmp_path, per_class=5)
    fold = tmp_path / "cv" / "fold-0" / "model"
    fold.mkdir(parents=True)
    split = {"seed": 0, "grouped": False, "train_on": "all", "folds": 5, "fold": 0}
    (fold / "config.json").write_text(json.dumps({"data": {"split": split}}))
    with pytest.raises(UsageError, match="hold out lines, not names"):
        out_of_fold(tmp_path / "cv", data, ["x"], True, ["English"])
