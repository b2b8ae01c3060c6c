"""``namemodels evaluate MODEL --data PATH``: the task's metrics on the model's test split; for
classifiers also their calibration (log-loss, ECE, reliability bins) and, with a name table, what users
see: the model alone, the table alone and the two combined, on all names, known names and unseen
names. ``--years FIRST-LAST`` scores a gender model on the births of those years of a by-year file."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the command imports numpy and torch when it runs
    import numpy as np

    from namemodels.data.births import Births
    from namemodels.data.records import NameDataset


def register(sub: argparse._SubParsersAction) -> None:
    from namemodels.options import add_json_options

    p = sub.add_parser("evaluate", help="metrics of a model on data (grouped test split by default)")
    p.add_argument("model", help="shipped model name or model directory")
    p.add_argument("--data", required=True, help="data path (as for train)")
    p.add_argument(
        "--split",
        choices=("test", "valid", "train", "all"),
        default=None,
        help="which part of the data; default: the model's test split when the data is the data it "
        "was trained on (same SHA-256), else all of it",
    )
    p.add_argument("--baseline", action="store_true", help="also train and score the baseline on the same split")
    p.add_argument("--plot", metavar="FILE", help="PNG: confusion matrix (classifiers) or ROC curve (gender)")
    p.add_argument(
        "--coverage-plot",
        metavar="FILE",
        help="PNG: accuracy against coverage for each --min-prob (classifiers; also in the JSON as 'coverage')",
    )
    p.add_argument(
        "--years",
        metavar="FIRST-LAST",
        default=None,
        help="--data is a year,name,sex,count file (first_names_by_year.csv.gz): score the births of these "
        "years, summed per name (2009-2023, 2009-, -1990 or 2010); the names first seen in FIRST or "
        "later are also scored apart (gender models)",
    )
    p.add_argument(
        "--reliability-plot",
        metavar="FILE",
        help="PNG: reliability diagram of the model alone and of what users see (classifiers)",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),
        default="auto",
        help="how the predictor runs the model for the combined answer (default: ONNX when the model "
        "folder has model.onnx)",
    )
    p.add_argument(
        "--skip-unknown-labels",
        action="store_true",
        help="score only the lines whose label the model knows, and report how many lines of which "
        "labels were left out (without it, a classifier refuses data with labels it does not know, "
        "and a conditioned generator scores their lines without a category and says so)",
    )
    add_json_options(p, "the result")
    p.set_defaults(func=run)


def _coverage(config: dict, logp: np.ndarray, target: NameDataset) -> list:
    """Accuracy against coverage of the model's answers (``logp``, rows of ``target``'s lines) on
    ``target`` (lines; births for gender)."""
    import numpy as np

    from namemodels.inference.scoring import coverage_curve

    if config["task"] == "gender":
        female = np.exp(logp[:, config["labels"].index("F")])
        share = np.array(target.female_shares)
        return coverage_curve(
            np.maximum(female, 1 - female), np.where(female >= 0.5, share, 1 - share), np.array(target.weights)
        )
    index = {label: i for i, label in enumerate(config["labels"])}
    y = np.array([index[r.label] for r in target.records])
    return coverage_curve(np.exp(logp.max(1)), logp.argmax(1) == y)


def run(args: argparse.Namespace) -> int:
    from namemodels.config import CLASSIFIER_TASKS
    from namemodels.data.loader import data_sha256, load
    from namemodels.data.run_parts import layout_of, split_parts
    from namemodels.errors import UsageError
    from namemodels.evaluate import (
        classifier_logprobs,
        describe_counts,
        evaluate_split,
        known_label_part,
        unknown_labels,
    )
    from namemodels.inference.torch_backend import load_torch_model
    from namemodels.tokenizer import CharTokenizer

    model, config, directory = load_torch_model(args.model)
    tokenizer = CharTokenizer.from_dict(config["tokenizer"])
    births = None
    if args.years:
        if config["task"] != "gender":
            raise UsageError(
                f"--years scores births year by year: for gender models; {args.model} is a {config['task']} model"
            )
        if args.split not in (None, "all") or args.baseline:
            raise UsageError(
                "--years scores every name born in those years (--split all); it takes no --split or --baseline"
            )
        births = births_of(args.data, args.years)
        ds = births_dataset(births)
        same = False
    else:
        ds = load(args.data)
        same = data_sha256(args.data) == (config.get("data") or {}).get("sha256")
    data = config.get("data")
    trained_on = data if isinstance(data, dict) else {}  # absent: not written by train
    split = args.split or ("test" if same else "all")
    layout = layout_of(trained_on.get("split") or {})
    parts = dict(zip(("train", "valid", "test"), split_parts(ds, layout))) if split != "all" or args.baseline else {}
    if split != "all" and not len(parts[split]):
        raise UsageError(
            f"{args.model} was trained on every line of its data (--train-on all): there is no {split} "
            "part; its expected quality is the cross-validation estimate in its model card "
            "(`namemodels cv`), and --split all scores it on lines it has seen"
        )
    if split != "all" and not same:
        print(f"note: {args.data} differs from the training data; its {split} split may overlap the training names")
    target = ds if split == "all" else parts[split]
    where = f"{args.data}" + ("" if split == "all" else f" ({split} split)")
    unconditioned: dict[str, int] = {}
    left_out: dict[str, int]
    if config["task"] == "generate" and not args.skip_unknown_labels:
        # a conditioned generator scores a line whose label it does not know without a category (category 0,
        # as with --category-dropout): no line is left out, and the output says how many were scored so
        unconditioned = unknown_labels(config, target)
        left_out = {}
    else:
        target, left_out = known_label_part(config, target, where, skip_unknown=args.skip_unknown_labels)
    classifier = config["task"] in CLASSIFIER_TASKS
    logp = classifier_logprobs(model, tokenizer, target.names) if classifier else None  # once, for every metric
    metrics = evaluate_split(config, model, tokenizer, target, interval=True, logp=logp)
    result = {"model": str(directory), "task": config["task"], "split": split, "metrics": metrics}
    if births is not None:
        result["years"] = {
            "data": str(args.data),
            "since": births.since,
            "until": births.until,
            "file_years": list(births.years),
            "names": len(target),
            "births": int(sum(target.weights)),
        }
    if classifier:
        assert logp is not None
        result.update(calibration_and_sources(config, directory, target, logp, births, args.backend))
        if args.reliability_plot:
            from namemodels.plots import reliability_plot

            reliability_plot(
                result["calibration"],
                args.reliability_plot,
                f"{directory.name} on {split}"
                + (f" ({args.years})" if args.years else "")
                + f": reliability, {result['calibration']['weighting']}-weighted",
            )
            result["reliability_plot"] = args.reliability_plot
    if args.skip_unknown_labels:
        result["left_out"] = {"lines": sum(left_out.values()), "labels": left_out}
    if unconditioned:
        result["scored_without_category"] = {"lines": sum(unconditioned.values()), "labels": unconditioned}
    if args.baseline:
        from namemodels.baselines import baseline_metrics

        fit_on = parts["train"]
        if left_out:  # the baseline learns the labels the model knows, as the model did
            fit_on, _ = known_label_part(config, fit_on, f"{args.data} (train split)", skip_unknown=True)
        result["baseline"] = baseline_metrics(config, fit_on, target, tokenizer)
    if classifier:  # to choose predict/gender --min-prob: the model as the predictor gives it (tempered), no table
        from namemodels.inference.calibration import temper

        assert logp is not None

        result["coverage"] = _coverage(
            config, temper(logp, float((config.get("calibration") or {}).get("temperature", 1.0))), target
        )
        if args.coverage_plot:
            from namemodels.plots import coverage_plot

            coverage_plot(
                result["coverage"],
                args.coverage_plot,
                f"{directory.name} on {split}: accuracy against coverage (model alone)",
            )
            result["coverage_plot"] = args.coverage_plot
    if args.plot:
        from namemodels.plots import evaluation_plot

        evaluation_plot(config, model, tokenizer, target, args.plot)
        result["plot"] = args.plot
    if args.json_out:
        from .common import write_json_out

        write_json_out(args.json_out, result)
    if args.json:
        from .common import json_text

        print(json_text(result))
        return 0
    print(f"{result['model']} ({config['task']}) on {split} split of {args.data}: {metrics.get('n')} names")
    if unconditioned:
        print(
            f"scored without a category: {sum(unconditioned.values()):,} lines whose labels the model is not "
            f"conditioned on: {describe_counts(unconditioned)} (--skip-unknown-labels leaves them out)"
        )
    if left_out:
        print(
            f"left out: {sum(left_out.values()):,} lines whose labels the model does not know: "
            f"{describe_counts(left_out)}"
        )
    rows = [("model", metrics)] + ([("baseline", result["baseline"])] if args.baseline else [])
    keys = [k for k in metrics if k != "n" and not isinstance(metrics[k], list)]
    print(f"{'':10}" + "".join(f"{k:>20}" for k in keys))
    for name, vals in rows:
        print(
            f"{name:10}"
            + "".join(
                f"{vals[k]:>20.4f}" if isinstance(vals.get(k), float) else f"{vals.get(k, '-'):>20}" for k in keys
            )
        )
    for name, vals in rows:
        if "accuracy_ci95" in vals:
            lo, hi = vals["accuracy_ci95"]
            print(f"{name} accuracy, 95% interval from resampling whole names: {lo:.3f} to {hi:.3f}")
    if args.baseline:
        b = result["baseline"]
        print(f"baseline: {b['model']}")
        if "uniform_nll" in b:
            print(
                f"uniform over {b['uniform_perplexity']:.0f} symbols: nll {b['uniform_nll']:.4f}  "
                f"perplexity {b['uniform_perplexity']:.4f}"
            )
    if "coverage" in result:
        unit = "births" if config["task"] == "gender" else "lines"
        print(f"--min-prob P: share of {unit} answered (the rest 'unknown') and their accuracy (model alone):")
        print(
            "  "
            + "  ".join(
                f"P {c['min_prob']:g}: {c['coverage']:.3f} at {c['accuracy']:.4f}"
                if c["accuracy"] is not None
                else f"P {c['min_prob']:g}: none"
                for c in result["coverage"]
            )
        )
    if args.coverage_plot:
        print(f"coverage plot written to {args.coverage_plot}")
    if "calibration" in result:
        print(format_calibration(result))
    if args.reliability_plot:
        print(f"reliability diagram written to {args.reliability_plot}")
    if config["task"] == "classify" and not args.json:
        from namemodels.plots import classification_report

        print(classification_report(config, model, tokenizer, target))
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0


def births_of(path: str | Path, years: str) -> Births:
    """The births of ``years`` (``FIRST-LAST``) in a by-year file, summed per name and sex."""
    from namemodels.data.births import parse_years, read_births

    since, until = parse_years(years)
    return read_births(path, since=since, until=until)


def births_dataset(births: Births) -> NameDataset:
    """A gender data set of the births (one record per name: its majority sex, total and female share),
    as ``namemodels.data.loader.load`` reads a ``name,sex,count`` file."""
    from namemodels.data.records import NameDataset, NameRecord
    from namemodels.text import ascii_fold

    totals: dict[str, list[int]] = {}
    for name, (f, m) in births.by_name().items():
        key = ascii_fold(name).strip()
        if key:
            fm = totals.setdefault(key, [0, 0])
            fm[0] += f
            fm[1] += m
    records = [
        NameRecord(n, "F" if f >= m else "M", weight=float(f + m), soft=f / (f + m) if f + m else 0.5)
        for n, (f, m) in totals.items()
        if f + m > 0
    ]
    return NameDataset(records, ["F", "M"], "gender", births.source)


def predictor_answers(
    directory: str | Path, names: Sequence[str], backend: str = "auto"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The predictor's answers (the name table's rule for known names, the model for the others) as
    users get them, and each name's counts in the table (zeros: not in it). Returns ``(logp, table
    counts, ok)``; ``ok`` is False for a name the predictor refuses (its rows are NaN and zero)."""
    import numpy as np

    from namemodels.errors import UsageError
    from namemodels.inference.name_table import name_key
    from namemodels.inference.predictor import Predictor
    from namemodels.inference.scoring import CHUNK
    from namemodels.text import check_name

    pred = Predictor(directory, backend=backend, table=True)
    logp = np.full((len(names), len(pred.labels)), np.nan, np.float32)
    table = np.zeros((len(names), len(pred.labels)), np.float64)
    ok = np.zeros(len(names), bool)
    for start in range(0, len(names), CHUNK):
        chunk = names[start : start + CHUNK]
        scored = pred.score_chunk(chunk)
        lp = scored.expand()
        good = np.array([scored.error_of(i) is None for i in range(len(chunk))], bool)
        logp[start : start + len(chunk)] = lp
        ok[start : start + len(chunk)] = good
        if pred.table:
            keys, where = [], []
            for i, name in enumerate(chunk):
                if good[i]:
                    try:
                        keys.append(name_key(check_name(name), pred.table.lowercase))
                        where.append(start + i)
                    except UsageError:
                        pass
            rows = pred.table.lookup(keys)
            hit = rows >= 0
            if hit.any():
                table[np.asarray(where)[hit]] = pred.table.rows(rows[hit])[0]
    return logp, table, ok


def calibration_and_sources(
    config: dict,
    directory: str | Path,
    target: NameDataset,
    logp: np.ndarray,
    births: Births | None = None,
    backend: str = "auto",
) -> dict:
    """``calibration`` (the model alone, tempered when the model has a temperature, and with a name
    table the predictor's combined answer) and, with a name table, ``sources``: what users see, part
    by part (:func:`namemodels.evaluate.compare_sources`)."""
    import numpy as np

    from namemodels.evaluate import calibration_section, compare_sources, target_counts
    from namemodels.inference.calibration import temper

    labels = config["labels"]
    names, counts = target_counts(target, labels)
    first: dict[str, int] = {}
    for i, n in enumerate(target.names):
        first.setdefault(n, i)
    raw = np.asarray(logp)[[first[n] for n in names]] if len(names) else np.zeros((0, len(labels)), np.float32)
    unit = "births" if config["task"] == "gender" else "lines"
    sources = {"model": raw}
    t = float((config.get("calibration") or {}).get("temperature", 1.0))
    if t != 1.0:
        sources["model_tempered"] = temper(raw, t)
    out = {}
    if isinstance(config.get("name_table"), dict):
        combined, table, ok = predictor_answers(directory, names, backend)
        keep = ok & np.isfinite(combined).all(axis=1)
        left = int((~keep).sum())
        names = [n for n, k in zip(names, keep) if k]
        counts, table, combined = counts[keep], table[keep], combined[keep]
        sources = {k: v[keep] for k, v in sources.items()}
        subsets = {}
        if births is not None and births.since is not None:
            new = {n for n, y in births.first_year.items() if y >= births.since}
            subsets[f"first_seen_{births.since}_or_later"] = np.array([n in new for n in names], bool)
        sources["combined"] = combined
        out["sources"] = {
            "unit": unit,
            "alpha": config["name_table"].get("alpha"),
            "temperature": t,
            "table": "majority label of the name's counts in the table (probabilities (n + 1/C) / (N + 1), "
            "C labels); a name not in the table is answered 'unknown' and counted wrong; "
            "log-loss and ECE over the names in the table",
            "names_refused": left,
            "parts": compare_sources(
                counts,
                sources["model"],
                combined,
                table,
                sources.get("model_tempered"),
                subsets,
                macro_f1=config["task"] == "classify",
            ),
        }
    out["calibration"] = calibration_section(sources, counts, unit)
    return out


def format_calibration(result: dict) -> str:
    """The calibration and what-users-see tables of ``evaluate``'s text output."""
    cal = result["calibration"]
    lines = [
        f"calibration ({cal['weighting']}-weighted, {cal['bins']} bins): "
        + "; ".join(
            f"{k}: log-loss {v['log_loss']:.4f}, ECE {v['ece']:.4f}" for k, v in cal.items() if isinstance(v, dict)
        )
    ]
    src = result.get("sources")
    if src:
        keys = ["accuracy", "log_loss", "ece"] + (["macro_f1"] if result["task"] == "classify" else [])
        lines.append(
            f"what users see ({src['unit']}-weighted; name table alpha {src['alpha']:g}, temperature "
            f"{src['temperature']:g}; table alone: {src['table']}):"
        )
        for part, rows in src["parts"].items():
            any_row = next(iter(rows.values()))
            lines.append(f"  {part}: {any_row['names']:,} names, {any_row['weight']:,.0f} {src['unit']}")
            lines.append(f"    {'':16}" + "".join(f"{k:>12}" for k in keys))
            for name, m in rows.items():
                lines.append(
                    f"    {name:16}"
                    + "".join(f"{m[k]:>12.4f}" if isinstance(m.get(k), float) else f"{'-':>12}" for k in keys)
                )
    return "\n".join(lines)
