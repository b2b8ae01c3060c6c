"""Benchmarks: cell throughput against torch.nn and naive loops, and inference latency."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def default_names_data() -> Path:
    """The surname folder of the shared data beside a source checkout (``../shared/data/names``)."""
    import namemodels

    return Path(namemodels.__file__).resolve().parents[2] / "shared" / "data" / "names"


def save_json(path: str | Path, result: dict) -> None:
    """Write a benchmark's ``--json-out`` report atomically; an unwritable path is a usage error."""
    from namemodels.checkpoint_json import write_json
    from namemodels.errors import UsageError

    try:
        write_json(Path(path), result)
    except OSError as exc:
        raise UsageError(f"cannot write --json-out {path}: {exc}") from exc
    print(f"wrote {path}", file=sys.stderr)


def report_json(args: argparse.Namespace, result: dict) -> None:
    """What a benchmark's ``--json-out FILE`` and ``--json`` ask for
    (:func:`namemodels.options.add_json_options`): FILE is written now; for ``--json`` the result is
    kept in ``args.json_result``, which ``namemodels bench`` prints as JSON on stdout once the
    benchmark is done (its text having gone to stderr)."""
    if getattr(args, "json_out", None):
        save_json(args.json_out, result)
    if getattr(args, "json", False) is True:
        args.json_result = result
