"""``export --format bundle --verify``'s browser row (namemodels.export.web.browser_conformance): the
bundle's conformance.json run by namemodels.js in headless Chromium."""

import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import CHROMIUM, need  # noqa: E402

from namemodels.export.web import browser_conformance


def test_no_chromium_is_a_skip_that_says_how_to_install_it(site):
    r = browser_conformance(site / "models" / "surnames", chromium="/nonexistent/chromium")
    assert r == {"status": "skipped: no Chromium at /nonexistent/chromium (apt-get install chromium, or set CHROMIUM)"}


def test_browser_row_passes_and_catches_a_wrong_value(site, tmp_path):
    need("node", "npm", "chromium")
    for name, rows in (("surnames", 300), ("first-names", 3000)):
        r = browser_conformance(site / "models" / name, chromium=CHROMIUM)
        assert r["status"] == "ok" and r["max_abs_err"] <= 5e-5 and r["compared_rows"] >= rows, (name, r)
        assert r["top1_mismatches"] == 0 and r["encoder_mismatches"] == []
    bad = tmp_path / "bad"
    shutil.copytree(site / "models" / "surnames", bad)
    conf = json.loads((bad / "conformance.json").read_text("utf-8"))
    conf["cases"][5]["logprobs"][0] += 1e-3  # a port 1e-3 off
    conf["cases"][7]["normalized"] += "x"  # a name encoded otherwise
    (bad / "conformance.json").write_text(json.dumps(conf), encoding="utf-8")
    r = browser_conformance(bad, chromium=CHROMIUM)
    assert r["status"] == "FAIL" and abs(r["max_abs_err"] - 1e-3) < 1e-4
    assert r["encoder_mismatches"] == [conf["cases"][7]["input"]]
