"""``namemodels bench kernel-build``: compile the fused kernels for a GPU without one.

Triton's compiler and NVIDIA's assembler (``ptxas``, shipped in Triton's wheel) run on any machine:
a kernel goes from Python to TTIR, TTGIR, LLVM IR, PTX and a cubin for a chosen architecture
(default ``sm_90``, the H100/H200) with no GPU present. This benchmark captures the launches that
the real host code of :mod:`namemodels.kernels.fused_recurrent` makes for a layer -- a training
step (forward with saved buffers, then the backward kernel) and a decode step (``T = 1``, the input
projection fused) -- with every constexpr flag, pointer dtype and warp count as the host code chose
them, compiles each exactly like that, and reports what the cubin uses: registers and stack frame
a thread (the stack holds the spilled registers), and the shared memory of the launch.

What it shows: every kernel variant a layer can launch is valid Triton for the target (the
interpreter that the CPU tests use does not check that), and where a configuration runs out of
registers. Spills are not errors, but a spilling inner loop reads local memory (L1/L2) each step.

Compiled kernels land in Triton's on-disk cache, so a second run is fast. fp32 dots use TF32 here,
as they do on CUDA with torch's default ``torch.backends.cudnn.allow_tf32``. This module imports
torch and Triton only inside functions: the CLI imports it to build its parser.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

from namemodels.bench import report_json
from namemodels.bench.machine import versions
from namemodels.errors import UsageError
from namemodels.kernels.cells import CELLS, cell
from namemodels.options import add_json_options

NAME = "kernel-build"
HELP = "compile the fused kernels for a GPU architecture without a GPU: registers, spills, shared memory"

ARCHS = (80, 86, 89, 90, 100, 120)  # GPUs with bf16 tensor cores that Triton 3.6 and 3.9 both target
DTYPES = ("float32", "bfloat16")
HIDDEN = (64, 128, 256)
_PTR_TYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "int64": "i64", "int32": "i32"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--arch",
        type=int,
        default=90,
        choices=ARCHS,
        metavar="ARCH",
        help="CUDA compute capability x 10: 80 (A100), 86, 89, 90 (H100/H200, the default), 100, 120",
    )
    p.add_argument(
        "--cells",
        nargs="+",
        default=list(CELLS),
        choices=CELLS,
        metavar="CELL",
        help="cells (default: all): " + ", ".join(CELLS),
    )
    p.add_argument(
        "--hidden", nargs="+", type=int, default=list(HIDDEN), metavar="H", help="hidden sizes (default: 64 128 256)"
    )
    p.add_argument(
        "--dtypes",
        nargs="+",
        default=list(DTYPES),
        choices=("float32", "bfloat16", "float16"),
        help="layer dtypes (default: float32 bfloat16)",
    )
    p.add_argument(
        "--directions", nargs="+", type=int, default=[2], choices=(1, 2), help="1 or 2 (bidirectional; the default)"
    )
    add_json_options(p, "every row", old_file_spelling=True)
    p.add_argument("--quiet", action="store_true", help="no per-kernel progress lines")


def main(args: argparse.Namespace) -> int:
    bad = [h for h in args.hidden if not 1 <= h <= 256]
    if bad:
        raise UsageError(f"--hidden {bad[0]}: the fused kernels take hidden sizes 1..256")
    start = time.perf_counter()
    rows = build(args.cells, args.hidden, args.dtypes, args.directions, args.arch, log=None if args.quiet else print)
    print(format_table(rows))
    print(f"{len(rows)} kernels compiled for sm_{args.arch} in {time.perf_counter() - start:.0f} s")
    report_json(args, {"arch": args.arch, "triton": versions("triton")["triton"], "rows": rows})
    return 0


def build(
    cells: Sequence[str],
    hidden: Sequence[int],
    dtypes: Sequence[str],
    directions: Sequence[int] = (2,),
    arch: int = 90,
    log: Callable[[str], object] | None = None,
) -> list[dict]:
    """Compile every launch of every configuration in the product of the arguments."""
    return build_cases([(c, H, dt, D) for c in cells for H in hidden for dt in dtypes for D in directions], arch, log)


def build_cases(cases: Sequence[tuple], arch: int = 90, log: Callable[[str], object] | None = None) -> list[dict]:
    """Compile every launch of each ``(cell, hidden, dtype, directions)``; one row per kernel launch
    (see :func:`compile_launch`). Needs Triton's compiler: not under ``TRITON_INTERPRET=1``."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise UsageError(
            "kernel-build compiles the kernels, which Triton's interpreter mode does not: "
            "run it without TRITON_INTERPRET=1"
        )
    rows = []
    for name, H, dtype, D in cases:
        for step, launch in captured_launches(name, H, dtype, D).items():
            row = {
                "cell": name,
                "hidden": H,
                "dtype": dtype,
                "directions": D,
                "step": step,
                **compile_launch(launch, arch),
            }
            rows.append(row)
            if log:
                log(_line(row))
    return rows


def captured_launches(
    cell_name: str, hidden: int, dtype: str, directions: int = 2, input_size: int = 32, batch: int = 4, steps: int = 3
) -> dict[str, tuple]:
    """The kernel launches the host code makes for one layer, captured instead of run:
    ``{"forward": ..., "backward": ..., "decode": ...}``, each ``(kernel, args, meta)``."""
    import torch

    from namemodels.kernels import fused_recurrent as fr

    c = cell(cell_name)
    dt = getattr(torch, dtype)
    B, T, E, H, D, G = batch, steps, input_size, hidden, directions, c.gates * hidden
    x = torch.zeros(B, T, E, dtype=dt)
    w_ih, w_hh = torch.zeros(D, G, E, dtype=dt), torch.zeros(D, G, H, dtype=dt)
    b_ih, b_hh = torch.zeros(D, G, dtype=dt), torch.zeros(D, G, dtype=dt)
    mus = torch.tensor([0.9, 0.6]) if c.momentum else None
    lengths = torch.full((B,), T, dtype=torch.int64)
    captured: list[tuple] = []
    real_launch = fr._launch
    fr._launch = lambda kernel, grid, *args, **meta: captured.append((kernel, args, meta))
    try:
        out, _, _, _, gi, gs, cs, vs = fr.fused_forward(
            c.mode, x, lengths, None, None, None, w_ih, w_hh, b_ih, b_hh, mus, save=True, keep_gi=c.momentum
        )
        fr.fused_backward(
            c.mode,
            x,
            lengths,
            None,
            None,
            None,
            w_ih,
            w_hh,
            mus,
            out,
            gi,
            gs,
            cs,
            vs,
            torch.zeros_like(out),
            None,
            None,
            None,
            needs=(True,) * 8 + (c.momentum,),
        )
        if D == 1:  # a generator's decode step: one token, the state carried over
            h0 = torch.zeros(D, B, H, dtype=dt)
            v0 = torch.zeros(D, B, G, dtype=dt) if c.momentum else None
            fr.fused_forward(
                c.mode, x[:, :1], None, h0, h0 if c.mode == "lstm" else None, v0, w_ih, w_hh, b_ih, b_hh, mus
            )
    finally:
        fr._launch = real_launch
    cuda_precision = fr.dot_precision(dt, cuda=True)
    names = ("forward", "backward", "decode")
    return {n: (k, a, {**m, "PRECISION": cuda_precision}) for n, (k, a, m) in zip(names, captured)}


def compile_launch(launch: tuple, arch: int = 90) -> dict:
    """Compile one captured launch for ``sm_<arch>`` as Triton's launcher would specialise it (16-byte
    aligned pointers, integers that are multiples of 16 marked so, except ``do_not_specialize``);
    returns the kernel's name, warps, registers, stack frame (spills), shared memory and
    compile seconds."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernel, args, meta = launch
    names = kernel.arg_names
    meta = dict(meta)
    warps = meta.pop("num_warps", 4)
    signature, attrs = {}, {}
    loose = set(getattr(kernel, "do_not_specialize", ()) or ())
    for i, (name, value) in enumerate(zip(names, args)):
        if hasattr(value, "dtype"):
            signature[name] = "*" + _PTR_TYPES[str(value.dtype).replace("torch.", "")]
            attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            signature[name] = "i32"
            if value % 16 == 0 and name not in loose and i not in loose:
                attrs[(i,)] = [["tt.divisibility", 16]]
    for name in meta:
        signature[name] = "constexpr"
    signature = {name: signature[name] for name in names}  # in the kernel's order, as Triton reads it
    start = time.perf_counter()
    compiled = triton.compile(
        ASTSource(kernel, signature, constexprs=meta, attrs=attrs),
        target=GPUTarget("cuda", arch, 32),
        options={"num_warps": warps},
    )
    seconds = time.perf_counter() - start
    return {
        "kernel": kernel.fn.__name__,
        "warps": warps,
        "on_chip": bool(meta.get("ON_CHIP")),
        **cubin_usage(compiled.asm["cubin"]),
        "shared_bytes": int(compiled.metadata.shared),
        "compile_s": round(seconds, 2),
    }


def cubin_usage(cubin: bytes) -> dict:
    """``registers`` and ``stack_bytes`` (local memory a thread: register spills) of the compiled
    kernel, read from its cubin with ``cuobjdump --dump-resource-usage`` (shipped with Triton): the
    figures of the very binary Triton built, not of a second assembly with other options."""
    from triton import knobs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        text = subprocess.run(
            [knobs.nvidia.cuobjdump.path, "--dump-resource-usage", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def number(key: str) -> int:
        m = re.search(rf"\b{key}:(\d+)", text)
        return int(m.group(1)) if m else 0

    return {"registers": number("REG"), "stack_bytes": number("STACK")}


def _line(r: dict) -> str:
    return (
        f"{r['cell']:<14} H={r['hidden']:<3} {r['dtype']:<8} D={r['directions']} {r['step']:<8} "
        f"{'on chip' if r['on_chip'] else 'streamed':<8} warps={r['warps']:<2} regs={r['registers']:<3} "
        f"stack={r['stack_bytes']:<5} shared={r['shared_bytes']}"
    )


def format_table(rows: Sequence[dict]) -> str:
    """A Markdown table, one row per compiled kernel."""
    head = "| cell | H | dtype | D | kernel | W_hh | warps | registers | stack, spills (B) | shared (B) |"
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['hidden']} | {r['dtype']} | {r['directions']} | {r['step']} | "
            f"{'on chip' if r['on_chip'] else 'streamed'} | {r['warps']} | {r['registers']} | "
            f"{r['stack_bytes']} | {r['shared_bytes']} |"
        )
    return "\n".join(lines)
