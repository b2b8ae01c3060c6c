"""Allowed values of options, written once and checked two ways: as argparse types on the command
line (a bad value is a one-line error, exit code 2) and from Python (:class:`UsageError`).

>>> parser.add_argument("--hidden", type=number(int, Range(1)))          # "--hidden must be at least 1, got 0"
>>> parser.add_argument("--pool", type=one_of("last", "max"), choices=("last", "max"))
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

from .errors import UsageError

Number = Union[int, float]


@dataclass(frozen=True)
class Range:
    """``low <= value <= high``; either end may be open (excluded) or absent."""
    low: Optional[Number] = None
    high: Optional[Number] = None
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
                f"must be {'a whole number' if kind is int else 'a number'}, got {text!r}") from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"{allowed.describe(value)}, got {text}")
        return value
    parse.__name__ = kind.__name__
    parse.allowed = allowed   # type: ignore[attr-defined]  (for --help writers and tests)
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
