"""The correctness part of the GPU check (:mod:`namemodels.bench.gpu_check`): the fused-kernel
tests, ``tests/kernels/test_triton_kernels.py``, run with pytest on CUDA (on the CPU in Triton's
interpreter for a dry run) in shards side by side, started first and collected before the timings,
into ``pytest.txt``."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import IO

from namemodels.bench.gpu_setup import Setting

TEST_FILE = "tests/kernels/test_triton_kernels.py"
# The test file in shards run side by side (each compiles its own kernel variants, the slow part).
SHARDS = (
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
DRY_SHARDS = ("test_interpreter_is_on or test_supports", "test_weights_on_chip_limits")

Shard = tuple[subprocess.Popen, IO[str], list[str]]  # the pytest process, its log, its command


def start(s: Setting) -> list[Shard]:
    """Start one pytest process per shard, each writing ``pytest_K.txt`` in the output folder."""
    pytest = s.pytest or str(Path(sys.executable).with_name("pytest"))
    env = dict(os.environ)
    if s.dry:
        shards = list(DRY_SHARDS)
        env["TRITON_INTERPRET"] = "1"
    else:
        shards = list(SHARDS)
        env.update(NAMEMODELS_TEST_DEVICE="cuda", TRITON_INTERPRET="0")
    procs: list[Shard] = []
    for k, expr in enumerate(shards):
        cmd = [pytest, "-q", "-p", "no:cacheprovider", TEST_FILE, "-k", expr]
        log = open(s.out / f"pytest_{k}.txt", "w", encoding="utf-8")
        log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=s.repo, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append((proc, log, cmd))
    return procs


def finish(s: Setting, procs: list[Shard]) -> dict:
    """Wait for the shards (killed when the budget runs short), join their logs into ``pytest.txt``
    and return each shard's command, exit status and summary line."""
    shards, text = [], []
    for k, (proc, log, cmd) in enumerate(procs):
        rc: int | str
        try:
            rc = proc.wait(timeout=max(5.0, s.left() - 150))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = "killed (out of time)"
        log.close()
        part = s.out / f"pytest_{k}.txt"
        lines = part.read_text(encoding="utf-8").rstrip().splitlines()
        text += lines + [""]
        part.unlink()
        shards.append({"command": " ".join(cmd), "returncode": rc, "summary": lines[-1] if lines else ""})
    (s.out / "pytest.txt").write_text("\n".join(text), encoding="utf-8")
    return {"shards": shards, "passed": all(sh["returncode"] == 0 for sh in shards)}
