"""namemodels.data.scan against ``bytes.split``: whatever the block size (tiny here, so that blocks
repeat and are recognised by their digest), each line's id names its raw bytes, the distinct texts
are in first-seen order with the line where each first occurs, and over-long lines are named."""

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from namemodels.data import scan
from namemodels.data.records import DataError


def _reference(data: bytes):
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from([b"Li", b"Hinton", b"\n", b"\r\n", b"Li\nLi\n", b"\xef\xbb\xbf", b"\xff"]), max_size=30
    ),
    repeat=st.integers(1, 6),
    chunk=st.integers(1, 9),
)
def test_scan_is_a_plain_split(pieces, repeat, chunk):
    data = b"".join(pieces) * repeat  # a file that repeats itself: blocks seen before
    saved, scan.CHUNK = scan.CHUNK, chunk
    try:
        lines = scan.scan(io.BytesIO(data), "f")
    finally:
        scan.CHUNK = saved
    want = _reference(data)
    assert [lines.raw[k] for k in lines.ids.tolist()] == want
    assert lines.raw == list(dict.fromkeys(want))
    assert lines.first.tolist() == [want.index(r) + 1 for r in lines.raw]


@pytest.mark.parametrize(
    "data, line",
    [
        (b"Smith\n" + b"x" * 40, 2),  # over the limit as it streams by (no newline yet)
        (b"Li\nBo\n" + b"x" * 40 + b"\nLi\n", 3),  # over the limit within one block
        (b"x" * 40 + b"\n", 1),
    ],
)
def test_an_over_long_line_is_named(monkeypatch, data, line):
    monkeypatch.setattr(scan, "MAX_LINE", 20)
    for chunk in (7, 1 << 10):
        monkeypatch.setattr(scan, "CHUNK", chunk)
        with pytest.raises(DataError, match=rf"^f:{line}: a line longer than 20 bytes"):
            scan.scan(io.BytesIO(data), "f")


def test_a_broken_stream_is_a_data_error():
    class Broken(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            raise OSError("device gone")

    with pytest.raises(DataError, match=r"^f: cannot read \(device gone\)"):
        scan.scan(Broken(), "f")
