"""Files and streams for ``namemodels predict`` and ``gender``: the options and the run
(``--input``, ``--output``, ``--format``, ``--column``, ``--threads``, ``--quiet``).

The work is :mod:`namemodels.bulk`'s; this module only reads the options. Exit code 0 when every
row scored, 2 when some rows could not be scored (they stay in the output with the reason in the
``error`` column, and a summary line on stderr says how many and where the first is). A file that
cannot be written (a full disk) is one line on stderr and exit code 2, and leaves no file
(:func:`namemodels.bulk.atomic_output` says what ``--output`` may name).
"""

from __future__ import annotations

import argparse
import sys

EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process ended by kill


def add_file_options(p: argparse.ArgumentParser) -> None:
    f = p.add_argument_group(
        "files and streams",
        "Score a whole file: one output row per input row, in input order -- the input's columns, then the "
        "prediction columns, then 'error' (empty when the row scored). Exit code 2 if some rows could not be scored.",
    )
    f.add_argument(
        "--input",
        metavar="PATH",
        help="score every row of PATH ('-': standard input): one name per line, or a CSV/TSV with a "
        "header line (.csv, .tsv, or any file with --column)",
    )
    f.add_argument(
        "--column",
        metavar="NAME",
        help="the CSV/TSV column holding the names (default: 'name' if there is one, else the first); "
        "the other columns are carried through to the output",
    )
    f.add_argument(
        "--output",
        metavar="PATH",
        help="write to PATH instead of standard output (a file: under a temporary name, renamed when "
        "complete; a symlink is followed; a device or FIFO such as /dev/null is written through)",
    )
    f.add_argument(
        "--format",
        choices=("tsv", "csv", "jsonl"),
        default=None,
        help="output format (default: from --output's extension, else tsv)",
    )
    from namemodels.options import Range, number

    f.add_argument(
        "--threads",
        type=number(int, Range(1)),
        default=None,
        metavar="N",
        help="batches scored at once, one ONNX Runtime thread each (default: 2, or 1 on one core; "
        "NAMEMODELS_ONNX_THREADS overrides the default)",
    )
    f.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bar and no summary line (rows that could not be scored are still reported)",
    )


def run_file(args: argparse.Namespace, kind: str) -> int | None:
    """Score ``--input`` (or the names given, with ``--output``/``--format``) as a table; None when
    none of those options is given and the names are to be answered as usual."""
    from namemodels import bulk
    from namemodels.errors import UsageError
    from namemodels.inference.predictor import load

    if args.input is None and args.output is None and args.format is None:
        if args.column is not None:
            raise UsageError("--column picks the name column of an --input CSV/TSV file; give --input PATH")
        return None
    if args.input is not None and args.names:
        raise UsageError("give names as arguments or --input PATH, not both")
    if args.input is None and not args.names:
        raise UsageError("give names to score, or --input PATH ('-' for standard input)")
    if args.input is None and args.column is not None:
        raise UsageError("--column picks the name column of an --input CSV/TSV file; give --input PATH")
    if args.json:
        raise UsageError("--json prints one JSON document; for a table use --format jsonl (one JSON object a row)")
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {args.threads}")
    model = load(args.model, threads=args.threads)  # None: the API's default (onnx_backend.default_threads)
    top, min_prob = getattr(args, "top", 1), getattr(args, "min_prob", None)
    try:
        if args.input is not None:
            summary = bulk.score_file(
                model,
                args.input,
                args.output,
                kind=kind,
                top=top,
                column=args.column,
                fmt=args.format,
                progress=sys.stderr.isatty() and not args.quiet,
                min_prob=min_prob,
            )
        else:
            summary = bulk.score_names(
                model, args.names, args.output, kind=kind, top=top, fmt=args.format, min_prob=min_prob
            )
    except bulk.Terminated:
        print(f"namemodels {args.command}: terminated; no output file was written", file=sys.stderr)
        return EXIT_TERMINATED
    if summary.bad or (not args.quiet and args.input is not None):
        print(summary.line(args.command, args.output), file=sys.stderr)
    return 2 if summary.bad else 0


def need_names(args: argparse.Namespace) -> None:
    """Names as arguments are optional only because --input can replace them."""
    if not args.names:
        from namemodels.errors import UsageError

        raise UsageError("give names as arguments, or --input PATH ('-' for standard input)")
