"""A self-describing model bundle: everything a program in another language needs to run a model
exactly as Python does. ``namemodels export MODEL --format bundle --out DIR``.

``DIR`` holds:

* ``model.onnx`` -- the graph of ``export/onnx_graph.py``, its metadata extended with the bundle's
  format, the text rule's version, the tokenizer (``tokenizer.json``'s text), the labels, the name
  table's rule and the model card's summary, so the file alone is enough for a careful reader;
* ``tokenizer.json`` -- how a name becomes token ids: the characters stripped, the fold table
  (:data:`namemodels.text.LETTER_FOLD`, the one table the Python code uses), the allowed characters,
  the anyascii version, the lower-case flag, the special tokens and the vocabulary;
* ``name_table.json`` (models with a name table) -- the training names with their counts per label
  and the combination rule ``P = (n + alpha p) / (N + alpha)`` with its alpha (and, for a table built
  with ``--recent``, each name's counts in the recent span with beta);
* ``answer.json`` (classifiers) -- the rest of the answer (:class:`namemodels.inference.name_table.Rule`):
  the calibration temperature, the scripts with the labels that write them, the marked letters'
  lines per label with each label's lines and the smoothing ``k`` (a likelihood ratio);
* ``conformance.json`` -- a few hundred names (ASCII and not, transliterated ones among them, and
  names that must be refused) with the expected normalized form, token ids, the eager PyTorch model's
  raw log-probabilities (the graph's output, untempered) and the final answer (``final``: tempered,
  the name table's rule, marked letters, scripts);
* ``FORMAT.md`` -- how to encode a name and read the outputs, in any language;
* ``bundle.json`` -- the manifest: the files with their SHA-256, the graph's inputs and outputs.

The folder is written complete or not at all: everything goes to a temporary folder beside ``DIR``,
which is renamed into place at the end.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from namemodels.errors import UsageError
from namemodels.fileio import atomic_folder, sha256_file

if TYPE_CHECKING:  # torch is imported where it is used
    from torch import nn

    from namemodels.tokenizer import CharTokenizer

    from .weights import ModelWeights

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"
TOLERANCE = 5e-5  # conformance: max abs difference in log-probability a port should meet

# Names for conformance.json besides the model's own (verify.REAL_NAMES, name table keys, random
# strings of its vocabulary): every kind of folding, transliteration and white space.
OTHER_SCRIPTS = [
    "Иванов",
    "Παπαδόπουλος",
    "王",
    "Nguyễn",
    "Müller",
    "Bär",
    "Jürgen",
    "Сергеевич",
    "Подъячев",
    "Ильич",
    "Иван Петров",
    "Ἀθηνᾶ",
    "毛泽东",
    "田中",
    "李",
    "김",
    "박지성",
    "محمد",
    "דוד",
    "गुप्ता",
    "शर्मा",
    "ŋa",
    "カタカナ",
    "ｶﾀｶﾅ",
    "Ñúñez",
    "Strauß",
    "GROẞ",
    "Łukasz",
    "Ørsted",
    "Æsa",
    "Œuvre",
    "Þór",
    "Guðrún",
    "Yıldız",
    "O’Brien",
    "Smith‐Jones",
    "Ｓｍｉｔｈ",
    "ﬁnn",
    "Dvořák",
    "Mal\u0301y",
    "de\u00a0la\u2003Cruz",
    "  Padded\t",
    "Ślusàrski",
    "ǅemal",
    "Jean-Luc",
    "d'Artagnan",
    "St. John",
    "Smith, Jr.",
    "van  der   Berg",
    "MACDONALD",
    "Björk Guðmundsdóttir",
    "Hồ Chí Minh",
    "Şahin",
    "Čapek",
    "Đorđević",
    "Ħaġar",
    "Wolfeschlegelsteinhausenbergerdorffvoralternwarenge",
    "Шевченко",
    "Ковальчук",
    "Јовановић",
    "Димитров",
    "Κωνσταντίνου",
    "Γεωργίου",
    "Папазов",
    "Пётр",
    "Хрущёв",
    "Петросян",
    "Ղազարյան",
    "ბერიძე",
    "สมชาย",
    "山本",
    "佐藤",
    "鈴木",
    "이",
    "최민수",
    "Ζαχαρίου",
    "Łęczycki",
    "Ștefănescu",
    "Nagy-Kovács",
    "Gonçalves",
    "Åström",
    "Øystein",
    "Ærø",
    "Ðặng",
    "Trần",
    "Lê",
    "Phạm",
    "Jørgensen",
    "Çelik",
    "Öztürk",
    "Fernández",
    "Zoë",
]
REFUSED = [
    "Smith😀",
    "😀",
    "J0hn",
    "",
    "   ",
    "a" * 65,
    "Smi\tth",
    "X\u200dY",
    "™Smith",
    "ʻOla",
    "--..",
    "Иванов😀",
    "王\u0007",
    "Smith/Jones",
]


def _json(path: Path, obj: object) -> None:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False) + "\n", encoding="utf-8")


# ---- the tokenizer, from the tables the Python code uses -------------------------------------------
def tokenizer_spec(config: dict) -> dict:
    """``tokenizer.json``: every constant of the encoding, taken from namemodels.text and the model's
    tokenizer (nothing restated by hand)."""
    from namemodels import text
    from namemodels.tokenizer import CharTokenizer

    tok = CharTokenizer.from_dict(config["tokenizer"])
    strip = [f"U+{i:04X}" for i in range(sys.maxunicode + 1) if chr(i).isspace()]
    return {
        "format": "namemodels-tokenizer",
        "version": 1,
        "text_rule": text.TEXT_RULE,
        "anyascii_version": text.ANYASCII_VERSION,
        "unicode_version": __import__("unicodedata").unidata_version,
        "strip": strip,
        "fold_table": dict(text.LETTER_FOLD),
        "allowed": text.ALL_LETTERS,
        "max_length": text.MAX_NAME,
        "max_raw_length": 4 * text.MAX_NAME,
        "lowercase": tok.lowercase,
        "specials": {name: i for i, name in enumerate(tok.SPECIALS)},
        "pad_id": tok.pad_id,
        "bos_id": tok.bos_id,
        "eos_id": tok.eos_id,
        "unk_id": tok.unk_id,
        "vocab": list(tok.itos),
    }


# ---- the name table, language-neutral ---------------------------------------------------------------
def name_table_spec(directory: Path, config: dict) -> dict | None:
    """``name_table.json``: keys, counts per label (sparse), alpha and the rule; None without a table."""
    from namemodels.inference.name_table import SECTION, NameTable

    table = NameTable.of(directory, config)
    if not table:
        return None
    keys = table.keys()
    counts, _ = table.rows(np.arange(len(keys)))
    recent = table.recent_rows(np.arange(len(keys)))
    section = config[SECTION]
    return {
        "format": "namemodels-name-table",
        "version": 1,
        "labels": list(config["labels"]),
        "unit": section.get("unit"),
        "alpha": float(section["alpha"]),
        "rule": "P(c) = (n_c + alpha * p_c) / (N + alpha), N = sum of n_c, p = exp(model log-probabilities); "
        "a key not in the table (N = 0): P = p",
        "log_rule": "logP(c) = log(n_c + alpha * exp(logp_c)) - log(N + alpha), in float64",
        "key": "the normalized name (tokenizer.json: folded, spaces collapsed, lower-cased when lowercase is true)",
        "names": keys,
        # one row per name: [[label index, count], ...] for the labels with a count above 0
        "counts": _sparse(counts),
        "recent": None
        if recent is None
        else {
            "since": section["recent"]["since"],
            "until": section["recent"]["until"],
            "beta": float(section["recent"]["beta"]),
            "rule": "then P(c) = (r_c + beta * P(c)) / (R + beta), r the name's counts in the span (row of counts)",
            "counts": _sparse(recent),
        },
    }


def _sparse(counts: np.ndarray) -> list:
    return [[[int(j), int(row[j])] for j in np.flatnonzero(row)] for row in counts]


def answer_spec(config: dict) -> dict:
    """``answer.json``: the steps of the answer besides the network and the name table's counts (the
    same :class:`namemodels.inference.name_table.Rule` the predictor uses). Version 3 adds ``respellings``
    (Müller is also looked up as Mueller); version 2: the marked letters as a likelihood ratio (``k``,
    ``lines``, ``counts``); version 1 had a Dirichlet ``strength``."""
    from namemodels.inference.name_table import RESPELLINGS, SCRIPTS, Rule

    rule = Rule.of(config)
    letters = None
    if rule.letters:
        if rule.lines is None:  # Rule.of reads both from config.json's name_table.letters
            raise ValueError("answer_spec: the rule has marked letters but no lines per label")
        letters = {
            "k": rule.k,
            "lines": [[int(j), int(n)] for j, n in enumerate(rule.lines) if n],
            "counts": {c: [[int(j), int(n)] for j, n in enumerate(row) if n] for c, row in rule.letters.items()},
        }
    labels = list(config["labels"])
    scripts = [
        {"script": name, "ranges": [[lo, hi] for lo, hi in ranges], "labels": [lab for lab in labels if lab in writers]}
        for name, ranges, writers in SCRIPTS
    ]
    return {
        "format": "namemodels-answer",
        "version": 3,
        "labels": labels,
        "temperature": rule.temperature,
        "calibration": "p = softmax(logprobs / temperature); temperature 1: the graph's output unchanged",
        "scripts": [s for s in scripts if s["labels"]],
        "letters": letters,
        "respellings": dict(RESPELLINGS),
        "steps": [
            "p = softmax(logprobs / temperature)",
            "name table (name_table.json): P = (n + alpha p) / (N + alpha); recent: P = (r + beta P) / (R + beta); "
            "a name typed (NFC) with a key of respellings is also looked up with each such letter replaced "
            "(normalized like a name): n (and r) are the sums of the rows found",
            "marked letters: the distinct characters l of the name as typed (NFC, lower-cased) that are keys of "
            "letters.counts; A = the labels of letters.lines (L_c their lines), m_c = l's row; "
            "q = sum m / sum L; "
            "P(c) *= ((m_c + k q) / (L_c + k)) / q for c in A (others unchanged); then P /= sum P",
            "scripts: each code point in a script's ranges marks that script; the labels common to the marked "
            "scripts (none in common: no restriction) keep P, renormalised; the others get 0",
        ],
    }


def _model_card_summary(directory: Path) -> str:
    card = directory / "MODEL_CARD.md"
    if not card.is_file():
        return ""
    lines = []
    for line in card.read_text("utf-8").splitlines()[1:]:
        if line.startswith("## "):
            break
        if line.startswith("- ") and not line.startswith(("- trained by", "- cross-validated by")):
            lines.append(line[2:])
    return "\n".join(lines)


# ---- conformance ------------------------------------------------------------------------------------
def _conformance_names(config: dict, table: dict | None, rng: np.random.Generator, count: int = 300) -> list[str]:
    from namemodels.tokenizer import CharTokenizer

    from .verify import REAL_NAMES

    names = list(REAL_NAMES) + list(OTHER_SCRIPTS)
    if table:
        keys = table["names"]
        step = max(1, len(keys) // 120)
        names += [k.title() for k in keys[::step][:120]]
    tok = CharTokenizer.from_dict(config["tokenizer"])
    letters = [c for c in tok.chars if c.isalpha()]
    marks = [c for c in tok.chars if not c.isalpha()]
    while len(names) < count:
        n = int(rng.integers(1, 25))
        s = [str(rng.choice(letters))] + [
            str(rng.choice(letters if rng.random() < 0.9 or not marks else marks)) for _ in range(n - 1)
        ]
        names.append("".join(s))
    return list(dict.fromkeys(names))


def conformance(model: nn.Module, config: dict, w: ModelWeights, table: dict | None, seed: int = 0) -> dict:
    """The expected encoding and outputs of a few hundred names, from the eager PyTorch model
    (``w``: its :func:`export.weights.extract`)."""
    import torch

    from namemodels.inference.name_table import respelled
    from namemodels.text import check_name_details
    from namemodels.tokenizer import CharTokenizer

    rng = np.random.default_rng(seed)
    tok = CharTokenizer.from_dict(config["tokenizer"])
    cases, refused = [], []
    for raw in _conformance_names(config, table, rng):
        folded, transliterated = check_name_details(raw)
        normalized = tok.normalize(folded)
        case = {"input": raw, "normalized": normalized, "transliterated": transliterated, "ids": tok.encode(folded)}
        other = respelled(raw.strip())
        if other is not None:  # FORMAT.md section 2, step 2: the key of the name written the other way
            case["respelled"] = tok.normalize(other)
        cases.append(case)
    for raw in REFUSED:
        try:
            check_name_details(raw)
        except UsageError as exc:
            refused.append({"input": raw, "error": str(exc)})
        else:  # a list entry that folds is a bug in this list, not a conformance case
            raise AssertionError(f"{raw!r} is in REFUSED but folds")
    out = {
        "format": "namemodels-conformance",
        "version": 1,
        "tolerance": TOLERANCE,
        "reference": "the eager PyTorch model (float32, CPU)",
        "graph": "step" if w.generator else "classifier",
        "cases": cases,
        "refused": refused,
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batches of 64 short names: one thread is fastest (7x on a busy 2-core machine)
    try:
        _reference(model, w, tok, config, table, cases)
    finally:
        torch.set_num_threads(threads)
    return out


@dataclass
class Conformance:
    """A bundle's conformance data: conformance.json's content (``data``) with what running its names
    needs from the bundle's other files -- the step graph's ``state`` (bundle.json's: ``{name: {"layers",
    "width"}}``, empty for a classifier), whether it takes a ``category`` input, and tokenizer.json's
    ``<bos>``/``<eos>`` ids. Built in memory (:func:`expected`) or read from a bundle (:meth:`read`)."""

    data: dict
    state: dict[str, dict[str, int]]
    category: bool
    bos_id: int
    eos_id: int

    @classmethod
    def read(cls, out: Path) -> Conformance:
        """The conformance data of the bundle in folder ``out``."""
        manifest = json.loads((out / MANIFEST).read_text("utf-8"))
        tok = json.loads((out / "tokenizer.json").read_text("utf-8"))
        return cls(
            json.loads((out / "conformance.json").read_text("utf-8")),
            manifest["state"],
            "category" in manifest["inputs"],
            tok["bos_id"],
            tok["eos_id"],
        )


def expected(model: nn.Module, config: dict, w: ModelWeights, table: dict | None) -> Conformance:
    """The conformance data a bundle of ``model`` holds (``w``: its :func:`export.weights.extract`,
    ``table``: its :func:`name_table_spec`), in memory: what :func:`write` writes, and what
    :func:`check_model` runs a program against without writing a bundle."""
    from namemodels.tokenizer import CharTokenizer

    from .onnx_graph import step_state_layout

    state = (
        {k: {"layers": int(n_layers), "width": int(wd)} for k, (n_layers, wd) in step_state_layout(w).items()}
        if w.generator
        else {}
    )
    conf = conformance(model, config, w, table)
    return Conformance(conf, state, w.category is not None, CharTokenizer.bos_id, CharTokenizer.eos_id)


def _padded(part: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """A batch of cases' ``ids`` padded on the right with 0, and their lengths (int64)."""
    lengths = np.array([len(c["ids"]) for c in part], np.int64)
    ids = np.zeros((len(part), int(lengths.max())), np.int64)
    for r, c in enumerate(part):
        ids[r, : len(c["ids"])] = c["ids"]
    return ids, lengths


def _reference(
    model: Any,  # a namemodels model: its log_probs or step is called
    w: ModelWeights,
    tok: CharTokenizer,
    config: dict,
    table: dict | None,
    cases: list[dict],
) -> None:
    """Fill in each case's expected outputs from the eager model."""
    import torch

    with torch.inference_mode():
        if not w.generator:
            for i in range(0, len(cases), 64):
                part = cases[i : i + 64]
                ids, lengths = _padded(part)
                logp = model.log_probs(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy().astype(np.float64)
                for c, row in zip(part, logp):
                    c["logprobs"] = [float(np.float32(v)) for v in row]
            _final_answers(cases, config, table)
        else:
            K = len(config["labels"]) if w.category is not None else 0
            for n, c in enumerate(cases):
                # teacher forcing: <bos>, the name's ids, <eos>; each step's log-probability of the next token
                c["category"] = int(n % (K + 1)) if K else 0
                seq = [tok.bos_id] + c["ids"] + [tok.eos_id]
                state, steps = None, []
                cat = torch.tensor([c["category"]]) if K else None
                for t in range(len(seq) - 1):
                    logp, state = model.step(torch.tensor([seq[t]]), state, cat)
                    if t == 0:
                        c["first_step_logprobs"] = [float(v) for v in logp[0].numpy()]
                    steps.append(float(logp[0, seq[t + 1]]))
                c["next_token_logprobs"] = steps


def _final_answers(cases: list[dict], config: dict, table: dict | None) -> None:
    """Each case's final answer (in float64): :class:`namemodels.inference.name_table.Rule`, the rule
    the predictor applies, on the JSON table's counts. A label ruled out (probability 0) is ``null``."""
    from namemodels.inference.name_table import Rule

    labels = config["labels"]
    rule = Rule.of(config)
    index = {k: i for i, k in enumerate(table["names"])} if table else {}

    def dense(sparse: list) -> np.ndarray:
        n = np.zeros((1, len(labels)))
        for j, count in sparse:
            n[0, j] = count
        return n

    for c in cases:
        logp = np.array([c["logprobs"]], np.float64)
        # the name's row and its other spelling's (Müller: Mueller), counts added
        rows = {r for r in (index.get(c["normalized"]), index.get(c.get("respelled", ""))) if r is not None}
        if not rows or table is None:  # (no table: no row)
            final, source, total = rule.model(logp)[0], "model", 0
        else:
            n = np.sum([dense(table["counts"][r]) for r in rows], axis=0)
            recent = (
                np.sum([dense(table["recent"]["counts"][r]) for r in rows], axis=0) if table.get("recent") else None
            )
            final, source, total = rule.known(logp, n, recent)[0], "data", int(n.sum())
        final = rule.adjust(final, rule.evidence(c["input"]))
        c["final"] = {
            "logprobs": [float(v) if np.isfinite(v) else None for v in final],
            "label": labels[int(np.argmax(final))],
            "source": source,
            "count": total,
        }


# ---- FORMAT.md --------------------------------------------------------------------------------------
FORMAT_MD = """# namemodels bundle, format {fmt}

This folder runs the model `{name}` ({kind}, {n_labels} labels) in any language that has ONNX Runtime
(C, C++, C#, Java, JavaScript, Python, Rust, ...): `model.onnx` is the network, `tokenizer.json` says
how a name becomes its input, `conformance.json` holds the expected results of {n_cases} names to test
a port against, `bundle.json` lists the files with their SHA-256.{table_line}

## 1. Encode a name (text rule {rule})

All constants below are in `tokenizer.json`. Work on Unicode code points (not UTF-16 units).

1. **Strip** the characters listed in `strip` from both ends. Refuse an empty result, or one longer
   than `max_raw_length` code points.
2. **Fold** each code point `ch` in turn (keep a flag `after`: the previous letter was transliterated):
   - `ch` in `allowed` (ASCII letters and ` .,;'-`): keep it; `after = false`.
   - general category `Zs` (a space separator): a space; `after = false`.
   - a mark (category `M*`) while `after` is true: its anyascii ({anyascii}) transliteration, if every
     character of that is in `allowed` (it may be empty); otherwise refuse the name.
   - otherwise a combining mark (`Mn`): drop it.
   - a letter or punctuation (`L*`, `P*`): `fold(ch)` = replace by `fold_table`, NFKD-normalize, drop
     every `Mn`, replace by `fold_table` again. If that is non-empty and all in `allowed`: use it,
     `after = false`.
   - else, a letter (`L*`) whose anyascii transliteration is non-empty and all in `allowed`: use that;
     the name is *transliterated*; `after = true`.
   - anything else (controls, format characters, digits, symbols, emoji): **refuse the name**. Emoji
     are refused even though anyascii could spell them.
3. **Collapse** runs of spaces into one and trim spaces at both ends. Refuse the name unless it has
   an ASCII letter, or if it is longer than `max_length`.
4. **Lower-case** (ASCII) when `lowercase` is true. The result is the *normalized name*
   (`conformance.json`: `normalized`) and the name table's key.
5. **Token ids**: each character's index in `vocab` (the special tokens `<pad> <bos> <eos> <unk>`
   are ids 0-3; a character not in `vocab` is `unk_id`).

anyascii is the same at the same version on PyPI and npm (`anyascii@{anyascii}`); the Unicode data of
this export was version {unicode}. `conformance.json`'s `refused` lists names that must be refused.

## 2. Run the model
{run_section}
## 3. Check a port

For each entry of `conformance.json`'s `cases`: your `normalized` and `ids` must equal ours exactly,
and your log-probabilities must be within `tolerance` ({tol}) of ours (ours come from the eager
PyTorch model; ONNX Runtime in Python is within about 1e-5 of them){final_line}. Every `refused` input
must be refused.
"""

CLASSIFIER_RUN = """
Inputs: `ids` int64 `(batch, time)` -- the token ids of each name, padded on the right with `pad_id`
(0) to the longest name of the batch; `lengths` int64 `(batch,)` -- each name's number of ids. Output:
`logprobs` float32 `(batch, labels)`, natural-log probabilities over `labels` (in `bundle.json` and the
model's metadata `namemodels.labels`), in that order. The likeliest label is the arg-max; softmax is
already applied (`exp` gives probabilities that sum to 1).
"""

GENERATOR_RUN = """
The graph is one decoding step. Inputs: `token` int64 `(batch,)`; the state tensors of `bundle.json`'s
`state` (each float32 `(layers, batch, width)`, zeros at the start){category}. Outputs: `logprobs`
float32 `(batch, vocab)` for the next token, then the new state (`<name>_out`), to feed back. Start
with `bos_id`; a name ends at `eos_id`. To sample at temperature `T`, draw from `softmax(logprobs / T)`.
"""

TABLE_LINE = """
`name_table.json` holds the training names with their counts per label; a name found there (by its
normalized form) is answered by combining its counts with the model (section 2); `answer.json` holds
the rest of the answer (calibration, marked letters, scripts).""".rstrip()

ANSWER_RULE = """
**The answer** (`answer.json`; the steps in this order, in float64):

1. **Calibration.** `p = softmax(logprobs / T)`, `T` being `answer.json`'s `temperature` (here
   {temperature:.6g}; `T = 1` leaves the log-probabilities as they are, `p = exp(logprobs)`).{table_step}
4. **Marked letters** (a likelihood ratio). Take the name *as typed* (stripped, not folded), NFC-normalize
   it and lower-case it; the characters that are keys of `answer.json`'s `letters.counts` (each counted
   once) are its marked letters. `letters.lines` holds `[label index, lines]` pairs: the labels `A` whose
   training lines hold marked letters, with `L_c` their lines; every other label is neutral (factor 1).
   For each marked letter `l`, with `m_c` its row of `counts` (`[label index, lines]` pairs, others 0):

       q = (sum of m_c) / (sum of L_c over A)
       P(c) = P(c) * ((m_c + k * q) / (L_c + k)) / q        for each c in A

   then divide `P` by its sum (in logs: add `log` of each factor, subtract the log-sum-exp).{letters_note}
5. **Scripts.** Each code point of the name as typed that lies in one of a script's `ranges` (inclusive)
   marks that script. The labels of every marked script, intersected, are the labels kept: `P(c) = 0`
   (log-probability `-inf`, `null` in `final`) for the others, the kept ones divided by their sum. No
   marked script, or an empty intersection: nothing changes.

`conformance.json`'s `final` has this answer (`logprobs`, `label`, `source`: data or model, `count`: `N`);
its `logprobs` are the graph's raw output, before step 1.
"""

TABLE_STEP = """
2. **Name table.** Look the normalized name up in `name_table.json`'s `names`. If it is there with counts
   `n_c` (its row of `counts`: `[label index, count]` pairs, others 0) and `N = sum n_c`:

       P(c) = (n_c + alpha * p_c) / (N + alpha)        alpha = {alpha}

   a name not in the table keeps `P = p`. **Other spellings**: if the name as typed (stripped,
   NFC-normalized) holds a key of `answer.json`'s `respellings` (German umlauts: `ü` -> `ue`, ...),
   replace each such character by its value and normalize the result like a name (section 1): where
   that key is in `names` too, `n_c` is the sum of both rows (`Müller` counts `Muller` and `Mueller`;
   the conformance cases give this key as `respelled`). `p` stays the network's answer for the name.
3. **Recent counts.** {recent}"""

RECENT_YES = (
    "`name_table.json`'s `recent` holds each name's counts in {since}-{until} (`counts`, rows as above); "
    "with `r` its row and `R = sum r`, if `R > 0`:\n\n       P(c) = (r_c + beta * P(c)) / (R + beta)        "
    "beta = {beta}\n\n   (with another spelling, `r` is likewise the sum of both rows)\n"
)
RECENT_NO = "None in this bundle (`name_table.json`'s `recent` is null)."
NO_TABLE_STEP = """
2. and 3. This model has no name table: `P = p`."""


def format_md(
    name: str, config: dict, table: dict | None, conf: dict, graph: str, state: dict, answer: dict | None = None
) -> str:
    from namemodels import text

    if graph == "classifier":
        if table:
            r = table.get("recent")
            recent = RECENT_YES.format(since=r["since"], until=r["until"], beta=r["beta"]) if r else RECENT_NO
            step = TABLE_STEP.format(alpha=table["alpha"], recent=recent)
        else:
            step = NO_TABLE_STEP
        letters = answer.get("letters") if answer else None
        note = (
            f" `k` = {letters['k']}."
            if letters
            else " This model has no marked letters (`letters` is null): skip this step."
        )
        run = CLASSIFIER_RUN + ANSWER_RULE.format(
            temperature=answer["temperature"] if answer else 1.0, table_step=step, letters_note=note
        )
    else:
        cat = (
            "; `category` int64 `(batch,)`: 0 for none, `i + 1` for label `i`"
            if config["model"].get("num_categories")
            else ""
        )
        run = GENERATOR_RUN.format(category=cat)
    return FORMAT_MD.format(
        fmt=BUNDLE_FORMAT,
        name=name,
        kind=config["model"]["kind"],
        n_labels=len(config["labels"]),
        n_cases=len(conf["cases"]),
        table_line=TABLE_LINE if table else "",
        rule=text.TEXT_RULE,
        anyascii=text.ANYASCII_VERSION,
        unicode=__import__("unicodedata").unidata_version,
        run_section=run,
        tol=TOLERANCE,
        final_line=(
            "; so must `final`, the answer of section 2 (`null` for a label ruled out)" if graph == "classifier" else ""
        ),
    )


# ---- writing ----------------------------------------------------------------------------------------
def write(model: nn.Module, config: dict, directory: Path, out: str | Path, opset: int | None = None) -> Path:
    """Write the bundle of ``model`` (loaded from model directory ``directory``) into folder ``out``,
    all or nothing. ``out`` must not exist, be empty, or be an earlier bundle (which is replaced)."""
    from namemodels import text

    from . import onnx_graph
    from .weights import extract

    out, directory = Path(out), Path(directory)
    _check_out(out)
    w = extract(model, config)
    with atomic_folder(out) as tmp:
        tokenizer = tokenizer_spec(config)
        table = name_table_spec(directory, config) if not w.generator else None
        answer = answer_spec(config) if not w.generator else None
        reference = expected(model, config, w, table)
        conf, state = reference.data, reference.state
        graph = conf["graph"]
        summary = _model_card_summary(directory)
        m = onnx_graph.build(w, opset or onnx_graph.DEFAULT_OPSET)
        extra = {
            "namemodels.bundle": str(BUNDLE_FORMAT),
            "namemodels.text_rule": str(text.TEXT_RULE),
            "namemodels.anyascii": text.ANYASCII_VERSION,
            "namemodels.tokenizer_json": json.dumps(tokenizer, ensure_ascii=False),
            "namemodels.model_card": summary,
            "namemodels.name_table_rule": json.dumps(
                {"alpha": table["alpha"], "unit": table["unit"], "rule": table["rule"]}
            )
            if table
            else "",
            "namemodels.answer_json": json.dumps(answer, ensure_ascii=False) if answer else "",
        }
        for key, value in extra.items():
            prop = m.metadata_props.add()
            prop.key, prop.value = key, value
        (tmp / "model.onnx").write_bytes(m.SerializeToString(deterministic=True))
        _json(tmp / "tokenizer.json", tokenizer)
        if table:
            _json(tmp / "name_table.json", table)
        if answer:
            _json(tmp / "answer.json", answer)
        _json(tmp / "conformance.json", conf)
        (tmp / "FORMAT.md").write_text(
            format_md(directory.name, config, table, conf, graph, state, answer), encoding="utf-8"
        )
        files = sorted(p.name for p in tmp.iterdir())
        graph_io = (
            {
                "inputs": {"ids": "int64 (batch, time)", "lengths": "int64 (batch,)"},
                "outputs": {"logprobs": "float32 (batch, labels)"},
            }
            if not w.generator
            else {
                "inputs": {
                    "token": "int64 (batch,)",
                    **{k: "float32 (layers, batch, width)" for k in state},
                    **({"category": "int64 (batch,)"} if w.category is not None else {}),
                },
                "outputs": {
                    "logprobs": "float32 (batch, vocab)",
                    **{f"{k}_out": "float32 (layers, batch, width)" for k in state},
                },
            }
        )
        _json(
            tmp / MANIFEST,
            {
                "format": "namemodels-bundle",
                "version": BUNDLE_FORMAT,
                "model": directory.name,
                "kind": config["model"]["kind"],
                "task": config.get("task"),
                "graph": graph,
                **graph_io,
                "state": state,
                "labels": list(config["labels"]),
                "text_rule": text.TEXT_RULE,
                "anyascii_version": text.ANYASCII_VERSION,
                "model_card": summary,
                "files": {f: sha256_file(tmp / f) for f in files},
            },
        )
    return out


def _check_out(out: Path, marker: str = MANIFEST, writer: str = "--format bundle", what: str = "bundle") -> None:
    """``out`` may be written by :func:`~namemodels.fileio.atomic_folder`: its parent exists and it is
    new, empty, or an earlier ``what`` (it holds ``marker``)."""
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: output directory does not exist; create it first")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; {writer} writes a folder: give a new folder's path")
    if out.is_dir() and any(out.iterdir()) and not (out / marker).is_file():
        raise UsageError(
            f"{out} is a folder that is not empty and holds no namemodels {what}: give a new "
            "folder's path, or remove it"
        )


# ---- checking a bundle (export --verify, tests) -----------------------------------------------------
def check(
    out: str | Path, runtimes: Sequence[str] = ("onnxruntime",), pt2: str | Path | None = None
) -> dict[str, dict]:
    """Run ``model.onnx`` of bundle ``out`` on its conformance names in each runtime (``"pt2"``: the
    torch.export program at ``pt2`` instead): per runtime ``{"max_abs_err", "top1_mismatches",
    "compared_rows", "status"}`` against conformance.json."""
    out = Path(out)
    return check_conformance(Conformance.read(out), runtimes, onnx=out / "model.onnx", pt2=pt2)


def check_model(model: nn.Module, config: dict, directory: str | Path, pt2: str | Path) -> dict[str, dict]:
    """:func:`check` of the torch.export program ``pt2`` on the conformance names a bundle of ``model``
    (loaded from model directory ``directory``) would hold, built in memory: no bundle is written
    (``export --format pt2 --verify``)."""
    from .weights import extract

    w = extract(model, config)
    table = name_table_spec(Path(directory), config) if not w.generator else None
    return check_conformance(expected(model, config, w, table), ("pt2",), pt2=pt2)


def check_conformance(
    reference: Conformance,
    runtimes: Sequence[str],
    onnx: str | Path | None = None,
    pt2: str | Path | None = None,
) -> dict[str, dict]:
    """Run the ONNX graph at ``onnx`` (``"pt2"``: the torch.export program at ``pt2``) on the names of
    ``reference`` in each runtime; the report of :func:`check`."""
    from .verify import available, onnx_runner, pt2_runner

    conf = reference.data
    report: dict[str, dict] = {}
    for runtime in runtimes:
        path = pt2 if runtime == "pt2" else onnx
        why = available(runtime) if path is not None else f"no {runtime} program given"
        if why:
            report[runtime] = {"status": f"skipped: {why}"}
            continue
        run = (
            pt2_runner(str(path), conf["graph"] == "step", list(reference.state))
            if runtime == "pt2"
            else onnx_runner(runtime, str(path))
        )
        err, top1, rows = 0.0, 0, 0
        if conf["graph"] == "classifier":
            cases = conf["cases"]
            for i in range(0, len(cases), 64):
                part = cases[i : i + 64]
                ids, lengths = _padded(part)
                got = run({"ids": ids, "lengths": lengths})[0]
                want = np.array([c["logprobs"] for c in part])
                err = max(err, float(np.abs(got - want).max()))
                top1 += int((got.argmax(1) != want.argmax(1)).sum())
                rows += len(part)
        else:
            from namemodels.recipe import zero_state

            layout = {k: (v["layers"], v["width"]) for k, v in reference.state.items()}
            eos = reference.eos_id
            # all names side by side, one decoding step at a time (a name that has ended runs on <eos>)
            seqs = [[reference.bos_id] + c["ids"] + [eos] for c in conf["cases"]]
            state = zero_state(layout, len(seqs))
            category = np.array([c.get("category", 0) for c in conf["cases"]], np.int64)
            for t in range(max(map(len, seqs)) - 1):
                feeds = {
                    "token": np.array([s[t] if t < len(s) - 1 else eos for s in seqs], np.int64),
                    **state,
                }
                if reference.category:
                    feeds["category"] = category
                outs = run(feeds)
                state = dict(zip(layout, outs[1:]))
                for b, (c, s) in enumerate(zip(conf["cases"], seqs)):
                    if t < len(s) - 1:
                        err = max(err, abs(float(outs[0][b, s[t + 1]]) - c["next_token_logprobs"][t]))
                        rows += 1
                if t == 0:
                    first = np.array([c["first_step_logprobs"] for c in conf["cases"]])
                    err = max(err, float(np.abs(outs[0] - first).max()))
                    top1 += int((outs[0].argmax(1) != first.argmax(1)).sum())
        report[runtime] = {
            "max_abs_err": err,
            "top1_mismatches": top1,
            "compared_rows": rows,
            "status": "ok" if err <= TOLERANCE and top1 == 0 else "FAIL",
        }
    return report
