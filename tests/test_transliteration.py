"""Names in any script: letters of other scripts are transliterated (anyascii)
after the Latin fold, in one place (namemodels/text.py) that training, evaluation and every inference
path go through; Latin text folds as Unicode decomposes it; symbols, emoji and control characters stay
errors.

The references are independent of the code under test: every code point of the Basic Multilingual
Plane against its Unicode decomposition (``unicodedata``), and whole names as their languages write
them in ASCII. The letters that have no decomposition (ß, ł, ø, ...) are spelt by hand in
tests/test_input_rules.py's ``FOLDED``, which holds a name for each of them."""

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
from namemodels.text import ascii_fold, check_name, check_name_details, fold_details, fold_text

ALLOWED = frozenset(string.ascii_letters + " .,;'-")  # the documented alphabet after folding


def _decomposed(ch: str) -> str:
    """Unicode's compatibility decomposition (NFKD) without its combining marks: é -> e, ﬁ -> fi."""
    return "".join(c for c in unicodedata.normalize("NFKD", ch) if unicodedata.category(c) != "Mn")


def _code_points() -> list[str]:
    return [chr(i) for i in range(0x10000) if not 0xD800 <= i <= 0xDFFF]


def _unicode_fold(ch: str) -> str | None:
    """What ``ch`` folds to by Unicode's data alone, or None where that gives no ASCII spelling:
    an allowed character is itself, a space separator a space, a combining mark nothing, and a letter or
    punctuation its decomposition when that is all allowed characters."""
    cat = unicodedata.category(ch)
    if ch in ALLOWED:
        return ch
    if cat == "Zs":
        return " "
    if cat == "Mn":
        return ""
    spelt = _decomposed(ch)
    return spelt if cat[0] in "LP" and spelt and set(spelt) <= ALLOWED else None


def test_every_character_folds_as_unicode_decomposes_it_or_is_transliterated_or_refused():
    """Each BMP character, strict (between two letters) and lenient (alone): folded by its decomposition,
    untransliterated; or, a letter without one, transliterated or refused; anything else refused, the
    lenient fold keeping the allowed characters of its decomposition (™ -> TM, as data files were read).
    The letters spelt by language (text.LETTER_FOLD) are checked on whole names (test_input_rules.py)."""
    transliterated = 0
    for ch in _code_points():
        if ch in text.LETTER_FOLD:
            continue
        want = _unicode_fold(ch)
        spelt = _decomposed(ch)
        if want is None and unicodedata.category(ch)[0] in "LP" and set(spelt) & set(text.LETTER_FOLD):
            # decomposes to a letter spelt by language (ǽ -> æ, ǿ -> ø, ʼn -> ʼn): folds as that does
            want, was = fold_details(spelt)
            assert not was, hex(ord(ch))
        if want is not None:
            assert check_name_details("a" + ch + "b") == (" ".join(("a" + want + "b").split()), False), hex(ord(ch))
            assert ascii_fold(ch) == want, hex(ord(ch))
            continue
        if unicodedata.category(ch)[0] == "L":
            try:
                latin, was = check_name_details("a" + ch + "b")
            except UsageError:
                pass
            else:
                assert was and ascii_fold("a" + ch + "b") == latin, hex(ord(ch))
                transliterated += 1
                continue
        else:
            with pytest.raises(UsageError):
                check_name("a" + ch + "b")
        assert ascii_fold(ch) == "".join(c for c in spelt if c in ALLOWED), hex(ord(ch))
    assert transliterated > 10_000  # CJK, Cyrillic, Greek, ... now read


def test_the_training_data_folds_letter_by_letter_untransliterated(shared_data):
    """Every line of the surnames data (Latin letters): its fold is its characters' folds, each checked
    above, strict and lenient alike, and nothing in it is transliterated."""
    lines = [line for f in sorted((shared_data / "names").glob("*.txt")) for line in f.read_text("utf-8").splitlines()]
    assert len(lines) > 15_000
    for s in lines:
        folded = ascii_fold(s)
        assert folded == "".join(ascii_fold(c) for c in s), s
        try:
            strict = fold_details(s)
        except UsageError:
            continue
        assert strict == (folded, False), s


@pytest.mark.parametrize(
    "raw, latin",
    [
        ("Иванов", "Ivanov"),
        ("Жуков", "Zhukov"),
        ("Щукин", "Shchukin"),
        ("Хрущёв", "Khrushchev"),
        ("Шостакович", "Shostakovich"),
        ("Цветаева", "Tsvetaeva"),
        ("Чайковский", "Chaykovskiy"),
        ("Παπαδόπουλος", "Papadopoylos"),
        ("Σωκράτης", "Sokratis"),
        ("Θεοδωράκης", "Theodorakis"),
        ("Ψαράς", "Psaras"),
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
