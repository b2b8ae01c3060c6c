"""The GPU check as it runs on a GPU machine, on the CPU instead (``--dry-run``: tiny shapes in
Triton's interpreter): every section of the split script runs to its end, and the files it writes
are there. Its numbers are not measurements; only that the script works is checked."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not (REPO / "bench" / "gpu_check.sh").is_file(), reason="needs the source tree")
def test_the_gpu_check_runs_every_section_on_the_cpu(tmp_path):
    env = {
        **os.environ,
        "NAMEMODELS_PYTHON": sys.executable,
        "NAMEMODELS_PYTEST": str(Path(sys.executable).parent / "pytest"),
    }
    run = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), str(tmp_path), "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["benchmark"] == "gpu-check" and results["dry_run"] is True
    sections = results["sections"]
    failed = {k: v["error"] for k, v in sections.items() if "error" in v}
    assert not failed
    for ran in ("environment", "warm-up", "launches", "tests", "grid", "on_chip", "classifier", "training"):
        assert not isinstance(sections[ran].get("skipped"), str), (ran, sections[ran])  # a section's own skip
    assert sections["tests"]["passed"] and sections["grid"]["rows"] and not sections["grid"]["skipped"]
    assert {"report.md", "speedup_heatmap.png", "pytest.txt"} <= {p.name for p in tmp_path.iterdir()}
