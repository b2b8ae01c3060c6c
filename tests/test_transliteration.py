"""Names in any script: letters of other scripts are transliterated (anyascii)
after the Latin fold, in one place (namemodels/text.py) that training, evaluation and every inference
path go through; Latin text folds exactly as before; symbols, emoji and control characters stay errors.

The reference for "as before" is the fold as it was before transliteration (commit e34ebfc), copied
below verbatim, and run over every code point of the Basic Multilingual Plane."""

from __future__ import annotations

import json
import re
import string
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from namemodels import text
from namemodels.errors import UsageError
from namemodels.text import ascii_fold, check_name, check_name_details, fold_text

# ---- the fold before transliteration (text.py at e34ebfc), the reference for Latin text ------------
_ALLOWED = frozenset(string.ascii_letters + " .,;'-")
_OLD_TABLE = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "ł": "l",
        "Ł": "L",
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "Ae",
        "œ": "oe",
        "Œ": "Oe",
        "đ": "d",
        "Đ": "D",
        "þ": "th",
        "Þ": "Th",
        "ð": "d",
        "Ð": "D",
        "ı": "i",
        "ħ": "h",
        "Ħ": "H",
        "ŧ": "t",
        "Ŧ": "T",
        "ŀ": "l",
        "Ŀ": "L",
        "’": "'",
        "‘": "'",
        "ʼ": "'",
        "‐": "-",
        "‑": "-",
        "–": "-",
        "\u1680": " ",
    }
)


def _old_fold(s):
    return "".join(
        c for c in unicodedata.normalize("NFKD", s.translate(_OLD_TABLE)) if unicodedata.category(c) != "Mn"
    ).translate(_OLD_TABLE)


def old_ascii_fold(s):
    return "".join(c for c in _old_fold(s) if c in _ALLOWED)


def old_fold_text(s):
    """The old strict fold: the folded text, or None where it raised."""
    out = []
    for ch in s:
        if ch in _ALLOWED:
            out.append(ch)
            continue
        cat = unicodedata.category(ch)
        if cat == "Zs":
            out.append(" ")
            continue
        if cat == "Mn":
            continue
        folded = _old_fold(ch) if cat[0] in "LP" else ""
        if folded and all(c in _ALLOWED for c in folded):
            out.append(folded)
            continue
        return None
    return "".join(out)


def _code_points():
    return [chr(i) for i in range(0x10000) if not 0xD800 <= i <= 0xDFFF]


def test_every_character_that_folded_before_folds_the_same():
    """Each BMP character the old strict fold accepted gives the same text now, untransliterated; and
    the lenient data fold differs only for letters the strict fold refused, which are now transliterated."""
    changed = []
    for ch in _code_points():
        old = old_fold_text("a" + ch)
        if old is not None:
            assert check_name_details("a" + ch + "b") == (" ".join((old + "b").split()), False), hex(ord(ch))
        new = ascii_fold(ch)
        if new != old_ascii_fold(ch):
            changed.append(ch)
            # only letters the old fold refused (two kept a fragment: U+1E9A 'a' -> "a'", U+FDFB ' ')
            assert unicodedata.category(ch)[0] in "LM" and old_fold_text(ch) is None, hex(ord(ch))
    assert len(changed) > 10_000  # CJK, Cyrillic, Greek, ... now read


def test_latin_strings_and_the_training_data_fold_as_before(shared_data):
    """Whole strings (marks typed separately, ligatures, full-width, the fold table's letters) and every
    line of the surnames data: the same as the old fold, strict and lenient."""
    samples = [
        "Dvořák",
        "Mal\u0301y",
        "Ｓｍｉｔｈ",
        "ﬁnn",
        "Strauß",
        "GROẞ",
        "Łukasz",
        "Ørsted",
        "Æsa",
        "Œuvre",
        "Þór",
        "Yıldız",
        "O’Brien",
        "Smith‐Jones",
        "de\u00a0la\u2003Cruz",
        "Nguyễn",
        "Ślusàrski",
        "a\u0363b",
        "Guðrún",
        "ǅemal",
    ]
    lines = [line for f in sorted((shared_data / "names").glob("*.txt")) for line in f.read_text("utf-8").splitlines()]
    assert len(lines) > 15_000
    for s in samples + lines:
        assert ascii_fold(s) == old_ascii_fold(s), s
        old = old_fold_text(s)
        if old is not None and old.strip():
            assert fold_text(s) == old, s


@pytest.mark.parametrize(
    "raw, latin",
    [
        ("Иванов", "Ivanov"),
        ("Παπαδόπουλος", "Papadopoylos"),
        ("王", "Wang"),
        ("毛泽东", "MaoZeDong"),
        ("Подъячев", "Pod'yachev"),
        ("김", "Gim"),
        ("गुप्ता", "gupta"),
        ("ŋa", "nga"),
        ("Smith李", "SmithLi"),
        ("Иван Петров", "Ivan Petrov"),
    ],
)
def test_other_scripts_are_transliterated(raw, latin):
    assert check_name_details(raw) == (latin, True)
    assert check_name(raw) == fold_text(raw) == ascii_fold(raw) == latin


@pytest.mark.parametrize(
    "raw, code",
    [
        ("Иванов😀", "U+1F600"),
        ("😀", "U+1F600"),
        ("王\u200d", "U+200D"),
        ("Иван\tов", "U+0009"),
        ("王™", "U+2122"),
        ("Иван1", "digits"),
        ("①", "digits"),
    ],
)
def test_emoji_symbols_digits_and_control_characters_stay_errors(raw, code):
    """Refused before anyascii could spell them (it writes 😀 as ':grinning:' and ™ as 'TM')."""
    with pytest.raises(UsageError, match=re.escape(code)):
        check_name(raw)


def test_marks_after_a_latin_letter_are_removed_after_a_transliterated_one_read():
    assert check_name("a\u0363b") == "ab"  # a combining Latin small a over a Latin letter
    assert check_name("गु") == "gu"  # an Indic vowel sign (Mn) after its consonant


def test_anyascii_version_is_the_pinned_one():
    from importlib.metadata import version

    assert version("anyascii") == text.ANYASCII_VERSION
    assert text.TEXT_RULE == 2


# ---- every path: the same fold ---------------------------------------------------------------------
def test_training_data_evaluation_and_tokenizer_read_other_scripts(tmp_path):
    from namemodels.data import loader
    from namemodels.tokenizer import CharTokenizer

    (tmp_path / "Russian.txt").write_text("Иванов\nPetrov\n", encoding="utf-8")
    (tmp_path / "Greek.txt").write_text("Παπαδόπουλος\n", encoding="utf-8")
    ds = loader.load(tmp_path)
    assert sorted(ds.names) == ["Ivanov", "Papadopoylos", "Petrov"]
    tok = CharTokenizer.fit(["ivanov"], lowercase=True)
    assert tok.encode("Иванов") == tok.encode("Ivanov")


def test_predictor_answers_a_transliterated_name_as_its_latin_form(shipped_surnames):
    """The network reads the Latin form; the answer then also takes in the script (王: Chinese or
    Japanese only) and marked letters (inference/name_table.py's Rule), which table=False leaves out."""
    import namemodels

    surnames = shipped_surnames
    names = ["Иванов", "Παπαδόπουλος", "王", "Nguyễn", "Müller"]
    latin = ["Ivanov", "Papadopoylos", "Wang", "Nguyen", "Muller"]
    alone = namemodels.load("surnames", table=False)
    np.testing.assert_array_equal(alone.predict_logproba(names), alone.predict_logproba(latin))
    answers = surnames.predict(names, details=True)
    assert [a.transliterated for a in answers] == ["Ivanov", "Papadopoylos", "Wang", None, None]
    assert answers[0].to_dict()["transliterated"] == "Ivanov"
    assert [a.label for a in answers[:4]] == ["Russian", "Greek", "Chinese", "Vietnamese"]
    assert answers[2].evidence == {"scripts": ["Han"], "labels": ["Chinese", "Japanese"]}


def test_predict_json_says_transliterated():
    out = subprocess.run(
        [sys.executable, "-m", "namemodels.cli", "predict", "--json", "Иванов", "Smith"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows[0]["transliterated"] == "Ivanov" and "transliterated" not in rows[1]


def test_generate_start_and_the_torch_backend_read_other_scripts(shipped_first_names):
    names = shipped_first_names.generate(n=3, start="Ив", seed=0)
    assert all(n.startswith("Iv") for n in names), names
    pytest.importorskip("torch")
    import namemodels

    torch_model = namemodels.load("surnames", backend="torch", table=False)
    np.testing.assert_array_equal(
        torch_model.predict_logproba(["Παπαδόπουλος"]), torch_model.predict_logproba(["Papadopoylos"])
    )
