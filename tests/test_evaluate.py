"""namemodels.evaluate: language-model NLL against step-by-step decoding, accuracy over unique names and its
interval, and `namemodels evaluate` on a trained classifier."""

import json

import numpy as np
import pytest
import torch

from namemodels.cli import main
from namemodels.evaluate import lm_scores
from namemodels.inference.predictor import load


def test_lm_nll_equals_sum_of_step_logprobs(lm_dir):
    """Teacher-forced NLL of the whole sequence == the sum over one-token decoding steps."""
    pred = load(lm_dir, backend="torch")
    model, tok = pred.backend.model, pred.tokenizer
    names = ["Rossi", "Kawa", "Ivanov"]
    nll, tokens, _ = lm_scores(model, tok, names, categories=[1, 2, 3])
    for i, name in enumerate(names):
        ids = tok.encode(name, bos=True, eos=True)
        state, total = None, 0.0
        for cur, nxt in zip(ids[:-1], ids[1:]):
            logp, state = model.step(torch.tensor([cur]), state, torch.tensor([i + 1]))
            total -= float(logp[0, nxt])
        assert tokens[i] == len(name) + 1
        assert nll[i] == pytest.approx(total, rel=1e-5)


def test_name_level_accuracy_counts_repeated_names_once():
    from namemodels.evaluate import name_level_accuracy

    rng = np.random.default_rng(1)
    correct = rng.random(400) < 0.8
    keys = [(f"n{i}", "A") for i in range(400)]
    once = name_level_accuracy(correct, keys)
    assert once["accuracy_unique"] == pytest.approx(correct.mean())
    p, half = correct.mean(), 1.96 * np.sqrt(correct.mean() * (1 - correct.mean()) / 400)
    assert once["accuracy_ci95"] == pytest.approx([p - half, p + half], abs=0.01)  # the binomial interval
    # each name on ten lines: the same accuracy and the same interval (the copies add no evidence)
    tenfold = name_level_accuracy(np.repeat(correct, 10), [k for k in keys for _ in range(10)])
    assert tenfold["accuracy_unique"] == pytest.approx(once["accuracy_unique"])
    assert tenfold["accuracy_ci95"] == pytest.approx(once["accuracy_ci95"])
    # one name holding a third of the lines widens the interval of the line accuracy
    lopsided = name_level_accuracy(np.r_[correct, np.zeros(200, bool)], keys + [("big", "A")] * 200)
    assert lopsided["accuracy_unique"] == pytest.approx(correct.sum() / 401)
    assert np.diff(lopsided["accuracy_ci95"])[0] > 2 * np.diff(once["accuracy_ci95"])[0]


def test_evaluate_reports_accuracy_over_unique_names(classifier_dir, surnames, capsys):
    from namemodels.data.loader import load as load_data

    assert main(["evaluate", str(classifier_dir), "--data", str(surnames), "--split", "all", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    records = load_data(surnames).records
    pred = load(classifier_dir, table=False).predict([r.name for r in records], top=1)  # the network alone
    right = {}
    for r, top in zip(records, pred):
        right.setdefault((r.name, r.label), []).append(top[0][0] == r.label)
    assert m["accuracy_unique"] == pytest.approx(np.mean([np.mean(v) for v in right.values()]))
    lo, hi = m["accuracy_ci95"]
    assert lo <= m["accuracy"] <= hi
    assert main(["evaluate", str(classifier_dir), "--data", str(surnames), "--split", "all"]) == 0
    assert "95% interval from resampling whole names" in capsys.readouterr().out


def _with_klingon(surnames, tmp_path, lines=7):
    """The ``surnames`` folder plus a Klingon.txt of ``lines`` names: a label no model of the tests knows."""
    import shutil

    d = tmp_path / "names"
    shutil.copytree(surnames, d)
    (d / "Klingon.txt").write_text("".join(f"Qo{'n' * (i + 1)}os\n" for i in range(lines)), encoding="utf-8")
    return d


def test_evaluate_refuses_labels_the_model_does_not_know(classifier_dir, surnames, tmp_path, capsys):
    data = _with_klingon(surnames, tmp_path)
    assert main(["evaluate", str(classifier_dir), "--data", str(data), "--split", "all", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Klingon (7 lines)" in err and "--skip-unknown-labels" in err


def test_evaluate_skip_unknown_labels_reports_the_lines_left_out(classifier_dir, surnames, tmp_path, capsys):
    assert main(["evaluate", str(classifier_dir), "--data", str(surnames), "--split", "all", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    data = _with_klingon(surnames, tmp_path)
    assert (
        main(
            ["evaluate", str(classifier_dir), "--data", str(data), "--split", "all", "--json", "--skip-unknown-labels"]
        )
        == 0
    )
    skipped = json.loads(capsys.readouterr().out)
    assert skipped["left_out"] == {"lines": 7, "labels": {"Klingon": 7}}
    assert skipped["metrics"]["n"] == plain["metrics"]["n"]
    assert skipped["metrics"]["accuracy"] == pytest.approx(plain["metrics"]["accuracy"])
    assert main(["evaluate", str(classifier_dir), "--data", str(data), "--split", "all", "--skip-unknown-labels"]) == 0
    assert "left out: 7 lines whose labels the model does not know: Klingon (7 lines)" in capsys.readouterr().out


def test_evaluate_refuses_data_of_another_task(classifier_dir, surnames, first_names, tmp_path, capsys):
    from helpers import make_model_dir

    gender_dir = make_model_dir(tmp_path / "gender", binary=True)
    # a gender model on language files: no line is F or M (it used to report accuracy and AUC nan, rc 0)
    assert main(["evaluate", str(gender_dir), "--data", str(surnames)]) == 2
    err = capsys.readouterr().err
    assert "does not fit this gender model" in err and "Russian (" in err and "Traceback" not in err
    # a language classifier on first names: no known label at all (it used to end in a ValueError of argmax)
    assert main(["evaluate", str(classifier_dir), "--data", str(first_names)]) == 2
    err = capsys.readouterr().err
    assert "does not fit this classify model" in err and "F (" in err and "Traceback" not in err
    # names without labels
    lines = tmp_path / "names.txt"
    lines.write_text("Rossi\nIvanov\n", encoding="utf-8")
    assert main(["evaluate", str(classifier_dir), "--data", str(lines)]) == 2
    assert "it has no labels" in capsys.readouterr().err


def test_task_metrics_without_a_known_label_is_a_usage_error(classifier_dir, first_names):
    from namemodels.data.loader import load as load_data
    from namemodels.errors import UsageError
    from namemodels.evaluate import evaluate_split
    from namemodels.inference.torch_backend import load_torch_model
    from namemodels.tokenizer import CharTokenizer

    model, config, _ = load_torch_model(str(classifier_dir))
    with pytest.raises(UsageError, match="none of the .* lines has a label the model knows"):
        evaluate_split(config, model, CharTokenizer.from_dict(config["tokenizer"]), load_data(first_names))


def test_a_conditioned_generator_scores_unknown_labels_without_a_category(lm_dir, surnames, tmp_path, capsys):
    """No line is left out: the lines of a label the generator is not conditioned on are scored without a
    category, and the output says how many; --skip-unknown-labels leaves them out instead."""
    data = _with_klingon(surnames, tmp_path)
    assert main(["evaluate", str(lm_dir), "--data", str(data), "--split", "all", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["scored_without_category"] == {"lines": 7, "labels": {"Klingon": 7}}
    assert (
        main(["evaluate", str(lm_dir), "--data", str(data), "--split", "all", "--json", "--skip-unknown-labels"]) == 0
    )
    skipped = json.loads(capsys.readouterr().out)
    assert skipped["left_out"] == {"lines": 7, "labels": {"Klingon": 7}} and "scored_without_category" not in skipped
    assert scored["metrics"]["n"] == skipped["metrics"]["n"] + 7
    assert main(["evaluate", str(lm_dir), "--data", str(data), "--split", "all"]) == 0
    assert "scored without a category: 7 lines" in capsys.readouterr().out
