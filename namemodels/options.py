"""Allowed values of options, written once and checked two ways: as argparse types on the command
line (a bad value is a one-line error, exit code 2) and from Python (:class:`UsageError`).

>>> parser.add_argument("--hidden", type=number(int, Range(1)))          # "--hidden must be at least 1, got 0"
>>> parser.add_argument("--pool", type=one_of("last", "max"), choices=("last", "max"))
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Union

from .errors import UsageError

Number = Union[int, float]


@dataclass(frozen=True)
class Range:
    """``low <= value <= high``; either end may be open (excluded) or absent."""

    low: Number | None = None
    high: Number | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: Number) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def describe(self, value: Number = 0) -> str:
        """``"must be at least 0 and below 1"`` (what is wrong with ``value``, when it is not finite)."""
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        low, high = (f"{v:,}" if isinstance(v, int) else f"{v}" for v in (self.low, self.high))
        if self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"must be between {low} and {high}"
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {low}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {high}")
        return "must be " + " and ".join(parts) if parts else "must be a finite number"

    def check(self, value: Number, name: str) -> Number:
        """``value``, or :class:`UsageError` ``"<name> must be ..., got <value>"``."""
        if value not in self:
            raise UsageError(f"{name} {self.describe(value)}, got {value}")
        return value


def number(kind: type, allowed: Range = Range()) -> Callable[[str], Number]:
    """An argparse ``type``: parse an int or a finite float and check it against ``allowed``."""

    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be {'a whole number' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"{allowed.describe(value)}, got {text}")
        return value

    parse.__name__ = kind.__name__
    # (for --help writers and tests; mypy has no way to declare an attribute on a function)
    parse.allowed = allowed  # type: ignore[attr-defined]
    return parse


def one_of(*choices: str) -> Callable[[str], str]:
    """An argparse ``type`` for a word from ``choices`` (pass ``choices=`` too: --help lists them)."""

    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(choices)}, got {text!r}")
        return text

    parse.__name__ = "choice"
    return parse


def check_choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


# --json means one thing in every command: a flag that prints the command's result as JSON on stdout (its text
# then goes to stderr, or is left out). A file is written with --json-out FILE. `cv`, `export --verify` and the
# benchmarks once took `--json FILE`; that spelling still writes FILE, with a note on stderr.


def add_json_options(p: argparse.ArgumentParser, what: str, old_file_spelling: bool = False) -> None:
    """``--json`` (print ``what`` as JSON on stdout) and ``--json-out FILE``; with ``old_file_spelling``
    ``--json FILE`` is still read as ``--json-out FILE`` (see :func:`json_destinations`)."""
    if old_file_spelling:
        p.add_argument(
            "--json",
            nargs="?",
            const=True,
            default=False,
            metavar="FILE",
            help=f"print {what} as JSON on stdout (the text goes to stderr); `--json FILE`, the old "
            "spelling of --json-out FILE, still writes FILE (deprecated)",
        )
    else:
        p.add_argument("--json", action="store_true", help=f"print {what} as JSON on stdout")
    p.add_argument("--json-out", metavar="FILE", default=None, help=f"also write {what} as JSON to FILE")


def json_destinations(
    args: argparse.Namespace, command: str, note: Callable[[str], object] | None = None
) -> tuple[bool, str | None]:
    """``(print the JSON on stdout, file to write it to or None)`` of the options of
    :func:`add_json_options`. The old ``--json FILE`` counts as ``--json-out FILE``, with a deprecation
    note (``note(message)``; default: printed on stderr)."""
    value, out = getattr(args, "json", False), getattr(args, "json_out", None)
    if isinstance(value, str):
        if out is not None and out != value:
            raise UsageError(
                f"--json {value} (the old spelling of --json-out {value}) and --json-out {out} name two "
                "files: give --json-out FILE only"
            )
        message = (
            f"namemodels {command}: note: `--json FILE` is deprecated, write `--json-out {value}` "
            "(`--json` alone prints the JSON on stdout)"
        )
        if note is None:
            import sys

            print(message, file=sys.stderr)
        else:
            note(message)
        return False, value
    return bool(value), out
