"""The one training loop (namemodels.training.loop): each step against AdamW, the cosine schedule, L1/L2 and
global-norm clipping written out in NumPy; a diverged run; a loop restored from its state continues
exactly as an uninterrupted one."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from namemodels.training.loop import Loop, lr_factor

N, IN, OUT = 8, 3, 2


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.weight = nn.Parameter(torch.randn(OUT, IN, generator=g, dtype=torch.float64))
        self.bias = nn.Parameter(torch.randn(OUT, generator=g, dtype=torch.float64))

    def forward(self, x):
        return x @ self.weight.T + self.bias


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def data(steps: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [
        (torch.from_numpy(rng.normal(size=(N, IN))), torch.from_numpy(rng.normal(size=(N, OUT)))) for _ in range(steps)
    ]


def reference(batches, lr, wd, clip, l1, l2, total_steps, betas=(0.9, 0.999), eps=1e-8):
    """Parameters and losses after each step: mean squared error, its gradient by hand, the L1/L2
    gradient on the weight only, clipping of the global norm, AdamW with decoupled weight decay at the
    cosine-scheduled rate (the step-t rate uses the factor after t - 1 steps)."""
    m0 = Linear()
    W, b = m0.weight.detach().numpy().copy(), m0.bias.detach().numpy().copy()
    state = {"W": [np.zeros_like(W), np.zeros_like(W)], "b": [np.zeros_like(b), np.zeros_like(b)]}
    losses = []
    for t, (x, y) in enumerate(batches, 1):
        x, y = x.numpy(), y.numpy()
        r = x @ W.T + b - y
        losses.append(float((r**2).mean()))
        gW = 2 / r.size * r.T @ x + l1 * np.sign(W) + 2 * l2 * W
        gb = 2 / r.size * r.sum(0)
        norm = math.sqrt((gW**2).sum() + (gb**2).sum())
        if clip:  # scaled by min(1, clip / (norm + 1e-6)), as torch.nn.utils.clip_grad_norm_ documents
            coef = min(1.0, clip / (norm + 1e-6))
            gW, gb = gW * coef, gb * coef
        rate = lr * 0.5 * (1 + math.cos(math.pi * min(t - 1, total_steps) / total_steps))
        new = {}
        for name, p, g in (("W", W, gW), ("b", b, gb)):
            m, v = state[name]
            m[:] = betas[0] * m + (1 - betas[0]) * g
            v[:] = betas[1] * v + (1 - betas[1]) * g * g
            m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
            new[name] = p * (1 - rate * wd) - rate * m_hat / (np.sqrt(v_hat) + eps)
        W, b = new["W"], new["b"]
    return W, b, losses


@pytest.mark.parametrize("clip,l1,l2", [(0.0, 0.0, 0.0), (0.05, 0.0, 0.0), (0.0, 0.01, 0.02), (0.05, 0.01, 0.02)])
def test_steps_follow_adamw_schedule_penalty_and_clipping(clip, l1, l2):
    batches = data(5)
    model = Linear()
    loop = Loop(model, mse, lr=0.1, weight_decay=0.3, clip=clip, l1=l1, l2=l2, total_steps=6)
    losses = loop.epoch(batches)
    W, b, ref_losses = reference(batches, 0.1, 0.3, clip, l1, l2, 6)
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-12)  # the loss reported excludes the penalty
    np.testing.assert_allclose(model.weight.detach().numpy(), W, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.bias.detach().numpy(), b, rtol=0, atol=1e-12)
    assert loop.steps == 5 and loop.lr() == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 5 / 6)))


def test_learning_rate_factors():
    cosine = lr_factor("cosine", 4)
    assert [cosine(s) for s in range(6)] == pytest.approx(
        [1, (1 + math.sqrt(0.5)) / 2, 0.5, (1 - math.sqrt(0.5)) / 2, 0, 0]
    )
    assert lr_factor("constant", 4)(3) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_factor("linear", 4)


def test_a_diverged_run_stops_without_a_step():
    batches = data(3)
    model = Linear()
    before = [p.detach().clone() for p in model.parameters()]
    calls = []

    def loss(m, b):
        calls.append(1)
        return mse(m, b) * (float("nan") if len(calls) == 2 else 1.0)

    loop = Loop(model, loss, lr=0.1, weight_decay=0.0, clip=1.0, total_steps=3, stop_on_divergence=True)
    assert len(loop.epoch(batches)) == 1 and loop.diverged and len(calls) == 2 and loop.steps == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not torch.equal(before[0], model.weight)

    def overflow(m, b):
        raise FloatingPointError("overflowed")

    stopped = Loop(Linear(), overflow, lr=0.1, weight_decay=0.0, clip=1.0, total_steps=3, stop_on_divergence=True)
    assert stopped.epoch(batches) == [] and stopped.diverged
    with pytest.raises(FloatingPointError):  # the trainer lets the error surface
        Loop(Linear(), overflow, lr=0.1, weight_decay=0.0, clip=1.0, total_steps=3).epoch(batches)


def test_a_loop_restored_from_its_state_continues_exactly():
    batches = data(6)
    kw = dict(lr=0.05, weight_decay=0.1, clip=0.5, l2=0.01, total_steps=6, ema=0.9)
    whole = Loop(Linear(), mse, **kw)
    whole.epoch(batches)
    first = Loop(Linear(), mse, **kw)
    first.epoch(batches[:2])
    tensors, state = first.state()
    resumed = Loop(Linear(), mse, **kw)
    resumed.load_state({k: v.clone() for k, v in tensors.items()}, state)
    resumed.epoch(batches[2:])
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(whole.weights.state_dict().values(), resumed.weights.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.lr() == whole.lr() and resumed.average.steps == whole.average.steps == 6
