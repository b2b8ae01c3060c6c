"""``namemodels export MODEL --format onnx|torchscript|pt2|aoti|bundle --out FILE|DIR [--max-length N]
[--verify [--json] [--json-out FILE]]``."""

from __future__ import annotations

import argparse
import sys

from namemodels.options import Range, add_json_options, json_destinations, number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX, TorchScript, torch.export (pt2), an AOTInductor "
        "package (aoti) or a self-describing bundle (optionally verify in several runtimes)",
        description="Export a shipped model or model directory to ONNX (opset >= 17, dynamic batch "
        "and lengths), TorchScript, a torch.export ExportedProgram (pt2), an AOTInductor package (aoti: model.pt2 "
        "compiled for this CPU, loaded from C++ by AOTIModelPackageLoader; needs a C++ compiler and "
        "minutes) or a bundle (a folder: "
        "model.onnx, tokenizer.json, the name table, conformance.json and FORMAT.md, for programs "
        "in other languages), and optionally verify it against PyTorch.",
    )
    p.add_argument("model", metavar="MODEL", help="shipped model name or model directory")
    p.add_argument("--format", choices=["onnx", "torchscript", "pt2", "aoti", "bundle"], default="onnx")
    p.add_argument("--out", required=True, help="output file (a folder for --format bundle)")
    p.add_argument("--opset", type=number(int, Range(1)), default=None, help="ONNX opset (default 17, at least 17)")
    p.add_argument(
        "--max-length",
        type=number(int, Range(2)),
        default=None,
        help="--format aoti, classifiers: the longest name the package takes (default 40; the package "
        "runs that many steps for every name, so a larger value compiles longer and runs slower)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="compare with PyTorch in onnxruntime, the reference evaluator, OpenVINO, tract "
        "(or TorchScript) and print errors and timings",
    )
    p.add_argument("--no-timing", action="store_true", help="with --verify: skip the timings")
    add_json_options(p, "the --verify report", old_file_spelling=True)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError

    to_stdout, json_file = json_destinations(args, "export")
    if (to_stdout or json_file) and not args.verify:
        raise UsageError("--json and --json-out give the report of --verify: add --verify, or leave them out")
    try:
        from namemodels.export import export, load_torch_model
    except ImportError as exc:
        raise UsageError(
            f"export needs torch and onnx ({exc.name} is missing): pip install 'namemodels[train]'"
        ) from None
    if args.max_length is not None and args.format != "aoti":
        raise UsageError("--max-length is for --format aoti (the other formats take names of any length)")
    model, config, directory = load_torch_model(args.model)
    out = export(
        model, config, args.format, args.out, opset=args.opset, directory=directory, max_length=args.max_length
    )
    size = sum(p.stat().st_size for p in out.iterdir()) if out.is_dir() else out.stat().st_size
    print(f"wrote {out} ({size / 1024:.1f} KiB, {args.format}) from {directory}", file=sys.stderr)
    if not args.verify:
        return 0
    from namemodels.export.verify import format_table, onnx_runtimes, verify

    onnx_path = out / "model.onnx" if args.format == "bundle" else out if args.format == "onnx" else None
    runtimes = {"torchscript": ("torchscript",), "pt2": ("pt2",), "aoti": ("aoti",)}.get(args.format) or onnx_runtimes()
    report = verify(
        model,
        config,
        onnx_path=onnx_path,
        torchscript_path=out if args.format == "torchscript" else None,
        pt2_path=out if args.format == "pt2" else None,
        aoti_path=out if args.format == "aoti" else None,
        runtimes=runtimes,
        timing=not args.no_timing,
    )
    if args.format == "bundle":  # the bundle's own conformance names, in the same runtimes
        from namemodels.export.bundle import check

        report["conformance"] = check(out, [r for r in runtimes if r != "openvino-native"])  # f32 runtimes
        from namemodels.export.web import browser_conformance  # headless Chromium, where installed

        report["conformance"]["browser"] = browser_conformance(out)
    if args.format == "pt2":  # the conformance names a bundle of this model holds, built in memory, run by the program
        from namemodels.export.bundle import check_model

        report["conformance"] = check_model(model, config, directory, out)
    if "conformance" in report:
        report["ok"] = report["ok"] and all(
            r["status"] == "ok" or r["status"].startswith("skipped") for r in report["conformance"].values()
        )
    print(format_table([report]), file=sys.stderr if to_stdout else sys.stdout)  # --json: stdout is the JSON
    for r in report["rows"]:
        if r["status"].startswith("skipped"):
            print(f"note: {r['runtime']} {r['status']}", file=sys.stderr)
    for runtime, r in report.get("conformance", {}).items():
        print(
            f"conformance.json in {runtime}: {r['status']}"
            + (
                f", max |err| {r['max_abs_err']:.1e} over {r['compared_rows']} rows, {r['top1_mismatches']} top-1 "
                "mismatches"
                if "max_abs_err" in r
                else ""
            ),
            file=sys.stderr if to_stdout else sys.stdout,
        )
    if json_file or to_stdout:
        from .common import json_text, write_json_out

        if json_file:
            write_json_out(json_file, report)
        if to_stdout:
            print(json_text(report))
    if not report["ok"]:
        print("namemodels export: verification FAILED", file=sys.stderr)
        return 1
    return 0
