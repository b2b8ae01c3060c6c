"""How the GPU check (:mod:`namemodels.bench.gpu_check`) times and counts calls: :class:`Timer`
(CUDA events on the GPU, ``perf_counter`` on the CPU; compared calls alternate round by round; CUDA
graph capture), :func:`pair` (ours against cuDNN from such samples) and :func:`profile_counts`
(launches, synchronisations and copies in a torch.profiler profile). torch is imported inside."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from namemodels.bench.timing import turns


class Timer:
    """Per-call times in ms of calls on ``device`` (``cuda`` or ``cpu``); ``dry`` takes two rounds."""

    def __init__(self, device: str, dry: bool) -> None:
        self.device, self.dry = device, dry

    def sync(self) -> None:
        import torch

        if self.device == "cuda":
            torch.cuda.synchronize()

    def time(self, fn: Callable) -> float:
        """One call of ``fn``, in ms."""
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

    def interleave(self, subjects: dict[str, Callable]) -> dict[str, list[float]]:
        """Per-call times in ms: calibrated to ~budget per subject, then one sample of each per round."""
        for fn in subjects.values():  # warm-up (compiles on first use where the workers did not)
            fn()
        self.sync()
        per_round_ms = sum(self.time(fn) for fn in subjects.values())
        rounds = 2 if self.dry else int(min(15, max(5, 1000.0 / max(per_round_ms, 1e-3))))  # ~1 s a shape
        samples: dict[str, list[float]] = {k: [] for k in subjects}
        for _, k in turns(list(subjects), rounds):
            samples[k].append(self.time(subjects[k]))
        return samples

    def graphed(self, fn: Callable) -> Callable | None:
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


def pair(samples: dict[str, list[float]], **extra: Any) -> dict:
    """Medians of the ``ours`` and ``cudnn`` samples and the median of their within-round ratios."""
    o, c = samples["ours"], samples["cudnn"]
    return {
        "ours_ms": statistics.median(o),
        "cudnn_ms": statistics.median(c),
        "speedup": statistics.median(b / a for a, b in zip(o, c)),
        **extra,
    }


def profile_counts(prof: Any) -> dict:  # a torch.profiler.profile
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
