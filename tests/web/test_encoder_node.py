"""namemodels.js's encoder in Node (no browser): the normalized form, transliteration flag and token
ids of every conformance name of every bundle equal Python's; every refused name is refused."""

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import MODELS, ROOT, need  # noqa: E402


def test_encoder_equals_python_on_conformance(site):
    need("node", "npm")
    dirs = [str(site / "models" / m) for m in MODELS]
    run = subprocess.run(
        ["node", str(ROOT / "tests" / "web" / "encoder_check.mjs"), *dirs],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    for d in dirs:
        r = report[d]
        conf = json.loads((Path(d) / "conformance.json").read_text("utf-8"))
        assert r["cases"] == len(conf["cases"]) >= 250 and r["refused"] == len(conf["refused"]) > 0
        assert r["transliterated"] >= 20  # names in other scripts are among them
        assert r["mismatches"] == [], r["mismatches"][:5]
