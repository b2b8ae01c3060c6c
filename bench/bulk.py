"""``namemodels bench bulk``: scoring many names -- in memory, through the CLI on a file, on Dask.

Three comparisons, each measured within one run with the two sides interleaved (A B B A ...), so
that both see the same machine (this machine's 2 cores are shared: the load average at the start
and the end is recorded with the results):

* ``in_memory``: ``Predictor.predict(names, top)`` on ``--names`` surnames drawn with replacement
  from ``--data`` (so repeated, as real tables are) against the path before length bucketing,
  kept here as the baseline: each name checked, batches of 1,024 in input order padded to their
  longest name, names encoded one by one. The same two on the distinct names alone (each once,
  shuffled) separate what sorting by length gives from what scoring each distinct name once gives.
* ``cli``: ``namemodels predict --input FILE --output OUT`` on a file of ``--file-names`` names drawn
  the same way (a fresh process: start, model load, reading, writing), against
  ``Predictor.predict`` on the same names already in memory; names/s of each, and the CLI's peak
  RSS (``VmHWM`` of the CLI process, read as it exits).
* ``dask``: ``namemodels.dask.predict`` on a ``distributed.LocalCluster`` of 2 worker processes x
  1 thread reading the same file and writing TSV parts (as the CLI writes TSV; the target) or
  Parquet (what Dask users usually write), against the CLI's wall time; the predictions of all
  three are compared. The cluster is started before timing (a user's cluster is
  already up); its start time is reported apart.
* ``threads``: each ONNX Runtime thread setting and the default, API and CLI, on the machine as it
  is and with one busy process per core (:mod:`namemodels.bench.contention`).

Names that fail the name check are left out of the pool (the in-memory side would raise on them).
This module imports nothing heavy at import time: the CLI builds its parser from it.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from namemodels.bench import default_names_data, report_json
from namemodels.bench.machine import cpu_name, stamp, versions
from namemodels.bench.timing import interleaved
from namemodels.options import Range, add_json_options, number

if TYPE_CHECKING:
    from namemodels.inference.predictor import Predictor

NAME = "bulk"
HELP = "bulk scoring: length-bucketed predict vs the unsorted path, CLI on a file vs in memory, Dask vs CLI"

IN_MEMORY_TARGET = 2.5  # bucketed names/s / unsorted names/s on shuffled surnames, at least
CLI_TARGET = 0.90  # CLI names/s / in-memory names/s, at least
CLI_RSS_TARGET_MB = 300  # CLI peak RSS on the file, at most
DASK_TARGET = 1.25  # Dask wall time / CLI wall time, at most
OLD_BATCH = 1024
PARTS = ("in_memory", "cli", "dask", "threads")
POSITIVE = number(int, Range(1))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="surnames", help="classifier: shipped model name or model directory (default surnames)"
    )
    p.add_argument(
        "--data",
        default=None,
        help="folder of <Language>.txt surname files to draw names from "
        "(default: ../shared/data/names beside the checkout)",
    )
    p.add_argument(
        "--names", type=POSITIVE, default=100_000, help="names for the in-memory comparison (default 100,000)"
    )
    p.add_argument(
        "--file-names",
        type=POSITIVE,
        default=1_000_000,
        help="names in the file for the CLI and Dask (default 1,000,000)",
    )
    p.add_argument(
        "--rounds", type=POSITIVE, default=2, help="interleaved rounds of each comparison (default 2: A B B A)"
    )
    p.add_argument(
        "--top", type=POSITIVE, default=3, help="labels per name, on every side (default 3, the CLI's default)"
    )
    p.add_argument(
        "--threads",
        type=POSITIVE,
        default=None,
        help="ONNX Runtime threads of the single-process sides (default: the machine's cores)",
    )
    p.add_argument("--partitions", type=POSITIVE, default=8, help="Dask partitions of the file (default 8)")
    p.add_argument(
        "--births-names",
        type=POSITIVE,
        default=1_000_000,
        help="first names drawn by births for the threads part (default 1,000,000)",
    )
    p.add_argument(
        "--first-names",
        default=None,
        help="first_names.csv for the threads part (default: ../shared/data/first_names.csv beside the checkout)",
    )
    p.add_argument("--skip", nargs="*", default=[], choices=PARTS, help="parts to leave out")
    p.add_argument("--workdir", default=None, help="where the names file and outputs go (default: a temporary folder)")
    add_json_options(p, "every number, the machine and versions", old_file_spelling=True)


def main(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError

    data = Path(args.data) if args.data else default_names_data()
    if not data.is_dir():
        raise UsageError(f"{data}: no folder of surname files; pass --data DIR (a folder of <Language>.txt)")
    with tempfile.TemporaryDirectory(prefix="namemodels-bench-bulk-") as tmp:
        workdir = Path(args.workdir) if args.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        first_names = Path(args.first_names) if args.first_names else data.parent / "first_names.csv"
        if "threads" not in args.skip and not first_names.is_file():
            raise UsageError(
                f"{first_names}: not found; the threads part draws first names from it: pass "
                "--first-names PATH (name,sex,count) or --skip threads"
            )
        result = run(
            args.model,
            data,
            workdir,
            names=args.names,
            file_names=args.file_names,
            rounds=args.rounds,
            top=args.top,
            threads=args.threads,
            partitions=args.partitions,
            skip=args.skip,
            first_names=first_names,
            births_names=args.births_names,
        )
    print(format_report(result))
    report_json(args, result)
    return 0


# ---- inputs -----------------------------------------------------------------------------------------
def name_pool(data: Path) -> tuple:
    """(every valid line of the surname files, how many lines failed the name check)."""
    from namemodels.errors import UsageError
    from namemodels.text import check_name

    pool, bad = [], 0
    for f in sorted(data.glob("*.txt")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    check_name(line)
                    pool.append(line.strip())
                except UsageError:
                    bad += 1
    if not pool:
        raise UsageError(f"{data}: no names in *.txt files")
    return pool, bad


def draw(pool: Sequence[str], n: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.integers(0, len(pool), n)]


# ---- the baseline: predict before length bucketing ----------------------------------------------
def unsorted_predict(
    model: Predictor, names: Sequence[str], top: int, batch: int = OLD_BATCH
) -> list[list[tuple[str, float]]]:
    """``Predictor.predict`` as it was before length bucketing: every name checked, batches in input
    order (each padded to its longest name), ids built name by name; then the model's temperature
    (``model.rule.unseen``), which every answer has, and the labels ranked as ``predict`` ranks them."""
    import numpy as np

    from namemodels.text import check_name

    tok = model.tokenizer
    clean = [check_name(n) for n in names]
    out = []
    for i in range(0, len(clean), batch):
        seqs = [tok.encode(n) for n in clean[i : i + batch]]
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        ids = np.full((len(seqs), max(1, int(lengths.max(initial=1)))), tok.pad_id, dtype=np.int64)
        for j, s in enumerate(seqs):
            ids[j, : len(s)] = s
        out.append(model.backend.logprobs(ids, lengths))
    logp = model.rule.unseen(np.concatenate(out))
    order = np.argsort(-logp, 1, kind="stable")[:, :top]
    return [[(model.labels[j], float(row[j])) for j in idx] for row, idx in zip(logp, order)]


# ---- measuring --------------------------------------------------------------------------------------
def _rate(n: int, times: Sequence[float]) -> float:
    return n / statistics.median(times)


# `namemodels ...` as ``python -m namemodels.cli`` runs it, then the process's own peak RSS (VmHWM
# belongs to the address space made at exec; the child's ru_maxrss would include the benchmark
# process it was forked from, which Linux carries across exec).
CLI_WITH_PEAK = (
    "import sys; from namemodels.cli import main; code = main(sys.argv[1:]); "
    "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]; "
    "print('PEAK_RSS_KB', hwm[0] if hwm else -1, file=sys.stderr); sys.exit(code)"
)


def run_cli(argv: Sequence[str]) -> dict:
    """Run one CLI process (``argv`` after ``namemodels``); its wall time and peak RSS."""
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-c", CLI_WITH_PEAK, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seconds = time.perf_counter() - t0
    if r.returncode != 0:
        from namemodels.errors import UsageError

        raise UsageError(f"the CLI run failed (exit {r.returncode}): {r.stderr.strip()[-500:]}")
    peak = [line.split()[1] for line in r.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    return {"seconds": seconds, "peak_rss_mb": int(peak[0]) / 1024 if peak and int(peak[0]) > 0 else None}


def _load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def read_tsv(path: Path, top: int) -> tuple:
    """(labels, logprobs) of the first prediction of every row of a TSV written by the CLI or Dask."""
    labels, logps = [], []
    files = sorted(path.glob("*.tsv")) if path.is_dir() else [path]
    for f in files:
        with open(f, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh, delimiter="\t")
            header = next(reader)
            li, pi = header.index("label"), header.index("logprob")
            for row in reader:
                labels.append(row[li])
                logps.append(float(row[pi]))
    return labels, logps


def run(
    model_name: str,
    data: Path,
    workdir: Path,
    names: int = 100_000,
    file_names: int = 1_000_000,
    rounds: int = 2,
    top: int = 3,
    threads: int | None = None,
    partitions: int = 8,
    skip: Sequence[str] = (),
    first_names: Path | None = None,
    births_names: int = 1_000_000,
) -> dict:
    import numpy as np

    import namemodels
    from namemodels.bench.latency import RUNTIMES
    from namemodels.cores import machine_cores

    threads = threads or machine_cores()
    model = namemodels.load(model_name, threads=threads)
    pool, bad = name_pool(data)
    result: dict = {
        **stamp("bulk", "cpu"),
        "device_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "cores_usable": machine_cores(),
        "versions": versions(*RUNTIMES, "pandas", "dask", "distributed"),  # Dask's: None when absent
        "load_average_start": _load_average(),
        "model": model_name,
        "data": str(data),
        "pool": {"lines": len(pool), "distinct": len(set(pool)), "left_out_bad_lines": bad},
        "config": {
            "names": names,
            "file_names": file_names,
            "rounds": rounds,
            "top": top,
            "threads": threads,
            "partitions": partitions,
        },
        "targets": [],
    }

    if "in_memory" not in skip:
        # the network's path, old against new: every name answered by the model (the name table would
        # answer most of these drawn surnames without it; the CLI and Dask parts below keep the table)
        network = namemodels.load(model_name, threads=threads, table=False)
        sample = draw(pool, names, seed=0)
        distinct = list(dict.fromkeys(sample))
        np.random.default_rng(1).shuffle(distinct)
        network.predict(sample[:2000], top=top)  # warm-up: sessions built
        unsorted_predict(network, sample[:2000], top)
        assert network.predict(sample[:5000], top=top) == unsorted_predict(network, sample[:5000], top)
        part: dict[str, dict[str, Any]] = {}
        for label, names_ in (("shuffled", sample), ("distinct", distinct)):
            t = interleaved(
                {
                    "unsorted": functools.partial(unsorted_predict, network, names_, top),
                    "bucketed": functools.partial(network.predict, names_, top=top),
                },
                rounds,
            )
            part[label] = {
                "names": len(names_),
                "times_s": t,
                "unsorted_names_per_s": _rate(len(names_), t["unsorted"]),
                "bucketed_names_per_s": _rate(len(names_), t["bucketed"]),
                "speedup": statistics.median(t["unsorted"]) / statistics.median(t["bucketed"]),
            }
        result["in_memory"] = part
        result["targets"].append(
            {
                "what": "in-memory predict, shuffled surnames: bucketed / unsorted names/s",
                "value": part["shuffled"]["speedup"],
                "limit": IN_MEMORY_TARGET,
                "holds": part["shuffled"]["speedup"] >= IN_MEMORY_TARGET,
            }
        )

    need_file = "cli" not in skip or "dask" not in skip
    file_list = draw(pool, file_names, seed=2) if need_file else []
    names_file = workdir / "names.txt"
    if need_file:
        names_file.write_text("\n".join(file_list) + "\n", encoding="utf-8")
    cli_out = workdir / "cli.tsv"
    cli_argv = [
        "predict",
        "--model",
        model_name,
        "--input",
        str(names_file),
        "--output",
        str(cli_out),
        "--top",
        str(top),
        "--threads",
        str(threads),
        "--quiet",
    ]
    cli_runs: list[dict] = []

    def cli_once() -> None:
        cli_runs.append(run_cli(cli_argv))

    if "cli" not in skip:
        t = interleaved({"in_memory": lambda: model.predict(file_list, top=top), "cli": cli_once}, rounds)
        rss = max((r["peak_rss_mb"] or 0) for r in cli_runs)
        labels, _ = read_tsv(cli_out, top)
        expect = [r[0][0] for r in model.predict(file_list, top=1)]
        ratio = statistics.median(t["in_memory"]) / statistics.median(t["cli"])
        result["cli"] = {
            "names": file_names,
            "file_mb": names_file.stat().st_size / 1e6,
            "times_s": t,
            "in_memory_names_per_s": _rate(file_names, t["in_memory"]),
            "cli_names_per_s": _rate(file_names, t["cli"]),
            "throughput_ratio": ratio,
            "cli_peak_rss_mb": rss,
            "runs": cli_runs,
            "cli_command": "namemodels " + " ".join(map(shlex.quote, cli_argv)),
            "same_labels_as_in_memory": labels == expect,
        }
        result["targets"] += [
            {
                "what": "CLI names/s / in-memory predict names/s (1M-name file)",
                "value": ratio,
                "limit": CLI_TARGET,
                "holds": ratio >= CLI_TARGET,
            },
            {"what": "CLI peak RSS, MB", "value": rss, "limit": CLI_RSS_TARGET_MB, "holds": rss <= CLI_RSS_TARGET_MB},
        ]

    if "dask" not in skip:
        result["dask"] = _dask_part(
            model, model_name, names_file, workdir, file_names, rounds, top, partitions, cli_once, cli_runs, cli_out
        )
        d = result["dask"]
        result["targets"].append(
            {
                "what": "Dask (2 workers x 1 thread, writing TSV) wall time / CLI wall time",
                "value": d["time_ratio"],
                "limit": DASK_TARGET,
                "holds": d["time_ratio"] <= DASK_TARGET,
            }
        )
    if "threads" not in skip:
        from namemodels.bench import contention

        assert first_names is not None  # main() passes it whenever the threads part runs

        workloads = {
            "unseen names": {"model": model_name, "kind": "predict", "names": contention.unseen_names(first_names)},
            "first names by births": {
                "model": "gender",
                "kind": "gender",
                "names": contention.births_sample(first_names, births_names),
            },
        }
        result["threads"] = contention.measure(workloads, machine_cores(), max(rounds, 3), workdir, run_cli)
        result["targets"] += contention.targets(result["threads"])
    result["load_average_end"] = _load_average()
    return result


def _dask_part(
    model: Predictor,
    model_name: str,
    names_file: Path,
    workdir: Path,
    n: int,
    rounds: int,
    top: int,
    partitions: int,
    cli_once: Callable[[], None],
    cli_runs: list[dict],
    cli_out: Path,
) -> dict:
    import shutil

    from namemodels.errors import UsageError

    try:
        import dask.dataframe as dd
        import distributed
    except ImportError as exc:
        raise UsageError(
            f"the Dask part needs {exc.name}: pip install 'namemodels[dask]', or pass --skip dask"
        ) from None
    import namemodels.dask
    from namemodels.bulk import DIGITS

    blocksize = max(1, names_file.stat().st_size // partitions + 1)
    outputs = {"tsv": workdir / "dask_tsv", "parquet": workdir / "dask_parquet"}

    def dask_once(fmt: str) -> None:
        shutil.rmtree(outputs[fmt], ignore_errors=True)
        ddf = dd.read_csv(
            str(names_file),
            header=None,
            names=["name"],
            sep="\t",
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_filter=False,
            dtype={"name": object},
            blocksize=blocksize,
        )
        scored = namemodels.dask.predict(ddf, column="name", model=model_name, top=top, threads=1)
        if fmt == "tsv":
            # the CLI's text: log-probabilities to 6 decimals (pandas' default writes 17 digits, slower)
            scored.to_csv(
                str(outputs[fmt] / "part-*.tsv"),
                sep="\t",
                index=False,
                float_format=f"%.{DIGITS['logprob']}f",
                name_function=lambda i: f"{i:05d}",
            )
        else:
            scored.to_parquet(str(outputs[fmt]), write_index=False)

    t0 = time.perf_counter()
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        ) as cluster,
        distributed.Client(cluster),
    ):
        started = time.perf_counter() - t0
        first = len(cli_runs)
        t = interleaved(
            {"cli": cli_once, "dask_tsv": lambda: dask_once("tsv"), "dask_parquet": lambda: dask_once("parquet")},
            rounds,
        )
    import numpy as np
    import pandas as pd

    cli_labels, cli_logp = read_tsv(cli_out, top)
    tsv_labels, tsv_logp = read_tsv(outputs["tsv"], top)
    frame = pd.read_parquet(outputs["parquet"])
    same = {
        "tsv": tsv_labels == cli_labels and np.allclose(tsv_logp, cli_logp, rtol=0, atol=1e-6),
        "parquet": frame["label"].tolist() == cli_labels and np.allclose(frame["logprob"], cli_logp, rtol=0, atol=1e-6),
    }
    cli_median = statistics.median(t["cli"])
    return {
        "names": n,
        "partitions": partitions,
        "cluster": "LocalCluster, 2 worker processes x 1 thread",
        "cluster_start_s": started,
        "times_s": t,
        "cli_names_per_s": _rate(n, t["cli"]),
        "dask_tsv_names_per_s": _rate(n, t["dask_tsv"]),
        "dask_parquet_names_per_s": _rate(n, t["dask_parquet"]),
        "time_ratio": statistics.median(t["dask_tsv"]) / cli_median,
        "time_ratio_parquet": statistics.median(t["dask_parquet"]) / cli_median,
        "rows": len(tsv_labels),
        "same_predictions_as_cli": {k: bool(v) for k, v in same.items()},
        "cli_runs": cli_runs[first:],
    }


# ---- report -----------------------------------------------------------------------------------------
def format_report(r: dict) -> str:
    lines = [
        f"bench bulk: model {r['model']}, top {r['config']['top']}, {r['device_name']} "
        f"({r['cores_usable']} cores usable), onnxruntime {r['versions'].get('onnxruntime')}, "
        f"load average {r['load_average_start']} -> {r['load_average_end']}"
    ]
    if "in_memory" in r:
        for label, p in r["in_memory"].items():
            lines.append(
                f"  in memory, {p['names']:,} {label} names: unsorted {p['unsorted_names_per_s']:,.0f} "
                f"names/s, bucketed {p['bucketed_names_per_s']:,.0f} names/s ({p['speedup']:.2f}x)"
            )
    if "cli" in r:
        c = r["cli"]
        lines.append(
            f"  {c['names']:,}-name file: CLI {c['cli_names_per_s']:,.0f} names/s, in memory "
            f"{c['in_memory_names_per_s']:,.0f} names/s (ratio {c['throughput_ratio']:.2f}), "
            f"CLI peak RSS {c['cli_peak_rss_mb']:.0f} MB, same labels: {c['same_labels_as_in_memory']}"
        )
    if "dask" in r:
        d = r["dask"]
        lines.append(
            f"  Dask {d['cluster']}: writing TSV {d['dask_tsv_names_per_s']:,.0f} names/s (time ratio "
            f"{d['time_ratio']:.2f}), Parquet {d['dask_parquet_names_per_s']:,.0f} names/s (time ratio "
            f"{d['time_ratio_parquet']:.2f}), vs CLI {d['cli_names_per_s']:,.0f} names/s; cluster start "
            f"{d['cluster_start_s']:.1f} s, not timed; same predictions as the CLI: {d['same_predictions_as_cli']}"
        )
    if "threads" in r:
        from namemodels.bench import contention

        lines += contention.report_lines(r["threads"])
    for t in r["targets"]:
        lines.append(f"  target {t['what']}: {t['value']:.2f} vs {t['limit']} -> {'holds' if t['holds'] else 'MISSED'}")
    return "\n".join(lines)
