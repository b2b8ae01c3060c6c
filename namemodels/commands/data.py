"""``namemodels data``: download the original data sets and describe a data set."""

from __future__ import annotations

import argparse
from pathlib import Path


def _download(args: argparse.Namespace) -> int:
    from ..data.download import download
    from .common import removed_on_failure

    with removed_on_failure(args.to):
        dest = download(args.dataset, Path(args.to), url=args.url, progress=not args.quiet, sha256=args.sha256)
    print(dest)
    return 0


def _stats(args: argparse.Namespace) -> int:
    from ..data.loader import load
    from ..data.stats import format_stats, plot_stats, stats

    ds = load(args.path)
    st = stats(ds)
    if args.json_out:
        from .common import write_json_out

        write_json_out(args.json_out, st)
    if args.json:
        from .common import json_text

        print(json_text(st))
    else:
        print(format_stats(st))
    if args.plot:
        out = plot_stats(st, args.plot)
        if not args.json:
            print(f"plot: {out}")
    return 0


def _name_table(args: argparse.Namespace) -> int:
    from ..training.name_tables import add_name_table

    add_name_table(
        args.model_dir,
        args.data,
        alpha=args.alpha,
        any_data=args.any_data,
        quiet=False,
        cv=args.cv,
        recent=args.recent,
        since=args.since,
        until=args.until,
        out=args.out,
    )
    return 0


def _births(args: argparse.Namespace) -> int:
    from ..data.births import read_births, write_counts

    b = read_births(args.byyear, since=args.since, until=args.until)
    out = write_counts(args.out, b.counts)
    names = len({n for n, _ in b.counts})
    first = args.since if args.since is not None else b.years[0]
    last = args.until if args.until is not None else b.years[1]
    print(f"{out}: {len(b.counts)} name/sex rows, {names} names, {sum(b.counts.values())} births ({first}-{last})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..options import Range, add_json_options, number

    parser = subparsers.add_parser(
        "data",
        help="download the original data sets; describe a data set",
        description="Download the original data sets, or print statistics of a data set (a directory "
        "of <Label>.txt files, a .zip of one, a name<TAB>label .tsv, a name,sex,count .csv, "
        "or a file of one name per line).",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")

    def _help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)

    d = sub.add_parser(
        "download",
        help="fetch surnames (PyTorch tutorial) or first-names (US SSA)",
        description="Fetch an original data set from its official address: surnames = the PyTorch "
        "char-RNN tutorial's data.zip (extracted to DIR/names/), first-names = the US SSA's "
        "names.zip (summed over years into DIR/first_names.csv). Neither source publishes "
        "a checksum: the archive is checked for integrity and expected members and its "
        "SHA-256 printed; --sha256 pins it.",
    )
    d.add_argument("dataset", choices=["surnames", "first-names"])
    d.add_argument("--to", required=True, metavar="DIR", help="directory to write into (created if needed)")
    d.add_argument("--url", help="fetch from this URL (or file:// URL, or local path) instead of the official one")
    d.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the downloaded archive")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_download)

    s = sub.add_parser(
        "stats",
        help="counts per class, length histogram, letter frequency",
        description="Print statistics of a data set: counts per class, length histogram, letter frequency.",
    )
    s.add_argument("path", metavar="PATH", help="directory, .zip, .tsv, .csv or one-name-per-line file")
    add_json_options(s, "the statistics")
    s.add_argument("--plot", metavar="FILE", help="also write a PNG with length, class and letter panels")
    s.set_defaults(func=_stats)

    t = sub.add_parser(
        "name-table",
        help="add a name table (training names with their counts) to a classifier",
        description="Write MODEL_DIR/name_table.npz from the model's training data: each distinct "
        "name with its births per sex or lines per label, and the model's own "
        "probabilities for it. Known names are then answered by (count + alpha * "
        "p_model) / (total + alpha), alpha cross-validated on held-out counts; unseen "
        "names by the model alone. The weights are not changed; config.json records "
        "the table and its SHA-256. With --cv the model's temperature (calibration) is "
        "chosen from out-of-fold probabilities first; --recent adds births of a span of "
        "years as a second layer (gender models).",
    )
    t.add_argument("model_dir", metavar="MODEL_DIR", help="a classifier's directory (surnames or gender task)")
    t.add_argument("--data", required=True, metavar="PATH", help="the data the model was trained on")
    t.add_argument(
        "--alpha",
        type=number(float, Range(0.0, None, low_open=True)),
        default=None,
        help="the prior strength in births or lines (default: cross-validated on held-out counts)",
    )
    t.add_argument(
        "--cv",
        metavar="DIR",
        default=None,
        help="a `namemodels cv --out DIR` run of the model's recipe on the same data: the temperature "
        "(config.json calibration, kept only where it lowers the cross-fitted log-loss) and then alpha "
        "are chosen with out-of-fold probabilities (each name scored by the fold model that never saw it)",
    )
    t.add_argument(
        "--recent",
        metavar="FILE",
        default=None,
        help="a year,name,sex,count file (e.g. first_names_by_year.csv.gz): the births of --since .. "
        "--until become a second layer of counts, P = (recent + beta * P_all) / (R + beta), beta "
        "cross-validated",
    )
    _add_year_span(t, "first year of --recent (default: its first)", "last year of --recent (default: its last)")
    t.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="copy MODEL_DIR (a folder or a shipped model's name) to DIR and write the table there, leaving "
        "MODEL_DIR as it is (e.g. a gender-recent model beside the shipped one)",
    )
    t.add_argument(
        "--any-data",
        action="store_true",
        help="allow data other than the model's training data (its SHA-256 differs from config.json's)",
    )
    t.set_defaults(func=_name_table)

    b = sub.add_parser(
        "births",
        help="sum a year,name,sex,count file over a span of years into name,sex,count",
        description="Read a by-year births file (year,name,sex,count; gzip or plain, such as the "
        "SSA's first_names_by_year.csv.gz) and write the births per name and sex "
        "summed over --since..--until (inclusive) as a name,sex,count CSV sorted by "
        "name then sex, the layout of first_names.csv (for training on earlier years).",
    )
    b.add_argument("byyear", metavar="BYYEAR", help="a year,name,sex,count file (.csv or .csv.gz)")
    _add_year_span(b, "first year to count (default: the first)", "last year to count (default: the last)")
    b.add_argument("--out", required=True, metavar="FILE", help="the name,sex,count CSV to write (replaced atomically)")
    b.set_defaults(func=_births)


def _add_year_span(p: argparse.ArgumentParser, since_help: str, until_help: str) -> None:
    """``--since YEAR`` and ``--until YEAR``: a span of years, both ends included, either end optional."""
    from ..options import Range, number

    year = number(int, Range(1, 9999))
    p.add_argument("--since", type=year, default=None, metavar="YEAR", help=since_help)
    p.add_argument("--until", type=year, default=None, metavar="YEAR", help=until_help)
