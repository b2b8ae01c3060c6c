"""Part 8 (embeddings: PCA and t-SNE, an interactive SVG scatter) and part 9 (reading a name)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..batching import encode_batch
from ..evaluate import classifier_logprobs
from ..models import CharClassifier
from ..tokenizer import CharTokenizer
from .common import Context, Section, get_model, new_figure

VOWELS = set("aeiou")
# matplotlib's tab20, dark shades first, then the light ones: neighbours in sorted order stay distinct
PALETTE = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
]


def project(X: np.ndarray, how: str, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    if len(X) < 3:
        return np.zeros((len(X), 2))
    if how == "pca":
        return PCA(2, random_state=seed).fit_transform(X)
    return TSNE(2, perplexity=float(min(30, max(2, (len(X) - 1) // 3))), init="pca", random_state=seed).fit_transform(X)


def svg_scatter(
    xy: np.ndarray, labels: Sequence[object], colors_by: Sequence[str], title: str, width: int = 720, height: int = 520
) -> str:
    """A self-contained SVG scatter; hovering a point shows its <title> (no scripts, no CDN)."""
    groups = sorted(set(colors_by))
    color = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    pad, legend_w = 40, 150
    lo, hi = xy.min(0), xy.max(0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    px = pad + (xy[:, 0] - lo[0]) / span[0] * (width - legend_w - 2 * pad)
    py = height - pad - (xy[:, 1] - lo[1]) / span[1] * (height - 2 * pad)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white" stroke="#ccc"/>',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
        f'<text x="{(width - legend_w) / 2}" y="{height - 8}" text-anchor="middle">t-SNE dimension 1 (no unit)</text>',
        f'<text x="12" y="{height / 2}" text-anchor="middle" transform="rotate(-90 12 {height / 2})">'
        "t-SNE dimension 2 (no unit)</text>",
    ]
    for x, y, lab, g in zip(px, py, labels, colors_by):
        out.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color[g]}" fill-opacity="0.75">'
            f"<title>{html.escape(str(lab))} ({html.escape(str(g))})</title></circle>"
        )
    for i, g in enumerate(groups):
        y = 40 + 16 * i
        out.append(
            f'<circle cx="{width - legend_w + 10}" cy="{y - 4}" r="5" fill="{color[g]}"/>'
            f'<text x="{width - legend_w + 20}" y="{y}">{html.escape(str(g))}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


@torch.no_grad()
def encodings(model: CharClassifier, tok: CharTokenizer, names: Sequence[str]) -> np.ndarray:
    """The classifier's encoding of each name (what its head reads), ``(len(names), features)``."""
    ids, lengths = encode_batch(tok, names)
    return model.encode(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()


def _group_scatter(
    ax: Any, xy: np.ndarray, groups: Sequence[str], colors: dict, how: str, what: str, **style: Any
) -> None:
    """One 2-D projection panel: a scatter per group (in ``colors``' order), axes named for ``how``."""
    for g, c in colors.items():
        m = [i for i, x in enumerate(groups) if x == g]
        if m:
            ax.scatter(xy[m, 0], xy[m, 1], c=c, label=g, **style)
    axis = "PC" if how == "pca" else "t-SNE dimension "
    ax.set_xlabel(f"{axis}1 (no unit)")
    ax.set_ylabel(f"{axis}2 (no unit)")
    ax.set_title(("PCA" if how == "pca" else "t-SNE") + f" of {what}")


def run_embeddings(ctx: Context) -> Section:
    b = ctx.budget
    sec = Section("embeddings", "8. Embeddings")
    mt = get_model(ctx, "multitask", "lstm", 0)
    tok = mt["tok"]
    chars = [c for c in tok.chars]
    E = mt["model"].encoder.embedding.weight.detach().numpy()[[tok.stoi[c] for c in chars]]
    kind = ["vowel" if c in VOWELS else ("consonant" if c.isalpha() else "other") for c in chars]
    col = {"vowel": "tab:red", "consonant": "tab:blue", "other": "tab:gray"}
    fig, axes = new_figure(1, 2, (13, 5.5))
    res: dict[str, Any] = {"characters": chars}
    for j, how in enumerate(("pca", "tsne")):
        xy = project(E, how)
        res[f"char_{how}"] = xy.tolist()
        ax = axes[0, j]
        _group_scatter(ax, xy, kind, col, how, "the character embeddings (multitask LSTM)", s=40)
        for c, (x, y) in zip(chars, xy):
            ax.annotate(
                repr(c)[1:-1] if not c.isalpha() else c, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=10
            )
        ax.legend()
    png = ctx.save(fig, "embeddings_chars.png")
    sec.figure(
        png,
        "Character embeddings of the multitask LSTM (first names; next character + sex), projected to "
        "2-D by PCA (left) and t-SNE (right); vowels red, consonants blue. What to see: whether vowels "
        "group apart from consonants — the model was never told which letters are vowels.",
    )
    from sklearn.metrics import silhouette_score

    lab = np.array([k == "vowel" for k in kind])
    if 2 <= lab.sum() <= len(lab) - 2:
        sil = float(silhouette_score(E, lab))
        res["vowel_consonant_silhouette"] = sil
        sec.p(
            f"Silhouette of the vowel/consonant grouping in the full {E.shape[1]}-dimensional embedding space: "
            f"{sil:.3f} (1 = cleanly separated, 0 = no separation, below 0 = mixed); "
            + (
                "the vowels do form a group of their own."
                if sil > 0.25
                else "a weak grouping at most."
                if sil > 0
                else "no sign that vowels group together."
            )
            + " One model (seed 0), so no spread."
        )
    # name encodings coloured by language
    cl = get_model(ctx, "classify", "lstm", 0)
    sp = ctx.data.surnames()
    pick = np.random.default_rng(0).permutation(len(sp.test))[: b.tsne_names]
    recs = [sp.test.records[i] for i in sorted(pick.tolist())]  # a random sample: records are sorted by label
    names, langs = [r.name for r in recs], [r.label for r in recs]
    H = encodings(cl["model"], cl["tok"], names)
    fig, axes = new_figure(1, 2, (14, 6))
    langs_sorted = sorted(set(langs))
    color = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(langs_sorted)}
    for j, how in enumerate(("pca", "tsne")):
        xy = project(H, how)
        res[f"names_{how}"] = xy.tolist()
        _group_scatter(axes[0, j], xy, langs, color, how, "test-surname encodings (classifier LSTM)", s=12, alpha=0.8)
        if how == "tsne":
            svg = svg_scatter(xy, names, langs, "t-SNE of surname encodings by language (hover for the name)")
    axes[0, 1].legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5))
    png = ctx.save(fig, "embeddings_names.png")
    (ctx.out / "embeddings_names.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Surname encodings</title>" + svg, encoding="utf-8"
    )
    res["names"], res["languages"] = names, langs
    ctx.results["embeddings"] = res
    sec.figure(
        png,
        f"Final hidden state of the LSTM surname classifier for {len(names)} test surnames, PCA (left) "
        "and t-SNE (right), coloured by language. What to see: languages the classifier separates "
        "well form their own islands; overlapping languages (e.g. English/Scottish/Irish) mix.",
    )
    sec.html(
        svg,
        "Interactive version of the t-SNE panel: hover over a point to see the surname and its language "
        "(also written to embeddings_names.html).",
    )
    return sec


@torch.no_grad()
def run_reading(ctx: Context) -> Section:
    sec = Section("reading", "9. Reading a name, one character at a time")
    cl = get_model(ctx, "classify", "lstm", 0)
    tok, labels = cl["tok"], cl["labels"]
    wanted = ["Nakamura", "Schwarz", "Papadopoulos", "O'Connor", "Rossi", "Dvorak"]
    names = [n for n in wanted if all(c in tok.stoi for c in tok.normalize(n))][:4]
    if len(names) < 2:
        names = (names + ctx.data.surnames().test.names)[:4]
    res = {"names": names, "labels": labels, "probabilities": {}}
    fig, axes = new_figure(1, len(names), (3.2 * len(names) + 2, 0.32 * len(labels) + 2.2))
    for j, name in enumerate(names):
        prefixes = [name[:k] for k in range(1, len(name) + 1)]
        P = np.exp(classifier_logprobs(cl["model"], tok, prefixes)).T  # (labels, prefixes)
        res["probabilities"][name] = P.tolist()
        ax = axes[0, j]
        im = ax.imshow(P, aspect="auto", cmap="magma", vmin=0, vmax=1)
        ax.set_xticks(range(len(name)), list(name))
        ax.set_yticks(range(len(labels)), labels if j == 0 else [""] * len(labels), fontsize=8)
        ax.set_xlabel("characters read so far")
        if j == 0:
            ax.set_ylabel("language")
        top = labels[int(P[:, -1].argmax())]
        ax.set_title(f"{name} → {top} ({P[:, -1].max():.2f})", fontsize=10)
    fig.colorbar(im, ax=axes[0, -1], label="P(language | prefix)")
    png = ctx.save(fig, "reading.png")
    ctx.results["reading"] = res
    sec.figure(
        png,
        "The LSTM surname classifier's probability of each language after reading each prefix of a "
        "name (columns: characters read so far; colour: probability from 0 to 1). What to see: the "
        "character at which the model commits to a language.",
    )
    words = []
    for name in names:
        P = np.array(res["probabilities"][name])
        final = int(P[:, -1].argmax())
        commit = next(
            (k for k in range(P.shape[1]) if all(P[:, m].argmax() == final for m in range(k, P.shape[1]))),
            P.shape[1] - 1,
        )
        words.append(
            f"“{name}” ends as {labels[final]} (p = {P[final, -1]:.2f}), the top guess from character "
            f"{commit + 1} of {len(name)} on"
        )
    sec.p("; ".join(words) + ".")
    return sec
