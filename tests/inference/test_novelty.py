"""namemodels.inference.novelty: the file holds the sorted, distinct CRC32s of the lower-cased names
(checked against zlib and struct, not the module's own hash), written atomically, and membership
is exactly that set."""

import os
import stat
import struct
import zlib

from namemodels.inference.novelty import NOVELTY_FILE, NoveltySet, write_novelty_hashes


def test_the_file_is_the_sorted_distinct_crc32s_written_atomically(tmp_path):
    names = ["Hinton", "hinton", "Nguyen", "Müller", "Li"]
    old = os.umask(0o027)
    try:
        write_novelty_hashes(tmp_path, names)
        write_novelty_hashes(tmp_path, names[:2])  # replaced whole
    finally:
        os.umask(old)
    raw = (tmp_path / NOVELTY_FILE).read_bytes()
    assert list(struct.unpack(f"<{len(raw) // 4}I", raw)) == [zlib.crc32(b"hinton")]
    assert stat.S_IMODE(os.stat(tmp_path / NOVELTY_FILE).st_mode) == 0o640
    assert os.listdir(tmp_path) == [NOVELTY_FILE]  # no temporary left beside it

    write_novelty_hashes(tmp_path, names)
    raw = (tmp_path / NOVELTY_FILE).read_bytes()
    want = sorted({zlib.crc32(n.lower().encode()) for n in names})
    assert list(struct.unpack(f"<{len(raw) // 4}I", raw)) == want
    novelty = NoveltySet.read(tmp_path)
    assert all(n in novelty for n in names + ["HINTON", "li"]) and "Schmidt" not in novelty
    assert "x" not in NoveltySet.read(tmp_path / "missing")
