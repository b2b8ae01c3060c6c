"""A static web site that runs models in the browser: ``namemodels web DIR``.

``DIR`` holds:

* ``index.html``, ``app.js``, ``style.css`` -- the page: a name typed is classified on every keystroke
  (languages with bars, sex, how the belief moves character by character), and a generator panel;
* ``namemodels.js`` -- the ES-module client library (load a bundle, encode a name exactly as Python
  does, predict, the name table's rule, gender, generate); the page imports it, and so can any program;
* ``models/NAME/`` -- one bundle per model (:mod:`namemodels.export.bundle`), ``models.json`` their list;
* ``vendor/`` -- with ``--ort-from``: onnxruntime-web's WebAssembly build and any-ascii, copied from a
  ``node_modules`` folder; without it the page's import map points at a CDN (``--ort-url``).

The templates are files of the package (``namemodels/web/``), copied as they are; only the import map
in ``index.html`` is filled in. The folder is written complete or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from namemodels.errors import UsageError
from namemodels.fileio import atomic_folder

# The npm versions the site is built and tested with (package.json pins the same; a test checks).
ORT_VERSION = "1.31.1"
ANYASCII_NPM = "any-ascii"  # anyascii's npm name; version = namemodels.text.ANYASCII_VERSION
ORT_CDN = f"https://cdn.jsdelivr.net/npm/onnxruntime-web@{ORT_VERSION}/dist/"
ANYASCII_CDN = "https://cdn.jsdelivr.net/npm/any-ascii@{version}/any-ascii.js"
# onnxruntime-web's WebAssembly-only build: the module, its loader and the wasm binary
ORT_FILES = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]
ANYASCII_FILES = ["any-ascii.js", "block.js", "LICENSE"]
TEMPLATES = ["index.html", "app.js", "namemodels.js", "style.css"]
DEFAULT_MODELS = ["surnames", "gender", "first-names"]
IMPORT_MAP = "<!--IMPORTMAP-->"


def template_dir() -> Path:
    import namemodels

    return Path(namemodels.__file__).parent / "web"


def _npm_package(node_modules: Path, name: str, version: str) -> Path:
    pkg = node_modules / name
    meta = pkg / "package.json"
    if not meta.is_file():
        raise UsageError(
            f"--ort-from {node_modules}: no {name} there; run `npm ci` in the namemodels "
            f"repository (or `npm install {name}@{version}`) and give its node_modules"
        )
    found = json.loads(meta.read_text("utf-8")).get("version")
    if found != version:
        raise UsageError(
            f"--ort-from {node_modules}: {name} is {found}, the site needs {version}; "
            f"run `npm install {name}@{version}`"
        )
    return pkg


def vendor(node_modules: str | Path, dest: Path) -> dict:
    """Copy onnxruntime-web and any-ascii out of ``node_modules`` into ``dest``; the import map."""
    from namemodels.text import ANYASCII_VERSION

    node_modules = Path(node_modules)
    if not node_modules.is_dir():
        raise UsageError(
            f"--ort-from {node_modules}: not a folder; give a node_modules folder (`npm ci` in the "
            "namemodels repository makes one)"
        )
    ort = _npm_package(node_modules, "onnxruntime-web", ORT_VERSION)
    aa = _npm_package(node_modules, ANYASCII_NPM, ANYASCII_VERSION)
    (dest / "onnxruntime-web").mkdir(parents=True)
    (dest / "any-ascii").mkdir()
    for f in ORT_FILES:
        shutil.copyfile(ort / "dist" / f, dest / "onnxruntime-web" / f)
    shutil.copyfile(ort / "LICENSE", dest / "onnxruntime-web" / "LICENSE") if (ort / "LICENSE").is_file() else None
    for f in ANYASCII_FILES:
        shutil.copyfile(aa / f, dest / "any-ascii" / f)
    return {
        "onnxruntime-web": "./vendor/onnxruntime-web/ort.wasm.min.mjs",
        "any-ascii": "./vendor/any-ascii/any-ascii.js",
    }


def cdn_imports(ort_url: str | None) -> dict:
    from namemodels.text import ANYASCII_VERSION

    base = ort_url or ORT_CDN
    if not base.endswith("/"):
        base += "/"
    return {"onnxruntime-web": base + "ort.wasm.min.mjs", "any-ascii": ANYASCII_CDN.format(version=ANYASCII_VERSION)}


def write(
    out: str | Path,
    models: Sequence[str] = DEFAULT_MODELS,
    ort_from: str | Path | None = None,
    ort_url: str | None = None,
    load: Callable | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> Path:
    """Write the site into ``out`` (a new or empty folder, or an earlier site, which is replaced)."""
    from . import bundle

    out = Path(out)
    if ort_from is not None and ort_url is not None:
        raise UsageError("--ort-from and --ort-url both say where onnxruntime-web comes from: give one")
    if not models:
        raise UsageError("--models needs at least one model")
    if len(set(models)) != len(models):
        raise UsageError(f"--models lists a model twice: {' '.join(models)}")
    bundle._check_out(out, marker="models.json", writer="namemodels web", what="site")
    if load is None:
        from namemodels.export import load_torch_model

        load = load_torch_model
    with atomic_folder(out) as tmp:
        imports = vendor(ort_from, tmp / "vendor") if ort_from is not None else cdn_imports(ort_url)
        listing = []
        (tmp / "models").mkdir()
        for name in models:
            model, config, directory = load(name)
            slug = Path(directory).name
            log(f"bundle {slug} from {directory}")
            path = bundle.write(model, config, Path(directory), tmp / "models" / slug)
            manifest = json.loads((path / bundle.MANIFEST).read_text("utf-8"))
            listing.append(
                {
                    "name": slug,
                    "path": f"models/{slug}/",
                    "graph": manifest["graph"],
                    "task": manifest["task"],
                    "labels": manifest["labels"],
                }
            )
        bundle._json(tmp / "models.json", {"format": "namemodels-site", "version": 1, "models": listing})
        src = template_dir()
        for f in TEMPLATES:
            text = (src / f).read_text("utf-8")
            if f == "index.html":
                text = text.replace(IMPORT_MAP, json.dumps({"imports": imports}, indent=1))
            (tmp / f).write_text(text, encoding="utf-8")
    return out


# ---- a bundle's conformance names in the browser (export --format bundle --verify) -----------------
NPM_PACKAGES = ("onnxruntime-web", ANYASCII_NPM, "puppeteer-core")


def find_node_modules() -> Path | None:
    """A node_modules with the pinned npm packages: $NAMEMODELS_NODE_MODULES, ./node_modules, or the
    repository's (an editable install); None without one."""
    places = [
        os.environ.get("NAMEMODELS_NODE_MODULES"),
        Path.cwd() / "node_modules",
        template_dir().parents[1] / "node_modules",
    ]
    for place in places:
        if place and all((Path(place) / p / "package.json").is_file() for p in NPM_PACKAGES):
            return Path(place)
    return None


def browser_conformance(bundle_dir: str | Path, chromium: str | None = None, timeout: float = 300) -> dict:
    """Run bundle ``bundle_dir``'s conformance.json in headless Chromium (namemodels.js on
    onnxruntime-web): ``{"max_abs_err", "top1_mismatches", "compared_rows", "encoder_mismatches",
    "status"}``, or ``{"status": "skipped: why"}`` when Chromium, Node or the npm packages are missing."""
    import functools
    import http.server
    import subprocess
    import threading

    from .bundle import TOLERANCE

    chromium = chromium or os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        return {"status": f"skipped: no Chromium at {chromium} (apt-get install chromium, or set CHROMIUM)"}
    if shutil.which("node") is None:
        return {"status": "skipped: no Node.js (apt-get install nodejs npm)"}
    node_modules = find_node_modules()
    if node_modules is None:
        return {
            "status": "skipped: no node_modules with " + ", ".join(NPM_PACKAGES) + " (run `npm ci` in the "
            "namemodels repository, or set NAMEMODELS_NODE_MODULES)"
        }
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        imports = vendor(node_modules, site / "vendor")
        (site / "models").mkdir()
        (site / "models" / "bundle").symlink_to(Path(bundle_dir).resolve())
        src = template_dir()
        shutil.copyfile(src / "namemodels.js", site / "namemodels.js")
        (site / "check.html").write_text(
            (src / "check.html").read_text("utf-8").replace(IMPORT_MAP, json.dumps({"imports": imports})),
            encoding="utf-8",
        )

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            run = subprocess.run(
                [
                    "node",
                    str(src / "check.mjs"),
                    str(node_modules),
                    chromium,
                    f"http://127.0.0.1:{server.server_address[1]}/check.html",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"status": f"FAIL: the browser did not answer in {timeout:.0f} s"}
        finally:
            server.shutdown()
            server.server_close()
    if run.returncode != 0:
        last = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return {"status": f"FAIL: the browser check stopped: {last}"}
    r = json.loads(run.stdout.strip().splitlines()[-1])
    if "error" in r:
        return {"status": f"FAIL: {r['error']}"}
    ok = r["maxAbsErr"] <= TOLERANCE and r["top1Mismatches"] == 0 and not r["encoderMismatches"]
    return {
        "max_abs_err": r["maxAbsErr"],
        "top1_mismatches": r["top1Mismatches"],
        "compared_rows": r["rows"],
        "encoder_mismatches": r["encoderMismatches"],
        "status": "ok" if ok else "FAIL",
    }
