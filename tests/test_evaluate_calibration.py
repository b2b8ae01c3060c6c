"""namemodels.evaluate's calibration and what-users-see metrics against figures computed by hand on
tiny data, and `namemodels evaluate` on a gender model trained in seconds (--years, the reliability
diagram, model alone vs table alone vs combined)."""

import gzip
import json
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from namemodels.data.records import NameDataset, NameRecord
from namemodels.evaluate import compare_sources, count_metrics, table_alone, target_counts, weighted_macro_f1

P = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
N = np.array([[3.0, 1.0], [0.0, 2.0], [1.0, 1.0]])  # 8 births or lines in all


def test_count_metrics_by_hand():
    m = count_metrics(np.log(P), N, macro_f1=True)
    assert m["weight"] == 8 and m["names"] == 3
    assert m["accuracy"] == pytest.approx((3 + 2 + 1) / 8)
    assert m["log_loss"] == pytest.approx(
        -(3 * math.log(0.8) + math.log(0.2) + 2 * math.log(0.7) + math.log(0.6) + math.log(0.4)) / 8
    )
    # three bins of 15 (confidence 0.8, 0.7, 0.6): weight x |accuracy - confidence|
    assert m["ece"] == pytest.approx(4 / 8 * abs(3 / 4 - 0.8) + 2 / 8 * abs(1 - 0.7) + 2 / 8 * abs(1 / 2 - 0.6))
    # F1 of label 0: tp 4, predicted 6, actual 4 -> 0.8; label 1: tp 2, predicted 2, actual 4 -> 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def test_unanswered_items_count_wrong_and_are_left_out_of_the_loss():
    m = count_metrics(np.log(P), N, answered=np.array([True, False, True]))
    assert m["accuracy"] == pytest.approx((3 + 1) / 8)
    assert m["log_loss"] == pytest.approx(-(3 * math.log(0.8) + math.log(0.2) + math.log(0.6) + math.log(0.4)) / 6)
    assert m["answered_weight"] == pytest.approx(6 / 8)


def test_weighted_macro_f1_is_sklearns_on_the_lines():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=(40, 4)).astype(float)
    pred = rng.integers(-1, 4, size=40)  # -1: no answer
    y_true = np.concatenate([np.full(int(counts[i, c]), c) for i in range(40) for c in range(4)])
    y_pred = np.concatenate([np.full(int(counts[i, c]), pred[i]) for i in range(40) for c in range(4)])
    want = f1_score(y_true, y_pred, labels=range(4), average="macro", zero_division=0)
    assert weighted_macro_f1(pred, counts) == pytest.approx(want)


def test_table_alone_is_the_smoothed_proportions():
    lp = table_alone(np.array([[3.0, 0.0], [1.0, 1.0]]))
    assert np.exp(lp) == pytest.approx(np.array([[3.5 / 4, 0.5 / 4], [0.5, 0.5]]))  # two labels: add 1/2
    lp = table_alone(np.array([[1.0, 0.0, 0.0, 0.0]]))  # one line, four labels
    assert np.exp(lp) == pytest.approx(np.array([[1.25 / 2, 0.25 / 2, 0.25 / 2, 0.25 / 2]]))


def test_compare_sources_parts():
    table = np.array([[5.0, 0.0], [0.0, 0.0], [1.0, 2.0]])  # the middle name is not in the table
    model = np.log(P)
    combined = np.log(np.array([[0.9, 0.1], [0.3, 0.7], [0.4, 0.6]]))  # unseen: the model's answer
    out = compare_sources(N, model, combined, table, subsets={"new": np.array([False, True, True])})
    assert set(out) == {"all", "known", "unseen", "new"}
    assert set(out["all"]) == {"model", "table", "combined"}
    # table alone: majority label of its counts; the unknown name counts wrong
    assert out["all"]["table"]["accuracy"] == pytest.approx((3 + 1) / 8)
    assert out["unseen"]["table"]["accuracy"] == 0 and out["unseen"]["table"]["log_loss"] is None
    assert out["unseen"]["combined"] == out["unseen"]["model"]
    assert out["known"]["table"]["log_loss"] == pytest.approx(
        -(3 * math.log(5.5 / 6) + math.log(0.5 / 6) + math.log(1.5 / 4) + math.log(2.5 / 4)) / 6
    )
    assert out["new"]["combined"]["weight"] == 4
    assert out["all"]["combined"]["accuracy"] == pytest.approx((3 + 2 + 1) / 8)


def test_target_counts_births_and_lines():
    births = NameDataset(
        [NameRecord("Ana", "F", weight=10.0, soft=0.9), NameRecord("Bo", "M", weight=4.0, soft=0.25)],
        ["F", "M"],
        "gender",
    )
    names, counts = target_counts(births, ["M", "F"])
    assert names == ["Ana", "Bo"] and counts == pytest.approx(np.array([[1.0, 9.0], [3.0, 1.0]]))
    lines = NameDataset(
        [
            NameRecord("Li", "Chinese"),
            NameRecord("Li", "Chinese"),
            NameRecord("Li", "Korean"),
            NameRecord("Kim", "Korean"),
            NameRecord("Xx", "Klingon"),
        ],
        ["Chinese", "Korean"],
        "labeled",
    )
    names, counts = target_counts(lines, ["Chinese", "Korean"])
    assert names == ["Li", "Kim"] and counts.tolist() == [[2.0, 1.0], [0.0, 1.0]]


# ------------------------------------------------------------------------------------ end to end

ROWS = {  # name: (first year, {year: (F, M)})
    "Anna": {1990: (50, 0), 2000: (40, 1), 2015: (30, 0)},
    "Maria": {1990: (60, 0), 2015: (20, 0)},
    "Tom": {1990: (0, 70), 2000: (0, 30), 2015: (0, 25)},
    "Jon": {1995: (0, 40), 2015: (1, 12)},
    "Kenna": {2012: (15, 1), 2016: (7, 0)},  # first seen after 2010: not in a table built on <= 2010
    "Dax": {2013: (0, 9)},
}


def _by_year(path):
    lines = ["year,name,sex,count"]
    for name, years in ROWS.items():
        for y, (f, m) in years.items():
            if f:
                lines.append(f"{y},{name},F,{f}")
            if m:
                lines.append(f"{y},{name},M,{m}")
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return path


@pytest.fixture(scope="module")
def temporal(tmp_path_factory, single_thread):
    """A gender model trained in seconds on the births <= 2010 (plus synthetic names), with its name table."""
    from helpers import make_first_names

    from namemodels.config import TrainConfig
    from namemodels.data.births import read_births, write_counts
    from namemodels.training.train import train

    root = tmp_path_factory.mktemp("temporal")
    by_year = _by_year(root / "by_year.csv.gz")
    early = read_births(by_year, until=2010).counts
    extra = make_first_names(root, n=120)
    for line in extra.read_text().splitlines()[1:]:
        name, sex, c = line.split(",")
        early[(name, sex)] = early.get((name, sex), 0) + int(c)
    data = write_counts(root / "early.csv", early)
    model = root / "model"
    train(
        TrainConfig(task="gender", train_on="all", epochs=2, embed=8, hidden=12, batch_size=16, lr=0.02),
        data,
        model,
        progress=False,
        log=lambda m: None,
    )
    return by_year, model


def test_evaluate_years_scores_what_users_see(temporal, tmp_path, capsys):
    from namemodels.cli import main
    from namemodels.inference.name_table import combine
    from namemodels.inference.predictor import load

    by_year, model = temporal
    plot = tmp_path / "rel.png"
    assert (
        main(
            [
                "evaluate",
                str(model),
                "--data",
                str(by_year),
                "--years",
                "2011-2023",
                "--json",
                "--backend",
                "torch",
                "--reliability-plot",
                str(plot),
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["years"]["since"] == 2011 and result["years"]["until"] == 2023
    born = {
        n: (sum(f for y, (f, m) in ys.items() if y >= 2011), sum(m for y, (f, m) in ys.items() if y >= 2011))
        for n, ys in ROWS.items()
    }
    born = {n: fm for n, fm in born.items() if sum(fm)}
    parts = result["sources"]["parts"]
    assert parts["all"]["combined"]["weight"] == pytest.approx(sum(map(sum, born.values())))
    assert parts["unseen"]["combined"]["names"] == 2  # Kenna, Dax: never in the table
    assert parts["first_seen_2011_or_later"]["model"]["names"] == 2
    assert parts["unseen"]["combined"] == parts["unseen"]["model"]  # no temperature: the model's answer
    # the combined answer of a known name is the table's rule on the training counts, computed here
    pred = load(model, backend="torch")
    raw = load(model, backend="torch", table=False).predict_logproba(["Jon"])
    alpha = pred.config["name_table"]["alpha"]
    jon = np.array([[40.0, 0.0]]) if pred.labels == ["M", "F"] else np.array([[0.0, 40.0]])
    want = combine(jon, raw, alpha)
    assert pred.predict_logproba(["Jon"]) == pytest.approx(want, abs=1e-5)
    # Jon's 2015 births: 12 M, 1 F; the combined log-loss over known names includes them
    cal = result["calibration"]
    assert set(cal) >= {"model", "combined", "weighting", "bins"} and cal["weighting"] == "births"
    assert cal["combined"]["log_loss"] == pytest.approx(parts["all"]["combined"]["log_loss"])
    assert sum(b["weight"] for b in cal["model"]["reliability"]) == pytest.approx(1.0)


def test_evaluate_text_output_has_the_tables(temporal, capsys):
    from namemodels.cli import main

    by_year, model = temporal
    assert main(["evaluate", str(model), "--data", str(by_year), "--years", "2011-", "--backend", "torch"]) == 0
    out = capsys.readouterr().out
    assert "what users see" in out and "first_seen_2011_or_later" in out and "calibration (births-weighted" in out


def test_years_is_for_gender_models(classifier_dir, temporal, capsys):
    import helpers

    helpers.fails_one_line(
        capsys, ["evaluate", classifier_dir, "--data", temporal[0], "--years", "2011-2023"], "--years", "gender"
    )
    helpers.fails_one_line(capsys, ["evaluate", temporal[1], "--data", temporal[0], "--years", "2011-2000"], "after")
