"""``namemodels bench latency``: a classifier's prediction latency on the embedded path (its
``model.onnx`` on onnxruntime, no torch) beside the same model in PyTorch eager, and the cold start.

What is timed, for one classifier model (a shipped name or a model directory with ``model.onnx``):

* ``single``: one ``predictor.predict_logproba([name])`` call -- validating, tokenizing, the network
  and the result array, i.e. what an application pays per name. The names rotate through a fixed
  list of real surnames of mixed lengths, the same sequence for both backends. p50 and p90 of the
  per-call wall times.
* ``batch``: one ``predict_logproba(names)`` call on ``--batch`` (1024) different names of mixed
  lengths (the list's surnames, then double-barrelled pairs of them: predict scores each distinct
  name once, so repeats would flatter it); throughput is names / median call time.
* ``cold start``: the wall time of a fresh ``python -c "import namemodels;
  namemodels.load(MODEL).predict(['Hinton'])"`` process (the ONNX path: ``load`` picks
  ``model.onnx``), median of ``--cold`` runs; the subprocess also reports whether torch was imported.

Noise control as in ``bench cells``: after a warm-up, the two backends are sampled round-robin (one
call of each per round, the order alternating between rounds, the garbage collector paused), so both
see the same machine state. A speed-up is reported two ways: the ratio of the two p50s (what the
target uses) and the median over rounds of the within-round time ratio (``paired``). Strict
round-robin is the harsh case for the small embedded call: it always starts after a torch call has
used the caches. ``--block K`` takes K calls of each backend in a row instead (a warm stream of
requests, as a service sees); the report says which was used.

When the shipped ``surnames`` model is not installed (a development checkout before the models are
trained), ``--model surnames`` trains a small stand-in classifier (1 epoch, bidirectional LSTM, hidden
64) from ``--data`` into ``--workdir`` and exports its ``model.onnx``; the report says so.

This module imports torch only inside functions: the CLI imports it to build its parser.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from namemodels.bench import default_names_data, report_json
from namemodels.bench.machine import cpu_name, stamp, versions
from namemodels.bench.timing import per_call
from namemodels.options import add_json_options
from namemodels.samples import SURNAMES

NAME = "latency"
HELP = "classifier latency and throughput: embedded ONNX path vs PyTorch eager, and cold start"

DEFAULT_MODEL = "surnames"
# Targets printed (and recorded) with every run.
SPEEDUP_TARGET = 10.0  # torch p50 / onnx p50, single name, at least
THROUGHPUT_TARGET = 1.0  # onnx names/s / torch names/s at --batch, at least
COLD_START_TARGET_S = 1.0  # median cold start, below

NAMES = ("Hinton", *SURNAMES)  # real surnames of many languages and lengths
RUNTIMES = ("numpy", "onnxruntime", "torch")  # the libraries whose versions a result records


# ---- command line -------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"classifier: shipped model name or model directory with model.onnx (default {DEFAULT_MODEL}; "
        "a stand-in is trained when it is not installed)",
    )
    p.add_argument(
        "--repeat", type=int, default=1000, help="single-name calls per backend, taken round-robin (default 1000)"
    )
    p.add_argument(
        "--block",
        type=int,
        default=1,
        help="single-name calls of one backend in a row before switching (default 1: strict round-robin, "
        "each call runs after the other backend's; larger blocks measure a warm, steady stream)",
    )
    p.add_argument("--batch", type=int, default=1024, help="names per call for the throughput (default 1024)")
    p.add_argument(
        "--batch-repeat", type=int, default=10, help="batch calls per backend, taken round-robin (default 10)"
    )
    p.add_argument("--cold", type=int, default=5, help="cold-start processes (default 5)")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads for the eager side (default: torch's own choice); 1 is steadiest "
        "on a busy machine",
    )
    p.add_argument(
        "--names",
        metavar="FILE",
        default=None,
        help="names to classify, one a line (default: a built-in list of 80 surnames)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="with the default model when it is not installed: training data for the stand-in "
        "(default: ../shared/data/names beside the checkout)",
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="where the stand-in model is trained and kept (default: a namemodels-bench-latency "
        "folder in the temp directory; reused when it is already there)",
    )
    add_json_options(p, "every number, the device, versions and the command line", old_file_spelling=True)


def main(args: argparse.Namespace) -> int:
    from namemodels.errors import UsageError

    for name in ("repeat", "block", "batch", "batch_repeat", "cold", "torch_threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    names = None
    if args.names:
        try:
            names = [line.strip() for line in Path(args.names).read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as exc:
            raise UsageError(f"cannot read --names {args.names}: {exc}") from exc
        if not names:
            raise UsageError(f"--names {args.names}: no names in the file")
    directory, stand_in = resolve_model(args.model, data=args.data, workdir=args.workdir)
    result = run(
        directory,
        repeat=args.repeat,
        block=args.block,
        batch=args.batch,
        batch_repeat=args.batch_repeat,
        cold=args.cold,
        names=names,
        model_label=args.model,
        stand_in=stand_in,
        torch_threads=args.torch_threads,
    )
    print(format_report(result))
    report_json(args, result)
    return 0


# ---- the model ----------------------------------------------------------------------------------


def resolve_model(model: str, data: str | None = None, workdir: str | None = None) -> tuple[Path, bool]:
    """``(directory, stand_in)``: the model directory to measure, training a stand-in for the
    default model when it is not installed."""
    from namemodels.errors import UsageError
    from namemodels.inference.locate import resolve, shipped_models

    if model == DEFAULT_MODEL and model not in shipped_models() and not Path(model).is_dir():
        return _stand_in(data, workdir), True
    directory = resolve(model)
    from namemodels.checkpoint_json import read_json
    from namemodels.config import CLASSIFIER_KINDS

    config = read_json(directory / "config.json")
    if config.get("model", {}).get("kind") not in CLASSIFIER_KINDS:
        raise UsageError(
            f"{model}: bench latency needs a classifier model, this is a {config.get('model', {}).get('kind')} model"
        )
    if not (directory / "model.onnx").is_file():
        raise UsageError(
            f"{directory} has no model.onnx; write it with "
            f"`namemodels export {directory} --format onnx --out {directory / 'model.onnx'}`"
        )
    return directory, False


def _stand_in(data: str | None, workdir: str | None) -> Path:
    from namemodels.errors import UsageError

    out = Path(workdir) if workdir else Path(tempfile.gettempdir()) / "namemodels-bench-latency"
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        print(
            f"bench latency: shipped model {DEFAULT_MODEL!r} is not installed; using the stand-in in {out}",
            file=sys.stderr,
        )
    else:
        data_dir = Path(data) if data else default_names_data()
        if not data_dir.exists():
            raise UsageError(
                f"the shipped model {DEFAULT_MODEL!r} is not installed and there is no training data "
                f"for a stand-in at {data_dir}; pass --model DIR (a classifier with model.onnx) "
                "or --data DIR"
            )
        cmd = [
            sys.executable,
            "-m",
            "namemodels.cli",
            "train",
            "classify",
            "--data",
            str(data_dir),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--hidden",
            "64",
            "--bidirectional",
            "--quiet",
        ]
        print(
            f"bench latency: shipped model {DEFAULT_MODEL!r} is not installed; training a stand-in: "
            + " ".join(shlex.quote(c) for c in cmd),
            file=sys.stderr,
        )
        r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if r.returncode != 0:
            raise UsageError(f"training the stand-in model failed (exit {r.returncode})")
    if not (out / "model.onnx").is_file():
        try:
            from namemodels.export import export_model_dir
        except ImportError as exc:
            raise UsageError(f"exporting the stand-in needs torch and onnx ({exc.name} is missing)") from None
        export_model_dir(out)
    return out


# ---- measuring ----------------------------------------------------------------------------------
def _names(names: Sequence[str] | None, n: int, seed: int = 0) -> list[str]:
    import numpy as np

    pool = list(names or NAMES)
    rng = np.random.default_rng(seed)
    reps = -(-n // len(pool))
    return [pool[i] for i in rng.permutation(np.tile(np.arange(len(pool)), reps))[:n]]


def _distinct_names(names: Sequence[str] | None, n: int, seed: int = 0) -> list[str]:
    """``n`` different names, shuffled: the pool, then as many double-barrelled ones (``A-B``) as needed.
    A batch must not repeat names, since predict scores each distinct name once."""
    import numpy as np

    from namemodels.errors import UsageError

    pool = list(dict.fromkeys(names or NAMES))
    pool += [f"{a}-{b}" for a in pool for b in pool if a != b][: max(0, n - len(pool))]
    if len(pool) < n:
        raise UsageError(f"--batch {n}: at most {len(pool)} different names can be made from these names")
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.permutation(len(pool))[:n]]


def _percentile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def _cold_start(directory: Path, runs: int) -> dict:
    code = (
        "import sys, time; t0 = time.perf_counter(); import namemodels; "
        f"p = namemodels.load({str(directory)!r}); p.predict(['Hinton']); "
        "print('COLD', type(p.backend).__name__, 'torch' in sys.modules, time.perf_counter() - t0)"
    )
    env = dict(os.environ)
    times, inner, backends, torch_imported = [], [], set(), False
    base = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            from namemodels.errors import UsageError

            raise UsageError(
                f"cold-start process failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
            )
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("COLD ")][-1].split()
        backends.add(line[1])
        torch_imported |= line[2] == "True"
        inner.append(float(line[3]))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True)
        base.append(time.perf_counter() - t0)
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "runs_s": times,
        "in_process_median_s": statistics.median(inner),
        "python_startup_median_s": statistics.median(base),
        "backend": sorted(backends),
        "torch_imported": torch_imported,
        "code": code,
    }


def run(
    directory: str | Path,
    repeat: int = 1000,
    block: int = 1,
    batch: int = 1024,
    batch_repeat: int = 10,
    cold: int = 5,
    names: Sequence[str] | None = None,
    model_label: str | None = None,
    stand_in: bool = False,
    torch_threads: int | None = None,
) -> dict:
    """Measure one classifier model directory; returns every number as a JSON-ready dict."""
    import numpy as np
    import torch

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)

    import namemodels
    from namemodels.errors import UsageError
    from namemodels.inference.onnx_backend import OnnxBackend
    from namemodels.inference.torch_backend import TorchBackend

    directory = Path(directory)
    # The networks are compared, so both answer every name by the model: with the name table, the names
    # of its training data would skip both networks (that speed-up is measured in the README's known-names part)
    onnx = namemodels.load(directory, backend="onnx", table=False)
    eager = namemodels.load(directory, backend="torch", table=False)
    if not onnx.is_classifier:
        raise UsageError(f"{directory}: bench latency needs a classifier model")
    single_names = _names(names, max(64, min(repeat, 512)), seed=1)
    batches = [_distinct_names(names, batch, seed=2 + i) for i in range(2)]
    # The two backends must agree before their speeds mean anything.
    a, b = onnx.predict_logproba(batches[0]), eager.predict_logproba(batches[0])
    max_err = float(np.abs(a - b).max())
    top1_agree = float((a.argmax(1) == b.argmax(1)).mean())

    from namemodels.batching import encode_batch
    from namemodels.text import check_name

    encoded = {n: encode_batch(onnx.tokenizer, [check_name(n)]) for n in set(single_names)}
    # "onnx_network": the ONNX Runtime session alone on pre-encoded ids -- the floor the embedded call sits on.
    fns = {
        "onnx": lambda n: onnx.predict_logproba([n]),
        "torch": lambda n: eager.predict_logproba([n]),
        "onnx_network": lambda n: onnx.backend.logprobs(*encoded[n]),
    }
    single = per_call(fns, single_names, repeat, warmup=min(50, repeat), block=block)
    fns_b = {
        "onnx": lambda ns: onnx.predict_logproba(ns, batch=batch),
        "torch": lambda ns: eager.predict_logproba(ns, batch=batch),
    }
    batched = per_call(fns_b, batches, batch_repeat, warmup=1)
    cold_start = _cold_start(directory, cold)

    def lat(xs):
        return {
            "p50_us": _percentile(xs, 0.5) * 1e6,
            "p90_us": _percentile(xs, 0.9) * 1e6,
            "mean_us": statistics.fmean(xs) * 1e6,
            "min_us": min(xs) * 1e6,
        }

    lat_rows = {k: lat(v) for k, v in single.items()}
    thr = {
        k: {"median_s": statistics.median(v), "names_per_s": batch / statistics.median(v)} for k, v in batched.items()
    }
    speedup_p50 = lat_rows["torch"]["p50_us"] / lat_rows["onnx"]["p50_us"]
    speedup_p90 = lat_rows["torch"]["p90_us"] / lat_rows["onnx"]["p90_us"]
    paired = statistics.median(t / o for t, o in zip(single["torch"], single["onnx"]))
    thr_ratio = thr["onnx"]["names_per_s"] / thr["torch"]["names_per_s"]
    thr_paired = statistics.median(t / o for t, o in zip(batched["torch"], batched["onnx"]))
    targets = [
        {
            "name": "single-name p50 speed-up (torch p50 / onnx p50)",
            "value": speedup_p50,
            "op": ">=",
            "limit": SPEEDUP_TARGET,
            "holds": speedup_p50 >= SPEEDUP_TARGET,
        },
        {
            "name": f"batch-{batch} throughput ratio (onnx / torch names/s)",
            "value": thr_ratio,
            "op": ">=",
            "limit": THROUGHPUT_TARGET,
            "holds": thr_ratio >= THROUGHPUT_TARGET,
        },
        {
            "name": "cold start, median (s)",
            "value": cold_start["median_s"],
            "op": "<",
            "limit": COLD_START_TARGET_S,
            "holds": cold_start["median_s"] < COLD_START_TARGET_S,
        },
    ]
    cfg = onnx.config["model"].get("member", onnx.config["model"])  # an ensemble: its members' cell
    onnx_backend, eager_backend = onnx.backend, eager.backend
    assert isinstance(onnx_backend, OnnxBackend) and isinstance(eager_backend, TorchBackend)  # as loaded above
    session = onnx_backend.session
    return {
        **stamp("latency", "cpu"),
        "device_name": cpu_name(),
        "cpu_count": os.cpu_count(),
        "versions": versions(*RUNTIMES),
        "model": {
            "name": model_label or str(directory),
            "directory": str(directory),
            "stand_in": stand_in,
            "cell": cfg.get("cell"),
            "hidden": cfg.get("hidden"),
            "layers": cfg.get("layers"),
            "bidirectional": bool(cfg.get("bidirectional")),
            "classes": len(onnx.labels),
            "parameters": int(sum(p.numel() for p in eager_backend.model.parameters())),
            "members": int(onnx.config["model"].get("members", 1)),
        },
        "config": {
            "repeat": repeat,
            "block": block,
            "batch": batch,
            "batch_repeat": batch_repeat,
            "cold": cold,
            "torch_threads": torch.get_num_threads(),
            "onnx_session": onnx_backend.session_info(),
            "onnx_providers": session.get_providers(),
            "names": "custom" if names else "built-in",
        },
        "method": "single = one predict_logproba([name]) call (validation + tokenizing + network), onnx_network = "
        "the onnxruntime session alone on pre-encoded ids; backends "
        "sampled round-robin (one call each per round, order alternating, gc paused); speed-up = "
        "torch p50 / onnx p50 (paired = median over rounds of the within-round ratio); throughput = "
        "batch / median call time; cold start = wall time of a fresh python process doing "
        "import namemodels; namemodels.load(MODEL).predict(['Hinton'])",
        "agreement": {"max_abs_err": max_err, "top1_agreement": top1_agree, "rows": batch},
        "single": lat_rows,
        "speedup": {"p50": speedup_p50, "p90": speedup_p90, "paired_median": paired},
        "throughput": thr,
        "throughput_ratio": {"of_medians": thr_ratio, "paired_median": thr_paired},
        "cold_start": cold_start,
        "targets": targets,
        "raw_samples_s": {"single": single, "batch": batched},
    }


def format_report(result: dict) -> str:
    m, cfg = result["model"], result["config"]
    v = result["versions"]
    head = (
        f"latency  {m['name']}{' (stand-in: shipped model not installed)' if m['stand_in'] else ''}  "
        f"{m['cell']}{'/bi' if m['bidirectional'] else ''} L{m['layers']} H{m['hidden']} "
        f"{m['parameters']:,} params  {result['device_name']} ({result['cpu_count']} cpus)\n"
        f"onnxruntime {v['onnxruntime']}  torch {v['torch']} ({cfg['torch_threads']} threads)  "
        f"{cfg['repeat']} single calls + {cfg['batch_repeat']} batch calls per backend, interleaved"
        + (f" in blocks of {cfg['block']}" if cfg.get("block", 1) > 1 else "")
    )
    s, t = result["single"], result["throughput"]
    rows = [
        ["", "p50 (us)", "p90 (us)", f"batch {cfg['batch']} (names/s)"],
        [
            "onnx (embedded)",
            f"{s['onnx']['p50_us']:.0f}",
            f"{s['onnx']['p90_us']:.0f}",
            f"{t['onnx']['names_per_s']:,.0f}",
        ],
        [
            "torch (eager)",
            f"{s['torch']['p50_us']:.0f}",
            f"{s['torch']['p90_us']:.0f}",
            f"{t['torch']['names_per_s']:,.0f}",
        ],
        [
            "torch / onnx",
            f"{result['speedup']['p50']:.1f}x",
            f"{result['speedup']['p90']:.1f}x",
            f"{result['throughput_ratio']['of_medians']:.2f}x",
        ],
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    fmt = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths)))  # noqa: E731
    c = result["cold_start"]
    a = result["agreement"]
    lines = [head, "", fmt(rows[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]]
    lines += [
        "",
        f"paired speed-up (median within-round ratio): single {result['speedup']['paired_median']:.1f}x, "
        f"batch {result['throughput_ratio']['paired_median']:.2f}x",
        f"cold start: median {c['median_s']:.3f} s (min {c['min_s']:.3f}, max {c['max_s']:.3f}; in-process "
        f"{c['in_process_median_s']:.3f} s; bare python {c['python_startup_median_s']:.3f} s; backend "
        f"{','.join(c['backend'])}; torch imported: {'yes' if c['torch_imported'] else 'no'})",
        f"onnx network alone (session.run on pre-encoded ids): p50 {s['onnx_network']['p50_us']:.0f} us, "
        f"so validation, tokenizing and Python around it: {s['onnx']['p50_us'] - s['onnx_network']['p50_us']:.0f} us",
        f"onnx vs torch on the batch: max |logprob diff| {a['max_abs_err']:.1e}, top-1 agreement "
        f"{a['top1_agreement']:.4f}",
        "",
        "targets:",
    ]
    for tg in result["targets"]:
        lines.append(
            f"  {tg['name']:<52} {tg['value']:8.2f} {tg['op']} {tg['limit']:<5g} {'OK' if tg['holds'] else 'MISSED'}"
        )
    return "\n".join(lines)
