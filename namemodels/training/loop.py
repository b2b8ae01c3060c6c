"""The one training loop, for ``namemodels train`` and the study alike.

AdamW over every parameter, with a learning rate that follows a schedule over all the run's steps.
Each step on a batch: the loss (plus an L1/L2 penalty on the weights), backward, clipping of the
gradients' global norm, the optimizer step, the schedule step and, with ``ema``, an update of a
moving average of the weights::

    loop = Loop(model, task.loss, lr=3e-3, weight_decay=0.01, clip=1.0, total_steps=epochs * steps)
    for epoch in range(epochs):
        losses = loop.epoch(task.batch(tok, ds, idx, rng) for idx in batches(len(ds), 64, rng))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any, Callable

import torch
from torch import nn

from .checkpoint import optimizer_tensors, restore_optimizer, strip_prefix

SCHEDULES = ("cosine", "constant")


def lr_factor(schedule: str, total_steps: int) -> Callable[[int], float]:
    """The learning rate's factor after ``step`` steps: ``cosine`` decays from 1 to 0 over
    ``total_steps`` as ``(1 + cos(pi * step / total_steps)) / 2`` (then stays at 0), ``constant`` is 1."""
    if schedule == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if schedule == "constant":
        return lambda step: 1.0
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def penalty(model: nn.Module, l1: float, l2: float) -> torch.Tensor:
    """``l1 * sum|w| + l2 * sum w^2`` over the parameters named ``*weight*`` (biases are not penalised)."""
    weights = [p for n, p in model.named_parameters() if "weight" in n]
    total = torch.zeros(())
    if l1:
        total = total + l1 * sum(w.abs().sum() for w in weights)
    if l2:
        total = total + l2 * sum((w * w).sum() for w in weights)
    return total


class WeightAverage:
    """An exponential moving average of a model's floating tensors. The decay ramps up as
    ``min(decay, (1 + t) / (10 + t))`` so that the first steps do not keep the random start."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.steps = decay, 0
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)
        self.model.eval()
        # state_dict tensors share storage with the modules' (load_state_dict copies into them), so
        # the pairs stay valid for the whole run, resume included.
        self._pairs = [
            (avg, new)
            for avg, new in zip(self.model.state_dict().values(), model.state_dict().values())
            if avg.is_floating_point()
        ]

    @torch.no_grad()
    def update(self) -> None:
        self.steps += 1
        keep = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for avg, new in self._pairs:
            avg.lerp_(new, 1 - keep)


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "batch") -> Any:
    """A tqdm bar on stderr that disappears when done, or None without tqdm (part of the [train] extra)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return None
    return tqdm(total=total, desc=desc, leave=False, disable=not enabled, unit=unit)


class Loop:
    """One model's optimisation (see the module docstring). ``loss(model, batch)`` gives the loss of a
    batch. With ``stop_on_divergence`` a loss that is not finite, or a :class:`FloatingPointError`
    from the model (a layer whose activations overflowed), ends the epoch and sets :attr:`diverged`
    instead of taking the step (the study reports such runs; the trainer lets the error surface)."""

    def __init__(
        self,
        model: nn.Module,
        loss: Callable[[nn.Module, Any], torch.Tensor],
        *,
        lr: float,
        weight_decay: float,
        clip: float,
        total_steps: int,
        l1: float = 0.0,
        l2: float = 0.0,
        schedule: str = "cosine",
        ema: float = 0.0,
        stop_on_divergence: bool = False,
    ):
        self.model, self.loss = model, loss
        self.clip, self.l1, self.l2 = clip, l1, l2
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(schedule, total_steps))
        self.average = WeightAverage(model, ema) if ema else None
        self.stop_on_divergence = stop_on_divergence
        self.diverged = False
        self.steps = 0  # steps taken by this object (a resumed run's schedule counts its own)

    @property
    def weights(self) -> nn.Module:
        """The model whose weights are evaluated and saved: the moving average when there is one."""
        return self.average.model if self.average is not None else self.model

    def lr(self) -> float:
        return float(self.schedule.get_last_lr()[0])

    def step(self, batch: object) -> float | None:
        """One step on ``batch``; its loss (without the penalty), or None when the run diverged."""
        self.model.train()
        try:
            loss = self.loss(self.model, batch)
        except FloatingPointError:
            if not self.stop_on_divergence:
                raise
            loss = None
        if loss is None or (self.stop_on_divergence and not torch.isfinite(loss)):
            self.diverged = True
            return None
        total = loss + penalty(self.model, self.l1, self.l2) if (self.l1 or self.l2) else loss
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.optimizer.step()
        self.schedule.step()
        if self.average is not None:
            self.average.update()
        self.steps += 1
        return loss.item()

    def epoch(self, batches: Iterable, bar: Any = None, after_step: Callable[[int], None] | None = None) -> list[float]:
        """A step on each batch, until they run out or the run diverges; the losses of the steps taken.
        ``after_step(i)`` runs after the step on batch ``i`` (counted from 0), ``bar`` counts the steps."""
        losses = []
        for i, batch in enumerate(batches):
            loss = self.step(batch)
            if loss is None:
                break
            losses.append(loss)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
            if after_step is not None:
                after_step(i)
        return losses

    # ------------------------------------------------------------------ checkpoints (namemodels.training.train)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Everything a resumed run needs of the loop: tensors (``model.*``, ``ema.*``, ``optim.*``) and
        JSON (``ema_steps``, ``optimizer``: its hyperparameters, ``scheduler``)."""
        tensors, optimizer_meta = optimizer_tensors(self.optimizer)
        tensors.update({f"model.{k}": v for k, v in self.model.state_dict().items()})
        if self.average is not None:
            tensors.update({f"ema.{k}": v for k, v in self.average.model.state_dict().items()})
        return tensors, {
            "ema_steps": self.average.steps if self.average is not None else 0,
            "optimizer": optimizer_meta,
            "scheduler": self.schedule.state_dict(),
        }

    def load_state(self, tensors: dict[str, torch.Tensor], state: dict) -> None:
        """The inverse of :meth:`state`."""
        self.model.load_state_dict(strip_prefix(tensors, "model."))
        if self.average is not None:
            self.average.model.load_state_dict(strip_prefix(tensors, "ema."))
            self.average.steps = state["ema_steps"]
        restore_optimizer(self.optimizer, tensors, state["optimizer"])
        self.schedule.load_state_dict(state["scheduler"])
