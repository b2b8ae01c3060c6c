"""The site of ``namemodels web`` built once with onnxruntime-web copied from the repository's
node_modules, and what the browser tests need: Node.js, the npm packages (``npm ci``) and Chromium.
Without them a test skips, saying how to install them; with ``CI=true`` it fails instead."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MODELS = ["surnames", "gender", "first-names"]


def need(*what: str) -> None:
    """Skip (fail under CI=true) unless ``what`` ("node", "npm", "chromium") is installed."""
    missing = []
    if "node" in what and shutil.which("node") is None:
        missing.append("Node.js (apt-get install nodejs npm)")
    if "npm" in what and not all(
        (NODE_MODULES / p / "package.json").is_file() for p in ("onnxruntime-web", "any-ascii", "puppeteer-core")
    ):
        missing.append(f"the pinned npm packages in {NODE_MODULES} (run `npm ci` in {ROOT})")
    if "chromium" in what and not os.access(CHROMIUM, os.X_OK):
        missing.append(f"Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM to its path)")
    if missing:
        message = "the browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (CI=true: these tests must run in CI; .ci/run installs them)")
        pytest.skip(message)
