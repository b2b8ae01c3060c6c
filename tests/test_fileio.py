"""namemodels.fileio, each piece against an independent reference: the line reader against
``bytes.split``, the hash against ``hashlib`` over the whole bytes, the atomic writer against what
``os.stat``, ``os.listdir`` and a spy on ``os.fsync``/``os.replace`` see."""

import hashlib
import io
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from namemodels import fileio


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- atomic writes ---------------------------------------------------------------------------------
def test_a_new_file_gets_the_umask_mode_and_nothing_is_left_beside_it(tmp_path):
    old = os.umask(0o027)
    try:
        fileio.atomic_write_text(tmp_path / "a.json", "{}\n")
        with fileio.atomic_write(tmp_path / "b.txt", "w", encoding="utf-8", newline="\n", suffix=".part") as f:
            f.write("Müller\n")
        with fileio.atomic_path(tmp_path / "c.bin", suffix=".tmp") as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".c.bin.") and tmp.name.endswith(".tmp")
            tmp.write_bytes(b"\x00\x01")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").read_text() == "{}\n"
    assert (tmp_path / "b.txt").read_bytes() == "Müller\n".encode()
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    for name in ("a.json", "b.txt", "c.bin"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640  # not mkstemp's 0600
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.txt", "c.bin"]


def test_a_replaced_file_gets_the_umask_mode_or_keeps_its_own(tmp_path):
    path = tmp_path / "out.tsv"
    path.write_text("old")
    os.chmod(path, 0o604)
    fileio.atomic_write_text(path, "new")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()
    os.chmod(path, 0o604)
    with fileio.atomic_write(path, "w", keep_mode=True) as f:
        f.write("newer")
    assert path.read_text() == "newer" and stat.S_IMODE(os.stat(path).st_mode) == 0o604
    os.chmod(path, 0o4755)
    with fileio.atomic_write(path, keep_mode=True) as f:
        f.write(b"newest")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755  # the permission bits, never set-user-id


@pytest.mark.parametrize("how", ["write", "path"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, how):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        if how == "write":
            with fileio.atomic_write(path) as f:
                f.write(b"half")
                raise RuntimeError("disk full")
        else:
            with fileio.atomic_path(path, suffix=".pt2") as tmp:
                tmp.write_bytes(b"half")
                raise RuntimeError("export failed")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.onnx"]


def test_a_failed_rename_removes_the_temporary(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        fileio.atomic_write_bytes(tmp_path / "taken", b"x")  # a directory is not replaced
    assert os.listdir(tmp_path) == ["taken"] and (tmp_path / "taken").is_dir()


def test_two_writers_of_one_file_have_their_own_temporaries(tmp_path):
    path = tmp_path / "last.json"
    with fileio.atomic_write(path) as a, fileio.atomic_write(path) as b:
        assert os.path.realpath(f"/proc/self/fd/{a.fileno()}") != os.path.realpath(f"/proc/self/fd/{b.fileno()}")
        a.write(b"a")
        b.write(b"b")
    assert path.read_bytes() == b"a"  # the last one published wins, whole
    assert os.listdir(tmp_path) == ["last.json"]


def test_the_file_is_synced_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", stat.S_IFMT(os.fstat(fd).st_mode)))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.path.basename(src).startswith(".x.txt."), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    fileio.atomic_write_text(tmp_path / "x.txt", "hello")
    assert events == [("fsync", stat.S_IFREG), ("replace", True, str(tmp_path / "x.txt")), ("fsync", stat.S_IFDIR)]


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("earlier", [False, True])
def test_a_folder_is_replaced_whole_with_the_umask_mode(tmp_path, earlier):
    out = tmp_path / "bundle"
    if earlier:
        (out / "old").mkdir(parents=True)
        (out / "old" / "gone.txt").write_text("old")
    old_mask = os.umask(0o027)
    try:
        with fileio.atomic_folder(out) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith(".bundle.") and not (out / "new.txt").exists()
            (tmp / "new.txt").write_text("new")
    finally:
        os.umask(old_mask)
    assert _tree(out) == {"new.txt": "new"}  # nothing of the earlier folder is left in it
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o750
    assert os.listdir(tmp_path) == ["bundle"]  # neither the new folder's temporary name nor the old one's


def test_a_failed_folder_leaves_the_earlier_one_and_no_temporary(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_folder(out) as tmp:
        (tmp / "index.html").write_text("half")
        raise RuntimeError("model failed to export")
    assert _tree(out) == {"index.html": "old"} and os.listdir(tmp_path) == ["site"]


def test_a_failed_folder_rename_puts_the_earlier_one_back(tmp_path, monkeypatch):
    out = tmp_path / "names"
    out.mkdir()
    (out / "English.txt").write_text("Smith\n")
    real_replace = os.replace

    def replace(src, dst):
        if os.path.basename(src).startswith(".names.") and str(dst) == str(out):
            raise OSError("no space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError), fileio.atomic_folder(out) as tmp:
        (tmp / "English.txt").write_text("Jones\n")
    assert _tree(out) == {"English.txt": "Smith\n"}
    assert os.listdir(tmp_path) == ["names"]


def test_atomic_write_refuses_modes_that_do_not_write_a_whole_file(tmp_path):
    with pytest.raises(ValueError):
        with fileio.atomic_write(tmp_path / "x", "ab"):
            pass
    assert os.listdir(tmp_path) == []


# ---- lines -----------------------------------------------------------------------------------------
class _Trickle(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes a read (a pipe)."""

    def __init__(self, data: bytes, step: int):
        self.data, self.step, self.pos = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = min(len(b), self.step, len(self.data) - self.pos)
        b[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def _reference(data: bytes, max_line: int):
    """What byte_lines should give, from ``bytes.split``: the lines and which were over-long."""
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [b"" if len(r) > max_line else r for r in lines], [len(r) > max_line for r in lines]


@settings(max_examples=300, deadline=None)
@given(
    pieces=st.lists(
        st.sampled_from([b"Li", b"Hinton", b"\n", b"\r\n", b"\xef\xbb\xbf", b"\xff", b"x" * 9, b""]), max_size=14
    ),
    block=st.integers(1, 9),
    max_line=st.integers(1, 14),
    step=st.integers(1, 5),
    eager=st.booleans(),
)
def test_byte_lines_are_a_plain_split(pieces, block, max_line, step, eager):
    """Whatever the block size, the reads' sizes and the line limit, the lines are those of
    ``bytes.split(b"\\n")`` after a leading BOM; a line over the limit that spans blocks comes out
    empty and flagged, one within a block comes out whole (the caller checks those)."""
    data = b"".join(pieces)
    stream = io.BufferedReader(_Trickle(data, step), buffer_size=2) if eager else _Trickle(data, step)
    got, cut = [], []
    for head, was_cut in fileio.byte_lines(stream, block, max_line, eager=eager):
        lines = head.split(b"\n")
        cut += [was_cut] + [False] * (len(lines) - 1)
        got += lines
    want, long = _reference(data, max_line)
    assert len(got) == len(want)
    for g, _w, c, lg, raw in zip(got, want, cut, long, _reference(data, 1 << 30)[0]):
        if c:  # dropped as it streamed by
            assert lg and g == b""
        else:  # kept whole: the caller sees its length
            assert g == raw


def test_a_bom_split_over_reads_is_dropped():
    got = [h for h, _ in fileio.byte_lines(_Trickle(b"\xef\xbb\xbfLi\nBo", 1), block=1)]
    assert b"\n".join(got).split(b"\n") == [b"Li", b"Bo"]
    assert [h for h, _ in fileio.byte_lines(io.BytesIO(b"\xef\xbb"))] == [b"\xef\xbb"]  # not a whole BOM: kept


# ---- rows ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "line, delimiter, fields",
    [
        ("Smith,English", ",", ["Smith", "English"]),
        ('"Smith, Jr",English', ",", ["Smith, Jr", "English"]),
        ('"O""Neil",Irish', ",", ['O"Neil', "Irish"]),
        ('O"Neil,Irish', ",", ['O"Neil', "Irish"]),  # a quote inside a field is a character
        ("Müller\tGerman", "\t", ["Müller", "German"]),
        ("a,b\tc", "\t", ["a,b", "c"]),
        ("", ",", []),
        (",", ",", ["", ""]),
    ],
)
def test_parse_row(line, delimiter, fields):
    assert fileio.parse_row(line, delimiter) == fields


def test_csv_reader_reads_a_quoted_line_break():
    rows = fileio.csv_reader(["name,n\r\n", '"Ann\n', 'Lee",3\n'])
    assert list(rows) == [["name", "n"], ["Ann\nLee", "3"]]


# ---- SHA-256 ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 6, 7, 8, 20, 1000])
def test_sha256_file_is_hashlib_over_the_whole_file(tmp_path, monkeypatch, size):
    monkeypatch.setattr(fileio, "BLOCK", 7)  # many blocks, and sizes on their boundaries
    data = os.urandom(size)
    (tmp_path / "f").write_bytes(data)
    assert fileio.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest() == fileio.sha256_bytes(data)
