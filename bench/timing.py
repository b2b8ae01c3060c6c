"""How the benchmarks time what they compare: every comparison takes turns in one order
(:func:`turns`); :func:`interleaved` times whole runs (a command, a file scored), :func:`per_call`
single calls of a function (the latency of one name). The GPU check's CUDA-event timer
(:mod:`namemodels.bench.gpu_timing`) and ``bench cells`` take the same turns."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Callable, TypeVar

K = TypeVar("K")


def turns(sides: Sequence[K], rounds: int) -> Iterator[tuple[int, K]]:
    """``(round, side)`` in the order A B, B A, A B, ...: each side goes first in half the rounds, so a
    drift of the machine's speed during a run (heat, other jobs) falls on every side alike."""
    for r in range(rounds):
        for side in sides if r % 2 == 0 else sides[::-1]:
            yield r, side


def interleaved(sides: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Wall times (s) of each side, ``rounds`` each, taken in :func:`turns`."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _, k in turns(list(sides), rounds):
        t0 = time.perf_counter()
        sides[k]()
        times[k].append(time.perf_counter() - t0)
    return times


def per_call(
    fns: Mapping[str, Callable[[Any], object]], args: Sequence[Any], rounds: int, warmup: int, block: int = 1
) -> dict[str, list[float]]:
    """Per-call wall times (s) of each ``fns[k](args[i % len(args)])``: ``rounds`` calls of each, taken
    in :func:`turns` of ``block`` consecutive calls per function (1: one call each per round), with
    Python's garbage collector paused so that a collection does not land on one call."""
    for fn in fns.values():
        for i in range(warmup):
            fn(args[i % len(args)])
    samples: dict[str, list[float]] = {k: [] for k in fns}
    clock = time.perf_counter
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r, k in turns(list(fns), math.ceil(rounds / block)):
            fn = fns[k]
            for i in range(r * block, min(rounds, (r + 1) * block)):
                a = args[i % len(args)]
                t0 = clock()
                fn(a)
                samples[k].append(clock() - t0)
    finally:
        if enabled:
            gc.enable()
    return samples
