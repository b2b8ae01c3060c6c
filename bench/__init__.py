"""Benchmarks: cell throughput against torch.nn and naive loops, and inference latency."""

import sys
from pathlib import Path


def default_names_data() -> Path:
    """The surname folder of the shared data beside a source checkout (``../shared/data/names``)."""
    import namemodels
    return Path(namemodels.__file__).resolve().parents[2] / "shared" / "data" / "names"


def save_json(path, result: dict) -> None:
    """Write a benchmark's ``--json`` report atomically; an unwritable path is a usage error."""
    from namemodels.checkpoint_json import write_json
    from namemodels.errors import UsageError
    try:
        write_json(Path(path), result)
    except OSError as exc:
        raise UsageError(f"cannot write --json {path}: {exc}") from exc
    print(f"wrote {path}", file=sys.stderr)
