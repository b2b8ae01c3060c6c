"""``namemodels bench cells``: forward and forward+backward throughput of every cell, beside its
``torch.nn`` twin and a naive per-step Python loop, all measured in one interleaved run.

What is timed, for a batch-first input ``x`` of shape ``(B, T, E)``:

* ``fwd``: one forward call under ``torch.no_grad()`` (inference).
* ``fwd+bwd``: one forward with autograd on, then ``torch.autograd.grad`` of the output against a
  fixed random cotangent, with respect to the input and every weight (a training step without the
  optimizer; nothing accumulates into ``.grad``).

Three implementations per cell: ``ours`` (``namemodels.kernels.make_layer``), ``torch.nn`` (the
same-sized ``nn.LSTM``/``nn.GRU``/``nn.RNN``; a momentum cell's twin is its plain cell's twin) and
``naive`` (:func:`namemodels.kernels.naive.naive_layer`, one Python iteration per time step; left
out with ``--no-naive``). Several values of ``--batch/--seq/--hidden/--dtype`` run one measurement
per combination and end with a table of the ours/torch.nn ratios (JSON: ``cells-sweep``).

Noise control: every measured thing is calibrated once (so one sample lasts at least
``MIN_SAMPLE_S``), then the samples are taken round-robin -- one sample of each thing per round, for
``repeat`` rounds, with the models that are compared (a cell, its torch.nn twin, its plain cell)
adjacent in each round and the sweep direction alternating. Throughput is ``B * T`` over the median
sample. A ratio is the median over rounds of the two models' time ratio within the round: samples
taken a few milliseconds apart share the machine's state, so the ratio survives a busy machine far
better than the throughputs do (``ratio_of_medians`` in the JSON gives the other estimate).

This module imports torch only inside functions: the CLI imports it to build its parser.
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable

from namemodels.bench import report_json
from namemodels.bench.machine import cpu_name, stamp, versions
from namemodels.bench.timing import turns
from namemodels.kernels.cells import CELLS as CELL_NAMES
from namemodels.kernels.cells import MODE_OF, REGISTRY
from namemodels.options import add_json_options

if TYPE_CHECKING:  # annotations only: torch loads when a benchmark runs
    import torch
    from torch import nn

    from namemodels.kernels.layers import RecurrentBase

NAME = "cells"
HELP = "throughput of every cell vs torch.nn and a naive loop (forward and forward+backward)"

PLAIN_OF = {c.name: c.plain for c in REGISTRY.values() if c.momentum}  # momentum cell -> its plain cell
PASSES = ("fwd", "fwd+bwd")
MIN_SAMPLE_S = 0.02  # one timed sample lasts at least this long
WARMUP_S = 0.1  # warm-up per measured thing before calibration

# Targets printed (and recorded) with every run, as time ratios (< 1: ours is faster).
# CPU: a standard cell within 1.1x of its torch.nn twin, momentum_lstm within 1.3x of lstm.
# CUDA: forward at least 2x and forward+backward at least 1.2x as fast as cuDNN, every
# momentum cell within 1.1x of its plain cell.
TARGETS: dict[str, dict[str, Any]] = {
    "cpu": {"twin": {"fwd": 1.1, "fwd+bwd": 1.1}, "momentum": 1.3, "momentum_cells": ("momentum_lstm",)},
    "cuda": {
        "twin": {"fwd": 1 / 2, "fwd+bwd": 1 / 1.2},
        "momentum": 1.1,
        "momentum_cells": ("momentum_rnn", "momentum_lstm", "momentum_gru"),
    },
}


# ---- command line -------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    sweep = " (several values: one run per combination, a summary table at the end)"
    p.add_argument("--batch", type=int, nargs="+", default=[256], help="batch size B (default 256)" + sweep)
    p.add_argument("--seq", type=int, nargs="+", default=[12], help="sequence length T (default 12)" + sweep)
    p.add_argument("--hidden", type=int, nargs="+", default=[128], help="hidden size H (default 128)" + sweep)
    p.add_argument("--embed", type=int, default=32, help="input (embedding) size E (default 32)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="device (default cpu)")
    p.add_argument(
        "--dtype",
        nargs="+",
        default=["float32"],
        choices=("float32", "bfloat16"),
        help="dtype (default float32)" + sweep,
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=15,
        help="timed samples per model and pass, taken round-robin; the median is reported (default 15)",
    )
    p.add_argument(
        "--cells",
        nargs="+",
        metavar="CELL",
        default=list(CELL_NAMES),
        help=f"cells to run (default all: {' '.join(CELL_NAMES)})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own choice); 1 is steadiest on a busy machine",
    )
    p.add_argument(
        "--backend", default="auto", choices=("auto", "torch", "triton"), help="backend of our layers (default auto)"
    )
    p.add_argument(
        "--no-naive",
        action="store_true",
        help="skip the naive per-step loop (it takes most of the time of a big sweep)",
    )
    add_json_options(p, "every number, the device, versions and the command line", old_file_spelling=True)


def main(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError

    for name in ("batch", "seq", "hidden", "embed", "repeat", "threads"):
        values = getattr(args, name)
        for value in values if isinstance(values, list) else [values]:
            if value is not None and value < 1:
                raise UsageError(f"--{name} must be a positive integer, got {value}")
    unknown = [c for c in args.cells if c not in CELL_NAMES]
    if unknown:
        raise UsageError(f"unknown cell(s) {', '.join(unknown)}; choose from {', '.join(CELL_NAMES)}")
    cells = list(dict.fromkeys(args.cells))
    axes = [list(dict.fromkeys(getattr(args, name))) for name in ("dtype", "hidden", "seq", "batch")]
    combos = list(itertools.product(*axes))
    results = []
    for dtype, hidden, seq, batch in combos:
        result = run(
            cells,
            batch=batch,
            seq=seq,
            hidden=hidden,
            embed=args.embed,
            device=args.device,
            dtype=dtype,
            repeat=args.repeat,
            backend=args.backend,
            threads=args.threads,
            naive=not args.no_naive,
        )
        print(format_report(result), end="\n\n" if len(combos) > 1 else "\n", flush=True)
        results.append(result)
    if len(results) == 1:
        report = results[0]
    else:
        report = sweep_report(results)
        print(format_sweep(report))
    report_json(args, report)
    return 0


# ---- the measured things ------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Subject:
    """One implementation of one cell: a forward closure and a forward+backward closure."""

    def __init__(self, key: str, fwd: Callable[[], object], fwdbwd: Callable[[], object]) -> None:
        self.key = key
        self.fns = {"fwd": fwd, "fwd+bwd": fwdbwd}
        self.inner: dict[str, int] = {}
        self.samples: dict[str, list[float]] = {p: [] for p in PASSES}


def _build_subjects(
    cells: Sequence[str],
    B: int,
    T: int,
    H: int,
    E: int,
    device: torch.device,
    dtype: torch.dtype,
    backend: str,
    with_naive: bool = True,
) -> tuple[dict[str, dict[str, str]], dict[str, _Subject], dict[str, RecurrentBase]]:
    import torch
    from torch import nn

    from namemodels.errors import UsageError
    from namemodels.kernels import make_layer
    from namemodels.kernels.naive import naive_layer

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, E, generator=gen).to(device, dtype)
    x_grad = x.detach().clone().requires_grad_(True)
    g_out = torch.randn(B, T, H, generator=gen).to(device, dtype)

    def closures(forward: Callable, params: list) -> tuple[Callable[[], object], Callable[[], object]]:
        def fwd():
            with torch.no_grad():
                return forward(x)

        def fwdbwd():
            out = forward(x_grad)
            return torch.autograd.grad(out, [x_grad] + params, g_out)

        return fwd, fwdbwd

    subjects: dict[str, _Subject] = {}
    ours_layers: dict[str, RecurrentBase] = {}

    def ours(cell: str) -> str:
        key = f"ours:{cell}"
        if key not in subjects:
            torch.manual_seed(0)
            layer = make_layer(cell, E, H, batch_first=True, backend=backend, device=device, dtype=dtype)
            ours_layers[cell] = layer
            fwd, fwdbwd = closures(lambda inp: layer(inp)[0], list(layer.parameters()))
            subjects[key] = _Subject(key, fwd, fwdbwd)
        return key

    def twin(cell: str) -> str:
        mode = MODE_OF[cell]
        key = f"torch.nn:{mode}"
        if key not in subjects:
            torch.manual_seed(0)
            mod: nn.RNNBase
            if mode == "lstm":
                mod = nn.LSTM(E, H, batch_first=True, device=device, dtype=dtype)
            elif mode == "gru":
                mod = nn.GRU(E, H, batch_first=True, device=device, dtype=dtype)
            else:
                mod = nn.RNN(E, H, nonlinearity=mode[4:], batch_first=True, device=device, dtype=dtype)
            fwd, fwdbwd = closures(lambda inp: mod(inp)[0], list(mod.parameters()))
            subjects[key] = _Subject(key, fwd, fwdbwd)
        return key

    def naive(cell: str) -> str:
        key = f"naive:{cell}"
        if key not in subjects:
            layer = ours_layers[cell]
            mode = MODE_OF[cell]
            w_ih, w_hh, b_ih, b_hh = layer._layer_weights(0, 0)
            h0 = torch.zeros(B, H, device=device, dtype=dtype)
            c0 = torch.zeros(B, H, device=device, dtype=dtype) if mode == "lstm" else None
            mu, s = (layer.mu, layer.s) if layer.momentum else (None, None)
            fwd, fwdbwd = closures(
                lambda inp: naive_layer(mode, inp, None, h0, c0, None, w_ih, w_hh, b_ih, b_hh, mu=mu, s=s)[0],
                [w for w in (w_ih, w_hh, b_ih, b_hh) if w is not None],
            )
            subjects[key] = _Subject(key, fwd, fwdbwd)
        return key

    plan = {}
    for cell in cells:
        row = {"ours": ours(cell), "torch.nn": twin(cell)}
        if with_naive:
            row["naive"] = naive(cell)
        if cell in PLAIN_OF:
            row["plain"] = ours(PLAIN_OF[cell])
        plan[cell] = row
    # One call each up front, so that an unusable backend fails as a usage error before any timing.
    for cell, layer in ours_layers.items():
        try:
            with torch.no_grad():
                layer(x)
        except (ValueError, ImportError, RuntimeError) as exc:
            raise UsageError(
                f"cannot run {cell} with --backend {backend} on {device.type}/{str(dtype)[6:]}: {exc}"
            ) from exc
    return plan, subjects, ours_layers


def _calibrate(subject: _Subject, device: torch.device) -> None:
    for p in PASSES:
        fn = subject.fns[p]
        start = time.perf_counter()
        n = 0
        while True:
            fn()
            n += 1
            _sync(device)
            if time.perf_counter() - start >= WARMUP_S and n >= 3:
                break
        per_call = (time.perf_counter() - start) / n
        subject.inner[p] = max(1, math.ceil(MIN_SAMPLE_S / max(per_call, 1e-9)))


def _sample(subject: _Subject, p: str, device: torch.device) -> float:
    fn, n = subject.fns[p], subject.inner[p]
    _sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / n


# ---- running and reporting ----------------------------------------------------------------------
def _device_name(device: torch.device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def run(
    cells: Sequence[str],
    batch: int = 256,
    seq: int = 12,
    hidden: int = 128,
    embed: int = 32,
    device: str = "cpu",
    dtype: str = "float32",
    repeat: int = 15,
    backend: str = "auto",
    progress: bool = True,
    threads: int | None = None,
    naive: bool = True,
) -> dict:
    """Measure ``cells`` and return every number as a JSON-ready dict (see :func:`format_report`)."""
    import torch
    from tqdm import tqdm

    from namemodels.errors import UsageError

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(
            f"--device cuda: no CUDA device is available to this torch ({torch.__version__}); use --device cpu"
        )
    dev = torch.device(device)
    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    if threads is not None:
        torch.set_num_threads(threads)
    plan, subjects, layers = _build_subjects(cells, batch, seq, hidden, embed, dev, tdtype, backend, naive)
    # Compared models side by side: per mode, its torch.nn twin, then each of our cells of that mode
    # (plain first), then the naive loops.
    sequence: list[str] = []
    for mode in dict.fromkeys(MODE_OF[c] for c in cells):
        group = [c for c in CELL_NAMES if MODE_OF[c] == mode and f"ours:{c}" in subjects]
        sequence += (
            [f"torch.nn:{mode}"]
            + [f"ours:{c}" for c in group]
            + [f"naive:{c}" for c in group if f"naive:{c}" in subjects]
        )
    assert sorted(sequence) == sorted(subjects), (sequence, list(subjects))
    order = [subjects[k] for k in sequence]
    bar = tqdm(
        total=len(order) * (1 + repeat),
        desc="bench cells",
        unit="step",
        file=sys.stderr,
        disable=not progress or None,
        leave=False,
    )
    try:
        for subject in order:
            bar.set_postfix_str(f"warm-up {subject.key}")
            _calibrate(subject, dev)
            bar.update(1)
        # The sweep's direction alternates, so no model always follows the same neighbour.
        for r, subject in turns(order, repeat):
            bar.set_postfix_str(f"round {r + 1}/{repeat}")
            for p in PASSES:
                subject.samples[p].append(_sample(subject, p, dev))
            bar.update(1)
    finally:
        bar.close()

    tokens = batch * seq
    med = {s.key: {p: statistics.median(s.samples[p]) for p in PASSES} for s in order}

    def ratio(a: str, b: str) -> dict[str, float]:
        return {
            p: statistics.median(x / y for x, y in zip(subjects[a].samples[p], subjects[b].samples[p])) for p in PASSES
        }

    def ratio_of_medians(a: str, b: str) -> dict[str, float]:
        return {p: med[a][p] / med[b][p] for p in PASSES}

    rows = []
    for cell in cells:
        keys = plan[cell]
        # last_backend: what the layer's last forward ran on, kept in its __dict__ (not an nn.Module attribute)
        row: dict[str, Any] = {"cell": cell, "backend": vars(layers[cell])["last_backend"][0]}
        for impl in ("ours", "torch.nn", "naive"):
            if impl in keys:
                row[impl] = {
                    p: {"time_s": med[keys[impl]][p], "tokens_per_s": tokens / med[keys[impl]][p]} for p in PASSES
                }
        row["ours_over_torch_nn"] = ratio(keys["ours"], keys["torch.nn"])
        row["ratio_of_medians"] = {"ours_over_torch_nn": ratio_of_medians(keys["ours"], keys["torch.nn"])}
        if "plain" in keys:
            row["plain"] = PLAIN_OF[cell]
            row["momentum_over_plain"] = ratio(keys["ours"], keys["plain"])
            row["ratio_of_medians"]["momentum_over_plain"] = ratio_of_medians(keys["ours"], keys["plain"])
        rows.append(row)

    targets = []
    goal = TARGETS[dev.type]
    for row in rows:
        cell = row["cell"]
        if cell in goal["momentum_cells"]:
            for p in PASSES:
                value = row["momentum_over_plain"][p]
                targets.append(
                    {
                        "name": f"{cell}/{PLAIN_OF[cell]} time ({p})",
                        "value": value,
                        "limit": goal["momentum"],
                        "holds": value <= goal["momentum"],
                    }
                )
        if cell not in PLAIN_OF:
            for p in PASSES:
                value, limit = row["ours_over_torch_nn"][p], goal["twin"][p]
                targets.append(
                    {"name": f"{cell}/torch.nn time ({p})", "value": value, "limit": limit, "holds": value <= limit}
                )
    return {
        **stamp("cells", device),
        "device_name": _device_name(dev),
        "torch_version": torch.__version__,
        "triton_version": versions("triton")["triton"],
        "python_version": platform.python_version(),
        "config": {
            "batch": batch,
            "seq": seq,
            "hidden": hidden,
            "embed": embed,
            "dtype": dtype,
            "backend": backend,
            "repeat": repeat,
            "min_sample_s": MIN_SAMPLE_S,
            "threads": torch.get_num_threads(),
            "naive": naive,
        },
        "method": "throughput from the median of interleaved samples; ratios = median over rounds of the "
        "within-round time ratio; fwd under no_grad, fwd+bwd = forward + autograd.grad "
        "w.r.t. input and weights; tokens/s = batch*seq/time",
        "rows": rows,
        "targets": targets,
        "raw_samples_s": {s.key: {p: s.samples[p] for p in PASSES} for s in order},
        "inner_iterations": {s.key: dict(s.inner) for s in order},
    }


def _tok(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k"
    return f"{v:.0f}"


def format_report(result: dict) -> str:
    cfg = result["config"]
    head = (
        f"cells  B={cfg['batch']} T={cfg['seq']} H={cfg['hidden']} E={cfg['embed']}  "
        f"{result['device_name']}  {cfg['dtype']}  torch {result['torch_version']}  "
        f"backend={cfg['backend']}  {cfg['threads']} threads  {cfg['repeat']} interleaved rounds"
    )
    cols = [
        "cell",
        "ours fwd",
        "ours f+b",
        "torch.nn fwd",
        "torch.nn f+b",
        "naive fwd",
        "naive f+b",
        "ours/nn fwd",
        "ours/nn f+b",
        "mom/plain fwd",
        "mom/plain f+b",
    ]
    table = []
    for row in result["rows"]:
        line = [row["cell"]]
        for impl in ("ours", "torch.nn", "naive"):
            line += [_tok(row[impl][p]["tokens_per_s"]) for p in PASSES] if impl in row else ["-", "-"]
        line += [f"{row['ours_over_torch_nn'][p]:.2f}" for p in PASSES]
        line += [f"{row['momentum_over_plain'][p]:.2f}" for p in PASSES] if "momentum_over_plain" in row else ["-", "-"]
        table.append(line)
    widths = [max(len(r[i]) for r in [cols] + table) for i in range(len(cols))]
    fmt = lambda r: "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))  # noqa: E731
    lines = [
        head,
        "tokens/s = B*T / median time; ratios = median over rounds of the within-round time ratio "
        "(< 1: first is faster)",
        "",
        fmt(cols),
        "  ".join("-" * w for w in widths),
    ] + [fmt(r) for r in table]
    if result["targets"]:
        lines += ["", "targets:"]
        for t in result["targets"]:
            lines.append(f"  {t['name']:<36} {t['value']:.2f} <= {t['limit']:.2f}  {'OK' if t['holds'] else 'MISSED'}")
    return "\n".join(lines)


def sweep_report(results: list[dict]) -> dict:
    """Several runs (one per shape and dtype) in one JSON: the runs whole, and per run and cell the
    ratios, with how many of the recorded targets held."""
    first = results[0]
    summary = []
    for r in results:
        cfg = r["config"]
        for row in r["rows"]:
            entry = {k: cfg[k] for k in ("dtype", "hidden", "seq", "batch")}
            entry.update(
                cell=row["cell"],
                backend=row["backend"],
                ours_over_torch_nn=row["ours_over_torch_nn"],
                ours_tokens_per_s={p: row["ours"][p]["tokens_per_s"] for p in PASSES},
                torch_nn_tokens_per_s={p: row["torch.nn"][p]["tokens_per_s"] for p in PASSES},
            )
            if "momentum_over_plain" in row:
                entry["momentum_over_plain"] = row["momentum_over_plain"]
            summary.append(entry)
    targets = [t for r in results for t in r["targets"]]
    return {
        "benchmark": "cells-sweep",
        "timestamp": first["timestamp"],
        "command": first["command"],
        **{k: first[k] for k in ("device", "device_name", "torch_version", "triton_version", "python_version")},
        "method": first["method"],
        "targets_held": {"held": sum(t["holds"] for t in targets), "of": len(targets)},
        "summary": summary,
        "runs": results,
    }


def format_sweep(report: dict) -> str:
    """One line per shape and dtype: ours/torch.nn time ratio per cell, forward / forward+backward."""
    cells = list(dict.fromkeys(e["cell"] for e in report["summary"]))
    head = ["dtype", "H", "T", "B"] + cells
    table = []
    for (dtype, hidden, seq, batch), group in itertools.groupby(
        report["summary"], key=lambda e: (e["dtype"], e["hidden"], e["seq"], e["batch"])
    ):
        ratios = {e["cell"]: e["ours_over_torch_nn"] for e in group}
        table.append(
            [dtype, str(hidden), str(seq), str(batch)]
            + [f"{ratios[c]['fwd']:.2f}/{ratios[c]['fwd+bwd']:.2f}" for c in cells]
        )
    widths = [max(len(r[i]) for r in [head] + table) for i in range(len(head))]
    fmt = lambda r: "  ".join(v.rjust(w) for v, w in zip(r, widths))  # noqa: E731
    held = report["targets_held"]
    return "\n".join(
        [
            f"sweep on {report['device_name']}: ours/torch.nn time, fwd/fwd+bwd (< 1: ours is faster)",
            fmt(head),
            "  ".join("-" * w for w in widths),
        ]
        + [fmt(r) for r in table]
        + [f"targets held: {held['held']} of {held['of']}"]
    )
