"""``namemodels web DIR [--models NAME ...] [--ort-from NODE_MODULES | --ort-url URL]``: a static site that
runs the models in the browser (:mod:`namemodels.export.web`)."""
from __future__ import annotations

import sys


def register(sub) -> None:
    from namemodels.export.web import DEFAULT_MODELS, ORT_CDN, ORT_VERSION
    p = sub.add_parser("web", help="write a static web site that runs the models in the browser",
                       description="Write a static site into DIR: one bundle per model, the ES-module client "
                       "library namemodels.js and a page that classifies a name on every keystroke and "
                       "generates names. Serve it with `python -m http.server -d DIR`.")
    p.add_argument("out", metavar="DIR", help="the site's folder (new, empty, or an earlier site, which is replaced)")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS, metavar="MODEL",
                   help=f"shipped model names or model directories (default: {' '.join(DEFAULT_MODELS)})")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--ort-from", metavar="NODE_MODULES",
                       help=f"copy onnxruntime-web {ORT_VERSION} and any-ascii into the site from this node_modules "
                            "folder (`npm ci` in the repository makes one), so the site works offline")
    where.add_argument("--ort-url", metavar="URL",
                       help=f"where the page loads onnxruntime-web's dist/ files from (default {ORT_CDN})")
    p.set_defaults(func=run)


def run(args) -> int:
    from namemodels.errors import UsageError
    try:
        from namemodels.export import web
    except ImportError as exc:
        raise UsageError(f"web needs torch and onnx ({exc.name} is missing): pip install 'namemodels[train]'") from None
    out = web.write(args.out, args.models, ort_from=args.ort_from, ort_url=args.ort_url,
                    log=lambda s: print(s, file=sys.stderr))
    print(f"wrote {out}: serve it with `python -m http.server -d {out}` and open http://localhost:8000/", file=sys.stderr)
    return 0
