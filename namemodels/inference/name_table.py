"""A classifier's name table: the names of its training data with their counts per label, and the one
rule that combines those counts with the model. NumPy only (a leaf module: the predictor, bulk scoring
and the table builder all use this rule, and nothing else computes it).

**The rule.** For a name whose counts are ``n = (n_1 .. n_C)`` (births per sex for the gender model,
lines per language for the surnames model; ``N = n_1 + ... + n_C``) and whose model probabilities
are ``p = (p_1 .. p_C)``, the answer is the posterior mean under a Dirichlet prior of strength
``alpha`` centred on the model::

    P(label c) = (n_c + alpha * p_c) / (N + alpha)

A name with many counts follows its data, a rare name leans on the model, and a name not in the
table (``N = 0``) gets exactly the model's answer. ``alpha`` (> 0, in births or lines) is chosen by
cross-validation on held-out counts (:func:`choose_alpha`) and stored in ``config.json`` under
``name_table.alpha``.

**The file** ``name_table.npz`` (a NumPy ``.npz``: a zip of ``.npy`` files, ``names`` and ``counts``
deflated, ``logp`` stored; no pickle: read it with ``numpy.load(path, allow_pickle=False)``, or any zip
reader and the ``.npy`` format) holds three arrays:

* ``names``: ``uint8`` -- the distinct name keys, sorted by their bytes, each followed by ``\\n``
  (one UTF-8 blob; the keys are ASCII). A key is the name as the model reads it: folded and checked by
  :func:`namemodels.text.check_name` (accents folded, white space stripped and inner runs collapsed),
  then lower-cased when the model's tokenizer lower-cases (``tokenizer.lowercase`` in ``config.json``).
* ``counts``: ``uint32 (names, labels)`` -- the counts of each name, columns in the order of
  ``config.json``'s ``labels``.
* ``logp``: ``float32 (names, labels)`` -- the model's natural-log probabilities of each name,
  computed once when the table was built, so that a known name needs no network call. Another runtime
  may use them or run the model itself: both give ``p`` above.

``config.json`` describes the table under ``name_table`` (``file``, ``format``, ``names``, ``unit``,
``alpha`` and how it was chosen, the data's path and SHA-256) and records the file's SHA-256 under
``sha256`` like the weights (:mod:`namemodels.integrity`), checked when the table is first read.

**Beyond the counts** (:class:`Rule`, the whole answer, in this order; each step optional):

1. *Calibration*: the network's log-probabilities are tempered first,
   ``p = softmax(logp / T)`` (:func:`namemodels.inference.calibration.temper`), ``T`` from
   ``config.json``'s ``calibration.temperature`` (1 without one), for every name, known or not.
2. *The name's counts*: ``P_all = (n + alpha p) / (N + alpha)``, as above. A name typed with a German
   umlaut (a-, o-, u-umlaut) is also looked up written the German way, ``ae``, ``oe``, ``ue``
   (:data:`RESPELLINGS`; ``Müller`` -> ``Mueller``): where that spelling is a key too, ``n`` is the sum
   of the two rows (the training files write the same name both ways, and folding alone reads
   ``Müller`` as ``Muller``). ``p`` is always the network's answer for the name as typed, folded.
3. *Recent usage* (a table built with ``--recent``): a second array ``recent`` holds each name's
   counts in a span of years (births per sex since ``since``), and the rule nests:
   ``P = (r + beta P_all) / (R + beta)``, ``beta`` cross-validated like ``alpha`` (:func:`choose_beta`).
4. *Marked letters* (a likelihood ratio, naive Bayes on the letters): the name as typed (NFC,
   lower-cased) is searched for the marked Latin letters of ``name_table.letters`` (u-umlaut, e-acute, ...:
   ``counts``, ``m_c(l)`` = the lines of label ``c`` in the training files that hold letter ``l``, counted
   when the table was built). ``A`` is the set of labels whose lines hold any marked letter at all, with
   ``L_c`` their lines (``letters.lines``); the other labels' data (folded or transliterated at the source) say
   nothing about accents and stay neutral. For each distinct marked letter ``l`` of the name, with the
   pooled rate ``q(l) = sum_A m_c(l) / sum_A L_c``::

       rate_c(l) = (m_c(l) + k q(l)) / (L_c + k)   for c in A,      q(l) otherwise
       P(c) <- P(c) * prod_l rate_c(l) / q(l),  then renormalised

   ``k = letters.k`` (in lines, cross-validated leaving one line out, :func:`choose_smoothing`). Letters
   not in the training lines (r-caron in a table without it) are ignored.
5. *Scripts*: a name written in a script of :data:`SCRIPTS` (Han, Hangul, kana, Cyrillic, Greek, Arabic)
   is answered only among the labels that write names in that script, where the model has them: the
   answer is restricted to those labels and renormalised (several scripts: the labels common to all;
   none in common, or none the model has: no restriction).

ASCII names skip steps 4 and 5; a model without calibration, recent counts or letters skips those steps.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..text import check_name
from .calibration import temper64, temper_row

__all__ = [
    "FILE",
    "FORMAT",
    "SECTION",
    "name_key",
    "combine",
    "held_out_loss",
    "choose_alpha",
    "choose_beta",
    "choose_smoothing",
    "letter_log_ratio",
    "ALPHA_GRID",
    "SMOOTHING_GRID",
    "write_table",
    "NameTable",
    "SCRIPTS",
    "scripts_in",
    "script_labels",
    "marked_letters",
    "letters_in",
    "restrict",
    "RESPELLINGS",
    "respelled",
    "Rule",
]

FILE = "name_table.npz"
FORMAT = 1
SECTION = "name_table"  # the config.json section that describes the table
ALPHA_GRID = tuple(float(f"{a:.3g}") for a in np.logspace(-2, 4, 25))  # 0.01 .. 10,000, four per decade
SMOOTHING_GRID = tuple(float(f"{a:.3g}") for a in np.logspace(-2, 6, 33))  # k: 0.01 .. 1,000,000 lines
SMALL = 64  # a chunk with at most this many names is looked up by binary search, not a dict


def name_key(folded: str, lowercase: bool) -> str:
    """The table's key for a name already folded (:func:`namemodels.text.check_name` or, for data,
    :func:`namemodels.text.ascii_fold`): inner runs of white space collapsed, stripped, lower-cased
    when the model lower-cases."""
    key = " ".join(folded.split())
    return key.lower() if lowercase else key


def combine(counts: np.ndarray, logp: np.ndarray, alpha: float) -> np.ndarray:
    """The rule: ``log((n + alpha * p) / (N + alpha))`` row by row, with ``p = exp(logp)``; a row
    whose counts are all zero is ``logp`` itself (the model's answer, unchanged). ``counts``:
    ``(names, labels)``; ``logp``: the model's natural-log probabilities, same shape; ``alpha > 0``.
    Returns float32 log-probabilities."""
    return _combine(counts, logp, alpha).astype(np.float32)


def _combine(counts: np.ndarray, logp: np.ndarray, alpha: float) -> np.ndarray:
    """:func:`combine` in float64 (the steps of :class:`Rule` chain in float64 and round once)."""
    if not alpha > 0:
        raise ValueError(f"alpha must be above 0, got {alpha!r}")
    n = np.asarray(counts, np.float64)
    lp = np.asarray(logp, np.float64)
    total = n.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):  # a label ruled out (p = 0) with no count stays at log 0 = -inf
        post = np.log((n + alpha * np.exp(lp)) / (total + alpha))
    return np.where(total > 0, post, lp)


def held_out_loss(train: np.ndarray, test: np.ndarray, logp: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """For each alpha: the log-loss per held-out count (``-sum(test * log P) / sum(test)``, ``P`` the
    rule applied to the ``train`` counts). All arrays ``(names, labels)``."""
    weight = test.sum()
    out = []
    for a in alphas:
        out.append(-float((test * combine(train, logp, a).astype(np.float64)).sum()) / max(float(weight), 1.0))
    return np.array(out)


def _halved_loss(
    counts: np.ndarray, score: Callable[[np.ndarray, np.ndarray], np.ndarray], size: int, repeats: int, seed: int
) -> np.ndarray:
    """The cross-validation of :func:`choose_alpha` and :func:`choose_beta`: each count split in two at
    random (every birth or line to one half with probability 1/2, a binomial draw), ``score(train,
    test)`` (a loss per grid value, ``size`` of them) taken both ways round, ``repeats`` times; the mean."""
    rng = np.random.default_rng(seed)
    loss = np.zeros(size)
    for _ in range(repeats):
        half = rng.binomial(counts, 0.5)
        rest = counts - half
        for train, test in ((half, rest), (rest, half)):
            loss += score(train, test)
    return loss / (2 * repeats)


def _best(key: str, grid: Sequence[float], loss: np.ndarray, repeats: int, seed: int, split: str) -> tuple[float, dict]:
    """The grid value of least ``loss`` and the report that ``config.json`` keeps of the choice."""
    report = {key: [float(v) for v in grid], "loss": [round(float(v), 6) for v in loss]}
    return float(grid[int(np.argmin(loss))]), {**report, "repeats": repeats, "seed": seed, "split": split}


def choose_alpha(
    counts: np.ndarray, logp: np.ndarray, alphas: Sequence[float] = ALPHA_GRID, repeats: int = 5, seed: int = 0
) -> tuple[float, dict]:
    """Cross-validate alpha on held-out counts: each count is split in two at random (every birth or
    line goes to one half with probability 1/2, a binomial draw), the rule is applied to one half and
    scored by the log-loss of the other half's counts, both ways round, ``repeats`` times. Returns the
    alpha with the lowest mean loss and a report (``alphas``, ``loss``, ``repeats``, ``split``)."""
    counts = np.asarray(counts, np.int64)
    loss = _halved_loss(counts, lambda fit, test: held_out_loss(fit, test, logp, alphas), len(alphas), repeats, seed)
    return _best(
        "alphas",
        alphas,
        loss,
        repeats,
        seed,
        "each count split in two halves (binomial, p = 1/2); the rule on one half "
        "scored by the log-loss of the other half's counts, both ways round",
    )


def choose_beta(
    recent: np.ndarray,
    counts: np.ndarray,
    logp: np.ndarray,
    alpha: float,
    betas: Sequence[float] = ALPHA_GRID,
    repeats: int = 5,
    seed: int = 0,
) -> tuple[float, dict]:
    """Cross-validate beta, the strength of ``P_all`` (the rule on all counts) as the prior of the recent
    counts: as :func:`choose_alpha`, each recent count is split in two at random; the nested rule
    ``(r_half + beta * P_all) / (R_half + beta)`` is scored by the log-loss of the other half, where
    ``P_all`` is computed from all counts *less that held-out half* (the held-out births are part of
    the all-years counts, so leaving them in would let the prior see its test). ``recent``, ``counts``,
    ``logp`` (the prior's log-probabilities, tempered): ``(names, labels)``; ``recent <= counts``."""
    recent, counts = np.asarray(recent, np.int64), np.asarray(counts, np.int64)
    if (recent > counts).any():
        raise ValueError("choose_beta: a recent count exceeds the name's count over all years")

    def score(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        return held_out_loss(train, test, _combine(counts - test, logp, alpha), betas)

    return _best(
        "betas",
        betas,
        _halved_loss(recent, score, len(betas), repeats, seed),
        repeats,
        seed,
        "each recent count split in two halves (binomial, p = 1/2); the nested rule on "
        "one half, its prior P_all from all counts less the other half, scored by "
        "the log-loss of the other half, both ways round",
    )


def letter_log_ratio(m: np.ndarray, lines: np.ndarray, k: float) -> np.ndarray:
    """Step 4's factor, in natural logs: ``sum_l log(rate_c(l) / q(l))`` per label, for the marked letters
    ``l`` whose counts are the rows of ``m`` (``(letters, labels)``: lines of each label holding the letter)
    and ``lines`` (``(labels,)``: ``L_c``, 0 for the labels outside ``A``, which get 0 -- a factor of 1).
    ``q(l) = sum_c m_c(l) / sum_A L_c``; ``rate_c(l) = (m_c(l) + k q(l)) / (L_c + k)`` in ``A``. A letter
    with no line (``q = 0``) is skipped. float64, ``(labels,)``."""
    if not k > 0:
        raise ValueError(f"k must be above 0, got {k!r}")
    m = np.atleast_2d(np.asarray(m, np.float64))
    lines = np.asarray(lines, np.float64)
    inside = lines > 0
    out = np.zeros(lines.shape[0])
    total = lines[inside].sum()
    for row in m:
        seen = row.sum()
        if not seen > 0 or not total > 0:
            continue
        q = seen / total
        out[inside] += np.log((row[inside] + k * q) / (lines[inside] + k)) - np.log(q)
    return out


def _log_normalise(lp: np.ndarray) -> np.ndarray:
    """``lp - log sum exp(lp)`` over the last axis (``-inf`` entries stay ``-inf``)."""
    top = np.max(lp, axis=-1, keepdims=True)
    return lp - (top + np.log(np.exp(lp - top).sum(axis=-1, keepdims=True)))


def choose_smoothing(
    held: Sequence[tuple[int, Sequence[str]]],
    prior: np.ndarray,
    letters: dict[str, np.ndarray],
    lines: np.ndarray,
    grid: Sequence[float] = SMOOTHING_GRID,
) -> tuple[float | None, dict]:
    """Cross-validate the marked letters' smoothing ``k`` (step 4 of :class:`Rule`), leaving one line out
    at a time: each training line that holds marked letters (``held``: its label's index and its distinct
    letters) is answered by the letters' ratio computed from the other lines -- its letters' counts less
    one for its label, ``L`` less one for its label, ``A`` the labels that still have a marked line (a
    letter no other line holds is skipped) -- times ``prior`` (that line's row: the log-probabilities of
    its name, renormalised after the factor), and scored by the log-loss of its label. ``letters``: each
    letter's lines per label (all lines, ``held`` among them); ``lines``: each label's lines (``L_c``,
    all labels). Returns the best ``k`` (None when no line shares a letter with another) and a report
    (loss and accuracy per ``k``, and without letters)."""
    if not held:
        return None, {"lines": 0}
    lines = np.asarray(lines, np.float64)
    prior = np.asarray(prior, np.float64)
    y = np.array([label for label, _ in held], np.int64)
    loss, right = np.zeros(len(grid)), np.zeros(len(grid))
    shared = False
    per_label = np.zeros(len(lines))  # the letters' counts summed: > 0 for the labels of A
    for row in letters.values():
        per_label += np.asarray(row, np.float64)
    for i, (label, found) in enumerate(held):
        m = np.array([letters[c] for c in found], np.float64).reshape(len(found), -1)
        m[:, label] -= 1
        rest = per_label.copy()
        rest[label] -= len(found)  # this line's letters leave its label's total
        inside = rest > 0  # A less this line: the labels with another marked line
        L = np.where(inside, lines, 0.0)
        L[label] = max(L[label] - 1, 0.0) if inside[label] else 0.0
        m = m[m.sum(axis=1) > 0]  # letters no other line holds: skipped
        shared = shared or len(m) > 0
        for g, k in enumerate(grid):
            lp = _log_normalise(prior[i] + (letter_log_ratio(m, L, k) if len(m) else 0.0))
            loss[g] -= lp[label]
            right[g] += int(np.argmax(lp)) == label
    if not shared:
        return None, {"lines": len(held), "note": "no line shares a marked letter with another line"}
    loss /= len(held)
    best = int(np.argmin(loss))
    plain = _log_normalise(prior)
    return float(grid[best]), {
        "k": [float(k) for k in grid],
        "loss": [round(float(v), 6) for v in loss],
        "accuracy": [round(float(v) / len(held), 6) for v in right],
        "lines": len(held),
        "loss_without_letters": round(-float(plain[np.arange(len(y)), y].mean()), 6),
        "accuracy_without_letters": round(float((plain.argmax(axis=1) == y).mean()), 6),
        "split": "leave one line out: each line with marked letters answered by the letters' ratio from the other "
        "lines (its letters' counts, its label's lines and A without it) times its name's probabilities, "
        "scored by the log-loss of its label",
    }


# ---- scripts and marked letters (the name as typed) --------------------------------------------------
# Each script: its code point ranges (inclusive) and the labels that write names in it (Korean names
# are written in Hangul, so Han names are Chinese or Japanese). Applied only to the labels a model has.
SCRIPTS: tuple[tuple[str, tuple[tuple[int, int], ...], tuple[str, ...]], ...] = (
    (
        "Han",
        (
            (0x2E80, 0x2FDF),
            (0x3005, 0x3005),
            (0x3007, 0x3007),
            (0x3021, 0x3029),
            (0x3400, 0x4DBF),
            (0x4E00, 0x9FFF),
            (0xF900, 0xFAFF),
            (0x20000, 0x323AF),
        ),
        ("Chinese", "Japanese"),
    ),
    ("Hangul", ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xFFA0, 0xFFDC)), ("Korean",)),
    (
        "Kana",
        ((0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F), (0x1B000, 0x1B16F)),
        ("Japanese",),
    ),
    ("Cyrillic", ((0x0400, 0x052F), (0x1C80, 0x1C8F), (0x2DE0, 0x2DFF), (0xA640, 0xA69F)), ("Russian",)),
    ("Greek", ((0x0370, 0x03FF), (0x1F00, 0x1FFF)), ("Greek",)),
    ("Arabic", ((0x0600, 0x06FF), (0x0750, 0x077F), (0x0870, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)), ("Arabic",)),
)


# Letters that a name's own language also writes as two (German: Müller and Mueller are one name): the
# name typed with them is looked up both ways (Rule step 2). Keys are NFC characters.
RESPELLINGS = {"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}


def respelled(typed: str) -> str | None:
    """The name as typed (NFC) with each letter of :data:`RESPELLINGS` written out (``Müller`` ->
    ``Mueller``), folded and checked as a name is (:func:`namemodels.text.check_name`); None when it
    has none of those letters, or when written out it is no valid name (each letter grows by one: a
    name at the length limit)."""
    nfc = unicodedata.normalize("NFC", typed)
    if not any(ch in RESPELLINGS for ch in nfc):
        return None
    try:
        return check_name("".join(RESPELLINGS.get(ch, ch) for ch in nfc))
    except UsageError:
        return None


def scripts_in(text: str) -> list[str]:
    """The scripts of :data:`SCRIPTS` that ``text``'s characters belong to, in the table's order."""
    found = set()
    for ch in text:
        c = ord(ch)
        if c < 0x370:
            continue
        for script, ranges, _ in SCRIPTS:
            if any(lo <= c <= hi for lo, hi in ranges):
                found.add(script)
                break
    return [s for s, _, _ in SCRIPTS if s in found]


def script_labels(scripts: Sequence[str], labels: Sequence[str]) -> list[str] | None:
    """The labels a name written in ``scripts`` may take among the model's ``labels``: for each script
    whose labels the model has any of, those labels; the labels common to all of them. None (no
    restriction) when no script applies or they have no label in common."""
    allowed: set | None = None
    writers = {s: w for s, _, w in SCRIPTS}
    for script in scripts:
        mine = set(writers[script]) & set(labels)
        if mine:
            allowed = mine if allowed is None else allowed & mine
    if not allowed:
        return None
    return [lab for lab in labels if lab in allowed]


def marked_letters(text: str) -> list[str]:
    """The distinct marked Latin letters of ``text`` (NFC, lower-cased): Latin letters that are not
    ASCII (u-umlaut, o-umlaut, sharp s, e-acute, n-tilde, ...), in order of first appearance."""
    out: list[str] = []
    for ch in unicodedata.normalize("NFC", text).lower():
        if (
            not ch.isascii()
            and ch not in out
            and unicodedata.category(ch)[0] == "L"
            and unicodedata.name(ch, "").startswith("LATIN")
        ):
            out.append(ch)
    return out


def letters_in(text: str, known: Container[str]) -> list[str]:
    """The distinct characters of ``text`` (NFC, lower-cased) that are keys of ``known``, sorted."""
    return sorted({ch for ch in unicodedata.normalize("NFC", text).lower() if ch in known})


def restrict(logp: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Condition on the label being one of ``allowed`` (a bool mask, same shape as ``logp`` or one row):
    ``-inf`` outside it, the rest renormalised (``logp - log sum exp(logp[allowed])``), float64."""
    lp = np.asarray(logp, np.float64)
    kept = np.where(allowed, lp, -np.inf)
    top = kept.max(axis=-1, keepdims=True)
    return kept - (top + np.log(np.exp(kept - top).sum(axis=-1, keepdims=True)))


@dataclass
class Rule:
    """The whole answer for a model (see the module's docstring, steps 1-5), from its config.json:
    ``temperature`` (calibration), ``alpha`` (the name's counts), ``beta`` (recent counts, or None),
    ``letters`` (a marked letter -> its lines per label, ``m_c``) with ``lines`` (``L_c`` per label for
    the labels of ``A``, 0 for the others) and ``k`` (step 4), and the ``labels`` (for the scripts)."""

    labels: list[str]
    temperature: float = 1.0
    alpha: float = 1.0
    beta: float | None = None
    letters: dict[str, np.ndarray] = field(default_factory=dict)
    lines: np.ndarray | None = None
    k: float = 1.0
    scripts: bool = True

    @classmethod
    def of(cls, config: dict, table: bool = True, calibrate: bool = True) -> Rule:
        """The rule of a model's ``config.json``; ``table=False``: the (tempered) model alone, no name
        table, letters or scripts; ``calibrate=False``: no temperature."""
        labels = list(config.get("labels") or [])
        t = float((config.get("calibration") or {}).get("temperature", 1.0)) if calibrate else 1.0
        if not table:
            return cls(labels, t, scripts=False)
        section = config.get(SECTION)
        if not isinstance(section, dict):
            section = {}
        recent = section.get("recent") or {}
        letters = section.get("letters") or {}
        column = {lab: j for j, lab in enumerate(labels)}

        def dense(per_label: dict) -> np.ndarray:
            row = np.zeros(len(labels), np.float64)
            for label, n in per_label.items():
                row[column[label]] = n
            return row

        counts = {letter: dense(per_label) for letter, per_label in (letters.get("counts") or {}).items()}
        if counts and "lines" not in letters:
            from ..errors import UsageError

            raise UsageError(
                "config.json's name_table.letters is of an earlier rule (a strength, no lines per "
                "label): rebuild the table with `namemodels data name-table MODEL --data PATH`"
            )
        return cls(
            labels,
            t,
            float(section.get("alpha", 1.0)),
            recent.get("beta"),
            counts,
            dense(letters["lines"]) if counts else None,
            float(letters.get("k", 1.0)),
        )

    def model(self, logp: np.ndarray) -> np.ndarray:
        """Step 1: the network's log-probabilities tempered, ``log softmax(logp / T)`` as
        :func:`namemodels.inference.calibration.temper` computes it, but kept in float64 (the later
        steps chain in float64 and round once); ``T == 1``: ``logp`` as it is."""
        lp = np.asarray(logp, np.float64)
        return lp if self.temperature == 1.0 else temper64(lp, self.temperature)

    def unseen(self, logp: np.ndarray) -> np.ndarray:
        """The answer (before steps 4-5) for names the table lacks: step 1 alone, as float32 -- the
        network's own array when ``T == 1`` (no copy on the single-name path), one row in Python floats
        (:func:`~namemodels.inference.calibration.temper_row`: a single name's latency)."""
        if self.temperature == 1.0:
            return logp
        if len(logp) == 1:
            return np.array([temper_row(logp[0].tolist(), self.temperature)], np.float32)
        return self.model(logp).astype(np.float32)

    def known(self, logp: np.ndarray, counts: np.ndarray, recent: np.ndarray | None = None) -> np.ndarray:
        """Steps 1-3 for names of the table: ``logp`` the network's, ``counts`` (and ``recent``) theirs."""
        out = _combine(counts, self.model(logp), self.alpha)
        if recent is not None and self.beta is not None:
            out = _combine(recent, out, self.beta)
        return out

    def evidence(self, name: str) -> dict | None:
        """What the name as typed adds (steps 4 and 5), or None (an ASCII name, or nothing found):
        ``{"letters": {letter: {label: lines}}, "ratio": {label: factor}, "scripts": [...], "labels": [...]
        or None}`` -- ``letters``: each marked letter's lines per label (those above 0); ``ratio``: the
        letters' factor ``prod rate_c / q`` of each label of ``A`` (4 significant digits; the others 1)."""
        if name.isascii():
            return None
        out: dict = {}
        found = letters_in(name, self.letters) if self.letters else []
        if found:
            out["letters"] = {c: {lab: int(n) for lab, n in zip(self.labels, self.letters[c]) if n} for c in found}
            factor = np.exp(self._letters_log_ratio(found))
            lines = self._letter_lines()
            out["ratio"] = {label: float(f"{f:.4g}") for label, f, n in zip(self.labels, factor, lines) if n > 0}
        if self.scripts:
            scripts = scripts_in(name)
            if scripts:
                out["scripts"] = scripts
                out["labels"] = script_labels(scripts, self.labels)
        return out or None

    def _letter_lines(self) -> np.ndarray:
        """``lines`` (``L_c``), which the letters' step needs."""
        if self.lines is None:
            raise ValueError("Rule: letters without lines (each label's lines, L_c) cannot weigh marked letters")
        return self.lines

    def _letters_log_ratio(self, found: Sequence[str]) -> np.ndarray:
        return letter_log_ratio(np.array([self.letters[c] for c in found]), self._letter_lines(), self.k)

    def adjust(self, logp: np.ndarray, evidence: dict | None) -> np.ndarray:
        """Steps 4 and 5 on one row of log-probabilities (float64)."""
        lp = np.asarray(logp, np.float64)
        if not evidence:
            return lp
        if evidence.get("letters"):
            lp = _log_normalise(lp + self._letters_log_ratio(sorted(evidence["letters"])))
        if evidence.get("labels"):
            lp = restrict(lp, np.array([lab in evidence["labels"] for lab in self.labels]))
        return lp


def write_table(
    path: str | Path,
    keys: Sequence[str],
    counts: np.ndarray,
    logp: np.ndarray,
    recent: np.ndarray | None = None,
) -> None:
    """Write ``name_table.npz``: ``keys`` (distinct, any order) with their ``counts`` and ``logp`` rows
    (the network's own, untempered), and ``recent`` (counts in a span of years) when given."""
    keys = list(keys)
    if len(set(keys)) != len(keys):
        raise ValueError("write_table: the keys must be distinct")
    if any("\n" in k for k in keys):
        raise ValueError("write_table: a key holds a line break")
    counts = np.asarray(counts)
    if counts.shape[0] != len(keys) or np.asarray(logp).shape != counts.shape:
        raise ValueError(f"write_table: {len(keys)} keys, counts {counts.shape}, logp {np.asarray(logp).shape}")
    if (counts < 0).any() or (counts > np.iinfo(np.uint32).max).any():
        raise ValueError("write_table: counts must lie in 0 .. 2**32 - 1")
    if recent is not None and (
        np.asarray(recent).shape != counts.shape
        or (np.asarray(recent) < 0).any()
        or (np.asarray(recent) > counts).any()
    ):
        raise ValueError("write_table: recent counts must have the counts' shape and lie in 0 .. counts")
    order = sorted(range(len(keys)), key=lambda i: keys[i].encode("utf-8"))
    blob = "".join(keys[i] + "\n" for i in order).encode("utf-8")
    arrays = {
        "names": np.frombuffer(blob, np.uint8),
        "counts": counts[order].astype("<u4"),
        "logp": np.asarray(logp)[order].astype("<f4"),
    }
    if recent is not None:
        arrays["recent"] = np.asarray(recent)[order].astype("<u4")
    import io
    import zipfile

    from ..fileio import atomic_write_bytes

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:  # an .npz as numpy.savez writes it, member by member
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            # floats barely deflate (about 8%): stored, they cost nothing to read; names and counts deflate 3-4x
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name == "logp" else zipfile.ZIP_DEFLATED
            z.writestr(info, buf.getvalue(), compresslevel=9)
    atomic_write_bytes(path, out.getvalue())


#: Called with a table file's path and bytes before they are parsed (raises when they are not the
#: recorded ones): :meth:`namemodels.inference.predictor.Predictor._check_table`.
TableCheck = Callable[[Path, bytes], object]


class NameTable:
    """A model directory's name table, read on its first use (a model without one looks up nothing).

    ``alpha`` and ``lowercase`` come from ``config.json``; ``check``, when given, is called with the
    file's bytes before they are parsed (the SHA-256 check). Lookups are thread-safe."""

    def __init__(self, path: Path | None, alpha: float = 1.0, lowercase: bool = False, check: TableCheck | None = None):
        self._setup(path, alpha, lowercase, check)

    def _setup(self, path: Path | None, alpha: float, lowercase: bool, check: TableCheck | None) -> None:
        self.path, self.alpha, self.lowercase, self._check = path, float(alpha), bool(lowercase), check
        self._lock = threading.Lock()
        self._arrays: tuple[bytes, list[int]] | None = None  # the names: blob, where each starts
        self._values: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None  # counts, logp, recent
        self._index: dict[str, int] | None = None
        self._data: bytes | None = None  # the file's bytes, once read (checked against its SHA-256)

    @classmethod
    def of(cls, directory: str | Path, config: dict, check: TableCheck | None = None) -> NameTable:
        """The table ``config.json`` describes (nothing is read yet), or an empty one."""
        section = config.get(SECTION)
        if not isinstance(section, dict):
            return cls(None)
        return cls(
            Path(directory) / section.get("file", FILE),
            float(section.get("alpha", 1.0)),
            bool((config.get("tokenizer") or {}).get("lowercase", False)),
            check,
        )

    def __bool__(self) -> bool:
        return self.path is not None

    def __getstate__(self) -> dict:
        """Pickled with the file's bytes (as the ONNX model travels in a predictor's pickle), so it
        unpickles where the model's folder is absent; the lock and parsed arrays are not pickled."""
        data = self._data
        if data is None and self.path is not None and self.path.is_file():
            data = self.path.read_bytes()
        return {"path": self.path, "alpha": self.alpha, "lowercase": self.lowercase, "check": self._check, "data": data}

    def __setstate__(self, state: dict) -> None:
        self._setup(state["path"], state["alpha"], state["lowercase"], state["check"])
        self._data = state.get("data")

    def _member(self, name: str) -> np.ndarray:
        """One array of the (checked) file: only that member is inflated."""
        import io
        import zipfile

        with zipfile.ZipFile(io.BytesIO(self._read_data())) as z:
            return np.lib.format.read_array(io.BytesIO(z.read(name + ".npy")), allow_pickle=False)

    def _load(self) -> tuple[bytes, list[int]]:
        """The names (the file is read and its SHA-256 checked first): ``(blob, start of each name)``."""
        if self._arrays is None:
            with self._lock:
                if self._arrays is None:
                    path = self._file()
                    data = self._data if self._data is not None else self._read(path)
                    if self._check is not None:
                        self._check(path, data)
                    self._data = data
                    blob = self._member("names").tobytes()
                    ends = np.flatnonzero(np.frombuffer(blob, np.uint8) == 10)
                    # a list, not an array: a look-up's binary search indexes it ~17 times (an array
                    # element costs a NumPy scalar each time)
                    self._arrays = (blob, np.concatenate([[0], ends[:-1] + 1]).tolist())
        return self._arrays

    def _file(self) -> Path:
        if self.path is None:
            raise ValueError("NameTable: this model has no name table (config.json describes none)")
        return self.path

    def _read_data(self) -> bytes:
        """The file's bytes, read and checked by :meth:`_load` first."""
        if self._data is None:
            raise RuntimeError("NameTable: the table's file is read by _load() before its arrays")
        return self._data

    def _read(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            from ..errors import UsageError

            raise UsageError(
                f"{path}: config.json describes a name table that cannot be read "
                f"({exc.strerror or exc}); restore the file, or rebuild it with `namemodels data "
                f"name-table {path.parent} --data PATH` (the model's training data)"
            ) from None

    def _counts_logp(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        if self._values is None:
            self._load()
            with self._lock:
                if self._values is None:
                    import io
                    import zipfile

                    with zipfile.ZipFile(io.BytesIO(self._read_data())) as z:
                        has_recent = "recent.npy" in z.namelist()
                    self._values = (
                        self._member("counts"),
                        self._member("logp"),
                        self._member("recent") if has_recent else None,
                    )
        return self._values

    def __len__(self) -> int:
        return len(self._load()[1]) if self else 0

    def keys(self) -> list[str]:
        return self._load()[0].decode("utf-8").split("\n")[:-1] if self else []

    def lookup(self, keys: Sequence[str]) -> np.ndarray:
        """Row of each key (already :func:`name_key`-ed), ``-1`` where the table lacks it."""
        if not self or not len(keys):
            return np.full(len(keys), -1, np.int64)
        if len(keys) <= SMALL and self._index is None:  # a few keys: searched, the index not built
            return np.array([self.find(k) for k in keys], np.int64)
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.keys())}
        get = self._index.get
        return np.fromiter((get(k, -1) for k in keys), np.int64, len(keys))

    def find(self, key: str) -> int:
        """Row of one key (already :func:`name_key`-ed), ``-1`` where the table lacks it."""
        if not self:
            return -1
        if self._index is not None:
            return self._index.get(key, -1)
        blob, starts = self._load()
        return self._search(blob, starts, key.encode("utf-8"))

    @staticmethod
    def _search(blob: bytes, starts: list[int], key: bytes) -> int:
        lo, hi = 0, len(starts)
        while lo < hi:
            mid = (lo + hi) // 2
            s = starts[mid]
            k = blob[s : blob.index(b"\n", s)]
            if k < key:
                lo = mid + 1
            elif k > key:
                hi = mid
            else:
                return mid
        return -1

    def rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, logp)`` of table rows (all >= 0); ``logp`` the network's own, untempered."""
        counts, logp, _ = self._counts_logp()
        return counts[rows], logp[rows]

    def recent_rows(self, rows: np.ndarray) -> np.ndarray | None:
        """The recent counts of table rows, or None (a table built without ``--recent``)."""
        recent = self._counts_logp()[2]
        return None if recent is None else recent[rows]


def table_counts(
    names: Iterable[str], labels: Iterable[str], weights: Iterable[float], label_order: Sequence[str], lowercase: bool
) -> tuple[list[str], np.ndarray]:
    """Sum ``weights`` per (key, label) over the data's rows: ``(keys, counts (keys, labels))``, counts
    rounded to whole numbers. Rows whose label the model does not know raise ValueError."""
    column = {label: j for j, label in enumerate(label_order)}
    index: dict[str, int] = {}
    sums: list[list[float]] = []
    for name, label, w in zip(names, labels, weights):
        key = name_key(name, lowercase)
        if not key:
            continue
        if label not in column:
            raise ValueError(f"label {label!r} of {name!r} is not one of the model's labels ({', '.join(label_order)})")
        i = index.setdefault(key, len(index))
        if i == len(sums):
            sums.append([0.0] * len(column))
        sums[i][column[label]] += w
    counts = np.rint(np.array(sums, np.float64).reshape(len(sums), len(column)))
    return list(index), counts.astype(np.int64)
