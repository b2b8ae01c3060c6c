"""Zip archives read safely: a member name that climbs out of its folder is refused, and the
members' declared sizes are held to :func:`max_unzip_bytes` before anything is unpacked (what
:func:`namemodels.data.loader.load` and :mod:`namemodels.data.download` check a zip with).
"""

from __future__ import annotations

import math
import os
import re
import zipfile
from collections.abc import Sequence

from .records import DataError
from .scan import Lines, scan

__all__ = ["MAX_UNZIP_MB", "MAX_UNZIP_ENV", "max_unzip_bytes", "check_zip_members", "scan_zip_member"]

MAX_UNZIP_MB = 256
MAX_UNZIP_ENV = "NAMEMODELS_MAX_UNZIP_MB"


def max_unzip_bytes() -> int:
    """The cap on the bytes a zip archive's members may unpack to: ``NAMEMODELS_MAX_UNZIP_MB``
    megabytes (default 256)."""
    value = os.environ.get(MAX_UNZIP_ENV, "").strip()
    if not value:
        return MAX_UNZIP_MB * 1_000_000
    try:
        mb = float(value)
        if not math.isfinite(mb) or mb <= 0:
            raise ValueError
    except ValueError:
        raise DataError(f"{MAX_UNZIP_ENV} must be a positive number of megabytes, got {value!r}") from None
    return int(mb * 1_000_000)


def check_zip_members(zf: zipfile.ZipFile, members: Sequence[zipfile.ZipInfo], where: str) -> None:
    """Refuse an archive with a member name that climbs out of its folder (``..``, an absolute path),
    and members to read whose declared sizes add up to more than :func:`max_unzip_bytes` -- checked
    before anything is unpacked (zipfile stops a member at its declared size)."""
    for info in zf.infolist():
        name = info.filename.replace("\\", "/")
        if name.startswith("/") or ".." in name.split("/") or re.match(r"^[A-Za-z]:", name):
            raise DataError(
                f"{where}: unsafe member name {info.filename!r} in the zip (it points outside the "
                "archive's folders); the archive was not used"
            )
    total, cap = sum(i.file_size for i in members), max_unzip_bytes()
    if total > cap:
        raise DataError(
            f"{where}: its members unpack to {total / 1e6:.1f} MB, over the {cap / 1e6:g} MB limit; "
            f"if you trust this archive, raise the limit with {MAX_UNZIP_ENV}=<megabytes>"
        )


def scan_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> Lines:
    """The lines of one member (:func:`namemodels.data.scan.scan`); a :class:`DataError` when the
    archive is damaged."""
    try:
        with zf.open(info) as f:
            return scan(f, where)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DataError(f"{where}: cannot read ({exc})") from None
