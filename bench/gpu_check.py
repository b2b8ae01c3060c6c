"""``namemodels bench gpu-check OUTDIR``: one prepared run on a GPU machine.

It runs the fused-kernel tests on CUDA and measures the fused kernels against cuDNN, all in one
process tree and within a time budget (default 330 s), and writes into OUTDIR:

* ``results.json`` -- every number, the device, versions, the command, what was skipped and why;
* ``report.md`` -- a table against every target, the launch counts, the grid, memory, the classifier
  and the training epoch;
* ``speedup_heatmap.png`` -- forward and forward+backward speed-up over cuDNN per shape;
* ``pytest.txt`` -- the output of ``tests/kernels/test_triton_kernels.py`` on CUDA.

What is measured (each layer batch-first, ``E = 32`` input features, eager calls as a user makes
them; fp32 uses TF32 exactly as torch.nn does, i.e. ``torch.backends.cudnn.allow_tf32``):

* the grid B in {1, 64, 1024, 8192} x T in {16, 64} x H in {64, 128, 256}, cells lstm, gru, rnn_tanh and
  momentum_lstm, bf16 and fp32: forward under ``no_grad`` (eager, and replayed from a CUDA graph), and
  forward + ``autograd.grad`` w.r.t. input and weights, ours beside the same-sized ``torch.nn`` layer
  (cuDNN); the compared calls alternate, one sample of each per round, and ratios are medians of the
  within-round time ratios;
* CUDA launches per layer call (torch.profiler), peak memory of forward+backward at B=1024, T=64,
  H=256, weights on chip against streamed, ``torch.compile(mode="reduce-overhead")``;
* a 2-layer bidirectional LSTM classifier of the shipped size on 1,024 names and the shipped
  ``surnames`` model through ``namemodels.load(..., device="cuda")``, against the same models on cuDNN;
* one training epoch of the shipped ``surnames`` configuration on CUDA with our kernels, with
  ``backend="torch"`` (cuDNN) and on the CPU.

Before timing, worker processes compile every kernel variant the run needs in parallel (Triton's
on-disk cache), while the tests run. ``--dry-run`` does all of it on the CPU in Triton's interpreter
on tiny shapes (the "cuDNN" side is then torch's CPU kernel) to show that the script works.

This module imports torch only inside functions: the CLI imports it to build its parser.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

from namemodels.bench.gpu_report import SMALL_SHAPE

if TYPE_CHECKING:  # annotations only: torch loads when a section runs
    from torch import nn

    from namemodels.kernels.layers import RecurrentBase

NAME = "gpu-check"
HELP = "one prepared GPU run: kernel tests on CUDA, the fused kernels against cuDNN, report + heat map"

E = 32
GRID: dict[str, Any] = {
    "batch": (1, 64, 1024, 8192),
    "seq": (16, 64),
    "hidden": (64, 128, 256),
    "cells": ("lstm", "gru", "rnn_tanh", "momentum_lstm"),
    "dtypes": ("bfloat16", "float32"),
}
TINY: dict[str, Any] = {
    "batch": (1, 17),
    "seq": (4,),
    "hidden": (16,),
    "cells": ("lstm", "gru", "rnn_tanh", "momentum_lstm"),
    "dtypes": ("bfloat16", "float32"),
}
MEMORY_SHAPE = (1024, 64, 256)
# Launch counts of the previous host path, counted on the CPU (torch operators that compute, plus
# fused launches) for a 2-layer bidirectional LSTM with mixed lengths: forward without autograd,
# and the backward of forward + sum.
BEFORE_LAUNCHES = {
    "forward (no grad), 2 layers": 26,
    "backward, 2 layers": 60,
    "host reads of lengths per forward": 2,
    "blocking lengths copies per forward": 4,
}


# ---- command line ------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    from namemodels.options import Range, number

    p.add_argument("outdir", help="directory for results.json, report.md, speedup_heatmap.png, pytest.txt")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="tiny shapes on the CPU in Triton's interpreter: checks that the script works end to end",
    )
    p.add_argument(
        "--budget", type=number(float, Range(10)), default=330.0, help="seconds for the whole run (default 330)"
    )
    p.add_argument(
        "--pytest", default=None, help="pytest executable for the CUDA tests (default: pytest beside python)"
    )
    p.add_argument("--repo", default=None, help="repository root (for tests/; default: found from this file)")
    p.add_argument(
        "--data",
        default=None,
        help="surnames data for the training epoch (default ../shared/data/names "
        "beside the repository, else synthetic names of the same size)",
    )
    p.add_argument(
        "--workers",
        type=number(int, Range(1)),
        default=None,
        help="parallel kernel-compiling processes (default: cores - 2)",
    )
    p.add_argument("--skip-tests", action="store_true", help="do not run the CUDA tests")
    p.add_argument("--warm-worker", default=None, help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    if args.warm_worker:
        return _warm_worker(args)
    if not args.dry_run:
        import torch

        from namemodels.errors import UsageError

        if not torch.cuda.is_available():  # before anything is made
            raise UsageError(
                f"gpu-check: torch {torch.__version__} sees no CUDA device; on a machine without "
                "one, --dry-run checks the script on the CPU"
            )
    return Run(args).main()


# ---- the run -----------------------------------------------------------------------------------------
class Run:
    """Sections run in order; each records its result or its error in ``self.results`` (written after
    each section), and skips itself when the budget is spent."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.monotonic()
        self.out = Path(args.outdir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.dry = args.dry_run
        self.grid = TINY if self.dry else GRID
        self.repo = Path(args.repo) if args.repo else Path(__file__).resolve().parents[1]
        self.results: dict = {
            "benchmark": "gpu-check",
            "dry_run": self.dry,
            "command": " ".join(shlex.quote(a) for a in sys.argv),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "sections": {},
        }

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.t0)

    def main(self) -> int:
        if self.dry:
            os.environ["TRITON_INTERPRET"] = "1"
        else:
            os.environ.setdefault("TRITON_INTERPRET", "0")
        tests = None if self.args.skip_tests else self._start_tests()
        self.section("environment", self.environment, need=0)
        self.section("warm-up", self.warm_up, need=20)
        self.section("launches", self.launches, need=15)
        if tests is not None:  # the timings below want the device to themselves
            self.section("tests", lambda: self._finish_tests(tests), need=0)
        self.section("grid", self.grid_section, need=40)
        self.section("memory", self.memory, need=10)
        self.section("on_chip", self.on_chip, need=10)
        self.section("classifier", self.classifier, need=15)
        self.section("training", self.training, need=30)
        self.section("compile", self.compile_section, need=60)
        self.section("report", self.report, need=-math.inf)
        print(f"gpu-check: wrote {self.out} in {time.monotonic() - self.t0:.0f} s", file=sys.stderr)
        failed = [k for k, v in self.results["sections"].items() if isinstance(v, dict) and v.get("error")]
        return 1 if failed else 0

    def section(self, name: str, fn: Callable[[], dict], need: float) -> None:
        start = time.monotonic()
        if self.left() < need:
            self.results["sections"][name] = {"skipped": f"out of time ({self.left():.0f} s left, needs ~{need:.0f} s)"}
        else:
            print(f"gpu-check: {name} ({self.left():.0f} s left)", file=sys.stderr, flush=True)
            try:
                self.results["sections"][name] = fn() or {}
            except Exception as exc:  # one failed part must not lose the others
                self.results["sections"][name] = {
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                }
                print(f"gpu-check: {name} failed: {exc}", file=sys.stderr, flush=True)
        entry = self.results["sections"][name]
        if isinstance(entry, dict):
            entry["seconds"] = round(time.monotonic() - start, 2)
        self.results["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        _write_json(self.out / "results.json", self.results)

    # ---- environment and devices ---------------------------------------------------------------------
    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"

    def environment(self) -> dict:
        import torch

        import namemodels

        info = {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "namemodels_from": namemodels.__file__,
            "triton_interpret": os.environ.get("TRITON_INTERPRET"),
            "cpu_count": os.cpu_count(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        }
        for module in ("triton", "safetensors", "matplotlib", "numpy"):
            try:
                info[module] = __import__(module).__version__
            except ImportError as exc:  # recorded: sections that need it say so
                info[module] = f"not importable: {exc}"
        if torch.cuda.is_available():
            info.update(
                device_name=torch.cuda.get_device_name(),
                cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(),
                capability=".".join(map(str, torch.cuda.get_device_capability())),
            )
        elif not self.dry:
            raise RuntimeError("torch sees no CUDA device; run with --dry-run on a CPU machine")
        else:
            info["device_name"] = f"CPU ({platform.machine()}), dry run in Triton's interpreter"
        self.results["device_name"] = info["device_name"]
        return info

    def _sync(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()

    # ---- tests ------------------------------------------------------------------------------------------
    # The test file in shards run side by side (each compiles its own kernel variants, the slow part).
    TEST_SHARDS = (
        "test_layer_matches_naive and (rnn_tanh or rnn_relu or momentum_rnn)",
        "test_layer_matches_naive and gru",
        "test_layer_matches_naive and lstm",
        "test_make_layer",
        "test_bigger_shapes",
        "test_uninitialised or test_no_bias or test_inference or test_packed or test_decode or "
        "test_launches or test_inference_cache",
        "not (test_layer_matches_naive or test_make_layer or test_bigger_shapes or test_uninitialised or "
        "test_no_bias or test_inference or test_packed or test_decode or test_launches)",
    )

    def _start_tests(self):
        pytest = self.args.pytest or str(Path(sys.executable).with_name("pytest"))
        env = dict(os.environ)
        if self.dry:
            shards = ["test_interpreter_is_on or test_supports", "test_weights_on_chip_limits"]
            env["TRITON_INTERPRET"] = "1"
        else:
            shards = list(self.TEST_SHARDS)
            env.update(NAMEMODELS_TEST_DEVICE="cuda", TRITON_INTERPRET="0")
        procs = []
        for k, expr in enumerate(shards):
            cmd = [pytest, "-q", "-p", "no:cacheprovider", "tests/kernels/test_triton_kernels.py", "-k", expr]
            log = open(self.out / f"pytest_{k}.txt", "w", encoding="utf-8")
            log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
            log.flush()
            proc = subprocess.Popen(cmd, cwd=self.repo, env=env, stdout=log, stderr=subprocess.STDOUT)
            procs.append((proc, log, cmd))
        return procs

    def _finish_tests(self, procs: list[tuple]) -> dict:
        shards, text = [], []
        for k, (proc, log, cmd) in enumerate(procs):
            try:
                rc = proc.wait(timeout=max(5.0, self.left() - 150))
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "killed (out of time)"
            log.close()
            part = self.out / f"pytest_{k}.txt"
            lines = part.read_text(encoding="utf-8").rstrip().splitlines()
            text += lines + [""]
            part.unlink()
            shards.append({"command": " ".join(cmd), "returncode": rc, "summary": lines[-1] if lines else ""})
        (self.out / "pytest.txt").write_text("\n".join(text), encoding="utf-8")
        return {"shards": shards, "passed": all(s["returncode"] == 0 for s in shards)}

    # ---- parallel compilation ---------------------------------------------------------------------------
    def warm_jobs(self) -> list[dict]:
        """Every kernel variant the run launches, as tiny calls (one per job)."""
        g = self.grid
        jobs = []
        for dtype in g["dtypes"]:
            for H in g["hidden"]:
                for cell in g["cells"]:
                    jobs.append(
                        dict(cell=cell, H=H, dtype=dtype, layers=1, bi=False, lengths=False, train=True, use_hn=False)
                    )
        # The classifiers (1 and 2 layers share variants) and the training epoch (which reads h_n too), and
        # the launch count and torch.compile layer.
        H = 16 if self.dry else 128
        jobs.append(dict(cell="lstm", H=H, dtype="float32", layers=1, bi=True, lengths=True, train=True, use_hn=True))
        jobs.append(dict(cell="lstm", H=H, dtype="bfloat16", layers=2, bi=True, lengths=True, train=True, use_hn=True))
        return jobs

    def warm_up(self) -> dict:
        jobs = self.warm_jobs()
        # Beside the test shards, leave them a core each.
        n = self.args.workers or (2 if self.dry else max(1, min(len(jobs), (os.cpu_count() or 4) - 8)))
        procs = []
        for k in range(n):
            cmd = [sys.executable, "-m", "namemodels.bench.gpu_check", str(self.out), "--warm-worker", f"{k}/{n}"] + (
                ["--dry-run"] if self.dry else []
            )
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        outputs = []
        for p in procs:
            try:
                out, _ = p.communicate(timeout=max(5.0, self.left() - 200))
            except subprocess.TimeoutExpired:
                p.kill()
                out = "killed (out of time)"
            lines = out.strip().splitlines() if out else []
            outputs.append([ln for ln in lines if ln.startswith("FAILED")][:5] + lines[-1:])
        return {"workers": n, "jobs": len(jobs), "returncodes": [p.returncode for p in procs], "last_lines": outputs}

    # ---- launches per layer call ------------------------------------------------------------------------
    def launches(self) -> dict:
        import torch
        from torch.profiler import ProfilerActivity, profile

        from namemodels.kernels import make_layer

        dev = self.device
        dt = torch.float32 if self.dry else torch.bfloat16
        B, T, H = (4, 6, 16) if self.dry else SMALL_SHAPE
        torch.manual_seed(0)
        x = torch.randn(B, T, E, device=dev, dtype=dt)
        lengths = torch.randint(1, T + 1, (B,))
        lengths[0] = T
        result = {
            "shape": {
                "B": B,
                "T": T,
                "H": H,
                "E": E,
                "layers": 2,
                "bidirectional": True,
                "dtype": str(dt)[6:],
                "lengths": "mixed, on the CPU",
            },
            "before_counted_on_cpu": BEFORE_LAUNCHES,
        }
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
        for name, backend in (("ours", "auto" if dev == "cuda" else "triton"), ("cudnn", "torch")):
            layer = make_layer(
                "lstm", E, H, num_layers=2, bidirectional=True, batch_first=True, backend=backend, device=dev, dtype=dt
            )
            with torch.no_grad():
                layer(x, lengths=lengths)
            xg = x.clone().requires_grad_()
            layer(xg, lengths=lengths)[0].sum().backward()
            self._sync()
            counts = {}
            for what in ("forward", "forward+backward"):
                with profile(activities=activities) as prof:
                    if what == "forward":
                        with torch.no_grad():
                            layer(x, lengths=lengths)
                    else:
                        xg = x.clone().requires_grad_()
                        out, st = layer(xg, lengths=lengths)
                        (out.float().sum() + st[0].float().sum()).backward()
                    self._sync()
                counts[what] = _profile_counts(prof)
            result[name] = counts
        return result

    # ---- the grid ---------------------------------------------------------------------------------------
    def grid_section(self) -> dict:
        import torch

        g = self.grid
        shapes = [(B, T, H) for H in g["hidden"] for T in g["seq"] for B in g["batch"]]
        rows, skipped = [], []
        for dtype in g["dtypes"]:
            for B, T, H in sorted(shapes, key=lambda s: s[0] * s[1] * s[2] * s[2]):
                if self.left() < (60 if not self.dry else 5):
                    skipped.append({"dtype": dtype, "B": B, "T": T, "H": H, "why": "out of time"})
                    continue
                try:
                    rows.extend(self._measure_shape(B, T, H, dtype))
                except Exception as exc:  # one shape's failure (a kernel that does not compile) is recorded
                    why = f"{type(exc).__name__}: {exc}"[:500]
                    skipped.append({"dtype": dtype, "B": B, "T": T, "H": H, "why": why})
                if self.device == "cuda":
                    torch.cuda.empty_cache()
            _write_json(self.out / "results.json", {**self.results, "partial_grid": rows})
        return {
            "method": "median of per-call times (CUDA events around each call, synchronised); subjects of one "
            "shape alternate round by round; ratios are medians of within-round ratios",
            "rows": rows,
            "skipped": skipped,
        }

    def _measure_shape(self, B: int, T: int, H: int, dtype: str) -> list[dict]:
        import torch
        from torch import nn

        from namemodels.kernels import make_layer
        from namemodels.kernels.cells import REGISTRY

        dev, dt = self.device, getattr(torch, dtype)
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(B, T, E, generator=gen).to(dev, dt)
        x_grad = x.clone().requires_grad_()
        g_out = torch.randn(B, T, H, generator=gen).to(dev, dt)
        subjects: dict[str, Callable] = {}
        plain_of = {}

        def add(key, module):
            params = list(module.parameters())

            def fwd():
                with torch.no_grad():
                    return module(x)[0]

            def fwdbwd():
                out = module(x_grad)[0]
                return torch.autograd.grad(out, [x_grad] + params, g_out)

            subjects[f"{key}|fwd"] = fwd
            subjects[f"{key}|fwd+bwd"] = fwdbwd
            graph = self._graphed(fwd)
            if graph is not None:
                subjects[f"{key}|graph"] = graph

        for cell in self.grid["cells"]:
            spec = REGISTRY[cell]
            torch.manual_seed(0)
            add(
                f"ours:{cell}",
                make_layer(
                    cell, E, H, batch_first=True, device=dev, dtype=dt, backend="auto" if dev == "cuda" else "triton"
                ),
            )
            twin = {"lstm": nn.LSTM, "gru": nn.GRU}.get(spec.mode)
            mod = twin(E, H, batch_first=True) if twin else nn.RNN(E, H, nonlinearity=spec.mode[4:], batch_first=True)
            if f"cudnn:{spec.mode}|fwd" not in subjects:
                add(f"cudnn:{spec.mode}", mod.to(dev, dt))
            plain_of[cell] = spec.mode
        samples = self._interleave(subjects)
        rows = []
        for cell in self.grid["cells"]:
            mode = plain_of[cell]
            row: dict[str, Any] = {"cell": cell, "dtype": dtype, "B": B, "T": T, "H": H}
            for what in ("fwd", "fwd+bwd", "graph"):
                ours, ref = samples.get(f"ours:{cell}|{what}"), samples.get(f"cudnn:{mode}|{what}")
                if ours:
                    row[f"ours_{what}_ms"] = statistics.median(ours)
                if ref:
                    row[f"cudnn_{what}_ms"] = statistics.median(ref)
                if ours and ref:
                    row[f"speedup_{what}"] = statistics.median(r / o for o, r in zip(ours, ref))
            if REGISTRY[cell].momentum and f"ours:{mode}|fwd" in samples:
                for what in ("fwd", "fwd+bwd"):
                    ours, plain = samples[f"ours:{cell}|{what}"], samples[f"ours:{mode}|{what}"]
                    row[f"momentum_over_plain_{what}"] = statistics.median(o / p for o, p in zip(ours, plain))
            rows.append(row)
        return rows

    def _graphed(self, fn: Callable) -> Callable | None:
        """``fn`` captured in a CUDA graph (forward only, static input), or None on the CPU."""
        import torch

        if self.device != "cuda":
            return None
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        return graph.replay

    def _interleave(self, subjects: dict[str, Callable]) -> dict[str, list[float]]:
        """Per-call times in ms: calibrated to ~budget per subject, then one sample of each per round."""
        for fn in subjects.values():  # warm-up (compiles on first use where the workers did not)
            fn()
        self._sync()
        per_round_ms = sum(self._time(fn) for fn in subjects.values())
        rounds = 2 if self.dry else int(min(15, max(5, 1000.0 / max(per_round_ms, 1e-3))))  # ~1 s a shape
        samples: dict[str, list[float]] = {k: [] for k in subjects}
        keys = list(subjects)
        for r in range(rounds):
            for k in keys if r % 2 == 0 else keys[::-1]:
                samples[k].append(self._time(subjects[k]))
        return samples

    def _time(self, fn: Callable) -> float:
        import torch

        if self.device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3

    # ---- memory, on-chip A/B, torch.compile ---------------------------------------------------------------
    def memory(self) -> dict:
        import torch
        from torch import nn

        from namemodels.kernels import make_layer

        if self.device != "cuda":
            return {"skipped": "peak memory needs CUDA (torch.cuda.max_memory_allocated)"}
        B, T, H = MEMORY_SHAPE
        rows = []
        for dtype in self.grid["dtypes"]:
            dt = getattr(torch, dtype)
            for cell in self.grid["cells"]:
                mode = "lstm" if cell == "momentum_lstm" else cell
                res: dict[str, Any] = {"cell": cell, "dtype": dtype, "B": B, "T": T, "H": H}
                for name in ("ours", "cudnn"):
                    torch.manual_seed(0)
                    if name == "ours":
                        m = make_layer(cell, E, H, batch_first=True, device="cuda", dtype=dt)
                    else:
                        m = ({"lstm": nn.LSTM, "gru": nn.GRU}.get(mode) or (lambda *a, **k: nn.RNN(*a, **k)))(
                            E, H, batch_first=True
                        ).to("cuda", dt)
                    x = torch.randn(B, T, E, device="cuda", dtype=dt, requires_grad=True)
                    g = torch.randn(B, T, H, device="cuda", dtype=dt)
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                    base = torch.cuda.memory_allocated()
                    out = m(x)[0]
                    torch.autograd.grad(out, [x] + list(m.parameters()), g)
                    torch.cuda.synchronize()
                    res[f"{name}_peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
                    del m, x, g, out
                    torch.cuda.empty_cache()
                res["ratio"] = res["ours_peak_mb"] / res["cudnn_peak_mb"]
                rows.append(res)
        return {"rows": rows}

    def on_chip(self) -> dict:
        import torch

        import namemodels.kernels.fused_recurrent as fr
        from namemodels.kernels import make_layer

        points = [
            ("lstm", "bfloat16", 128),
            ("lstm", "float32", 64),
            ("gru", "bfloat16", 128),
            ("rnn_tanh", "bfloat16", 256),
        ]
        if self.dry:
            points = [("lstm", "float32", 16)]
        B, T = (4, 4) if self.dry else (64, 16)
        rows = []
        limit = fr.ON_CHIP_BYTES
        for cell, dtype, H in points:
            dt = getattr(torch, dtype)
            layer = make_layer(cell, E, H, batch_first=True, device=self.device, dtype=dt, backend="triton")
            x = torch.randn(B, T, E, device=self.device, dtype=dt)

            def fwd(layer: nn.Module = layer, x: torch.Tensor = x) -> torch.Tensor:
                with torch.no_grad():
                    return layer(x)[0]

            res = {"cell": cell, "dtype": dtype, "B": B, "T": T, "H": H}
            try:
                for name, nbytes in (("on_chip", 1 << 30), ("streamed", 0)):
                    fr.ON_CHIP_BYTES = nbytes
                    times = self._interleave({name: fwd})[name]
                    res[f"{name}_ms"] = statistics.median(times)
            finally:
                fr.ON_CHIP_BYTES = limit
            res["default"] = "on_chip" if fr._config(H, dt, {"lstm": 4, "gru": 3}.get(cell, 1))[2] else "streamed"
            rows.append(res)
        return {"rows": rows, "note": "forward, B=64, T=16: W_hh kept on chip (registers) vs streamed from L2"}

    def compile_section(self) -> dict:
        import torch

        from namemodels.kernels import make_layer

        if self.device != "cuda":
            return {
                "skipped": "torch.compile(mode='reduce-overhead') uses CUDA graphs: CUDA only (the CPU "
                "compile path is tested in tests/kernels/test_compile.py)"
            }
        B, T, H = SMALL_SHAPE
        layer = make_layer(
            "lstm", E, H, num_layers=2, bidirectional=True, batch_first=True, device="cuda", dtype=torch.bfloat16
        ).eval()
        x = torch.randn(B, T, E, device="cuda", dtype=torch.bfloat16)
        lengths = torch.randint(1, T + 1, (B,), device="cuda")
        t = time.monotonic()
        compiled = torch.compile(layer, mode="reduce-overhead", fullgraph=True)
        with torch.no_grad():
            for _ in range(3):
                compiled(x, lengths=lengths)
        compile_s = time.monotonic() - t

        def eager():
            with torch.no_grad():
                return layer(x, lengths=lengths)[0]

        def comp():
            with torch.no_grad():
                return compiled(x, lengths=lengths)[0]

        samples = self._interleave({"eager": eager, "compiled": comp})
        ref, got = eager().float(), comp().float()
        return {
            "shape": {"B": B, "T": T, "H": H, "layers": 2, "bidirectional": True, "dtype": "bfloat16"},
            "compile_s": round(compile_s, 1),
            "eager_ms": statistics.median(samples["eager"]),
            "reduce_overhead_ms": statistics.median(samples["compiled"]),
            "max_abs_diff": float((ref - got).abs().max()),
        }

    # ---- classifier on 1,024 names --------------------------------------------------------------------
    def classifier(self) -> dict:
        import numpy as np
        import torch

        import namemodels
        from namemodels.batching import encode_batch
        from namemodels.inference.torch_backend import TorchBackend

        names = _names(self.repo, self.args.data, 16 if self.dry else 1024)
        result: dict[str, Any] = {"names": len(names)}
        # The shipped model through the public API.
        try:
            ours = namemodels.load("surnames", backend="torch", device=self.device)
            cudnn = namemodels.load("surnames", backend="torch", device=self.device)
            assert isinstance(ours.backend, TorchBackend) and isinstance(cudnn.backend, TorchBackend)
            if self.dry:
                _rnn(ours.backend.model).backend = "triton"
            _rnn(cudnn.backend.model).backend = "torch"
            samples = self._interleave(
                {"ours": lambda: ours.predict_logproba(names), "cudnn": lambda: cudnn.predict_logproba(names)}
            )
            diff = float(np.abs(ours.predict_logproba(names) - cudnn.predict_logproba(names)).max())
            result["shipped_surnames"] = self._pair(
                samples, diff=diff, model="shipped surnames (1-layer biLSTM 128 + n-grams)"
            )
        except Exception as exc:  # e.g. safetensors missing on the machine
            result["shipped_surnames"] = {"error": f"{type(exc).__name__}: {exc}"}
        # A 2-layer bidirectional LSTM classifier of the shipped size (random weights: speed only).
        from namemodels.models import build_model
        from namemodels.tokenizer import CharTokenizer

        cfg = json.loads((_pretrained() / "surnames" / "config.json").read_text(encoding="utf-8"))
        spec = dict(cfg["model"], layers=2)
        if self.dry:
            spec.update(hidden=16, ngram_buckets=0)
        tok = CharTokenizer.from_dict(cfg["tokenizer"])
        torch.manual_seed(0)
        models: dict[str, nn.Module] = {}
        for name in ("ours", "cudnn"):
            m = build_model(spec).to(self.device).eval()
            if models:
                m.load_state_dict(models["ours"].state_dict())
            _rnn(m).backend = "torch" if name == "cudnn" else ("auto" if self.device == "cuda" else "triton")
            models[name] = m

        def classify(model):
            def call():
                ids, lengths = encode_batch(tok, names)
                with torch.inference_mode():
                    return (
                        model.log_probs(
                            torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths).to(self.device)
                        )
                        .cpu()
                        .numpy()
                    )

            return call

        samples = self._interleave({k: classify(m) for k, m in models.items()})
        diff = float(np.abs(classify(models["ours"])() - classify(models["cudnn"])()).max())
        result["bilstm2_128"] = self._pair(
            samples, diff=diff, model=f"2-layer biLSTM {spec['hidden']} classifier (tokenize, copy, forward, copy back)"
        )
        result["backend_used"] = _last_backend(models["ours"])
        return result

    @staticmethod
    def _pair(samples: dict[str, list[float]], **extra: Any) -> dict:
        o, c = samples["ours"], samples["cudnn"]
        return {
            "ours_ms": statistics.median(o),
            "cudnn_ms": statistics.median(c),
            "speedup": statistics.median(b / a for a, b in zip(o, c)),
            **extra,
        }

    # ---- one training epoch -----------------------------------------------------------------------------
    def training(self) -> dict:
        """One epoch of the training loop ``namemodels train`` runs (namemodels.training.loop.Loop over the task's
        batches, moved to the device), timed without the validation and saving around it."""
        import dataclasses

        import numpy as np
        import torch

        from namemodels.batching import batches
        from namemodels.config import TrainConfig
        from namemodels.models import build_model
        from namemodels.tasks import make_task, model_spec
        from namemodels.training.loop import Loop
        from namemodels.training.train import prepare

        data_path, kind = _training_data(self.repo, self.args.data, tiny=self.dry)
        shipped = json.loads((_pretrained() / "surnames" / "config.json").read_text(encoding="utf-8"))["train"]
        fields = {f.name for f in dataclasses.fields(TrainConfig)}
        base = TrainConfig(**{k: v for k, v in shipped.items() if k in fields and k != "extra"})
        if self.dry:
            base = dataclasses.replace(base, hidden=16, ngram_buckets=0)
        runs = [("ours_cuda", "cuda", "auto"), ("cudnn_cuda", "cuda", "torch"), ("cpu", "cpu", "torch")]
        if self.dry:
            runs = [("ours_interpreter", "cpu", "triton"), ("cpu", "cpu", "torch")]
        result: dict[str, Any] = {
            "data": kind,
            "config": {
                k: getattr(base, k)
                for k in ("cell", "hidden", "layers", "bidirectional", "batch_size", "ngram_buckets", "dropout")
            },
        }
        for name, dev, backend in runs:
            if self.left() < 25 and not self.dry:
                result[name] = {"skipped": "out of time"}
                continue
            cfg = dataclasses.replace(base, device=dev)
            torch.manual_seed(0)
            data = prepare(cfg, data_path)
            model = build_model(model_spec(cfg, len(data.tok), data.labels)).to(dev)
            _rnn(model).backend = backend
            task = make_task(cfg, data.labels, data.train)
            per_epoch = math.ceil(len(data.train) / cfg.batch_size)
            loop = Loop(
                model,
                task.loss,
                lr=cfg.lr,
                weight_decay=cfg.weight_decay,
                clip=cfg.clip,
                total_steps=cfg.epochs * per_epoch,
                schedule=cfg.schedule,
            )
            rng = np.random.default_rng([cfg.seed, 0])
            limit = 3 if self.dry else per_epoch
            deadline = time.monotonic() + max(10.0, min(60.0, self.left() - 60))
            timed = {"tokens": 0}

            def stream(
                data: Any,
                cfg: TrainConfig,
                rng: np.random.Generator,
                limit: int,
                deadline: float,
                task: Any,
                dev: str,
                timed: dict,
            ) -> Iterator[Any]:
                for i, idx in enumerate(batches(len(data.train), cfg.batch_size, rng)):
                    if i >= limit or time.monotonic() > deadline:
                        return
                    b = task.batch(data.tok, data.train, idx, rng).to(dev)
                    timed["tokens"] += int(b.lengths.sum())
                    yield b

            start = time.perf_counter()
            losses = loop.epoch(stream(data, cfg, rng, limit, deadline, task, dev, timed))
            if dev == "cuda":
                self._sync()
            wall = time.perf_counter() - start
            steps = len(losses)
            result[name] = {
                "device": dev,
                "backend": backend,
                "steps": steps,
                "steps_per_epoch": per_epoch,
                "wall_s": wall,
                "epoch_s_estimate": wall * per_epoch / max(steps, 1),
                "tokens_per_s": timed["tokens"] / wall,
                "first_loss": losses[0] if losses else None,
                "last_loss": losses[-1] if losses else None,
                "backend_used": _last_backend(model)[0],
            }
        epoch = {k: v["epoch_s_estimate"] for k, v in result.items() if isinstance(v, dict) and "epoch_s_estimate" in v}
        if "ours_cuda" in epoch and "cudnn_cuda" in epoch:
            result["speedup_over_cudnn"] = epoch["cudnn_cuda"] / epoch["ours_cuda"]
        if "ours_cuda" in epoch and "cpu" in epoch:
            result["speedup_over_cpu"] = epoch["cpu"] / epoch["ours_cuda"]
        return result

    # ---- report -----------------------------------------------------------------------------------------
    def report(self) -> dict:
        from namemodels.bench.gpu_report import heatmap, markdown, targets

        res = self.results
        res["targets"] = targets(res)
        (self.out / "report.md").write_text(markdown(res), encoding="utf-8")
        png = heatmap(res, self.out / "speedup_heatmap.png")
        return {"files": ["results.json", "report.md", "pytest.txt"] + ([png] if png else [])}


# ---- helpers -----------------------------------------------------------------------------------------
def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _rnn(model: nn.Module) -> RecurrentBase:
    """The recurrent layer of a model built by :func:`namemodels.models.build_model` (``encoder.rnn``)."""
    return cast("RecurrentBase", model.get_submodule("encoder.rnn"))


def _last_backend(model: nn.Module) -> tuple[str, str]:
    """``(backend, why)`` of the model's recurrent layer's last forward (kept in the layer's ``__dict__``)."""
    return vars(_rnn(model))["last_backend"]


def _pretrained() -> Path:
    import namemodels

    return Path(namemodels.__file__).resolve().parent / "pretrained"


def _profile_counts(prof: Any) -> dict:  # a torch.profiler.profile
    """CUDA kernels launched, host synchronisations and device-to-host copies in a profile."""
    names = [e.name for e in prof.events()]
    kernel_api = {"cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx", "cudaLaunchKernelExC"}
    sync_api = {"cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize"}
    counts = {
        "kernel_launches": sum(n in kernel_api for n in names),
        "synchronisations": sum(n in sync_api for n in names),
        "device_to_host_copies": sum(
            "DtoH" in n or "Device -> Pageable" in n or "Device -> Pinned" in n for n in names
        ),
        "aten_ops": sum(n.startswith("aten::") for n in names),
    }
    try:
        from torch.autograd import DeviceType

        counts["device_kernels"] = sum(e.device_type == DeviceType.CUDA for e in prof.events())
    except Exception:  # profiler internals differ between versions
        pass
    return counts


def _names(repo: Path, data: str | None, n: int) -> list[str]:
    """``n`` surnames from the data when it is there, else synthetic names with surname lengths."""
    path = Path(data) if data else repo.parent / "shared" / "data" / "names"
    names: list[str] = []
    if path.is_dir():
        for f in sorted(path.glob("*.txt")):
            names += [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        names = _synthetic_names(n, seed=1)
    return [names[(i * 7919) % len(names)] for i in range(n)]


def _synthetic_names(n: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = np.clip(rng.normal(6.8, 2.0, n).round().astype(int), 2, 18)
    return ["".join(rng.choice(letters, k)).capitalize() for k in lengths]


def _training_data(repo: Path, data: str | None, tiny: bool) -> tuple[Path, str]:
    """The surnames folder, or a synthetic one of the same size (18 labels, 18,040 names)."""
    path = Path(data) if data else repo.parent / "shared" / "data" / "names"
    if path.is_dir() and not tiny:
        return path, f"the surnames data ({path})"
    import tempfile

    import numpy as np

    n, labels = (400, 6) if tiny else (18040, 18)
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_names_"))  # not in OUTDIR: made again on every run
    names = _synthetic_names(n, seed=2)
    rng = np.random.default_rng(3)
    which = rng.integers(0, labels, n)
    for k in range(labels):
        (folder / f"Lang{k:02d}.txt").write_text(
            "\n".join(nm for nm, w in zip(names, which) if w == k) + "\n", encoding="utf-8"
        )
    return folder, f"synthetic: {n} random names, surname-like lengths, {labels} labels (the real data was absent)"


# ---- compile workers ---------------------------------------------------------------------------------
def _warm_worker(args: argparse.Namespace) -> int:
    """Run this worker's share of the tiny calls that compile every kernel variant of the run."""
    import torch

    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"
    k, n = (int(v) for v in args.warm_worker.split("/"))
    run = Run.__new__(Run)
    run.dry, run.grid = args.dry_run, (TINY if args.dry_run else GRID)
    dev = "cpu" if args.dry_run else "cuda"
    done, failed = 0, []
    for i, job in enumerate(run.warm_jobs()):
        if i % n != k:
            continue
        try:
            _warm(job, dev)
            done += 1
        except Exception as exc:  # reported; the other variants still compile
            failed.append(f"{job}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:400])
    if dev == "cuda":
        torch.cuda.synchronize()
    for line in failed:
        print("FAILED", line)
    print(f"worker {k}/{n}: {done} variants compiled, {len(failed)} failed")
    return 1 if failed else 0


def _warm(job: dict, dev: str) -> None:
    """Tiny calls that compile one layer's kernel variants: inference, and training when asked."""
    import torch

    from namemodels.kernels import make_layer

    dt = getattr(torch, job["dtype"])
    layer = make_layer(
        job["cell"],
        E,
        job["H"],
        num_layers=job["layers"],
        bidirectional=job["bi"],
        batch_first=True,
        device=dev,
        dtype=dt,
        backend="triton",
    )
    x = torch.randn(3, 4, E, device=dev, dtype=dt)
    lengths = torch.tensor([4, 2, 3]) if job["lengths"] else None
    with torch.no_grad():
        layer(x, lengths=lengths)
    if job["train"]:
        xg = x.clone().requires_grad_()
        out, states = layer(xg, lengths=lengths)
        loss = out.float().sum()
        if job["use_hn"]:
            loss = loss + (states[0] if isinstance(states, tuple) else states).float().sum()
        torch.autograd.grad(loss, [xg] + list(layer.parameters()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m namemodels.bench.gpu_check", description=HELP)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
