"""Shared fixtures, and the layout of the tests.

The tests mirror the package by import name: ``tests/test_X.py`` tests ``namemodels.X`` (``test_cli.py``
the CLI end to end, ``test_cli_errors.py`` its errors), and ``tests/SUB/test_Y.py`` tests
``namemodels.SUB.Y`` (``tests/training/test_train.py`` tests ``namemodels/training/train.py``):
``tests/kernels/`` (``kernels/``, installed as ``namemodels.kernels``), ``tests/export/``, ``tests/bench/``,
``tests/data/``, ``tests/training/``, ``tests/inference/`` and ``tests/study/``.
The tests of the ``namemodels`` package itself sit at the top of ``tests/`` rather than in a
``tests/namemodels/`` folder: this folder is on ``sys.path`` while pytest runs, and a folder of that
name there would shadow the installed package as an empty namespace package.

Test folders have no ``__init__.py`` (pytest's default "prepend" import mode): with one, pytest would
put the repository root first on ``sys.path``, the trap described in ``_check_installed_layout``. Test
file names are therefore unique across all folders. What several files share lives here (fixtures)
and in ``tests/helpers.py`` (data makers, a small model directory, ``FAST`` training settings, paths),
which every test file imports as ``helpers``, from any folder.
"""

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
            'namemodels.kernels cannot be imported: install the package with `pip install -e ".[train,dev]"` '
            "and run plain `pytest` from the repository root (not `python -m pytest`, which puts the source "
            "folder namemodels/ first on sys.path, where kernels/, export/ and bench/ are not mapped in)."
        )


_check_installed_layout()


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "compile: torch.compile tests (a few seconds each; -m 'not compile' skips them)")


from helpers import SHARED_DATA  # noqa: E402  (tests/ is on sys.path: pytest put it there to import this file)


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


# The shipped models (namemodels/pretrained), loaded once per run; tests only read them.


@pytest.fixture(scope="session")
def shipped_surnames():
    import namemodels

    return namemodels.load("surnames")


@pytest.fixture(scope="session")
def shipped_gender():
    import namemodels

    return namemodels.load("gender")


@pytest.fixture(scope="session")
def shipped_first_names():
    import namemodels

    return namemodels.load("first-names")


# Small synthetic data and the models trained on it, shared by the training, evaluation, ensemble,
# predictor and CLI tests: session-scoped, so each model is trained once per run.


@pytest.fixture(scope="session")
def surnames(tmp_path_factory):
    """Three languages of surnames built from syllables (tests/helpers.py), made once per run."""
    from helpers import make_surnames

    return make_surnames(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def small_surnames(tmp_path_factory):
    """``surnames`` with 40 names a language: for tests that train many tiny models (CV, checkpoints)."""
    from helpers import make_surnames

    return make_surnames(tmp_path_factory.mktemp("data"), per_class=40)


@pytest.fixture(scope="session")
def first_names(tmp_path_factory):
    """A first-name CSV where names ending in 'a' are mostly female, made once per run."""
    from helpers import make_first_names

    return make_first_names(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def classifier_dir(surnames, tmp_path_factory):
    """A bidirectional LSTM classifier trained for six epochs on ``surnames``; tests only read it."""
    from helpers import FAST

    from namemodels.config import TrainConfig
    from namemodels.training.train import train

    out = tmp_path_factory.mktemp("cls")
    train(
        TrainConfig(task="classify", epochs=6, bidirectional=True, **FAST),
        surnames,
        out,
        progress=False,
        log=lambda m: None,
    )
    return out


@pytest.fixture(scope="session")
def lm_dir(surnames, tmp_path_factory):
    """A conditioned momentum-LSTM generator trained for four epochs on ``surnames``; tests only read it."""
    from helpers import FAST

    from namemodels.config import TrainConfig
    from namemodels.training.train import train

    out = tmp_path_factory.mktemp("lm")
    train(
        TrainConfig(task="generate", epochs=4, cell="momentum_lstm", **FAST),
        surnames,
        out,
        progress=False,
        log=lambda m: None,
    )
    return out
