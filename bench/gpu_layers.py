"""The layer measurements of the GPU check (:mod:`namemodels.bench.gpu_check`), one function per
section: CUDA launches per layer call (:func:`launches`), the grid of shapes against cuDNN
(:func:`grid`), peak memory (:func:`memory`), weights on chip against streamed (:func:`on_chip`) and
``torch.compile(mode="reduce-overhead")`` (:func:`compiled`). Each returns its section of
``results.json``; torch is imported inside."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any, Callable

from namemodels.bench.gpu_report import SMALL_SHAPE
from namemodels.bench.gpu_setup import MEMORY_SHAPE, E, Setting
from namemodels.bench.gpu_timing import profile_counts

if TYPE_CHECKING:  # annotations only: torch loads when a section runs
    from torch import nn

# Launch counts of the previous host path, counted on the CPU (torch operators that compute, plus
# fused launches) for a 2-layer bidirectional LSTM with mixed lengths: forward without autograd,
# and the backward of forward + sum.
BEFORE_LAUNCHES = {
    "forward (no grad), 2 layers": 26,
    "backward, 2 layers": 60,
    "host reads of lengths per forward": 2,
    "blocking lengths copies per forward": 4,
}


def _ours_backend(dev: str) -> str:
    """The backend our layers run on: ``auto`` on CUDA, Triton's interpreter on the CPU."""
    return "auto" if dev == "cuda" else "triton"


def _torch_twin(mode: str, H: int) -> nn.Module:
    """The ``torch.nn`` layer (cuDNN on CUDA) of a plain cell mode: ``lstm``, ``gru``, ``rnn_tanh``..."""
    from torch import nn

    twin = {"lstm": nn.LSTM, "gru": nn.GRU}.get(mode)
    return twin(E, H, batch_first=True) if twin else nn.RNN(E, H, nonlinearity=mode[4:], batch_first=True)


# ---- launches per layer call ------------------------------------------------------------------------
def launches(s: Setting) -> dict:
    """Kernel launches, synchronisations and copies of a 2-layer bidirectional LSTM call, ours and cuDNN."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from namemodels.kernels import make_layer

    dev, timer = s.device, s.timer
    dt = torch.float32 if s.dry else torch.bfloat16
    B, T, H = (4, 6, 16) if s.dry else SMALL_SHAPE
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
    for name, backend in (("ours", _ours_backend(dev)), ("cudnn", "torch")):
        layer = make_layer(
            "lstm", E, H, num_layers=2, bidirectional=True, batch_first=True, backend=backend, device=dev, dtype=dt
        )
        with torch.no_grad():
            layer(x, lengths=lengths)
        xg = x.clone().requires_grad_()
        layer(xg, lengths=lengths)[0].sum().backward()
        timer.sync()
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
                timer.sync()
            counts[what] = profile_counts(prof)
        result[name] = counts
    return result


# ---- the grid ---------------------------------------------------------------------------------------
def grid(s: Setting, partial: Callable[[list[dict]], None]) -> dict:
    """Every shape of the grid in both dtypes, smallest first, until the budget runs short;
    ``partial(rows)`` records the rows so far after each dtype."""
    import torch

    g = s.grid
    shapes = [(B, T, H) for H in g["hidden"] for T in g["seq"] for B in g["batch"]]
    rows, skipped = [], []
    for dtype in g["dtypes"]:
        for B, T, H in sorted(shapes, key=lambda sh: sh[0] * sh[1] * sh[2] * sh[2]):
            if s.left() < (60 if not s.dry else 5):
                skipped.append({"dtype": dtype, "B": B, "T": T, "H": H, "why": "out of time"})
                continue
            try:
                rows.extend(measure_shape(s, B, T, H, dtype))
            except Exception as exc:  # one shape's failure (a kernel that does not compile) is recorded
                why = f"{type(exc).__name__}: {exc}"[:500]
                skipped.append({"dtype": dtype, "B": B, "T": T, "H": H, "why": why})
            if s.device == "cuda":
                torch.cuda.empty_cache()
        partial(rows)
    return {
        "method": "median of per-call times (CUDA events around each call, synchronised); subjects of one "
        "shape alternate round by round; ratios are medians of within-round ratios",
        "rows": rows,
        "skipped": skipped,
    }


def measure_shape(s: Setting, B: int, T: int, H: int, dtype: str) -> list[dict]:
    """One row per cell at one shape: forward, CUDA-graph replay and forward+backward, ours against
    the same-sized ``torch.nn`` layer, and momentum cells against their plain cell."""
    import torch

    from namemodels.kernels import make_layer
    from namemodels.kernels.cells import REGISTRY

    dev, dt, timer = s.device, getattr(torch, dtype), s.timer
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, E, generator=gen).to(dev, dt)
    x_grad = x.clone().requires_grad_()
    g_out = torch.randn(B, T, H, generator=gen).to(dev, dt)
    subjects: dict[str, Callable] = {}

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
        graph = timer.graphed(fwd)
        if graph is not None:
            subjects[f"{key}|graph"] = graph

    for cell in s.grid["cells"]:
        spec = REGISTRY[cell]
        torch.manual_seed(0)
        add(f"ours:{cell}", make_layer(cell, E, H, batch_first=True, device=dev, dtype=dt, backend=_ours_backend(dev)))
        if f"cudnn:{spec.mode}|fwd" not in subjects:
            add(f"cudnn:{spec.mode}", _torch_twin(spec.mode, H).to(dev, dt))
    samples = timer.interleave(subjects)
    rows = []
    for cell in s.grid["cells"]:
        mode = REGISTRY[cell].mode
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


# ---- memory, on-chip A/B, torch.compile -------------------------------------------------------------
def memory(s: Setting) -> dict:
    """Peak memory of forward+backward at ``MEMORY_SHAPE``, ours against cuDNN (CUDA only)."""
    import torch

    from namemodels.kernels import make_layer
    from namemodels.kernels.cells import REGISTRY

    if s.device != "cuda":
        return {"skipped": "peak memory needs CUDA (torch.cuda.max_memory_allocated)"}
    B, T, H = MEMORY_SHAPE
    rows = []
    for dtype in s.grid["dtypes"]:
        dt = getattr(torch, dtype)
        for cell in s.grid["cells"]:
            mode = REGISTRY[cell].mode
            res: dict[str, Any] = {"cell": cell, "dtype": dtype, "B": B, "T": T, "H": H}
            for name in ("ours", "cudnn"):
                torch.manual_seed(0)
                if name == "ours":
                    m = make_layer(cell, E, H, batch_first=True, device="cuda", dtype=dt)
                else:
                    m = _torch_twin(mode, H).to("cuda", dt)
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


def on_chip(s: Setting) -> dict:
    """Forward time with the recurrent weights kept on chip against streamed, at a few points."""
    import torch

    import namemodels.kernels.fused_recurrent as fr
    from namemodels.kernels import make_layer
    from namemodels.kernels.cells import GATES, REGISTRY

    points = [
        ("lstm", "bfloat16", 128),
        ("lstm", "float32", 64),
        ("gru", "bfloat16", 128),
        ("rnn_tanh", "bfloat16", 256),
    ]
    if s.dry:
        points = [("lstm", "float32", 16)]
    B, T = (4, 4) if s.dry else (64, 16)
    rows = []
    limit = fr.ON_CHIP_BYTES
    for cell, dtype, H in points:
        dt = getattr(torch, dtype)
        layer = make_layer(cell, E, H, batch_first=True, device=s.device, dtype=dt, backend="triton")
        x = torch.randn(B, T, E, device=s.device, dtype=dt)

        def fwd(layer: nn.Module = layer, x: torch.Tensor = x) -> torch.Tensor:
            with torch.no_grad():
                return layer(x)[0]

        res = {"cell": cell, "dtype": dtype, "B": B, "T": T, "H": H}
        try:
            for name, nbytes in (("on_chip", 1 << 30), ("streamed", 0)):
                fr.ON_CHIP_BYTES = nbytes
                times = s.timer.interleave({name: fwd})[name]
                res[f"{name}_ms"] = statistics.median(times)
        finally:
            fr.ON_CHIP_BYTES = limit
        res["default"] = "on_chip" if fr._config(H, dt, GATES[REGISTRY[cell].mode])[2] else "streamed"
        rows.append(res)
    return {"rows": rows, "note": "forward, B=64, T=16: W_hh kept on chip (registers) vs streamed from L2"}


def compiled(s: Setting) -> dict:
    """A 2-layer bidirectional LSTM eager against ``torch.compile(mode="reduce-overhead")`` (CUDA only)."""
    import torch

    from namemodels.kernels import make_layer

    if s.device != "cuda":
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
    model = torch.compile(layer, mode="reduce-overhead", fullgraph=True)
    with torch.no_grad():
        for _ in range(3):
            model(x, lengths=lengths)
    compile_s = time.monotonic() - t

    def eager():
        with torch.no_grad():
            return layer(x, lengths=lengths)[0]

    def comp():
        with torch.no_grad():
            return model(x, lengths=lengths)[0]

    samples = s.timer.interleave({"eager": eager, "compiled": comp})
    ref, got = eager().float(), comp().float()
    return {
        "shape": {"B": B, "T": T, "H": H, "layers": 2, "bidirectional": True, "dtype": "bfloat16"},
        "compile_s": round(compile_s, 1),
        "eager_ms": statistics.median(samples["eager"]),
        "reduce_overhead_ms": statistics.median(samples["compiled"]),
        "max_abs_diff": float((ref - got).abs().max()),
    }
