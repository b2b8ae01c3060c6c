"""The fused kernels compile for an H100/H200 (sm_90) exactly as the host code launches them.

The other kernel tests run in Triton's interpreter, which executes the Python of a kernel and so
accepts code that Triton's compiler would reject or that needs more shared memory than a GPU has.
Here Triton's real compiler and ptxas (shipped in Triton's wheel, no GPU needed) build the captured
launches of a training step and a decode step -- in a child process, since the tests' own process
runs Triton in interpreter mode -- and each kernel must fit an sm_90 block.
"""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton.backends.nvidia.compiler", reason="this Triton has no NVIDIA backend")

from namemodels.bench import kernel_build  # noqa: E402
from namemodels.kernels.cells import MODES, cell  # noqa: E402

# An sm_90 block may use at most 227 KB of shared memory and 255 registers a thread (CUDA guide).
SM90_MAX_SHARED = 227 * 1024
MAX_REGISTERS = 255

# Each branch of the kernels: every mode; momentum on 1, 3 and 4 gates; weights on chip (fp32
# H=64, bf16 H=128) and streamed (fp32 H=128, H=256); one and two directions (decode needs one).
CASES = [
    ("rnn_tanh", 64, "float32", 1),
    ("momentum_rnn", 256, "bfloat16", 2),
    ("rnn_relu", 128, "float32", 2),
    ("gru", 128, "bfloat16", 1),
    ("momentum_gru", 64, "float32", 2),
    ("lstm", 256, "float32", 1),
    ("momentum_lstm", 128, "bfloat16", 2),
]


@pytest.mark.parametrize("cell_name,hidden,dtype,directions", CASES)
def test_captured_launches_carry_the_layers_flags(cell_name, hidden, dtype, directions):
    launches = kernel_build.captured_launches(cell_name, hidden, dtype, directions)
    assert set(launches) == ({"forward", "backward", "decode"} if directions == 1 else {"forward", "backward"})
    for step, (kernel, _args, meta) in launches.items():
        assert kernel.fn.__name__ == ("_bwd_kernel" if step == "backward" else "_fwd_kernel")
        assert meta["MODE"] == list(MODES).index(cell(cell_name).mode)
        assert meta["MOMENTUM"] == cell(cell_name).momentum and meta["D"] == directions
        assert meta["PRECISION"] == ("tf32" if dtype == "float32" else "native")  # as torch.nn on CUDA
        if step == "decode":
            assert meta["FUSE_INPUT"] and not meta["SAVE"]


def test_every_launch_compiles_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = (
        "import json, sys; from namemodels.bench import kernel_build as k; "
        "print(json.dumps(k.build_cases(json.loads(sys.argv[1]), arch=90)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(CASES)], env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(rows) == sum(3 if d == 1 else 2 for *_, d in CASES)
    for r in rows:
        assert 0 < r["registers"] <= MAX_REGISTERS, r
        assert r["shared_bytes"] <= SM90_MAX_SHARED, r


def test_refuses_interpreter_mode(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(Exception, match="TRITON_INTERPRET"):
        kernel_build.build_cases([("gru", 64, "float32", 1)])
