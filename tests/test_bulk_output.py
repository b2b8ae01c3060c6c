"""``--output`` of predict, gender and generate (:func:`namemodels.bulk.atomic_output`): what the path
names decides how it is written, and nothing but a regular file is ever replaced -- a symlink is
followed (the link stays), a device or a FIFO is written through, ``/dev/stdout`` is the descriptor
already open. A full disk, on ``--output`` or on standard output, is one line and exit code 2, and
leaves no file behind.

Every check is made with ``os.stat``/``os.lstat`` on the path itself, and the output is compared with
what the same command prints on standard output."""

import os
import resource
import signal
import stat
import subprocess
import sys
import threading

import pytest

from namemodels import bulk
from namemodels.cli import main

CLI = [sys.executable, "-m", "namemodels.cli"]
NAMES = ["Hinton", "Nguyen", "Schmidt", "Li"]
COMMANDS = {  # each command with its arguments; the output is deterministic
    "predict": ["predict", *NAMES, "--top", "2"],
    "gender": ["gender", "Maria", "John"],
    "generate": ["generate", "--n", "5", "--seed", "3"],
}


def expected(capsys, argv, table=True):
    """What ``argv`` writes to standard output (as a table when ``table``: ``--format tsv``)."""
    code = main(argv + (["--format", "tsv"] if table and argv[0] != "generate" else []))
    out, _ = capsys.readouterr()
    assert code == 0
    return out


def no_partials(*folders):
    return [p for f in folders for p in os.listdir(f) if p.endswith(".partial")] == []


def test_symlink_is_followed_and_stays_a_link(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link, target = tmp_path / "a" / "scored.tsv", tmp_path / "b" / "real.tsv"
    os.symlink("../b/real.tsv", link)  # dangling: the target is created through it
    for argv in COMMANDS.values():
        want = expected(capsys, argv)
        assert main(argv + ["--output", str(link)]) == 0
        assert stat.S_ISLNK(os.lstat(link).st_mode) and os.readlink(link) == "../b/real.tsv"
        assert stat.S_ISREG(os.lstat(target).st_mode) and target.read_text(encoding="utf-8") == want
        assert no_partials(tmp_path / "a", tmp_path / "b")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_regular_file_mode_and_fsync(tmp_path, capsys, monkeypatch):
    """A new file gets 0666 less the umask (not mkstemp's 0600), a replaced one keeps its mode (and its
    owner, where allowed); the file and then its folder are fsynced."""
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(stat.S_IFMT(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(bulk.os, "fsync", spy)
    out = tmp_path / "o.tsv"
    old = os.umask(0o027)
    try:
        assert main(COMMANDS["predict"] + ["--output", str(out)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o640
    assert synced == [stat.S_IFREG, stat.S_IFDIR]
    os.chmod(out, 0o604)
    if os.geteuid() == 0:  # root writing over another user's file: the file stays theirs
        os.chown(out, 1234, 1235)
    assert main(COMMANDS["gender"] + ["--output", str(out)]) == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o604 and "Maria" in out.read_text()
    if os.geteuid() == 0:
        assert (os.stat(out).st_uid, os.stat(out).st_gid) == (1234, 1235)
    capsys.readouterr()


def _char_device_stays(capsys, path):
    before = os.stat(path)
    assert stat.S_ISCHR(before.st_mode)
    for argv in COMMANDS.values():
        assert main(argv + ["--output", path]) == 0, capsys.readouterr().err
        after = os.stat(path)
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    assert no_partials(os.path.dirname(path))
    capsys.readouterr()


def test_character_devices_are_written_through(tmp_path, capsys):
    """First a private null device (so that a regression cannot replace the system's /dev/null when the
    tests run as root), then /dev/null itself."""
    private = tmp_path / "null"
    try:
        os.mknod(private, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (OSError, AttributeError):
        private = None
    if private is not None:
        _char_device_stays(capsys, str(private))
    _char_device_stays(capsys, "/dev/null")


def test_fifo_is_written_through(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for argv in COMMANDS.values():
        want = expected(capsys, argv)
        got = []
        reader = threading.Thread(target=lambda got=got: got.append(open(fifo, encoding="utf-8").read()))
        reader.start()
        assert main(argv + ["--output", str(fifo)]) == 0
        reader.join(60)
        assert got == [want] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["pipe"]


@pytest.mark.parametrize("path", ["link", "/dev/stdout", "/proc/self/fd/1", "/dev/fd/1"])
def test_dev_stdout_is_the_open_descriptor(tmp_path, capsys, path):
    """Written as ``> /dev/stdout`` in a shell writes: to the descriptor already open, so a file
    opened for appending keeps what it had. ``link`` (a symlink to /proc/self/fd/1 of our own) comes
    first, so that a regression fails there before it could replace the system's /dev/stdout."""
    if path == "link":
        path = str(tmp_path / "stdout")
        os.symlink("/proc/self/fd/1", path)
    want = expected(capsys, COMMANDS["predict"])
    log = tmp_path / "log.tsv"
    log.write_text("before\n")
    with open(log, "a") as f:
        r = subprocess.run(CLI + COMMANDS["predict"] + ["--output", path], stdout=f, stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0 and r.stderr == ""
    assert log.read_text() == "before\n" + want
    r = subprocess.run(CLI + COMMANDS["predict"] + ["--output", path], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout == want


# ---- a full disk ------------------------------------------------------------------------------------
def _one_line_error(r, *words):
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_full_disk_on_standard_output(command, tmp_path):
    with open("/dev/full", "w") as full:
        r = subprocess.run(CLI + COMMANDS[command], stdout=full, stderr=subprocess.PIPE, text=True)
    _one_line_error(r, "cannot write standard output", "No space left on device")
    if command != "generate":  # a table to standard output goes through bulk's writer
        src = tmp_path / "names.txt"
        src.write_text("\n".join(NAMES) + "\n")
        with open("/dev/full", "w") as full:
            r = subprocess.run(CLI + [command, "--input", str(src)], stdout=full, stderr=subprocess.PIPE, text=True)
        _one_line_error(r, "cannot write standard output", "No space left on device")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_full_disk_on_output(command, tmp_path):
    r = subprocess.run(CLI + COMMANDS[command] + ["--output", "/dev/full"], capture_output=True, text=True)
    _one_line_error(r, "cannot write /dev/full", "No space left on device")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_file_too_large_leaves_no_file(tmp_path, command):
    """A write that fails half-way (here the file-size limit, EFBIG, as a full disk fails with ENOSPC):
    one line, exit 2, and neither the output nor its partial file is left; an existing file is kept."""
    src = tmp_path / "names.txt"
    src.write_text("\n".join((NAMES if command == "predict" else ["Maria", "John"]) * 4000) + "\n")
    out = tmp_path / "scored.tsv"
    argv = ["generate", "--n", "20000", "--seed", "1"] if command == "generate" else [command, "--input", str(src)]

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (32_000, 32_000))

    r = subprocess.run(CLI + argv + ["--output", str(out)], capture_output=True, text=True, preexec_fn=limit)
    _one_line_error(r, f"cannot write {out}", "File too large")
    assert sorted(os.listdir(tmp_path)) == ["names.txt"]
    out.write_text("old\n")
    r = subprocess.run(CLI + argv + ["--output", str(out)], capture_output=True, text=True, preexec_fn=limit)
    assert (
        r.returncode == 2 and out.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["names.txt", "scored.tsv"]
    )
