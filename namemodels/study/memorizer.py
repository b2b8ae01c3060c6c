"""Part 7: the memorizer task: read T one-hot symbols (10 kinds), then name the first one."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ..kernels import make_layer
from .common import (
    CELL_COLORS,
    CELL_NAMES,
    STUDY_CELLS,
    Context,
    FitResult,
    Section,
    fit,
    mean_sd,
    new_figure,
    pm,
    rank_sentence,
)

SYMBOLS = 10
MEM_CELLS = STUDY_CELLS[:1] + ("rnn_relu",) + STUDY_CELLS[1:]


class Memorizer(nn.Module):
    def __init__(self, cell: str, hidden: int, **kw: Any) -> None:
        super().__init__()
        self.rnn = make_layer(cell, SYMBOLS, hidden, batch_first=True, **kw)
        self.head = nn.Linear(hidden, SYMBOLS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def make_batch(T: int, B: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x (B, T, SYMBOLS) one-hot, y (B,) the first symbol of each sequence)``."""
    sym = rng.integers(0, SYMBOLS, (B, T))
    x = torch.nn.functional.one_hot(torch.from_numpy(sym), SYMBOLS).float()
    return x, torch.from_numpy(sym[:, 0])


def _loss(m, b):
    return nn.functional.cross_entropy(m(b[0]), b[1])


@torch.no_grad()
def accuracy(model: nn.Module, T: int, n: int, seed: int = 12345) -> float:
    x, y = make_batch(T, n, np.random.default_rng([seed, T]))
    try:
        return float((model(x).argmax(1) == y).float().mean())
    except FloatingPointError:
        return float("nan")


def train_memorizer(
    ctx: Context, cell: str, T: int, seed: int = 0, clip: float = 1.0, mu: float = 0.6, s: float = 0.6
) -> FitResult:
    """One memorizer of ``cell`` trained at length ``T`` (``mu``, ``s``: a momentum cell's settings)."""
    b = ctx.budget
    torch.manual_seed(seed)
    kw = {"mu": mu, "s": s} if cell.startswith("momentum") else {}
    model = Memorizer(cell, b.mem_hidden, **kw)

    def batch_iter(epoch):
        rng = np.random.default_rng([seed, T, 7])
        for _ in range(b.mem_steps):
            yield make_batch(T, b.mem_batch, rng)

    res = fit(
        model,
        batch_iter,
        _loss,
        1,
        lr=1e-2,
        weight_decay=0.0,
        clip=clip,
        steps_per_epoch=b.mem_steps,
        desc=f"memorizer {cell} T={T}{'' if clip else ' no clip'}",
        progress=ctx.progress,
        seed=seed,
    )
    return res


def run(ctx: Context) -> Section:
    b = ctx.budget
    sec = Section("memorizer", "7. Memorizer task")
    seeds = range(max(1, b.sweep_seeds))
    Ts = list(b.mem_T)
    t_short = 10 if 10 in Ts else Ts[0]
    acc: dict[str, dict[int, dict[str, Any]]] = {}
    models: dict[tuple[str, int], nn.Module] = {}
    diverged: dict[tuple[str, int, int], bool] = {}
    raw: dict[tuple[str, int, int], float] = {}
    for cell in MEM_CELLS:
        acc[cell] = {}
        for T in Ts:
            vals = []
            for seed in seeds:
                r = train_memorizer(ctx, cell, T, seed)
                vals.append(accuracy(r.model, T, b.mem_eval) if not r.diverged else float("nan"))
                raw[(cell, T, seed)] = vals[-1]
                diverged[(cell, T, seed)] = r.diverged
                if T == t_short:
                    models[(cell, seed)] = r.model
            acc[cell][T] = mean_sd(vals)
    # train short, test long
    general = {c: {T: mean_sd(accuracy(models[(c, s)], T, b.mem_eval) for s in seeds) for T in Ts} for c in MEM_CELLS}
    # clipping on / off
    clip_cells = ("rnn_tanh", "rnn_relu", "lstm")
    clip: dict[str, dict[str, Any]] = {}
    for cell in clip_cells:
        on: list[float] = []
        off: list[float] = []
        div_off = 0
        for seed in seeds:
            if (cell, b.clip_T, seed) in raw:
                on.append(raw[(cell, b.clip_T, seed)])
            else:
                r_on = train_memorizer(ctx, cell, b.clip_T, seed, clip=1.0)
                on.append(float("nan") if r_on.diverged else accuracy(r_on.model, b.clip_T, b.mem_eval))
            r_off = train_memorizer(ctx, cell, b.clip_T, seed, clip=0.0)
            div_off += r_off.diverged
            off.append(float("nan") if r_off.diverged else accuracy(r_off.model, b.clip_T, b.mem_eval))
        clip[cell] = {"clip_1": mean_sd(on), "no_clip": mean_sd(off), "diverged_without_clip": div_off}
    ctx.results["memorizer"] = {
        "symbols": SYMBOLS,
        "chance": 1 / SYMBOLS,
        "T": Ts,
        "seeds": len(seeds),
        "steps": b.mem_steps,
        "hidden": b.mem_hidden,
        "accuracy": {c: {str(T): v for T, v in acc[c].items()} for c in MEM_CELLS},
        "train_T": t_short,
        "train_short_test_long": {c: {str(T): v for T, v in general[c].items()} for c in MEM_CELLS},
        "clip_T": b.clip_T,
        "clipping": clip,
        "diverged_runs": sum(diverged.values()),
    }
    sec.p(
        f"Each sequence is T symbols drawn uniformly from {SYMBOLS}, fed one-hot; after the last one the "
        f"model must name the first. Chance is {1 / SYMBOLS:.0%}. Every cell (hidden {b.mem_hidden}) trains "
        f"{b.mem_steps} steps of {b.mem_batch} fresh sequences (AdamW lr 1e-2, cosine schedule, clipping at 1.0) "
        f"per T, "
        f"{len(seeds)} seed(s); accuracy is on {b.mem_eval} new sequences."
    )
    sec.table(
        ["cell"] + [f"T = {T}" for T in Ts],
        [[CELL_NAMES[c]] + [pm(acc[c][T], 2) for T in Ts] for c in MEM_CELLS],
        "Memorizer accuracy (fraction of first symbols recalled) by sequence length T, trained at that T.",
    )
    longest = Ts[-1]
    sec.p(
        rank_sentence(f"accuracy at T = {Ts[0]}", {c: acc[c][Ts[0]] for c in MEM_CELLS}, True, 2)
        + " "
        + rank_sentence(f"accuracy at T = {longest}", {c: acc[c][longest] for c in MEM_CELLS}, True, 2)
        + f" Accuracies near {1 / SYMBOLS:.2f} mean the cell did not learn to carry the first symbol that far"
        + (" in this small budget." if b.name != "full" else ".")
    )
    fig, axes = new_figure(1, 2, (13, 4.5))
    for c in MEM_CELLS:
        m = [acc[c][T]["mean"] if acc[c][T]["mean"] is not None else np.nan for T in Ts]
        sd = [acc[c][T]["sd"] or 0 for T in Ts]
        axes[0, 0].errorbar(Ts, m, yerr=sd, color=CELL_COLORS[c], marker="o", capsize=3, label=CELL_NAMES[c])
        g = [general[c][T]["mean"] if general[c][T]["mean"] is not None else np.nan for T in Ts]
        axes[0, 1].plot(Ts, g, color=CELL_COLORS[c], marker="o", label=CELL_NAMES[c])
    for ax, title in (
        (axes[0, 0], "trained and tested at each T"),
        (axes[0, 1], f"trained at T = {t_short}, tested at T"),
    ):
        ax.axhline(1 / SYMBOLS, color="0.5", ls=":", label="chance")
        ax.set_xscale("log")
        ax.set_xticks(Ts)
        ax.set_xticklabels([str(t) for t in Ts])
        ax.set_xlabel("sequence length T (steps between the symbol and the question)")
        ax.set_ylabel("accuracy (fraction recalled)")
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
    axes[0, 0].legend(fontsize=8)
    png = ctx.save(fig, "memorizer.png")
    sec.figure(
        png,
        "Memorizer accuracy against T for every cell (left: trained at each T, error bars = sd over "
        f"seeds; right: the T = {t_short} models tested on longer and shorter sequences). What to see: "
        "where each cell falls to chance (dotted line) as the distance grows.",
    )
    sec.table(
        ["cell", "with clipping (max norm 1)", "without clipping", "runs that diverged without clipping"],
        [
            [CELL_NAMES[c], pm(clip[c]["clip_1"], 2), pm(clip[c]["no_clip"], 2), clip[c]["diverged_without_clip"]]
            for c in clip_cells
        ],
        f"Gradient clipping on vs off at T = {b.clip_T}.",
    )
    words = []
    for c in clip_cells:
        on_st, off_st = clip[c]["clip_1"], clip[c]["no_clip"]
        if on_st["mean"] is None or off_st["mean"] is None:
            words.append(f"{CELL_NAMES[c]}: {clip[c]['diverged_without_clip']} run(s) diverged without clipping.")
            continue
        d = on_st["mean"] - off_st["mean"]
        within = abs(d) <= max(on_st["sd"], off_st["sd"]) or on_st["n"] < 2
        words.append(
            f"{CELL_NAMES[c]} reached {pm(on_st, 2)} with clipping and {pm(off_st, 2)} without"
            + (" (within the spread)." if within else ".")
        )
    general_long = {c: general[c][longest] for c in MEM_CELLS}
    sec.p(
        " ".join(words)
        + " Train short, test long: "
        + rank_sentence(f"accuracy at T = {longest} after training at T = {t_short}", general_long, True, 2)
    )
    return sec
