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

The parts, one module each: this one holds the command line and the run (the sections in order
within the budget, ``results.json`` after each, the environment); ``gpu_setup.py`` the shapes and the
run's setting; ``gpu_kernel_tests.py`` the kernel tests (correctness); ``gpu_warm.py`` the parallel
compilation; ``gpu_timing.py`` how calls are timed and counted; ``gpu_layers.py`` the layer sections
(launches, grid, memory, on chip, torch.compile); ``gpu_models.py`` the classifier and the training
epoch; ``gpu_report.py`` the targets, ``report.md``, the heat map and the JSON writing.

The modules import torch only inside functions: the CLI imports this one to build its parser.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
import traceback
from typing import Callable

from namemodels.bench import gpu_kernel_tests, gpu_layers, gpu_models, gpu_warm
from namemodels.bench.gpu_report import write_report
from namemodels.bench.gpu_setup import Setting
from namemodels.bench.machine import stamp, versions
from namemodels.checkpoint_json import write_json

NAME = "gpu-check"
HELP = "one prepared GPU run: kernel tests on CUDA, the fused kernels against cuDNN, report + heat map"


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
        return gpu_warm.worker(args)
    if not args.dry_run:
        import torch

        from namemodels.errors import UsageError

        if not torch.cuda.is_available():  # before anything is made
            raise UsageError(
                f"gpu-check: torch {torch.__version__} sees no CUDA device; on a machine without "
                "one, --dry-run checks the script on the CPU"
            )
    return Run(Setting.from_args(args), skip_tests=args.skip_tests).main()


# ---- the run -----------------------------------------------------------------------------------------
class Run:
    """Sections run in order; each records its result or its error in ``self.results`` (written after
    each section), and skips itself when the budget is spent."""

    def __init__(self, setting: Setting, skip_tests: bool = False) -> None:
        self.s = setting
        self.skip_tests = skip_tests
        self.s.out.mkdir(parents=True, exist_ok=True)
        self.results: dict = {**stamp("gpu-check", self.s.device), "dry_run": self.s.dry, "sections": {}}

    def main(self) -> int:
        s = self.s
        if s.dry:
            os.environ["TRITON_INTERPRET"] = "1"
        else:
            os.environ.setdefault("TRITON_INTERPRET", "0")
        tests = None if self.skip_tests else gpu_kernel_tests.start(s)
        self.section("environment", self.environment, need=0)
        self.section("warm-up", lambda: gpu_warm.warm_up(s), need=20)
        self.section("launches", lambda: gpu_layers.launches(s), need=15)
        if tests is not None:  # the timings below want the device to themselves
            self.section("tests", lambda: gpu_kernel_tests.finish(s, tests), need=0)
        self.section("grid", lambda: gpu_layers.grid(s, self.partial_grid), need=40)
        self.section("memory", lambda: gpu_layers.memory(s), need=10)
        self.section("on_chip", lambda: gpu_layers.on_chip(s), need=10)
        self.section("classifier", lambda: gpu_models.classifier(s), need=15)
        self.section("training", lambda: gpu_models.training(s), need=30)
        self.section("compile", lambda: gpu_layers.compiled(s), need=60)
        self.section("report", lambda: write_report(self.results, s.out), need=-math.inf)
        print(f"gpu-check: wrote {s.out} in {time.monotonic() - s.t0:.0f} s", file=sys.stderr)
        failed = [k for k, v in self.results["sections"].items() if isinstance(v, dict) and v.get("error")]
        return 1 if failed else 0

    def section(self, name: str, fn: Callable[[], dict], need: float) -> None:
        """Run one section (or skip it when fewer than ``need`` seconds are left), record its result or
        its error and its time, and write ``results.json``."""
        s, start = self.s, time.monotonic()
        if s.left() < need:
            self.results["sections"][name] = {"skipped": f"out of time ({s.left():.0f} s left, needs ~{need:.0f} s)"}
        else:
            print(f"gpu-check: {name} ({s.left():.0f} s left)", file=sys.stderr, flush=True)
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
        self.results["elapsed_s"] = round(time.monotonic() - s.t0, 1)
        write_json(s.out / "results.json", self.results, default=str)

    def partial_grid(self, rows: list[dict]) -> None:
        """``results.json`` with the grid's rows so far (``partial_grid``), while the grid runs."""
        write_json(self.s.out / "results.json", {**self.results, "partial_grid": rows}, default=str)

    def environment(self) -> dict:
        """Versions, the device and the settings the numbers depend on."""
        import torch

        import namemodels

        info = {
            "torch": torch.__version__,
            "namemodels_from": namemodels.__file__,
            "triton_interpret": os.environ.get("TRITON_INTERPRET"),
            "cpu_count": os.cpu_count(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        }
        info.update(versions("triton", "safetensors", "matplotlib", "numpy"))  # None: not importable
        if torch.cuda.is_available():
            info.update(
                device_name=torch.cuda.get_device_name(),
                cuda=torch.version.cuda,
                cudnn=torch.backends.cudnn.version(),
                capability=".".join(map(str, torch.cuda.get_device_capability())),
            )
        elif not self.s.dry:
            raise RuntimeError("torch sees no CUDA device; run with --dry-run on a CPU machine")
        else:
            info["device_name"] = f"CPU ({platform.machine()}), dry run in Triton's interpreter"
        self.results["device_name"] = info["device_name"]
        return info


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m namemodels.bench.gpu_check", description=HELP)
    add_arguments(parser)
    sys.exit(main(parser.parse_args()))
