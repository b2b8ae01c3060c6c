"""Shared pieces of the study: budgets, data, the one in-memory training loop, figures, wording.

Every part is a function ``run(ctx) -> Section``; it writes its numbers to ``ctx.results[key]``,
its PNGs to ``ctx.out`` and returns the text, tables and figures of its report section.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from ..batching import batches
from ..config import TrainConfig
from ..data.loader import load
from ..data.records import NameDataset
from ..data.split import grouped_split
from ..errors import UsageError
from ..inference.sampler import sample as sample_ids
from ..inference.torch_backend import TorchBackend
from ..models import build_model, count_parameters
from ..tasks import make_task, model_spec, task_labels
from ..tokenizer import CharTokenizer
from ..training.loop import Loop, progress_bar

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..tasks import Batch

STUDY_CELLS = ("rnn_tanh", "gru", "lstm", "momentum_rnn", "momentum_lstm", "momentum_gru")
CELL_NAMES = {
    "rnn_tanh": "RNN (tanh)",
    "rnn_relu": "RNN (relu)",
    "gru": "GRU",
    "lstm": "LSTM",
    "momentum_rnn": "MomentumRNN",
    "momentum_lstm": "MomentumLSTM",
    "momentum_gru": "MomentumGRU",
}
CELL_COLORS = {
    "rnn_tanh": "tab:blue",
    "rnn_relu": "tab:cyan",
    "gru": "tab:green",
    "lstm": "tab:red",
    "momentum_rnn": "tab:purple",
    "momentum_lstm": "tab:orange",
    "momentum_gru": "tab:brown",
}


# ------------------------------------------------------------------------------------------ budgets


@dataclass
class Budget:
    """How much compute each part gets. ``full`` is sized for < 1 h on 2 CPU cores."""

    name: str
    max_train: int  # training names per task (subsampled from the grouped training split)
    max_eval: int  # validation / test names used for metrics
    hidden: int
    embed: int
    epochs: int
    seeds: int
    evals_per_epoch: int  # validation-loss points per epoch for the loss curves
    batch_size: int = 64
    lr: float = 3e-3
    mem_T: Sequence[int] = (5, 10, 25, 50, 100)
    mem_steps: int = 400
    mem_batch: int = 64
    mem_hidden: int = 64
    mem_eval: int = 512
    sweep_mu: Sequence[float] = (0.3, 0.6, 0.9)
    sweep_s: Sequence[float] = (0.3, 0.6, 1.0)
    sweep_seeds: int = 1
    sweep_T: int = 25
    clip_T: int = 50
    reg_epochs: int = 8
    gen_epochs: int = 60
    tsne_names: int = 800
    grad_names: int = 256

    def describe(self) -> str:
        return (
            f"budget '{self.name}': at most {self.max_train} training names per task, {self.max_eval} "
            f"evaluation names, embedding {self.embed}, hidden {self.hidden}, {self.epochs} epoch(s), "
            f"batch {self.batch_size}, AdamW lr {self.lr}, {self.seeds} seed(s) per setting; memorizer: "
            f"{self.mem_steps} steps of batch {self.mem_batch}, hidden {self.mem_hidden}"
        )


BUDGETS = {
    "full": Budget(
        "full",
        max_train=6000,
        max_eval=2000,
        hidden=64,
        embed=32,
        epochs=4,
        seeds=3,
        lr=5e-3,
        evals_per_epoch=3,
        mem_steps=400,
        sweep_seeds=2,
        reg_epochs=8,
        gen_epochs=60,
    ),
    "quick": Budget(
        "quick",
        max_train=1200,
        max_eval=500,
        hidden=32,
        embed=16,
        epochs=2,
        seeds=2,
        evals_per_epoch=2,
        batch_size=32,
        lr=1e-2,
        mem_steps=40,
        mem_batch=32,
        mem_hidden=32,
        mem_eval=256,
        sweep_mu=(0.3, 0.9),
        sweep_s=(0.3, 1.0),
        sweep_T=10,
        clip_T=25,
        reg_epochs=2,
        gen_epochs=25,
        tsne_names=300,
        grad_names=64,
    ),
    "tiny": Budget(
        "tiny",
        max_train=120,
        max_eval=60,
        hidden=8,
        embed=8,
        epochs=2,
        seeds=2,
        evals_per_epoch=1,
        batch_size=32,
        lr=2e-2,
        mem_steps=2,
        mem_batch=8,
        mem_hidden=8,
        mem_eval=32,
        sweep_mu=(0.6,),
        sweep_s=(0.6,),
        sweep_T=5,
        clip_T=5,
        reg_epochs=1,
        gen_epochs=2,
        tsne_names=40,
        grad_names=8,
    ),
}


# ------------------------------------------------------------------------------------------ report pieces


@dataclass
class Section:
    key: str
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, headers: Sequence[str], rows: Sequence[Sequence], caption: str = "") -> None:
        self.blocks.append(("table", list(headers), [list(map(str, r)) for r in rows], caption))

    def figure(self, png: Path, caption: str) -> None:
        self.blocks.append(("figure", Path(png), caption))

    def html(self, raw: str, caption: str = "") -> None:
        self.blocks.append(("html", raw, caption))


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (8, 4.5), **kw: Any) -> tuple[Figure, Any]:
    """A figure (no pyplot: nothing global) and its ``(nrows, ncols)`` array of axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


# ------------------------------------------------------------------------------------------ numbers and words


def mean_sd(values: Iterable[float | None]) -> dict[str, Any]:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return {"mean": None, "sd": None, "n": 0, "values": []}
    return {
        "mean": float(v.mean()),
        "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "n": int(len(v)),
        "values": [float(x) for x in v],
    }


def pm(st: dict, digits: int = 3) -> str:
    if not st or st.get("mean") is None:
        return "n/a"
    if st["n"] <= 1:
        return f"{st['mean']:.{digits}f} [1 run]"
    return f"{st['mean']:.{digits}f} ± {st['sd']:.{digits}f}"


def rank_sentence(
    what: str, stats: dict[str, dict], higher: bool = True, digits: int = 3, names: dict[str, str] | None = None
) -> str:
    """One sentence ranking settings by mean, worded by whether the gap exceeds the spread."""
    names = names or CELL_NAMES
    ok = {k: v for k, v in stats.items() if v and v.get("mean") is not None}
    if not ok:
        return f"No setting gave a defined {what}."
    order = sorted(ok, key=lambda k: ok[k]["mean"], reverse=higher)
    lab = lambda k: names.get(k, k)  # noqa: E731
    if len(order) > 1 and ok[order[0]]["mean"] - ok[order[-1]]["mean"] == 0:
        return f"All settings had the same mean {what} ({pm(ok[order[0]], digits)}): no ranking."
    best = order[0]
    s = f"{lab(best)} had the {'highest' if higher else 'lowest'} mean {what} ({pm(ok[best], digits)})"
    if len(order) > 1:
        second = order[1]
        gap = abs(ok[best]["mean"] - ok[second]["mean"])
        spread = max(ok[best]["sd"] or 0.0, ok[second]["sd"] or 0.0)
        if ok[best]["n"] < 2 or gap <= spread:
            s += (
                f"; the runner-up {lab(second)} ({pm(ok[second], digits)}) is within the seed-to-seed spread"
                + (" (one run each, no spread available)" if ok[best]["n"] < 2 else "")
                + ", so this ranking is not reliable"
            )
        else:
            s += f", ahead of {lab(second)} ({pm(ok[second], digits)}) by more than the seed-to-seed spread"
        worst = order[-1]
        if worst != second:
            s += f"; {lab(worst)} had the {'lowest' if higher else 'highest'} ({pm(ok[worst], digits)})"
    return s + "."


def json_safe(x: Any) -> Any:
    """``x`` with what JSON cannot hold made plain: NumPy numbers, arrays, paths; NaN and inf as None."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, Path):
        return str(x)
    return x


# ------------------------------------------------------------------------------------------ data


@dataclass
class Split:
    train: NameDataset
    valid: NameDataset
    test: NameDataset
    tok: CharTokenizer
    labels: list[str]
    full: NameDataset


class StudyData:
    """The data folder (``names/``, ``first_names.csv``, ``elements.txt``), loaded once and split once
    (grouped by name string, seed 0), so every cell sees the same split."""

    def __init__(self, root: str | Path, budget: Budget) -> None:
        self.root = Path(root).expanduser()
        self.budget = budget
        self._cache: dict[str, Split] = {}
        for p in (self.names_path, self.gender_path, self.elements_path):
            if not p.exists():
                raise UsageError(
                    f"{self.root}: expected names/, first_names.csv and elements.txt inside "
                    f"(missing {p.name}); point --data at a folder laid out like ../shared/data"
                )

    names_path = property(lambda self: self.root / "names")
    gender_path = property(lambda self: self.root / "first_names.csv")
    elements_path = property(lambda self: self.root / "elements.txt")

    def _split(self, key: str, path: Path, labels_fn: Callable[[NameDataset], list[str]]) -> Split:
        if key not in self._cache:
            ds = load(path)
            train, valid, test = grouped_split(ds, seed=0)
            rng = np.random.default_rng(0)

            def cap(d: NameDataset, n: int) -> NameDataset:
                if n and len(d) > n:
                    return d.subset(sorted(rng.permutation(len(d))[:n].tolist()))
                return d

            train = cap(train, self.budget.max_train)
            valid, test = cap(valid, self.budget.max_eval), cap(test, self.budget.max_eval)
            tok = CharTokenizer.fit(train.names + valid.names + test.names, lowercase=True)
            self._cache[key] = Split(train, valid, test, tok, labels_fn(ds), ds)
        return self._cache[key]

    def surnames(self) -> Split:
        return self._split("surnames", self.names_path, lambda ds: list(ds.labels))

    def first_names(self) -> Split:
        return self._split("first_names", self.gender_path, lambda ds: ["M", "F"])

    def lines(self, path: str | Path) -> Split:
        return self._split(f"lines:{path}", Path(path), lambda ds: [])


class Context:
    """What every part of the study reads (the data, the output folder, the budget) and fills in (its
    numbers in ``results``, trained models in ``cache``, the PNGs it wrote in ``figures``)."""

    def __init__(
        self, data: StudyData, out: Path, budget: Budget, progress: bool, lines: str | None, grad_batch: int
    ) -> None:
        self.data, self.out, self.budget, self.progress = data, out, budget, progress
        self.lines, self.grad_batch = lines, grad_batch
        self.results: dict[str, Any] = {}
        self.cache: dict[tuple, dict] = {}
        self.figures: list[Path] = []

    def save(self, fig: Figure, name: str) -> Path:
        path = self.out / name
        fig.savefig(path, format="png", dpi=100)
        self.figures.append(path)
        return path


# ------------------------------------------------------------------------------------------ the loop


@dataclass
class FitResult:
    model: nn.Module
    step_losses: list[float]
    valid_curve: list[tuple]  # (step, valid loss)
    seconds: float
    parameters: int
    diverged: bool = False


def fit(
    model: nn.Module,
    batch_iter: Callable[[int], Iterable],
    loss_fn: Callable,
    epochs: int,
    *,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
    clip: float = 1.0,
    l1: float = 0.0,
    l2: float = 0.0,
    valid_loss: Callable[[nn.Module], float] | None = None,
    evals_per_epoch: int = 1,
    steps_per_epoch: int | None = None,
    desc: str = "",
    progress: bool = True,
    seed: int = 0,
) -> FitResult:
    """A study run of the trainer's loop (:class:`namemodels.training.loop.Loop`: AdamW, cosine LR, optional
    clipping and L1/L2), in memory, with the validation loss a few times per epoch and a diverged run
    (a loss that is not finite) stopped and marked. ``batch_iter(epoch)`` yields batches,
    ``loss_fn(model, batch)`` a loss."""
    torch.manual_seed(seed)
    loop = Loop(
        model,
        loss_fn,
        lr=lr,
        weight_decay=weight_decay,
        clip=clip,
        l1=l1,
        l2=l2,
        schedule="cosine",
        total_steps=max(1, epochs * (steps_per_epoch or 1)),
        stop_on_divergence=True,
    )
    losses, curve = [], []
    every = max(1, (steps_per_epoch or 1) // max(1, evals_per_epoch))

    def validate(i: int) -> None:
        last = steps_per_epoch is not None and i == steps_per_epoch - 1
        if valid_loss is not None and (loop.steps % every == 0 or last):
            model.eval()
            try:
                curve.append((loop.steps, float(valid_loss(model))))
            except FloatingPointError:
                curve.append((loop.steps, float("nan")))

    t0 = time.perf_counter()
    bar = progress_bar(max(1, epochs * (steps_per_epoch or 1)), desc, progress, unit="step")
    for epoch in range(epochs):
        losses += loop.epoch(batch_iter(epoch), bar, after_step=validate)
        if loop.diverged:
            break
    if bar is not None:
        bar.close()
    model.eval()
    return FitResult(model, losses, curve, time.perf_counter() - t0, count_parameters(model), loop.diverged)


# ------------------------------------------------------------------------------------------ name tasks


def task_config(budget: Budget, task: str, cell: str, seed: int = 0, **over: Any) -> TrainConfig:
    kw: dict[str, Any] = dict(
        task=task,
        cell=cell,
        embed=budget.embed,
        hidden=budget.hidden,
        epochs=budget.epochs,
        batch_size=budget.batch_size,
        lr=budget.lr,
        seed=seed,
        conditional=False,
        clip=1.0,
    )
    kw.update(over)
    return TrainConfig(**kw)


def split_for(ctx: Context, task: str) -> Split:
    return ctx.data.surnames() if task in ("classify", "generate") else ctx.data.first_names()


@torch.no_grad()
def mean_task_loss(
    cfg: TrainConfig,
    model: nn.Module,
    tok: CharTokenizer,
    ds: NameDataset,
    labels: Sequence[str],
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] | None = None,
) -> float:
    """The mean loss per name over ``ds`` (the task's loss, or ``loss_fn(model, batch)``)."""
    task = make_task(cfg, labels)
    loss_fn = loss_fn or task.loss
    total, n = 0.0, 0
    for idx in batches(len(ds), 512):
        total += float(loss_fn(model, task.batch(tok, ds, idx))) * len(idx)
        n += len(idx)
    return total / max(1, n)


def train_name_task(
    ctx: Context,
    cfg: TrainConfig,
    desc: str = "",
    model: nn.Module | None = None,
    loss_fn: Callable[[nn.Module, Batch], torch.Tensor] | None = None,
    epochs: int | None = None,
    hooks: Callable[[nn.Module], object] | None = None,
) -> dict:
    """Train one name model with :func:`fit`; returns the model, curves, time and valid/test metrics."""
    sp = split_for(ctx, cfg.task)
    labels = task_labels(cfg, sp.labels)
    spec = model_spec(cfg, len(sp.tok), labels)
    torch.manual_seed(cfg.seed)
    model = model if model is not None else build_model(spec)
    if hooks:
        hooks(model)
    task = make_task(cfg, labels)
    loss_fn = loss_fn or task.loss
    steps = math.ceil(len(sp.train) / cfg.batch_size)

    def batch_iter(epoch):
        rng = np.random.default_rng([cfg.seed, epoch])
        for idx in batches(len(sp.train), cfg.batch_size, rng):
            yield task.batch(sp.tok, sp.train, idx, rng)

    res = fit(
        model,
        batch_iter,
        loss_fn,
        epochs or cfg.epochs,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        clip=cfg.clip,
        l1=cfg.l1,
        l2=cfg.l2,
        steps_per_epoch=steps,
        valid_loss=lambda m: mean_task_loss(cfg, m, sp.tok, sp.valid, labels, loss_fn),
        evals_per_epoch=ctx.budget.evals_per_epoch,
        desc=desc,
        progress=ctx.progress,
        seed=cfg.seed,
    )
    config = {"task": cfg.task, "labels": labels, "model": spec}
    out = {"model": res.model, "fit": res, "config": config, "cfg": cfg, "tok": sp.tok, "labels": labels}
    out["valid"] = task.metrics(res.model, sp.tok, sp.valid)
    out["test"] = task.metrics(res.model, sp.tok, sp.test)
    return out


def get_model(ctx: Context, task: str, cell: str = "lstm", seed: int = 0) -> dict:
    """A trained model from the cell comparison if it ran, else train one now (same settings)."""
    key = (task, cell, seed)
    if key not in ctx.cache:
        ctx.cache[key] = train_name_task(
            ctx, task_config(ctx.budget, task, cell, seed), desc=f"{task} {cell} seed {seed}"
        )
    return ctx.cache[key]


def sample(
    model: nn.Module, tok: CharTokenizer, n: int, temperature: float = 1.0, seed: int = 0, max_len: int = 24
) -> list[str]:
    """``n`` strings (empty where the model ended at once) from a next-character model
    (CharLM or MultiTask) at a temperature: the package's one sampler on the model in memory."""
    ids = sample_ids(TorchBackend(model), tok, n, np.random.default_rng(seed), temperature, max_len=max_len)
    return [tok.decode(o) for o in ids]
