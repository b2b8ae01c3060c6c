"""Part 3: perplexity two ways (exp of mean cross-entropy; the product of per-character
probabilities, accumulated as mantissa and exponent so it never underflows) and two baselines."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from ..baselines import unigram_nll
from ..batching import IGNORE, next_char_pairs
from ..tokenizer import CharTokenizer
from .common import Context, Section, get_model, new_figure


@torch.no_grad()
def token_logits(
    model: nn.Module, tok: CharTokenizer, names: Sequence[str], batch: int = 512
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (logits float64 (B,T,V), targets (B,T) with IGNORE for padding) for a next-char model."""
    m = copy.deepcopy(model).double().eval()
    for i in range(0, len(names), batch):
        inputs, targets, lengths = (torch.from_numpy(a) for a in next_char_pairs(tok, names[i : i + batch]))
        yield m(inputs, lengths)[0], targets


def perplexity_two_ways(model: nn.Module, tok: CharTokenizer, names: Sequence[str]) -> dict:
    ce_sum, n = 0.0, 0
    mant, expo = 1.0, 0
    for logits, targets in token_logits(model, tok, names):
        ce_sum += float(
            nn.functional.cross_entropy(logits.transpose(1, 2), targets, ignore_index=IGNORE, reduction="sum")
        )
        mask = targets != IGNORE
        probs = torch.softmax(logits, -1).gather(2, targets.clamp(min=0).unsqueeze(2)).squeeze(2)[mask]
        for p in probs.tolist():  # (prod p) kept as mant * 2**expo, mant in [0.5, 1)
            mant, e = math.frexp(mant * p)
            expo += e
        n += int(mask.sum())
    ppl_ce = math.exp(ce_sum / n)
    log_prod = math.log(mant) + expo * math.log(2.0)
    ppl_prod = math.exp(-log_prod / n)
    return {
        "tokens": n,
        "perplexity_exp_mean_ce": ppl_ce,
        "perplexity_product": ppl_prod,
        "abs_difference": abs(ppl_ce - ppl_prod),
        "log2_product_of_probabilities": log_prod / math.log(2.0),
    }


def run(ctx: Context) -> Section:
    sec = Section("perplexity", "3. Perplexity, two ways, and baselines")
    r = get_model(ctx, "generate", "lstm", 0)
    sp = ctx.data.surnames()
    two = perplexity_two_ways(r["model"], r["tok"], sp.valid.names)
    uniform = float(len(r["tok"].chars) + 1)  # every character plus the end marker, equally likely
    unigram = unigram_nll(sp.train.names, sp.valid.names, r["tok"])["perplexity"]
    res = dict(
        two,
        uniform=uniform,
        unigram=unigram,
        vocabulary_outputs=int(uniform),
        model_float32_perplexity=r["valid"]["perplexity"],
        agree_1e_6=two["abs_difference"] < 1e-6,
    )
    ctx.results["perplexity"] = res
    sec.p(
        "The LSTM surname generator (seed 0) is scored on the validation names, each ending with the "
        "end marker. Way 1 is exp of the mean cross-entropy; way 2 multiplies the probabilities the model "
        "gave each correct next character and takes (∏p)<sup>−1/N</sup>, keeping the product as a "
        "mantissa in [0.5, 1) and a power of two so that it cannot underflow (the raw product is about "
        f"2<sup>{two['log2_product_of_probabilities']:.0f}</sup>). Both run in float64."
    )
    sec.table(
        ["quantity", "value"],
        [
            ["tokens N (characters + end markers)", two["tokens"]],
            ["perplexity = exp(mean cross-entropy)", f"{two['perplexity_exp_mean_ce']:.9f}"],
            ["perplexity = (∏ p)^(−1/N)", f"{two['perplexity_product']:.9f}"],
            ["absolute difference", f"{two['abs_difference']:.2e}"],
            ["same model evaluated in float32 (part 2's metric)", f"{res['model_float32_perplexity']:.6f}"],
            ["uniform baseline (= number of possible outputs)", f"{uniform:.0f}"],
            ["unigram baseline (add-one character frequencies)", f"{unigram:.3f}"],
        ],
        "Validation perplexity of the LSTM generator, computed two ways, beside two baselines.",
    )
    agree = "agree to within 1e-6" if res["agree_1e_6"] else "do NOT agree to within 1e-6"
    better = two["perplexity_exp_mean_ce"] < unigram
    sec.p(
        f"The two computations {agree} (difference {two['abs_difference']:.1e}). The model's perplexity "
        f"({two['perplexity_exp_mean_ce']:.3f}) is {'below' if better else 'not below'} the unigram baseline "
        f"({unigram:.3f}) and {'below' if two['perplexity_exp_mean_ce'] < uniform else 'not below'} the "
        f"uniform one ({uniform:.0f}): perplexity reads as the number of equally likely next characters the "
        "model is choosing between."
    )
    fig, ax = new_figure(1, 1, (6, 3.5))
    ax = ax[0, 0]
    vals = [uniform, unigram, two["perplexity_exp_mean_ce"]]
    bars = ax.barh(["uniform", "unigram", "LSTM"], vals, color=["0.6", "tab:gray", "tab:red"])
    ax.bar_label(bars, fmt="%.2f", padding=2)
    ax.set_xlabel("validation perplexity (equally likely choices per character; lower is better)")
    ax.set_ylabel("model")
    ax.margins(x=0.15)
    png = ctx.save(fig, "perplexity_baselines.png")
    sec.figure(
        png,
        "Validation perplexity of the LSTM generator beside the uniform and unigram baselines. "
        "What to see: how much of the gap from uniform the character context closes beyond letter "
        "frequencies alone.",
    )
    return sec
