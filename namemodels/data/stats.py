"""What a data set holds, for ``namemodels data stats``: counts per class, the length histogram and
the letter frequency (:func:`stats`, JSON-safe), as text (:func:`format_stats`) and as a PNG
(:func:`plot_stats`, matplotlib only when called).
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Union

from ..errors import UsageError
from ..fileio import atomic_write
from .records import NameDataset

__all__ = ["stats", "format_stats", "plot_stats"]

PathLike = Union[str, Path]


def stats(ds: NameDataset) -> dict:
    """Counts per class, length histogram and letter frequency; JSON-safe (string keys). Works over
    the distinct records, each weighted by the lines that hold it."""
    distinct = ds.distinct()
    hist: collections.Counter = collections.Counter()
    letters: collections.Counter = collections.Counter()
    classes: collections.Counter = collections.Counter()
    labels_of = collections.defaultdict(set)
    for r, c in distinct:
        hist[len(r.name)] += c
        for ch, k in collections.Counter(r.name.lower()).items():
            letters[ch] += k * c
        if r.label is not None:
            classes[r.label] += c
        labels_of[r.name.casefold()].add(r.label)
    n = len(ds)
    length_sum = sum(length * c for length, c in hist.items())
    out = {
        "source": ds.source,
        "kind": ds.kind,
        "records": n,
        "unique_names": len(labels_of),
        "labels": list(ds.labels),
        "classes": {label: classes.get(label, 0) for label in ds.labels},
        "names_with_several_labels": sum(1 for s in labels_of.values() if len(s) > 1),
        "length": {
            "min": min(hist) if hist else 0,
            "max": max(hist) if hist else 0,
            "mean": round(length_sum / n, 3) if n else 0.0,
        },
        "length_histogram": {str(k): hist[k] for k in sorted(hist)},
        "letters": {c: letters[c] for c in sorted(letters, key=lambda c: (-letters[c], c))},
    }
    if ds.kind == "gender":
        total = sum(r.weight * c for r, c in distinct)
        female = sum(r.weight * r.female_share * c for r, c in distinct)
        out["births"] = {"total": total, "F": female, "M": total - female}
        out["ambiguous_names"] = sum(c for r, c in distinct if r.soft is not None and 0.1 < r.soft < 0.9)
    return out


def format_stats(st: dict) -> str:
    """Human-readable text of :func:`stats`."""
    lines = [f"{st['source']}: {st['records']} {st['kind']} records, {st['unique_names']} distinct names"]
    ln = st["length"]
    lines.append(f"length: min {ln['min']}, max {ln['max']}, mean {ln['mean']:.1f}")
    if st["classes"]:
        lines.append(f"classes ({len(st['classes'])}):")
        width = max(len(c) for c in st["classes"])
        total = max(1, st["records"])
        for c, n in st["classes"].items():
            lines.append(f"  {c:<{width}}  {n:>7}  {100 * n / total:5.1f}%")
        if st.get("names_with_several_labels"):
            lines.append(f"names under more than one label: {st['names_with_several_labels']}")
    if "births" in st:
        b = st["births"]
        lines.append(
            f"births: {b['total']:.0f} (F {b['F']:.0f}, M {b['M']:.0f}); "
            f"names with female share between 0.1 and 0.9: {st['ambiguous_names']}"
        )
    top = list(st["letters"].items())[:12]
    lines.append("most common characters: " + ", ".join(f"{c!r} {n}" for c, n in top))
    return "\n".join(lines)


def plot_stats(st: dict, path: PathLike) -> Path:
    """Write a PNG with the length histogram, the class balance and the letter frequency."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise UsageError("--plot needs matplotlib: pip install 'namemodels[train]' or pip install matplotlib") from None
    path = Path(path)
    fig = Figure(figsize=(15, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 1.4]})

    hist = {int(k): v for k, v in st["length_histogram"].items()}
    ax1.bar(list(hist), list(hist.values()), color="tab:blue")
    ax1.set_xlabel("name length (characters)")
    ax1.set_ylabel("names")
    ax1.set_title("Length histogram")

    if st["classes"]:
        classes = st["classes"]
        bars = ax2.barh(list(classes)[::-1], list(classes.values())[::-1], color="tab:orange")
        if len(classes) <= 24:
            ax2.bar_label(bars, padding=2, fontsize=7 if len(classes) > 12 else 9)
            ax2.margins(x=0.15)
        ax2.set_xlabel("names")
        ax2.set_ylabel("class")
        ax2.tick_params(axis="y", labelsize=8 if len(classes) > 12 else 10)
    else:
        ax2.text(0.5, 0.5, "no labels\n(one item per line)", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_xticks([])
        ax2.set_yticks([])
        ax2.set_xlabel("names")
        ax2.set_ylabel("class")
    ax2.set_title("Class balance")

    letters = st["letters"]
    keys = sorted(letters, key=lambda c: (not c.isalpha(), c))
    total = max(1, sum(letters.values()))
    ax3.bar(range(len(keys)), [100 * letters[c] / total for c in keys], color="tab:green")
    ax3.set_xticks(range(len(keys)))
    ax3.set_xticklabels(["␣" if c == " " else c for c in keys], fontsize=8)
    ax3.set_xlabel("character (case-folded)")
    ax3.set_ylabel("share of characters (%)")
    ax3.set_title("Letter frequency")

    kind = {"labeled": "labeled names", "gender": "names with sex counts", "lines": "items, one per line"}
    fig.suptitle(
        f"{Path(st['source']).name}: {st['records']} {kind.get(st['kind'], st['kind'])}, {len(st['classes'])} classes"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:  # a reader never sees half a PNG
        fig.savefig(f, format="png", dpi=100)
    return path
