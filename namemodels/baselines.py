"""Honest baselines: character n-grams + logistic regression for the classifiers, and uniform,
unigram and add-k smoothed character n-gram models for the generators.

``evaluate --baseline`` uses the fixed ones (:func:`baseline_metrics`); cross-validation
(:mod:`namemodels.training.cv`) tunes each on a validation part of its training folds
(:func:`classifier_baselines`, :func:`lm_baselines`) and scores it with the model's own metrics."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # annotations only: the baselines load no data themselves
    from .data.records import NameDataset
    from .tokenizer import CharTokenizer

# n-gram logistic regression variants that cross-validation compares: name -> (analyzer, longest n-gram).
# "char" counts n-grams across the whole name; "char_wb" pads each word with spaces first.
NGRAM_LR_VARIANTS: dict[str, tuple[str, int]] = {
    "tf-idf char 1-4": ("char", 4),
    "tf-idf char 1-5": ("char", 5),
    "tf-idf char_wb 1-4": ("char_wb", 4),
    "tf-idf char_wb 1-5": ("char_wb", 5),
}
C_GRID = (1.0, 10.0, 100.0)  # inverse regularisation strengths tried, weakest last
ADD_K_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # add-k smoothing constants tried
LM_ORDERS = (3, 4, 5)  # n-gram orders of the add-k models


def _tfidf(analyzer: str, max_n: int) -> Any:  # a TfidfVectorizer
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer=analyzer, ngram_range=(1, max_n), lowercase=True, sublinear_tf=True)


def ngram_classifier(
    train_names: Sequence[str],
    train_y: Sequence[int] | np.ndarray,
    max_n: int = 3,
    binary: bool = False,
    sample_weight: np.ndarray | None = None,
    analyzer: str = "char_wb",
    C: float = 10.0,
) -> Any:
    """Fit a TF-IDF of character 1..max_n-grams + logistic regression (a scikit-learn pipeline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(_tfidf(analyzer, max_n), LogisticRegression(max_iter=2000, C=C))
    model.fit(list(train_names), list(train_y), logisticregression__sample_weight=sample_weight)
    return model


def class_proba(model: Any, names: Sequence[str], classes: int) -> np.ndarray:
    """``(len(names), classes)`` probabilities; a class the model never saw in training gets ~0."""
    proba = np.full((len(names), classes), 1e-12)
    proba[:, model.classes_] = model.predict_proba(list(names))
    return proba


def tuned_ngram_classifier(
    variant: str,
    fit: tuple[Sequence[str], Sequence[int]],
    valid: tuple[Sequence[str], Sequence[int]],
    refit: tuple[Sequence[str], Sequence[int]],
    score: Callable[[np.ndarray, np.ndarray], float],
    classes: int,
) -> tuple[Any, float, dict[float, float]]:
    """One of :data:`NGRAM_LR_VARIANTS` with C chosen from :data:`C_GRID` by ``score(y, proba)`` on
    ``valid`` after fitting on ``fit``, then refitted on ``refit`` (names, integer labels below ``classes``)
    with that C.
    Returns ``(model, C, {C: validation score})``."""
    from sklearn.linear_model import LogisticRegression

    analyzer, max_n = NGRAM_LR_VARIANTS[variant]
    vec = _tfidf(analyzer, max_n).fit(list(fit[0]))
    x_fit, x_valid = vec.transform(list(fit[0])), vec.transform(list(valid[0]))
    lr = LogisticRegression(max_iter=2000, warm_start=True)  # each C starts from the previous solution
    scores = {}
    for C in C_GRID:
        lr.set_params(C=C).fit(x_fit, list(fit[1]))
        proba = np.full((len(valid[0]), classes), 1e-12)
        proba[:, lr.classes_] = lr.predict_proba(x_valid)
        scores[C] = float(score(np.asarray(valid[1]), proba))
    best = max(C_GRID, key=lambda c: scores[c])  # ties: the first, i.e. the strongest regularisation
    return ngram_classifier(refit[0], refit[1], max_n, analyzer=analyzer, C=best), best, scores


def classifier_baselines(
    task: str,
    labels: list[str],
    fit: NameDataset,
    valid: NameDataset,
    refit: NameDataset,
    test: NameDataset,
    variants: Sequence[str] = tuple(NGRAM_LR_VARIANTS),
) -> dict[str, dict]:
    """Every n-gram LR variant, C tuned on ``valid`` (fitted on ``fit``) and refitted on ``refit``,
    scored on ``test`` (all :class:`~namemodels.data.records.NameDataset`) with the model's metrics:
    ``{variant: {"model": description, "C": C, metric: value, ...}}``."""
    from sklearn.metrics import roc_auc_score

    from .evaluate import classification_metrics, gender_metrics

    if task == "classify":
        index = {label: i for i, label in enumerate(labels)}
        target = lambda ds: [index[r.label] for r in ds.records]  # noqa: E731
        score = lambda y, p: float(np.mean(p.argmax(1) == y))  # noqa: E731  validation accuracy
    else:
        target = lambda ds: (np.array(ds.female_shares) >= 0.5).astype(int).tolist()  # noqa: E731
        score = lambda y, p: float(roc_auc_score(y, p[:, 1])) if len(set(y)) == 2 else 0.0  # noqa: E731
    out = {}
    for variant in variants:
        model, C, scores = tuned_ngram_classifier(
            variant,
            (fit.names, target(fit)),
            (valid.names, target(valid)),
            (refit.names, target(refit)),
            score,
            max(2, len(labels)),
        )
        if task == "classify":
            proba = class_proba(model, test.names, len(labels))
            metrics = classification_metrics(np.array(target(test)), np.log(proba), labels, test.names)
        else:
            metrics = gender_metrics(
                class_proba(model, test.names, 2)[:, 1], np.array(test.female_shares), np.array(test.weights)
            )
        out[variant] = {
            "model": f"{variant}-grams + logistic regression, C = {C:g} (tuned on "
            f"{', '.join(f'{c:g}' for c in C_GRID)})",
            "C": C,
            **metrics,
        }
    return out


def unigram_nll(train_names: Sequence[str], test_names: Sequence[str], tok: CharTokenizer) -> dict[str, float]:
    """Mean NLL (nats/token) of a unigram character model with add-one smoothing, over characters
    plus the end marker (``nll``, ``perplexity``), and of the uniform model over the same symbols
    (``uniform_nll``, ``uniform_perplexity``)."""
    counts: Counter[int] = Counter()
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
    return {
        "nll": unigram,
        "perplexity": math.exp(unigram),
        "uniform_nll": math.log(symbols),
        "uniform_perplexity": float(symbols),
    }


class AddKNgram:
    """A character n-gram model with add-k smoothing over the tokenizer's predictable symbols
    (characters + end marker): ``P(t | h) = (c(h, t) + k) / (c(h) + k V)``, ``h`` the previous
    ``order - 1`` tokens (``<bos>`` before the name), trained on names."""

    def __init__(self, tok: CharTokenizer, order: int, names: Sequence[str]) -> None:
        self.tok, self.order, self.symbols = tok, order, len(tok) - 3
        self.joint: Counter = Counter()
        self.context: Counter = Counter()
        for h, t in self._events(names):
            self.joint[h + (t,)] += 1
            self.context[h] += 1

    def _events(self, names: Sequence[str]) -> Iterator[tuple[tuple[int, ...], int]]:
        pad = (self.tok.bos_id,) * (self.order - 1)
        for n in names:
            seq = pad + tuple(self.tok.encode(n, eos=True))
            for i in range(len(pad), len(seq)):
                yield seq[i - len(pad) : i], seq[i]

    def counts(self, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(c(h, t), c(h))`` of every token of ``names``."""
        pairs = [(self.joint[h + (t,)], self.context[h]) for h, t in self._events(names)]
        arr = np.array(pairs, dtype=np.float64).reshape(-1, 2)
        return arr[:, 0], arr[:, 1]

    def nll(self, names: Sequence[str], k: float) -> float:
        """Mean negative log-likelihood in nats per token."""
        joint, context = self.counts(names)
        return self._nll(joint, context, k)

    def _nll(self, joint: np.ndarray, context: np.ndarray, k: float) -> float:
        return float(-np.mean(np.log((joint + k) / (context + k * self.symbols)))) if len(joint) else float("nan")

    def tune(self, names: Sequence[str]) -> tuple[float, dict[float, float]]:
        """The k of :data:`ADD_K_GRID` with the lowest NLL on ``names``, and every k's NLL."""
        joint, context = self.counts(names)
        scores = {k: self._nll(joint, context, k) for k in ADD_K_GRID}
        return min(ADD_K_GRID, key=lambda k: scores[k]), scores


def lm_baselines(
    fit: NameDataset,
    valid: NameDataset,
    refit: NameDataset,
    test: NameDataset,
    tok: CharTokenizer,
    orders: Sequence[int] = LM_ORDERS,
) -> dict[str, dict]:
    """Uniform, unigram (add-one) and add-k n-gram models (k tuned on ``valid`` after counting ``fit``,
    then counted again on ``refit``), scored on ``test``: ``{name: {"model": ..., "nll": ..., "perplexity": ...}}``."""
    uni = unigram_nll(refit.names, test.names, tok)
    out = {
        "uniform": {
            "model": f"uniform over {uni['uniform_perplexity']:.0f} symbols",
            "nll": uni["uniform_nll"],
            "perplexity": uni["uniform_perplexity"],
        },
        "unigram": {
            "model": "unigram characters (add-one smoothing)",
            "nll": uni["nll"],
            "perplexity": uni["perplexity"],
        },
    }
    for order in orders:
        k, _ = AddKNgram(tok, order, fit.names).tune(valid.names)
        nll = AddKNgram(tok, order, refit.names).nll(test.names, k)
        out[f"add-k {order}-gram"] = {
            "model": f"character {order}-grams, add-k smoothing, k = {k:g} (tuned on "
            f"{', '.join(f'{x:g}' for x in ADD_K_GRID)})",
            "k": k,
            "nll": nll,
            "perplexity": math.exp(nll),
        }
    return out


def baseline_metrics(config: dict, train_ds: NameDataset, test_ds: NameDataset, tok: CharTokenizer) -> dict[str, Any]:
    """The task's baseline, trained on ``train_ds`` and scored on ``test_ds`` with the model's metrics."""
    from .evaluate import classification_metrics, gender_metrics

    task = config["task"]
    if task == "classify":
        labels = config["labels"]
        index = {label: i for i, label in enumerate(labels)}
        model = ngram_classifier(train_ds.names, [index[r.label] for r in train_ds.records])
        proba = class_proba(model, test_ds.names, len(labels))
        y = np.array([index[r.label] for r in test_ds.records])
        metrics = classification_metrics(y, np.log(proba), labels, test_ds.names, interval=True)
        return {"model": "char 1-3-gram tf-idf + logistic regression", **metrics}
    if task == "gender":
        model = ngram_classifier(train_ds.names, (np.array(train_ds.female_shares) >= 0.5).astype(int))
        p = model.predict_proba(test_ds.names)[:, 1]
        return {
            "model": "char 1-3-gram tf-idf + logistic regression",
            **gender_metrics(p, np.array(test_ds.female_shares), np.array(test_ds.weights)),
        }
    return {"model": "unigram characters (add-one smoothing)", **unigram_nll(train_ds.names, test_ds.names, tok)}
