"""``namemodels bench <what>``: benchmarks.

Each benchmark is a module listed in :data:`SUBCOMMANDS` that exposes

* ``NAME`` (the sub-subcommand) and ``HELP`` (one line),
* ``add_arguments(parser)`` -- its options,
* ``main(args) -> int`` -- the handler (raises :class:`namemodels.errors.UsageError` on bad input).

The modules must import torch only inside functions: every ``namemodels`` call builds this parser.
To add ``bench latency``, write ``bench/latency.py`` with those four names and append
``"namemodels.bench.latency"`` to :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from types import ModuleType

SUBCOMMANDS = [
    "namemodels.bench.cells",
    "namemodels.bench.latency",
    "namemodels.bench.bulk",
    "namemodels.bench.gpu_check",
    "namemodels.bench.kernel_build",
]


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "bench",
        help="benchmarks (cells: throughput vs torch.nn and a naive loop)",
        description="Benchmarks; see 'namemodels bench BENCHMARK --help'.",
    )
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")

    def no_benchmark(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_benchmark)
    for module_name in SUBCOMMANDS:
        register_benchmark(sub, importlib.import_module(module_name))
    return parser


def register_benchmark(sub: argparse._SubParsersAction, module: ModuleType) -> argparse.ArgumentParser:
    """Add one benchmark module (see the module docstring) under ``bench``. A benchmark with the JSON
    options (:func:`namemodels.options.add_json_options`, reported by ``namemodels.bench.report_json``)
    gets the one convention: ``--json`` prints its result as JSON on stdout, its text going to stderr;
    ``--json-out FILE`` (or the deprecated ``--json FILE``) writes FILE."""
    p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
    module.add_arguments(p)
    p.set_defaults(func=lambda args: run_benchmark(module, args))
    return p


def run_benchmark(module: ModuleType, args: argparse.Namespace) -> int:
    if not hasattr(args, "json_out"):  # a benchmark without the JSON options
        return module.main(args)
    from namemodels.options import json_destinations

    args.json, args.json_out = json_destinations(args, f"bench {module.NAME}")
    if not args.json:
        return module.main(args)
    stdout = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):  # tables and progress: stdout holds the JSON alone
        code = module.main(args)
    result = getattr(args, "json_result", None)
    if result is not None:
        from .common import json_text

        print(json_text(result), file=stdout)
    return code
