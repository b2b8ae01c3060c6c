"""Names as text: the one ASCII fold that training and inference share, and the checks on a name
a user gives. No torch, no NumPy: the tokenizer and the data loaders import it.

Two ways to fold, with the same letters:

* :func:`ascii_fold` (data files): lenient, as the PyTorch char-RNN tutorial reads its data --
  characters that do not fold to an allowed ASCII character are dropped.
* :func:`fold_text` and :func:`check_name` (what users type): strict -- a character that would be
  dropped is an error that names it, so no input is silently answered as a different name.

Folding, character by character (:func:`_scan`, the one place every path goes through): the letters
of :data:`LETTER_FOLD` (Latin letters without a Unicode decomposition, and typographic apostrophes and
hyphens), then NFKD with the combining marks removed (``é`` -> ``e``, ``ﬁ`` -> ``fi``, full-width
letters -> ASCII); a letter that still is not ASCII (another script: ``Иванов``, ``王``) is then
transliterated with ``anyascii`` (:data:`ANYASCII_VERSION`, the same tables on PyPI and npm): ``Ivanov``,
``Wang``. A combining or spacing mark right after a transliterated letter is transliterated with it
(Indic vowel signs); elsewhere a combining mark is removed. Symbols and emoji are never transliterated
(they stay errors). Allowed after folding: ASCII letters and :data:`PUNCTUATION`.
:data:`TEXT_RULE` numbers this rule (1: without transliteration; 2: with it), for exported bundles.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Callable, Iterable

from .errors import UsageError

__all__ = [
    "LETTER_FOLD",
    "PUNCTUATION",
    "ALL_LETTERS",
    "TEXT_RULE",
    "ANYASCII_VERSION",
    "ascii_fold",
    "fold_text",
    "fold_details",
    "check_name",
    "check_name_details",
    "check_names",
]

TEXT_RULE = 2  # the folding rule's version (exported bundles record it; 2 adds transliteration)
ANYASCII_VERSION = "0.3.3"  # the anyascii whose tables the rule uses (pinned in setup.py; npm has the same)

PUNCTUATION = " .,;'-"
ALL_LETTERS = string.ascii_letters + PUNCTUATION
ALLOWED = frozenset(ALL_LETTERS)
MAX_NAME = 64  # characters, after folding

# Letters with no decomposition to a base letter, spelt as their languages transliterate them
# (German ß, Polish ł, Danish/Norwegian ø, æ, French œ, Croatian đ, Icelandic þ ð, Turkish ı, ...).
# Capitals that start a name keep only their first letter upper case (Æsa -> Aesa); ẞ, which
# occurs only inside upper-case words, becomes SS.
LETTER_FOLD: dict[str, str] = {
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
    # typographic apostrophes and hyphens (O’Brien, Smith‐Jones)
    "’": "'",
    "‘": "'",
    "ʼ": "'",
    "‐": "-",
    "‑": "-",
    "–": "-",
    "\u1680": " ",  # the one space separator without a decomposition to a space
}
_FOLD = str.maketrans(LETTER_FOLD)
_ASCII_DROP = {i: None for i in range(128) if chr(i) not in ALLOWED}
_CONTROL_NAMES = {
    "\t": "tab",
    "\n": "line break",
    "\r": "carriage return",
    "\x00": "NUL",
    "\x07": "bell",
    "\x1b": "escape",
    "\x7f": "delete",
}
RULE = "names are letters, with spaces, hyphens, apostrophes, periods and commas"


def _fold(s: str) -> str:
    """Table, NFKD, combining marks removed, table again (for what NFKD produces, e.g. ‑ -> ‐ -> -)."""
    return "".join(
        c for c in unicodedata.normalize("NFKD", s.translate(_FOLD)) if unicodedata.category(c) != "Mn"
    ).translate(_FOLD)


_anyascii: Callable[[str], str] | None = None  # the package's function, once imported


def anyascii(ch: str) -> str:
    """anyascii's transliteration (imported on first use: 17 ms, which a Latin name never needs)."""
    global _anyascii
    if _anyascii is None:
        from anyascii import anyascii as impl

        _anyascii = impl
    return _anyascii(ch)


def _scan(text: str, strict: bool) -> tuple[str, dict[str, list[str]], bool]:
    """The fold, character by character: ``(folded text, {kind: characters that do not fold},
    transliterated)``. ``strict``: characters that do not fold are collected in the dict (and left out);
    lenient (data files): they are left out, keeping any allowed characters of their NFKD fold (``™`` ->
    ``TM``, as data files have always been read).

    Per character ``ch``: allowed -> itself; a space separator (Zs) -> ``" "``; a mark (M*) right after a
    transliterated letter (or its marks) -> its anyascii; another combining mark (Mn) -> nothing; a
    letter or punctuation (L*, P*) -> the table + NFKD fold when that is all allowed; else, for a letter,
    its anyascii when that is non-empty and all allowed (``transliterated``); anything else does not fold."""
    out: list[str] = []
    bad: dict[str, list[str]] = {}
    transliterated = after = False  # after: the last letter was transliterated (its marks follow it)
    for ch in text:
        if ch in ALLOWED:
            out.append(ch)
            after = False
            continue
        cat = unicodedata.category(ch)
        if cat == "Zs":
            out.append(" ")
            after = False
            continue
        if cat[0] == "M" and after:
            t = anyascii(ch)
            if all(c in ALLOWED for c in t):
                out.append(t)
                continue
        elif cat == "Mn":
            continue
        folded = _fold(ch) if cat[0] in "LP" else ""  # symbols fold to letters too (™ -> TM): not taken
        if folded and all(c in ALLOWED for c in folded):
            out.append(folded)
            after = False
            continue
        if cat[0] == "L":
            t = anyascii(ch)
            if t and all(c in ALLOWED for c in t):
                out.append(t)
                transliterated = after = True
                continue
        after = False
        if strict:
            found = bad.setdefault(_kind(ch), [])
            if ch not in found:
                found.append(ch)
        else:
            out.extend(c for c in _fold(ch) if c in ALLOWED)
    return "".join(out), bad, transliterated


def ascii_fold(s: str) -> str:
    """Fold a line of a data file to ASCII, dropping what does not fold (the tutorial's rule).
    ``"Ślusarski"`` -> ``"Slusarski"``, ``"Groß"`` -> ``"Gross"``, ``"Иванов"`` -> ``"Ivanov"``,
    ``"a1:b"`` -> ``"ab"``."""
    if s.isascii():  # fast path, same result
        return s.translate(_ASCII_DROP)
    return _scan(s, strict=False)[0]


def _describe(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    name = unicodedata.name(ch, "") or _CONTROL_NAMES.get(ch, "")
    shown = f"{ch!r} " if ch.isprintable() and not ch.isspace() else ""
    return f"{shown}({code}{' ' + name if name else ''})"


def _quote(s: str, limit: int = 40) -> str:
    return repr(s if len(s) <= limit else s[:limit] + "...")


def _kind(ch: str) -> str:
    """Why ``ch`` does not fold: control | digit | latin | script | symbol."""
    cat = unicodedata.category(ch)
    if cat[0] == "C" or cat in ("Zl", "Zp"):
        return "control"
    if cat[0] == "N":
        return "digit"
    if cat[0] == "L":
        return "latin" if unicodedata.name(ch, "").startswith("LATIN") else "script"
    return "symbol"


def fold_text(text: str) -> str:
    """Fold what a user typed to ASCII, strictly: raises :class:`UsageError` naming any character
    that does not fold to an ASCII letter or one of :data:`PUNCTUATION` (a control character, a
    digit, a symbol or emoji, a letter without a Latin transliteration). Space separators become
    spaces; combining marks (accents) are removed; letters of other scripts are transliterated."""
    return fold_details(text)[0]


def fold_details(text: str) -> tuple[str, bool]:
    """:func:`fold_text` and whether a letter was transliterated (anyascii) on the way."""
    out, bad, transliterated = _scan(text, strict=True)
    if bad:
        raise UsageError(_problem(text, bad, any(c.isalpha() for c in out)))
    return out, transliterated


def _problem(text: str, bad: dict[str, list[str]], has_latin: bool) -> str:
    """One line for the most basic kind of problem found (control, digit, symbol, letters)."""
    q = _quote(text)
    if "control" in bad:
        chars = bad["control"]
        what = "a control, invisible or unassigned character" if len(chars) == 1 else "control or invisible characters"
        return f"{q} contains {what} {', '.join(_describe(c) for c in chars[:3])}: {RULE}"
    if "digit" in bad:
        return f"{q} contains digits: {RULE}"
    if "symbol" in bad:
        chars = bad["symbol"]
        return f"{q} contains {', '.join(_describe(c) for c in chars[:3])}, not allowed in a name: {RULE}"
    if "script" in bad:
        letters = "".join(bad["script"][:8])
        return (
            f"{q} has letters with no Latin transliteration here ({letters}): the models know only Latin "
            "letters; write them in Latin letters"
        )
    letters = "".join(bad["latin"][:8])
    return (
        f"{q} has Latin letters that have no ASCII spelling here ({letters}): write them with the nearest plain letters"
    )


def check_name(name: str, max_len: int = MAX_NAME) -> str:
    """Validate a name for prediction; return it folded (:func:`fold_text`), stripped and with inner
    runs of spaces collapsed. Leading and trailing white space (tabs and line breaks included) is
    removed first. Raises :class:`UsageError` saying what is wrong."""
    return check_name_details(name, max_len)[0]


def check_name_details(name: str, max_len: int = MAX_NAME) -> tuple[str, bool]:
    """:func:`check_name` and whether a letter of the name was transliterated (anyascii)."""
    if not isinstance(name, str):
        raise UsageError(f"a name must be text, got {type(name).__name__}")
    raw = name.strip()
    if not raw:
        raise UsageError("empty name: give a name such as 'Dostoevsky'")
    if len(raw) > 4 * max_len:  # before folding: no per-character work on a huge string
        raise UsageError(f"name is {len(raw)} characters long; the limit is {max_len}")
    folded, transliterated = fold_details(raw)
    folded = " ".join(folded.split())
    if not any(c.isalpha() for c in folded):
        raise UsageError(f"{_quote(raw)} has no letters: give a name such as 'Dostoevsky'")
    if len(folded) > max_len:
        raise UsageError(f"name is {len(folded)} characters long; the limit is {max_len}")
    return folded, transliterated


def check_names(names: str | Iterable[str]) -> tuple[list[str], dict[int, UsageError]]:
    """:func:`check_name` over a list: ``(folded valid names, {index in names: error})``."""
    if isinstance(names, str):
        names = [names]
    valid: list[str] = []
    errors: dict[int, UsageError] = {}
    for i, name in enumerate(names):
        try:
            valid.append(check_name(name))
        except UsageError as exc:
            errors[i] = exc
    return valid, errors
