"""``namemodels web DIR [--models NAME ...] [--ort-from NODE_MODULES | --ort-url URL]``: a static site that
runs the models in the browser (:mod:`namemodels.export.web`)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    # (namemodels.export.web is imported by run only: every command builds this parser, and importing
    # namemodels.export takes 0.3 s)
    p = sub.add_parser(
        "web",
        help="write a static web site that runs the models in the browser",
        description="Write a static site into DIR: one bundle per model, the ES-module client "
        "library namemodels.js and a page that classifies a name on every keystroke and "
        "generates names. Serve it with `python -m http.server -d DIR`.",
    )
    p.add_argument("out", metavar="DIR", help="the site's folder (new, empty, or an earlier site, which is replaced)")
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="MODEL",
        help="shipped model names or model directories (default: surnames gender first-names)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--ort-from",
        metavar="NODE_MODULES",
        help="copy onnxruntime-web and any-ascii, at the versions package.json pins, into the site "
        "from this node_modules folder (`npm ci` in the repository makes one), so the site works offline",
    )
    where.add_argument(
        "--ort-url",
        metavar="URL",
        help="where the page loads onnxruntime-web's dist/ files from (default: jsdelivr's URL of the pinned version)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError

    try:
        from namemodels.export import web
    except ImportError as exc:
        raise UsageError(f"web needs torch and onnx ({exc.name} is missing): pip install 'namemodels[train]'") from None
    out = web.write(
        args.out,
        args.models or web.DEFAULT_MODELS,
        ort_from=args.ort_from,
        ort_url=args.ort_url,
        log=lambda s: print(s, file=sys.stderr),
    )
    print(
        f"wrote {out}: serve it with `python -m http.server -d {out}` and open http://localhost:8000/", file=sys.stderr
    )
    return 0
