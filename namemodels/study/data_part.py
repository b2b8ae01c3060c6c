"""Part 1: the data: length histograms, class balance (languages; sex), letter frequency."""

from __future__ import annotations

from ..data.stats import plot_stats, stats
from .common import Context, Section


def run(ctx: Context) -> Section:
    sec = Section("data", "1. Data")
    res = {}
    for key, sp, what in (
        ("surnames", ctx.data.surnames(), "language"),
        ("first_names", ctx.data.first_names(), "sex"),
    ):
        st = stats(sp.full)
        res[key] = {
            k: st[k]
            for k in (
                "records",
                "unique_names",
                "classes",
                "length",
                "length_histogram",
                "letters",
                "names_with_several_labels",
            )
            if k in st
        }
        if "births" in st:
            res[key]["births"], res[key]["ambiguous_names"] = st["births"], st["ambiguous_names"]
        res[key]["split"] = {"train_used": len(sp.train), "valid_used": len(sp.valid), "test_used": len(sp.test)}
        png = plot_stats(st, ctx.out / f"data_{key}.png")
        ctx.figures.append(png)
        sec.figure(
            png,
            f"{'Surnames' if key == 'surnames' else 'First names'}: length histogram (left, names per "
            f"length in characters), class balance by {what} (middle, names per class) and letter "
            "frequency (right, % of all characters). What to see: how skewed the classes are and "
            "which lengths dominate.",
        )
        cls = st["classes"]
        total = max(1, sum(cls.values()))
        big, small = max(cls, key=cls.get), min(cls, key=cls.get)
        sec.p(
            f"{'Surnames' if key == 'surnames' else 'First names'}: {st['records']:,} records, "
            f"{st['unique_names']:,} distinct names, length {st['length']['min']}–{st['length']['max']} "
            f"(mean {st['length']['mean']:.1f}). Largest class {big} ({cls[big]:,}, {cls[big] / total:.0%}), "
            f"smallest {small} ({cls[small]:,}, {cls[small] / total:.1%}); "
            + (
                f"{st['names_with_several_labels']} names appear under more than one language. "
                if key == "surnames"
                else f"{st.get('ambiguous_names', 0):,} names have a female share between 0.1 and 0.9. "
            )
            + f"The study uses {len(sp.train):,} training, {len(sp.valid):,} validation and {len(sp.test):,} test "
            "names of the grouped split."
        )
        ctx.results.setdefault("data", {})[key] = res[key]
    return sec
