import os
from pathlib import Path

# Triton reads this at import time; CI checks the fused kernels in its interpreter on the CPU.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def _check_installed_layout() -> None:
    """``python -m pytest`` puts the repository root first on sys.path, where ``namemodels/`` lacks the
    ``kernels``, ``export`` and ``bench`` subpackages that setup.py maps in: say so once, plainly,
    instead of a wall of import errors."""
    import importlib.util
    try:
        found = importlib.util.find_spec("namemodels.kernels") is not None
    except ImportError:
        found = False
    if not found:
        raise pytest.UsageError(
            "namemodels.kernels cannot be imported: install the package with `pip install -e \".[train,dev]\"` "
            "and run plain `pytest` from the repository root (not `python -m pytest`, which puts the source "
            "folder namemodels/ first on sys.path, where kernels/, export/ and bench/ are not mapped in).")


_check_installed_layout()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "compile: torch.compile tests (a few seconds each; -m 'not compile' skips them)")

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
