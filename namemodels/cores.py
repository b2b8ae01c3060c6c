"""How many cores this process may use, and how parallel work shares them: one rule for every pool
(``cv``'s fold processes, ``train --ensemble``'s member processes, the ONNX backend's threads)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os


def machine_cores() -> int:
    """Cores this process may run on (its CPU affinity on Linux, which a container or ``taskset`` can
    narrow below ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def split_cores(jobs: int, workers: int = 0, budget: int = 0) -> tuple[int, int]:
    """``(processes, threads each)`` for ``jobs`` independent jobs: at most one process per job and
    per core of ``budget`` (default: :func:`machine_cores`), ``workers`` processes when given, and the
    budget's cores shared evenly among them (at least one thread each)."""
    cores = budget or machine_cores()
    processes = max(1, min(jobs, workers or cores))
    return processes, max(1, cores // processes)


def spawn() -> multiprocessing.context.SpawnContext:
    """The start method of every worker pool: spawn, not fork -- a forked copy of a process whose torch
    has already started its thread pool can hang."""
    return multiprocessing.get_context("spawn")
