"""The site of ``namemodels web``, built once for the browser tests (web_helpers.py: what they need)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from web_helpers import MODELS, NODE_MODULES, need  # noqa: E402


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """A site with the three default models and onnxruntime-web from node_modules."""
    need("node", "npm")
    from namemodels.export import web

    return web.write(tmp_path_factory.mktemp("web") / "site", MODELS, ort_from=NODE_MODULES)
