"""Fetch the original data sets from their official addresses. No torch here.

* ``surnames``: the PyTorch char-RNN tutorial's ``https://download.pytorch.org/tutorial/data.zip``;
  its ``data/names/<Language>.txt`` files are extracted, unchanged, into ``<to>/names/``.
* ``first-names``: the US Social Security Administration's national baby-names file
  ``https://www.ssa.gov/oact/babynames/names.zip``; its ``yob<YEAR>.txt`` files (lines such as
  ``Mary,F,7065``) are summed over the years into ``<to>/first_names.csv`` with header
  ``name,sex,count``.

Checksums: neither source publishes a checksum of its file, and both files change when their
owners update them (the SSA adds a year every spring), so there is no published SHA-256 to pin
here. What is verified: the archive's integrity (every member's CRC) and that the expected members
are present and well formed. The downloaded file's SHA-256 is printed; pass ``sha256=`` (the CLI's
``--sha256``) to pin a copy you trust, and a mismatch is an error.

Files are written atomically (:mod:`namemodels.fileio`: a temporary name in the target directory,
fsynced, then renamed; a folder of names is built beside the old one and swapped in). Before
anything is unpacked, the archive is refused when a member's name climbs out of its folder (``..``)
or its members' declared sizes add up to more than ``NAMEMODELS_MAX_UNZIP_MB`` megabytes (default
256; :func:`namemodels.data.zipsafe.max_unzip_bytes`).
``file://`` URLs and plain local paths work too (for tests, or for a copy fetched elsewhere).
"""

from __future__ import annotations

import codecs
import collections
import io
import os
import re
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ..fileio import atomic_folder, atomic_write, parse_row, sha256_file
from .records import DataError
from .zipsafe import check_zip_members

__all__ = ["download", "DATASETS", "SURNAME_LANGUAGES"]

DATASETS: dict[str, str] = {
    "surnames": "https://download.pytorch.org/tutorial/data.zip",
    "first-names": "https://www.ssa.gov/oact/babynames/names.zip",
}

SURNAME_LANGUAGES = (
    "Arabic",
    "Chinese",
    "Czech",
    "Dutch",
    "English",
    "French",
    "German",
    "Greek",
    "Irish",
    "Italian",
    "Japanese",
    "Korean",
    "Polish",
    "Portuguese",
    "Russian",
    "Scottish",
    "Spanish",
    "Vietnamese",
)

_YOB = re.compile(r"(?:^|/)yob(\d{4})\.txt$")
_HINT = "fetch the archive on a machine with network access and pass it with --url FILE (a local path or file:// URL)"


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _as_url(url: str) -> str:
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        return url
    return Path(url).expanduser().resolve().as_uri()  # a local path


class _Progress:
    def __init__(self, total: int | None, label: str, enabled: bool):
        self.total, self.label, self.enabled, self.done, self._bar, self._next = total, label, enabled, 0, None, 0.1
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr, leave=False
                )
            except ImportError:
                _log(f"downloading {label}" + (f" ({total / 1e6:.1f} MB)" if total else ""))

    def update(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
        elif self.total and self.done / self.total >= self._next:
            _log(f"  {100 * self.done / self.total:3.0f}%  {self.done / 1e6:.1f} MB")
            self._next += 0.1

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _fetch(url: str, dest_dir: Path, progress: bool) -> tuple[Path, str]:
    """Download ``url`` to a temporary file in ``dest_dir``; return (path, sha256)."""
    req = urllib.request.Request(url, headers={"User-Agent": "namemodels-downloader"})
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".part", dir=dest_dir)  # scratch, never published
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                resp = urllib.request.urlopen(req, timeout=60)
            except urllib.error.HTTPError as exc:
                raise DataError(f"could not reach {url}: HTTP {exc.code} {exc.reason}; {_HINT}") from None
            except urllib.error.URLError as exc:
                raise DataError(f"could not reach {url}: {exc.reason}; {_HINT}") from None
            except (OSError, ValueError) as exc:
                raise DataError(f"could not reach {url}: {exc}; {_HINT}") from None
            with resp:
                length = resp.headers.get("Content-Length") if resp.headers else None
                total = int(length) if length and length.isdigit() else None
                bar = _Progress(total, PurePosixPath(urllib.parse.urlparse(url).path).name or url, progress)
                try:
                    while True:
                        chunk = resp.read(1 << 16)
                        if not chunk:
                            break
                        out.write(chunk)
                        bar.update(len(chunk))
                except OSError as exc:
                    raise DataError(f"could not reach {url}: the download broke off ({exc}); {_HINT}") from None
                finally:
                    bar.close()
                if total is not None and bar.done != total:
                    raise DataError(f"could not reach {url}: got {bar.done} of {total} bytes; {_HINT}")
    except BaseException:
        os.unlink(tmp)
        raise
    return Path(tmp), sha256_file(tmp)


def _open_zip(path: Path, url: str) -> zipfile.ZipFile:
    """The archive, once its member names are safe, its members' declared sizes within the unzip cap
    (both checked before anything is unpacked) and every member passes its CRC check."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{url}: the download is not a valid zip archive ({exc})") from None
    try:
        check_zip_members(zf, zf.infolist(), url)
        bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        zf.close()
        raise DataError(f"{url}: the download is not a valid zip archive ({exc})") from None
    except BaseException:
        zf.close()
        raise
    if bad is not None:
        zf.close()
        raise DataError(f"{url}: the zip archive is corrupt (member {bad} fails its CRC check)")
    return zf


def _copy_text_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, where: str) -> None:
    """Unpack one member to ``dest`` a block at a time, checking that it is UTF-8 text."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with zf.open(info) as src, open(dest, "wb") as out:
        try:
            for block in iter(lambda: src.read(1 << 20), b""):
                decoder.decode(block)
                out.write(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise DataError(f"{where}: not UTF-8 text ({exc.reason})") from None


def _extract_surnames(zf: zipfile.ZipFile, to: Path, url: str, official: bool) -> Path:
    members = {}
    for info in zf.infolist():
        p = PurePosixPath(info.filename)
        if not info.is_dir() and p.suffix == ".txt" and p.parent.name == "names" and "__MACOSX" not in p.parts:
            members[p.name] = info  # basename only: nothing can be written outside <to>/names
    if not members:
        raise DataError(f"{url}: no names/<Language>.txt files in the archive; is this the tutorial's data.zip?")
    missing = [lang for lang in SURNAME_LANGUAGES if f"{lang}.txt" not in members]
    if missing and official:
        raise DataError(f"{url}: the archive lacks the expected files {', '.join(m + '.txt' for m in missing)}")
    dest = to / "names"
    with atomic_folder(dest) as tmpdir:
        for name, info in sorted(members.items()):
            _copy_text_member(zf, info, tmpdir / name, f"{url}!{info.filename}")
    if missing:
        _log(f"note: the archive has {len(members)} languages; missing {', '.join(missing)}")
    return dest


def _convert_first_names(zf: zipfile.ZipFile, to: Path, url: str) -> Path:
    years = sorted((int(m.group(1)), info) for info in zf.infolist() for m in [_YOB.search(info.filename)] if m)
    if not years:
        raise DataError(f"{url}: no yob<YEAR>.txt files in the archive; is this the SSA's names.zip?")
    counts: dict[tuple[str, str], int] = collections.defaultdict(int)
    for _, info in years:
        with zf.open(info) as member:  # a line at a time: memory grows with the names, not the file
            for n, line in enumerate(io.TextIOWrapper(member, encoding="latin-1"), start=1):
                if not line.strip():
                    continue
                parts = parse_row(line.strip(), ",")
                if (
                    len(parts) != 3
                    or parts[1] not in ("F", "M")
                    or not parts[2].isdigit()
                    or not parts[0]
                    or "," in parts[0]
                ):  # (a quoted comma would break the name,sex,count file written below)
                    raise DataError(f"{url}!{info.filename}:{n}: expected 'Name,F|M,count', got {line.rstrip()[:60]!r}")
                counts[(parts[0], parts[1])] += int(parts[2])
    dest = to / "first_names.csv"
    with atomic_write(dest, "w", encoding="utf-8", newline="\n", suffix=".part") as f:
        f.write("name,sex,count\n")
        for (name, sex), c in sorted(counts.items()):
            f.write(f"{name},{sex},{c}\n")
    _log(f"{len(counts)} name/sex rows from {len(years)} years ({years[0][0]}-{years[-1][0]})")
    return dest


def download(dataset: str, to: Path, url: str | None = None, progress: bool = True, sha256: str | None = None) -> Path:
    """Fetch ``dataset`` ("surnames" or "first-names") into directory ``to``.

    Returns ``<to>/names`` (surnames) or ``<to>/first_names.csv`` (first-names). ``url`` overrides
    the official address (``file://`` URLs and local paths work). No published checksum exists for
    either original (see the module docstring): the archive's integrity and expected members are
    verified and its SHA-256 printed; ``sha256`` pins it. Raises :class:`DataError` when offline,
    on an HTTP error, a checksum mismatch or an archive that is not the expected one.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    official = url is None
    url = _as_url(url or DATASETS[dataset])
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise DataError(f"--sha256 must be 64 hexadecimal digits, got {sha256!r}")
    to = Path(to).expanduser()
    try:
        to.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{to}: cannot create the directory ({exc.strerror or exc})") from None
    tmp, digest = _fetch(url, to, progress)
    try:
        _log(f"sha256 {digest}  {url}")
        if sha256 is not None and digest != sha256:
            raise DataError(f"{url}: SHA-256 mismatch: expected {sha256}, got {digest}; the file was not used")
        zf = _open_zip(tmp, url)
        with zf:
            if dataset == "surnames":
                dest = _extract_surnames(zf, to, url, official)
            else:
                dest = _convert_first_names(zf, to, url)
    finally:
        if tmp.exists():
            tmp.unlink()
    _log(f"wrote {dest}")
    return dest
