"""Part 10: regularisation of the LSTM surname classifier: variational dropout, L1/L2, clipping."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..evaluate import evaluate_split
from .common import Context, Section, mean_sd, new_figure, pm, rank_sentence, task_config, train_name_task

SETTINGS: dict[str, dict[str, float]] = {
    "none": dict(clip=0.0, weight_decay=0.0),
    "variational dropout 0.3": dict(clip=0.0, weight_decay=0.0, dropout=0.3),
    "L2 1e-4": dict(clip=0.0, weight_decay=0.0, l2=1e-4),
    "L1 1e-5": dict(clip=0.0, weight_decay=0.0, l1=1e-5),
    "clipping at norm 1": dict(clip=1.0, weight_decay=0.0),
    "all of them": dict(clip=1.0, weight_decay=0.0, dropout=0.3, l1=1e-5, l2=1e-4),
}


def locked_dropout(p: float) -> Callable[[nn.Module], object]:
    """Variational ("locked") dropout on the embedded input: one mask per name, reused at every step."""

    def hook(mod, inp, out):
        if not mod.training or p <= 0:
            return out
        mask = out.new_empty(out.shape[0], 1, out.shape[2]).bernoulli_(1 - p) / (1 - p)
        return out * mask

    return lambda model: model.get_submodule("encoder.embedding").register_forward_hook(hook)


def run(ctx: Context) -> Section:
    b = ctx.budget
    sec = Section("regularisation", "10. Regularisation of the LSTM classifier")
    sp = ctx.data.surnames()
    import numpy as np

    pick = np.random.default_rng(0).permutation(len(sp.train))[: b.max_eval]
    train_eval = sp.train.subset(sorted(pick.tolist()))  # a random sample: records are grouped by label
    res: dict[str, Any] = {"epochs": b.reg_epochs, "seeds": b.seeds, "settings": {}}
    for name, over in SETTINGS.items():
        runs = []
        for seed in range(b.seeds):
            cfg = task_config(b, "classify", "lstm", seed, **over)
            r = train_name_task(
                ctx,
                cfg,
                desc=f"regularisation {name} s{seed}",
                epochs=b.reg_epochs,
                hooks=locked_dropout(over.get("dropout", 0.0)),
            )
            tr = evaluate_split(r["config"], r["model"], r["tok"], train_eval)["accuracy"]
            runs.append(
                {
                    "train": tr,
                    "valid": r["valid"]["accuracy"],
                    "test": r["test"]["accuracy"],
                    "gap": tr - r["valid"]["accuracy"],
                }
            )
        res["settings"][name] = {k: mean_sd(x[k] for x in runs) for k in ("train", "valid", "test", "gap")}
        res["settings"][name]["config"] = over
    ctx.results["regularisation"] = res
    S = res["settings"]
    sec.p(
        f"The LSTM surname classifier trained for {b.reg_epochs} epoch(s) with each regulariser alone and all "
        "together (AdamW's weight decay off so L2 is the only weight penalty). Variational dropout here draws one "
        "mask per name on the embedded input and reuses it at every step, plus dropout on the final encoding; "
        "the layers' own recurrent (hidden-to-hidden) dropout is not part of this study."
    )
    sec.table(
        ["setting", "train accuracy", "valid accuracy", "test accuracy", "train − valid gap"],
        [[n, pm(S[n]["train"]), pm(S[n]["valid"]), pm(S[n]["test"]), pm(S[n]["gap"])] for n in S],
        f"Accuracy (mean ± sd over {b.seeds} seeds); the train accuracy is on {len(train_eval)} training names.",
    )
    sec.p(
        rank_sentence("validation accuracy", {n: S[n]["valid"] for n in S}, True, names={})
        + " "
        + rank_sentence("train − valid gap", {n: S[n]["gap"] for n in S}, False, names={})
        + (
            " With this short training the model has barely begun to overfit (gap of the unregularised model "
            f"{pm(S['none']['gap'])}), so the regularisers have little to correct."
            if (S["none"]["gap"]["mean"] or 0) < 0.05
            else ""
        )
    )
    fig, ax = new_figure(1, 1, (9, 4))
    ax = ax[0, 0]
    names = list(S)
    x = range(len(names))
    for k, off, color in (("train", -0.25, "tab:gray"), ("valid", 0, "tab:blue"), ("test", 0.25, "tab:green")):
        ax.bar(
            [i + off for i in x],
            [S[n][k]["mean"] or 0 for n in names],
            0.25,
            yerr=[S[n][k]["sd"] or 0 for n in names],
            capsize=3,
            color=color,
            label=k,
        )
    ax.set_xticks(list(x), names, rotation=15, fontsize=8)
    ax.set_xlabel("regulariser")
    ax.set_ylabel("accuracy (fraction correct)")
    ax.set_title("LSTM surname classifier: train / valid / test accuracy by regulariser")
    ax.legend()
    png = ctx.save(fig, "regularisation.png")
    sec.figure(
        png,
        "Train, validation and test accuracy per regulariser (error bars: sd over seeds). What to see: "
        "the distance between the grey (train) bar and the blue/green (held-out) bars is the "
        "overfitting a regulariser should shrink.",
    )
    return sec
