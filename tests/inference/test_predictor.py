"""namemodels.inference.predictor on trained models: probabilities against the softmax, thread safety,
generation options and novel names."""

import threading

import numpy as np
import pytest

import namemodels
from namemodels.inference.predictor import load


def test_predictor_matches_softmax_and_is_thread_safe(classifier_dir):
    pred = namemodels.load(classifier_dir)
    names = ["Rossini", "Kawayama", "Ivanovich", "Bianchi"] * 8
    proba = pred.predict_proba(names)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    top = pred.predict(names, top=2)
    assert [t[0][0] for t in top] == [pred.labels[i] for i in proba.argmax(1)]
    results = [None] * 4

    def work(i):
        results[i] = pred.predict_proba(names)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for r in results:
        np.testing.assert_allclose(r, proba, atol=1e-6)


def test_generate_options(lm_dir):
    pred = load(lm_dir)
    a = pred.generate(n=5, seed=3, category="Japanese")
    assert a == pred.generate(n=5, seed=3, category="japanese")
    assert len(a) == 5 and all(n[0].isupper() for n in a)
    assert all(n.lower().startswith("ka") for n in pred.generate(n=5, seed=1, start="Ka"))
    assert len(pred.generate(n=3, seed=2, top_k=1)) == 3
    assert len(pred.generate(n=3, seed=2)) == 3  # without a category
    with pytest.raises(namemodels.errors.UsageError, match="unknown category"):
        pred.generate(n=1, category="Klingon")


def test_generate_novel_rejects_training_names(lm_dir, surnames):
    from namemodels.data.loader import load as load_data

    pred = load(lm_dir)
    known = {n.lower() for n in load_data(surnames).names}
    assert all(pred.is_training_name(n) for n in list(known)[:20])
    assert not any(pred.is_training_name(n) for n in ("Zzyzx", "Qwerty", "Rossiniov"))
    novel = pred.generate(n=10, seed=0, temperature=0.5, novel=True)
    assert len(novel) == 10 and not any(n.lower() in known for n in novel)


def test_one_name_answers_as_in_a_batch():
    """A single name takes Python paths (table search, temperature, ranking); a batch of more than
    eight names NumPy's. The shipped surnames model (calibrated, with a name table) must answer alike."""
    pred = namemodels.load("surnames")
    assert pred.rule.temperature != 1.0 and pred.table
    names = ["Zorblax", "Kwiatkowsky", "Smith", "Nakamura", "Rossi", "Dvořák", "Иванов", "Müller", "Qxvbn", "Lee"]
    batch = pred.predict(names, top=None, details=True)
    for name, together in zip(names, batch):
        (alone,) = pred.predict([name], top=None, details=True)
        assert (alone.label, alone.source, alone.count) == (together.label, together.source, together.count)
        assert [lab for lab, _ in alone.top] == [lab for lab, _ in together.top]
        np.testing.assert_allclose([v for _, v in alone.top], [v for _, v in together.top], rtol=0, atol=1e-6)
    assert {a.source for a in batch} == {"data", "model"}
