"""Fixtures the kernel tests share (the fixtures of every folder are in ``tests/conftest.py``)."""

import pytest


@pytest.fixture
def learned_momentum_stack():
    """Build a momentum cell as the layer the tests of ``d/dmu`` and ``d/ds`` differentiate: two
    layers, bidirectional, batch first, float64, learned ``mu = 0.7``, ``s = 0.8``. A factory, called
    as ``learned_momentum_stack(cell, input_size, hidden_size)`` after the test seeds torch (the
    weights are drawn then)."""
    import torch

    from namemodels.kernels import make_layer

    def build(cell: str, input_size: int, hidden_size: int):
        return make_layer(
            cell,
            input_size,
            hidden_size,
            num_layers=2,
            bidirectional=True,
            batch_first=True,
            mu=0.7,
            s=0.8,
            learn_momentum=True,
            dtype=torch.float64,
        )

    return build
