"""The site of ``namemodels web`` in a real browser (the system Chromium, driven by puppeteer-core from
browser_check.mjs): names typed key by key, every displayed log-probability compared with the Python
predictor (an independent reference for the JavaScript port), the encoder compared with
conformance.json in the browser's own Unicode tables, the generator's step with the eager model's
values. Prints how long the first prediction and each keystroke take (not asserted)."""

import functools
import http.server
import json
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import CHROMIUM, MODELS, ROOT, need  # noqa: E402

TOLERANCE = 5e-5


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(site):
    """The site on 127.0.0.1, an ephemeral port, for the module's tests."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _names(site):
    """Every conformance name of the two classifiers, and the refused names a keyboard can type."""
    names, refused = [], []
    for m in ("surnames", "gender"):
        conf = json.loads((site / "models" / m / "conformance.json").read_text("utf-8"))
        names += [c["input"] for c in conf["cases"]]
        refused += [r["input"] for r in conf["refused"] if r["input"].strip() and r["input"].isprintable()]
    return list(dict.fromkeys(names)), list(dict.fromkeys(refused))


@pytest.fixture(scope="module")
def browser(site, served, tmp_path_factory):
    need("node", "npm", "chromium")
    tmp = tmp_path_factory.mktemp("browser")
    names, refused = _names(site)
    (tmp / "names.json").write_text(json.dumps(names + refused), encoding="utf-8")
    shot = tmp / "browser.png"
    run = subprocess.run(
        [
            "node",
            str(ROOT / "tests" / "web" / "browser_check.mjs"),
            served,
            str(tmp / "names.json"),
            str(tmp / "result.json"),
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**__import__("os").environ, "CHROMIUM": CHROMIUM},
    )
    assert run.returncode == 0, f"browser_check.mjs failed:\n{run.stdout}\n{run.stderr}"
    result = json.loads((tmp / "result.json").read_text("utf-8"))
    result.update(typed=names, refused=refused, screenshot=shot)
    return result


def test_page_starts_clean(browser):
    assert browser["startState"] == {"state": "ok", "status": ""}
    assert browser["console"] == []  # no error in the page's console, no failed request
    assert browser["screenshot"].stat().st_size > 10_000


def test_encoder_in_the_browser_equals_python(browser):
    assert set(browser["encoder"]) == set(MODELS)
    for name, r in browser["encoder"].items():
        assert r["cases"] >= 250 and r["mismatches"] == [], (name, r["mismatches"][:5])


def test_displayed_logprobs_equal_the_python_predictor(browser):
    import namemodels

    typed = browser["typed"]
    shown = {r["value"]: r for r in browser["names"]}
    assert len(browser["names"]) == len(typed) + len(browser["refused"]) and all(n in shown for n in typed)
    for model, panel in (("surnames", "out"), ("gender", "sex")):
        p = namemodels.load(model)
        want = p.predict_logproba(typed)
        # a label ruled out by the name's script has log-probability -inf (JSON null in the page)
        got = np.array([[-np.inf if v is None else v for v in json.loads(shown[n][panel]["logprobs"])] for n in typed])
        assert got.shape == want.shape
        assert (np.isneginf(got) == np.isneginf(want)).all()
        finite = np.isfinite(want)
        err = np.abs(got[finite] - want[finite]).max()
        print(f"\n{model}: {len(typed)} names typed key by key, max |JS - Python| in log-probability {err:.2e}")
        assert err <= TOLERANCE, typed[
            int(np.where(finite, np.abs(got - np.where(finite, want, 0)), 0).max(1).argmax())
        ]
        labels = [shown[n][panel]["label"] for n in typed]
        assert labels == [p.labels[i] for i in want.argmax(1)]
        answers = p.predict(typed, top=1, details=True)
        assert [shown[n][panel]["source"] for n in typed] == [a.source for a in answers]  # the name table's rule


def test_refused_names_show_the_reason(browser):
    shown = {r["value"]: r for r in browser["names"]}
    for name in browser["refused"]:
        r = shown[name]
        assert r["state"] == "error" and r["out"]["error"] and r["out"]["logprobs"] == "", (name, r)


def test_generator_in_the_browser(browser):
    gen = browser["generators"]["first-names"]
    print(f"\nfirst-names step, teacher-forced: max |JS - eager| {gen['maxAbsErr']:.2e} over {gen['rows']} steps")
    assert gen["rows"] > 100 and gen["maxAbsErr"] <= TOLERANCE
    assert len(gen["sample"]) == 6 and all(s.startswith("Ma") and s.isprintable() for s in gen["sample"])


def test_timings(browser):
    """Measured and printed, not asserted: first prediction after page load, keystroke to updated bars."""
    ms = browser["keystrokeMs"]
    assert len(ms) == 50
    print(
        f"\nfirst prediction {browser['firstPredictionMs']:.0f} ms after navigation start; keystroke to updated "
        f"bars: median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms over {len(ms)} keystrokes"
    )
