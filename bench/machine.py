"""What a benchmark's JSON result records about the run itself: which benchmark, when, the command
line, the machine and library versions. Written once so that every result file starts the same way."""

from __future__ import annotations

import datetime as _dt
import platform
import shlex
import sys


def stamp(benchmark: str, device: str) -> dict:
    """The first keys of a result: ``benchmark``, ``timestamp`` (UTC, seconds), ``command`` (this
    process's command line, shell-quoted) and ``device``."""
    return {
        "benchmark": benchmark,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "device": device,
    }


def cpu_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo``; where there is none, what :mod:`platform` says."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine()


def versions(*modules: str) -> dict[str, str | None]:
    """``{"python": Python's version, module: its __version__, ...}``, ``None`` for a module that is
    absent or fails to import."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for mod in modules:
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # absent or broken
            out[mod] = None
    return out
