"""The ``threads`` part of ``namemodels bench bulk``: ONNX Runtime thread settings on a quiet machine
and on a busy one.

Deployments are often busy (a web server, several Dask workers on one machine), and a thread count
that wins on an idle machine can lose badly when every core already has work. This part scores the
same names with each thread setting -- ``1``, every count up to the usable cores, and the default
(what ``namemodels.load`` and the CLI pick when ``threads`` is not given) -- first on the machine as
it is ("quiet"), then with one busy process (``while True: pass``) per usable core ("busy"). The
settings are taken in turns (A B C, C B A, ...) within each condition, so they see the same machine.

Two workloads, through the Python API and through the CLI:

* ``unseen names``: every distinct first name of ``first_names.csv`` spelt backwards (``Maria`` ->
  ``Airam``; a reversal that is itself a name of the file, like ``Anna``, is left out), through the
  ``surnames`` model: hardly any (0.1%) is in its name table, so it is network work,
  in batches of 256 names;
* ``first names by births``: ``--births-names`` first names drawn in proportion to their births
  (``gender`` model): as in a user's table of people, nearly all are known names, answered from the
  name table without the network, and the rest are few per chunk (small batches).

The report gives each setting's names/s and the default's share of the best setting; the target is
the default within 10% of the best setting in both conditions.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Callable

from namemodels.bench.timing import interleaved

DEFAULT_SHARE_TARGET = 0.90  # default names/s / best setting's names/s, at least, quiet and busy
BUSY_LOOP = "while True: pass"


@contextlib.contextmanager
def busy_cores(n: int) -> Iterator[list[subprocess.Popen]]:
    """``n`` processes that each keep one core busy for the length of the block."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them reach the loop
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _births(path: Path) -> dict[str, int]:
    totals: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            totals[row["name"]] = totals.get(row["name"], 0) + int(row["count"])
    return totals


def unseen_names(path: Path, seed: int = 5) -> list[str]:
    """The distinct first names of ``path`` spelt backwards, shuffled, less those that are names of the
    file themselves: strings of names' letters and lengths that no name table holds."""
    import numpy as np

    known = _births(path)
    names = sorted({n[::-1].capitalize() for n in known} - {n.capitalize() for n in known})
    np.random.default_rng(seed).shuffle(names)
    return names


def births_sample(path: Path, n: int, seed: int = 3) -> list[str]:
    """``n`` first names drawn with replacement in proportion to their births (``name,sex,count``)."""
    import numpy as np

    totals = _births(path)
    names = list(totals)
    weights = np.array([totals[k] for k in names], dtype=np.float64)
    rng = np.random.default_rng(seed)
    return [names[i] for i in rng.choice(len(names), n, p=weights / weights.sum())]


def settings(cores: int) -> list[int | None]:
    """Thread settings to compare: 1 .. cores, then None (the default)."""
    return list(range(1, max(1, cores) + 1)) + [None]


def label(setting: int | None) -> str:
    return "default" if setting is None else f"{setting} thread{'s' if setting > 1 else ''}"


def _rates(n: int, times: dict[str, list[float]]) -> dict[str, float]:
    return {k: n / statistics.median(v) for k, v in times.items()}


def measure(
    workloads: dict[str, dict], cores: int, rounds: int, workdir: Path, run_cli: Callable[[Sequence[str]], dict]
) -> dict:
    """``workloads``: name -> {"model", "kind" (predict|gender), "names"}. Names/s of every setting,
    API and CLI, quiet then with every usable core busy."""
    import namemodels
    from namemodels.inference.onnx_backend import default_threads

    out: dict = {
        "settings": [label(s) for s in settings(cores)],
        "default_threads": default_threads(),
        "busy_processes": cores,
        "conditions": {},
    }
    files = {}
    for name, w in workloads.items():
        files[name] = workdir / f"threads_{w['kind']}_{len(w['names'])}.txt"
        files[name].write_text("\n".join(w["names"]) + "\n", encoding="utf-8")
    for condition in ("quiet", "busy"):
        with busy_cores(cores) if condition == "busy" else contextlib.nullcontext():
            cond: dict = {}
            for name, w in workloads.items():
                models = {label(s): namemodels.load(w["model"], threads=s) for s in settings(cores)}
                top = 1 if w["kind"] == "gender" else 3  # the CLI's answer for each kind
                for m in models.values():  # sessions built before timing
                    m.predict(w["names"][:4096], top=top)
                api = interleaved(
                    {k: functools.partial(m.predict, w["names"], top=top) for k, m in models.items()}, rounds
                )
                argv = [
                    w["kind"],
                    "--model",
                    w["model"],
                    "--input",
                    str(files[name]),
                    "--output",
                    str(workdir / "threads_out.tsv"),
                    "--quiet",
                ]
                cli = interleaved(
                    {
                        label(s): functools.partial(run_cli, argv + ([] if s is None else ["--threads", str(s)]))
                        for s in settings(cores)
                    },
                    rounds,
                )
                cond[name] = {
                    "names": len(w["names"]),
                    "distinct": len(set(w["names"])),
                    "model": w["model"],
                    "api_names_per_s": _rates(len(w["names"]), api),
                    "cli_names_per_s": _rates(len(w["names"]), cli),
                    "api_times_s": api,
                    "cli_times_s": cli,
                }
                for side in ("api", "cli"):
                    rates = cond[name][f"{side}_names_per_s"]
                    cond[name][f"{side}_default_share"] = rates["default"] / max(rates.values())
            out["conditions"][condition] = cond
    return out


def targets(part: dict) -> list[dict]:
    rows = []
    for condition, cond in part["conditions"].items():
        for name, w in cond.items():
            for side in ("api", "cli"):
                share = w[f"{side}_default_share"]
                rows.append(
                    {
                        "what": f"default threads / best setting, {name}, {side.upper()}, {condition} machine",
                        "value": share,
                        "limit": DEFAULT_SHARE_TARGET,
                        "holds": share >= DEFAULT_SHARE_TARGET,
                    }
                )
    return rows


def report_lines(part: dict) -> list[str]:
    lines = [f"  threads (default = {part['default_threads']}; busy = {part['busy_processes']} busy-loop processes):"]
    for condition, cond in part["conditions"].items():
        for name, w in cond.items():
            for side in ("api", "cli"):
                rates = w[f"{side}_names_per_s"]
                cells = ", ".join(f"{k} {v:,.0f}" for k, v in rates.items())
                lines.append(
                    f"    {condition:5s} {side.upper():3s} {name} ({w['names']:,} names, {w['distinct']:,} distinct): "
                    f"{cells} names/s; default {w[f'{side}_default_share']:.2f} of the best"
                )
    return lines
