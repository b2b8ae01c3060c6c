"""A generator's novelty set: the sorted CRC32s of the names it was trained on, in ``train_names.u32``
beside its weights. ``generate --novel`` skips a sample whose hash is in the set: a membership test
that ships no copy of the names themselves (false positives about 1 in 50,000 per query).
NumPy only: the trainer writes the file (:func:`write_novelty_hashes`) and the torch-free predictor
reads it (:class:`NoveltySet`)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes

NOVELTY_FILE = "train_names.u32"


def name_hash(name: str) -> int:
    """The CRC32 of the lower-cased name (generated names come out lower-cased)."""
    return zlib.crc32(name.lower().encode("utf-8"))


def write_novelty_hashes(out: Path, names: Iterable[str]) -> None:
    """Write ``out/train_names.u32``: the sorted, distinct hashes of ``names`` (little-endian uint32),
    atomically (:func:`namemodels.fileio.atomic_write_bytes`: a reader never sees a part of it)."""
    hashes = np.unique(np.array([name_hash(n) for n in names], dtype="<u4"))
    atomic_write_bytes(Path(out) / NOVELTY_FILE, hashes.tobytes())


class NoveltySet:
    """The training names of a model directory, as hashes: ``name in novelty`` (case-insensitive).
    A directory without the file (a classifier, or a generator trained before it was written) holds
    no name."""

    def __init__(self, hashes: np.ndarray | None = None):
        self.hashes = hashes  # sorted uint32, or None

    @classmethod
    def read(cls, directory: str | Path) -> NoveltySet:
        path = Path(directory) / NOVELTY_FILE
        return cls(np.fromfile(path, dtype="<u4") if path.is_file() else None)

    def __contains__(self, name: str) -> bool:
        h = self.hashes
        if h is None:
            return False
        i = np.searchsorted(h, name_hash(name))
        return bool(i < len(h) and h[i] == name_hash(name))
