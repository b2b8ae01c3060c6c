"""The parallel compilation of the GPU check (:mod:`namemodels.bench.gpu_check`): before timing,
worker processes (``gpu_check --warm-worker K/N``) make tiny calls that compile every kernel variant
the run launches into Triton's on-disk cache, while the kernel tests run."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from namemodels.bench.gpu_setup import E, Setting


def jobs(s: Setting) -> list[dict]:
    """Every kernel variant the run launches, as tiny calls (one per job)."""
    g = s.grid
    out = []
    for dtype in g["dtypes"]:
        for H in g["hidden"]:
            for cell in g["cells"]:
                out.append(dict(cell=cell, H=H, dtype=dtype, layers=1, bi=False, lengths=False, use_hn=False))
    # The classifiers (1 and 2 layers share variants) and the training epoch (which reads h_n too), and
    # the launch count and torch.compile layer.
    H = 16 if s.dry else 128
    out.append(dict(cell="lstm", H=H, dtype="float32", layers=1, bi=True, lengths=True, use_hn=True))
    out.append(dict(cell="lstm", H=H, dtype="bfloat16", layers=2, bi=True, lengths=True, use_hn=True))
    return out


def warm_up(s: Setting) -> dict:
    """Run the workers (each takes every N-th job) and collect their exit statuses and last lines."""
    n_jobs = len(jobs(s))
    # Beside the test shards, leave them a core each.
    n = s.workers or (2 if s.dry else max(1, min(n_jobs, (os.cpu_count() or 4) - 8)))
    procs = []
    for k in range(n):
        cmd = [sys.executable, "-m", "namemodels.bench.gpu_check", str(s.out), "--warm-worker", f"{k}/{n}"] + (
            ["--dry-run"] if s.dry else []
        )
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=max(5.0, s.left() - 200))
        except subprocess.TimeoutExpired:
            p.kill()
            out = "killed (out of time)"
        lines = out.strip().splitlines() if out else []
        outputs.append([ln for ln in lines if ln.startswith("FAILED")][:5] + lines[-1:])
    return {"workers": n, "jobs": n_jobs, "returncodes": [p.returncode for p in procs], "last_lines": outputs}


def worker(args: argparse.Namespace) -> int:
    """Run this worker's share (``--warm-worker K/N``) of the tiny calls that compile every kernel
    variant of the run."""
    import torch

    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"
    k, n = (int(v) for v in args.warm_worker.split("/"))
    s = Setting.from_args(args)
    done, failed = 0, []
    for i, job in enumerate(jobs(s)):
        if i % n != k:
            continue
        try:
            compile_variant(job, s.device)
            done += 1
        except Exception as exc:  # reported; the other variants still compile
            failed.append(f"{job}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:400])
    if s.device == "cuda":
        torch.cuda.synchronize()
    for line in failed:
        print("FAILED", line)
    print(f"worker {k}/{n}: {done} variants compiled, {len(failed)} failed")
    return 1 if failed else 0


def compile_variant(job: dict, dev: str) -> None:
    """Tiny calls that compile one layer's kernel variants: inference and training."""
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
    xg = x.clone().requires_grad_()
    out, states = layer(xg, lengths=lengths)
    loss = out.float().sum()
    if job["use_hn"]:
        loss = loss + (states[0] if isinstance(states, tuple) else states).float().sum()
    torch.autograd.grad(loss, [xg] + list(layer.parameters()))
