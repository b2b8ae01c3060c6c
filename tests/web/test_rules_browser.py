"""namemodels.js on bundles whose answers use every step of the rule (tests/rule_bundles.py: a calibration
temperature, marked letters, scripts, a recent layer): each bundle's conformance.json, raw log-probabilities
and final answers, run in headless Chromium by namemodels.js (namemodels.export.web.browser_conformance)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import CHROMIUM, need  # noqa: E402


def test_the_browser_reproduces_the_whole_answer(tmp_path):
    need("node", "npm", "chromium")
    from rule_bundles import build

    from namemodels.export.web import browser_conformance

    for name, (_, bundle) in build(tmp_path).items():
        r = browser_conformance(bundle, chromium=CHROMIUM)
        print(f"\n{name}: {r}")
        # rows: each case's raw log-probabilities and its final answer
        assert r["status"] == "ok" and r["max_abs_err"] <= 5e-5 and r["compared_rows"] >= 500, (name, r)
        assert r["top1_mismatches"] == 0 and r["encoder_mismatches"] == []
    # a port that forgets a step is caught: the temperature left out, the marked letters left out
    import json
    import shutil

    build_dir = tmp_path / "surnames-bundle"
    for what in ("temperature", "letters"):
        bad = tmp_path / f"bad-{what}"
        shutil.copytree(build_dir, bad)
        answer = json.loads((bad / "answer.json").read_text("utf-8"))
        answer[what] = 1.0 if what == "temperature" else None
        (bad / "answer.json").write_text(json.dumps(answer), encoding="utf-8")
        r = browser_conformance(bad, chromium=CHROMIUM)
        assert r["status"] == "FAIL" and r["max_abs_err"] > 1e-3, (what, r)
