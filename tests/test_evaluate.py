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
    assert once["accuracy_ci95"] == pytest.approx([p - half, p + half], abs=0.01)   # the binomial interval
    # each name on ten lines: the same accuracy and the same interval (the copies add no evidence)
    tenfold = name_level_accuracy(np.repeat(correct, 10), [k for k in keys for _ in range(10)])
    assert tenfold["accuracy_unique"] == pytest.approx(once["accuracy_unique"])
    assert tenfold["accuracy_ci95"] == pytest.approx(once["accuracy_ci95"])
    # one name holding a third of the lines widens the interval of the line accuracy
    lopsided = name_level_accuracy(np.r_[correct, np.zeros(200, bool)], keys + [("big", "A")] * 200)
    assert lopsided["accuracy_unique"] == pytest.approx(correct.sum() / 401)
    assert np.diff(lopsided["accuracy_ci95"])[0] > 2 * np.diff(once["accuracy_ci95"])[0]


def test_evaluate_reports_accuracy_over_unique_names(classifier_dir, surnames, capsys):
    from namemodels.data import load as load_data
    assert main(["evaluate", str(classifier_dir), "--data", str(surnames), "--split", "all", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    records = load_data(surnames).records
    pred = load(classifier_dir).predict([r.name for r in records], top=1)
    right = {}
    for r, top in zip(records, pred):
        right.setdefault((r.name, r.label), []).append(top[0][0] == r.label)
    assert m["accuracy_unique"] == pytest.approx(np.mean([np.mean(v) for v in right.values()]))
    lo, hi = m["accuracy_ci95"]
    assert lo <= m["accuracy"] <= hi
    assert main(["evaluate", str(classifier_dir), "--data", str(surnames), "--split", "all"]) == 0
    assert "95% interval from resampling whole names" in capsys.readouterr().out
