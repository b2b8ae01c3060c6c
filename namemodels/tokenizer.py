"""Character tokenizer for names. No torch: inference uses it with numpy or onnxruntime.

Ids 0..3 are the special tokens ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``; the characters follow
in sorted order, so a tokenizer fitted on the same characters always gives the same ids.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .text import ascii_fold

__all__ = ["CharTokenizer"]


class CharTokenizer:
    PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
    SPECIALS = (PAD, BOS, EOS, UNK)
    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, chars: Iterable[str], lowercase: bool = False):
        chars = set(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer: characters must be single-character strings, got {c!r}")
        self.lowercase = bool(lowercase)
        self.chars: list[str] = sorted(chars)
        self.itos: list[str] = list(self.SPECIALS) + self.chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.itos)}
        # id of each ASCII code 0..127 (<unk> where the vocabulary lacks it): encode_batch's lookup table
        self.ascii_ids = np.array([self.stoi.get(chr(c), self.unk_id) for c in range(128)], np.int64)

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _normalize(name: str, lowercase: bool) -> str:
        s = ascii_fold(name)
        if lowercase:
            s = s.lower()
        return s.strip()

    @classmethod
    def fit(cls, names: Iterable[str], lowercase: bool = False) -> CharTokenizer:
        chars: set[str] = set()
        for name in names:
            chars.update(cls._normalize(name, lowercase))
        return cls(chars, lowercase=lowercase)

    # ------------------------------------------------------------------ use
    def normalize(self, name: str) -> str:
        """ASCII folding (:func:`namemodels.text.ascii_fold`, the fold of the data loaders), lowercase if
        set, strip. Names a user gives are checked first (:func:`namemodels.text.check_name`)."""
        return self._normalize(name, self.lowercase)

    def encode(self, name: str, bos: bool = False, eos: bool = False) -> list[int]:
        ids = [self.stoi.get(c, self.unk_id) for c in self.normalize(name)]
        if bos:
            ids.insert(0, self.bos_id)
        if eos:
            ids.append(self.eos_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Characters of ``ids``; special tokens are dropped and decoding stops at ``<eos>``."""
        out = []
        n = len(self.itos)
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i < 0 or i >= n:
                raise ValueError(f"CharTokenizer.decode: id {i} is outside the vocabulary (size {n})")
            if i >= len(self.SPECIALS):
                out.append(self.itos[i])
        return "".join(out)

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self.itos == other.itos and self.lowercase == other.lowercase

    def __repr__(self) -> str:
        return f"CharTokenizer({''.join(self.chars)!r}, lowercase={self.lowercase})"

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict:
        return {
            "type": "char",
            "version": 1,
            "specials": list(self.SPECIALS),
            "chars": list(self.chars),
            "lowercase": self.lowercase,
        }

    @classmethod
    def from_dict(cls, d: dict) -> CharTokenizer:
        if not isinstance(d, dict) or "chars" not in d:
            raise ValueError("CharTokenizer.from_dict: expected a dict with a 'chars' list")
        if d.get("type", "char") != "char":
            raise ValueError(f"CharTokenizer.from_dict: unknown tokenizer type {d.get('type')!r}")
        specials = d.get("specials", list(cls.SPECIALS))
        if list(specials) != list(cls.SPECIALS):
            raise ValueError(f"CharTokenizer.from_dict: special tokens {specials} differ from {list(cls.SPECIALS)}")
        return cls(d["chars"], lowercase=bool(d.get("lowercase", False)))
