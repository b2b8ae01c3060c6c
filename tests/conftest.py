import os
from pathlib import Path

# Triton reads this at import time; CI checks the fused kernels in its interpreter on the CPU.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real data beside the checkout; tests that use it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def single_thread():
    """Tiny tensors: intra-op threads only add OpenMP hand-offs (torch.tril on a 3x3 matrix takes
    ~10 ms on a busy 2-core machine with 2 threads). Restored after the module."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
