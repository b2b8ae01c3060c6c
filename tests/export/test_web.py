"""``namemodels web``: the site's files, where onnxruntime-web comes from, the pins, and bad input
(one line, exit 2, nothing left behind). The site in a browser: tests/web/."""

import json
from pathlib import Path

from helpers import fails_one_line

from namemodels.cli import main
from namemodels.export import web

ROOT = Path(__file__).resolve().parents[2]


def test_package_json_pins_what_the_site_uses():
    pkg = json.loads((ROOT / "package.json").read_text("utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text("utf-8"))
    from namemodels.text import ANYASCII_VERSION

    assert pkg["dependencies"] == {"onnxruntime-web": web.ORT_VERSION, web.ANYASCII_NPM: ANYASCII_VERSION}
    assert lock["packages"]["node_modules/onnxruntime-web"]["version"] == web.ORT_VERSION
    assert lock["packages"]["node_modules/any-ascii"]["version"] == ANYASCII_VERSION
    assert f"onnxruntime-web@{web.ORT_VERSION}/" in web.ORT_CDN


def test_site_from_the_cdn(tmp_path, capsys):
    out = tmp_path / "site"
    assert main(["web", str(out), "--models", "surnames"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(web.TEMPLATES + ["models", "models.json"])
    html = (out / "index.html").read_text("utf-8")
    imports = json.loads(html.split('<script type="importmap">')[1].split("</script>")[0])["imports"]
    assert imports == {
        "onnxruntime-web": f"{web.ORT_CDN}ort.wasm.min.mjs",
        "any-ascii": "https://cdn.jsdelivr.net/npm/any-ascii@0.3.3/any-ascii.js",
    }
    listing = json.loads((out / "models.json").read_text("utf-8"))["models"]
    assert [(m["name"], m["graph"]) for m in listing] == [("surnames", "classifier")]
    assert (out / "models" / "surnames" / "conformance.json").is_file()
    # --ort-url replaces the CDN; a second run replaces the earlier site
    assert main(["web", str(out), "--models", "surnames", "--ort-url", "https://example.org/ort"]) == 0
    assert '"https://example.org/ort/ort.wasm.min.mjs"' in (out / "index.html").read_text("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["site"]


def test_bad_input(tmp_path, capsys):
    out = tmp_path / "site"
    fails_one_line(
        capsys, ["web", out, "--models", "surnames", "--ort-from", tmp_path / "nowhere"], "not a folder", "npm ci"
    )
    (tmp_path / "nm").mkdir()
    fails_one_line(
        capsys, ["web", out, "--models", "surnames", "--ort-from", tmp_path / "nm"], "no onnxruntime-web", "npm ci"
    )
    fake = tmp_path / "nm" / "onnxruntime-web"
    fake.mkdir()
    (fake / "package.json").write_text('{"version": "1.20.0"}')
    fails_one_line(
        capsys, ["web", out, "--models", "surnames", "--ort-from", tmp_path / "nm"], "1.20.0", web.ORT_VERSION
    )
    fails_one_line(capsys, ["web", out, "--models", "no-such-model"], "no-such-model")
    fails_one_line(capsys, ["web", out, "--ort-from", "a", "--ort-url", "b"], "not allowed with")
    fails_one_line(capsys, ["web", out, "--models", "surnames", "surnames"], "twice")
    (tmp_path / "file").write_text("x")
    fails_one_line(capsys, ["web", tmp_path / "file", "--models", "surnames"], "is a file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    fails_one_line(capsys, ["web", tmp_path / "full", "--models", "surnames"], "not empty")
    fails_one_line(capsys, ["web", tmp_path / "no" / "site", "--models", "surnames"], "does not exist")
    # nothing half-made: no site, no temporary folders
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "full", "nm"]


def test_help_names_the_default_models(capsys):
    assert main(["web", "--help"]) == 0
    assert f"(default: {' '.join(web.DEFAULT_MODELS)})" in " ".join(capsys.readouterr().out.split())
