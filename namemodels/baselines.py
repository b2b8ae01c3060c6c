"""Honest baselines: character n-grams + logistic regression for classification, and uniform and
unigram character models for perplexity."""
from __future__ import annotations

import math
from collections import Counter
from typing import Dict, Sequence

import numpy as np


def ngram_classifier(train_names: Sequence[str], train_y: Sequence, max_n: int = 3, binary: bool = False,
                     sample_weight=None):
    """Fit a TF-IDF of character 1..max_n-grams (with word boundaries) + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(1, max_n), lowercase=True, sublinear_tf=True),
                          LogisticRegression(max_iter=2000, C=10.0))
    model.fit(list(train_names), list(train_y), logisticregression__sample_weight=sample_weight)
    return model


def unigram_nll(train_names: Sequence[str], test_names: Sequence[str], tok) -> Dict[str, float]:
    """Mean NLL (nats/token) of a unigram character model with add-one smoothing, over characters
    plus the end marker (``nll``, ``perplexity``), and of the uniform model over the same symbols
    (``uniform_nll``, ``uniform_perplexity``)."""
    counts = Counter()
    for n in train_names:
        counts.update(tok.encode(n, eos=True))
    symbols = len(tok) - 3  # characters + <eos>; <pad>, <bos> and <unk> are never predicted
    total = sum(counts.values()) + symbols
    nll, tokens = 0.0, 0
    for n in test_names:
        for t in tok.encode(n, eos=True):
            nll -= math.log((counts[t] + 1) / total)
            tokens += 1
    unigram = nll / max(tokens, 1)
    return {"nll": unigram, "perplexity": math.exp(unigram),
            "uniform_nll": math.log(symbols), "uniform_perplexity": float(symbols)}


def baseline_metrics(config: dict, train_ds, test_ds, tok) -> Dict[str, float]:
    """The task's baseline, trained on ``train_ds`` and scored on ``test_ds`` with the model's metrics."""
    from .evaluate import classification_metrics, gender_metrics
    task = config["task"]
    if task == "classify":
        labels = config["labels"]
        index = {l: i for i, l in enumerate(labels)}
        model = ngram_classifier(train_ds.names, [index[r.label] for r in train_ds.records])
        proba = np.full((len(test_ds), len(labels)), 1e-12)
        proba[:, model.classes_] = model.predict_proba(test_ds.names)
        y = np.array([index[r.label] for r in test_ds.records])
        metrics = classification_metrics(y, np.log(proba), labels, test_ds.names, interval=True)
        return {"model": "char 1-3-gram tf-idf + logistic regression", **metrics}
    if task == "gender":
        model = ngram_classifier(train_ds.names, (np.array(train_ds.female_shares) >= 0.5).astype(int))
        p = model.predict_proba(test_ds.names)[:, 1]
        return {"model": "char 1-3-gram tf-idf + logistic regression",
                **gender_metrics(p, np.array(test_ds.female_shares), np.array(test_ds.weights))}
    return {"model": "unigram characters (add-one smoothing)", **unigram_nll(train_ds.names, test_ds.names, tok)}
