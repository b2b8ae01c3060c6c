"""The inference recipe's shared pieces (namemodels/recipe.py, namemodels/recipe_torch.py) against
their equations computed independently (loops and NumPy in float64), and their contracts: every torch
piece compiles under torch.jit.script, the state layout is what the layers return, recipe.py is
torch-free."""

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from namemodels import recipe  # noqa: E402
from namemodels import recipe_torch as R  # noqa: E402
from namemodels.kernels import CELLS, make_layer  # noqa: E402
from namemodels.kernels.cells import cell as cell_entry  # noqa: E402

LENGTHS = [5, 1, 3, 5, 2]


@pytest.mark.parametrize("mu,s", [(0.6, 0.6), (0.0, 1.0), (0.95, 0.3)])
def test_momentum_matrix_is_the_momentum_recurrence(mu, s):
    """M x equals v_t = mu v_{t-1} + s x_t from v_0 = 0, run step by step."""
    T = 7
    x = np.random.default_rng(0).normal(size=(T, 3))
    v, expected = np.zeros(3), []
    for t in range(T):
        v = mu * v + s * x[t]
        expected.append(v)
    M = R.momentum_matrix(T, mu, s, torch.zeros((), dtype=torch.float64))
    np.testing.assert_allclose((M @ torch.from_numpy(x)).numpy(), np.array(expected), rtol=1e-12, atol=1e-12)
    assert torch.equal(M, torch.tril(M))  # causal: no step sees a later one


def test_momentum_matrix_gradients_in_float64():
    """Differentiable in mu and s, finite at mu = 0 (where mu^0 would give 0 * inf)."""
    like = torch.zeros((), dtype=torch.float64)
    for mu0 in (0.3, 0.0):
        mu = torch.tensor(mu0, dtype=torch.float64, requires_grad=True)
        s = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
        if mu0:
            assert torch.autograd.gradcheck(lambda a, b: R.momentum_matrix(5, a, b, like), (mu, s))
        R.momentum_matrix(5, mu, s, like).sum().backward()
        assert torch.isfinite(mu.grad) and torch.isfinite(s.grad)


def _padded(rng, width=2):
    T = max(LENGTHS)
    x = rng.normal(size=(len(LENGTHS), T, width))
    return x, torch.from_numpy(x), torch.tensor(LENGTHS)


def test_reverse_padded_reverses_each_sequence_within_its_length():
    x, xt, lengths = _padded(np.random.default_rng(1))
    got = R.reverse_padded(xt, lengths).numpy()
    for b, L in enumerate(LENGTHS):
        np.testing.assert_array_equal(got[b, :L], x[b, :L][::-1])
        np.testing.assert_array_equal(got[b, L:], x[b, L:])  # padding stays where it was
    assert torch.equal(R.reverse_padded(R.reverse_padded(xt, lengths), lengths), xt)
    assert R.reverse_padded(torch.arange(10.0).view(2, 5), torch.tensor([5, 2])).tolist() == [
        [4.0, 3.0, 2.0, 1.0, 0.0],
        [6.0, 5.0, 7.0, 8.0, 9.0],
    ]  # (B, T) works too


def test_final_step_reads_each_sequence_at_its_own_last_step():
    x, xt, lengths = _padded(np.random.default_rng(2), width=3)
    expected = np.stack([x[b, L - 1] for b, L in enumerate(LENGTHS)])
    np.testing.assert_array_equal(R.final_step(xt, lengths).numpy(), expected)
    assert R.final_index(lengths).tolist() == [[L - 1] for L in LENGTHS]


def test_gather_steps_picks_steps_per_sequence():
    x = torch.arange(24.0).view(2, 4, 3)
    idx = torch.tensor([[3, 0], [1, 1]])
    expected = [[x[b, int(t)].tolist() for t in row] for b, row in enumerate(idx)]
    assert R.gather_steps(x, idx).tolist() == expected


def test_binary_head_is_two_class_log_probabilities():
    z = np.array([-60.0, -3.0, 0.0, 0.5, 7.0, 60.0])
    got = R.binary_log_probs(torch.from_numpy(z)).numpy()
    # log sigma(z) = -log(1 + e^-z), p(0) = sigma(-z); logaddexp keeps both ends finite
    np.testing.assert_allclose(got, np.stack([-np.logaddexp(0, z), -np.logaddexp(0, -z)], 1), rtol=1e-12, atol=1e-30)
    np.testing.assert_allclose(np.exp(got).sum(1), 1.0, rtol=1e-12)
    # the same numbers as a softmax over the logits [0, z] (how the ONNX graph computes it), in float32
    z32 = torch.from_numpy(z).float()
    as_softmax = torch.log_softmax(torch.stack([torch.zeros_like(z32), z32], 1), 1)
    torch.testing.assert_close(R.binary_log_probs(z32), as_softmax, rtol=0, atol=1e-6)


def test_ensemble_combine_averages_probabilities():
    rng = np.random.default_rng(3)
    lp = np.log(rng.dirichlet(np.ones(4), size=(3, 5)))  # (K, B, C)
    got = R.ensemble_log_probs(torch.from_numpy(lp)).numpy()
    np.testing.assert_allclose(got, np.log(np.exp(lp).mean(0)), rtol=1e-12)
    sure = torch.full((2, 1, 3), -1000.0, dtype=torch.float64)  # exp underflows to 0 in every member
    assert torch.allclose(R.ensemble_log_probs(sure), sure[0])


def test_every_torch_piece_compiles_under_torchscript():
    mu, s = torch.tensor(0.6), torch.tensor(0.5)
    x, lengths = torch.randn(3, 4, 2), torch.tensor([4, 1, 2])
    scripted = {
        name: torch.jit.script(getattr(R, name))
        for name in (
            "momentum_matrix",
            "reverse_index",
            "final_index",
            "gather_steps",
            "reverse_padded",
            "final_step",
            "binary_log_probs",
            "ensemble_log_probs",
        )
    }
    assert torch.equal(scripted["momentum_matrix"](4, mu, s, x), R.momentum_matrix(4, mu, s, x))
    assert torch.equal(scripted["reverse_padded"](x, lengths), R.reverse_padded(x, lengths))
    assert torch.equal(scripted["final_step"](x, lengths), R.final_step(x, lengths))
    assert torch.equal(scripted["binary_log_probs"](x[:, 0, 0]), R.binary_log_probs(x[:, 0, 0]))


@pytest.mark.parametrize("cell", CELLS)
def test_state_layout_is_what_the_layers_return(cell):
    """recipe.state_layout (what the ONNX step graph, its backend and the TorchScript step carry) has
    the names and shapes of a unidirectional layer's own returned states."""
    layers, hidden, batch = 2, 5, 3
    layer = make_layer(cell, 4, hidden, num_layers=layers, batch_first=True)
    _, states = layer(torch.randn(batch, 6, 4))
    states = [states] if torch.is_tensor(states) else list(states)
    entry = cell_entry(cell)
    layout = recipe.state_layout(entry.mode, entry.momentum, layers, hidden, entry.gates)
    assert list(layout) == [n for n in recipe.STATE_NAMES if n in layout]
    assert [(n, (lay, batch, w)) for n, (lay, w) in layout.items()] == [
        (n, tuple(t.shape)) for n, t in zip(layout, states)
    ]
    zeros = recipe.zero_state(layout, batch)
    assert list(zeros) == list(layout)
    for name, (lay, w) in layout.items():
        assert zeros[name].shape == (lay, batch, w) and zeros[name].dtype == np.float32 and not zeros[name].any()


def test_recipe_module_imports_without_torch():
    code = """
import sys, importlib.abc
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] == 'torch':
            raise ImportError('torch is hidden')
sys.meta_path.insert(0, _NoTorch())
from namemodels import recipe
assert recipe.zero_state(recipe.state_layout('lstm', True, 1, 2, 4), 3)['v'].shape == (1, 3, 8)
print('ok')
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
