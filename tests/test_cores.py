"""namemodels.cores: the one rule that shares cores among parallel processes (cv folds, ensemble members)."""

import os

import pytest

from namemodels.cores import machine_cores, split_cores


def test_machine_cores_is_the_affinity_where_there_is_one():
    want = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert machine_cores() == want


@pytest.mark.parametrize(
    "jobs,workers,budget,want",
    [
        (5, 0, 2, (2, 1)),  # five folds on two cores: two processes of one thread
        (1, 0, 2, (1, 2)),  # one pending fold gets both cores
        (5, 1, 8, (1, 8)),  # --workers 1: one process with every core
        (3, 0, 16, (3, 5)),  # three members on sixteen cores: five threads each (one core idle)
        (0, 0, 4, (1, 4)),  # nothing pending: still a sane answer
        (4, 8, 2, (4, 1)),  # more workers than cores asked for: at least one thread each
    ],
)
def test_split_cores(jobs, workers, budget, want):
    assert split_cores(jobs, workers, budget) == want


def test_split_cores_defaults_to_the_machine():
    assert split_cores(1) == (1, machine_cores())
