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
import importlib

SUBCOMMANDS = [
    "namemodels.bench.cells",
    "namemodels.bench.latency",
    "namemodels.bench.bulk",
    "namemodels.bench.gpu_check",
    "namemodels.bench.kernel_build",
]


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("bench", help="benchmarks (cells: throughput vs torch.nn and a naive loop)",
                                   description="Benchmarks; see 'namemodels bench BENCHMARK --help'.")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")

    def no_benchmark(args) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_benchmark)
    for module_name in SUBCOMMANDS:
        register_benchmark(sub, importlib.import_module(module_name))
    return parser


def register_benchmark(sub, module) -> argparse.ArgumentParser:
    """Add one benchmark module (see the module docstring) under ``bench``."""
    p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
    module.add_arguments(p)
    p.set_defaults(func=module.main)
    return p
