"""``namemodels evaluate MODEL --data PATH``: the task's metrics on the grouped test split."""
from __future__ import annotations


def register(sub) -> None:
    from namemodels.options import add_json_options
    p = sub.add_parser("evaluate", help="metrics of a model on data (grouped test split by default)")
    p.add_argument("model", help="shipped model name or model directory")
    p.add_argument("--data", required=True, help="data path (as for train)")
    p.add_argument("--split", choices=("test", "valid", "train", "all"), default=None,
                   help="which part of the data; default: the model's test split when the data is the data it "
                        "was trained on (same SHA-256), else all of it")
    p.add_argument("--baseline", action="store_true", help="also train and score the baseline on the same split")
    p.add_argument("--plot", metavar="FILE", help="PNG: confusion matrix (classifiers) or ROC curve (gender)")
    p.add_argument("--coverage-plot", metavar="FILE",
                   help="PNG: accuracy against coverage for each --min-prob (classifiers; also in the JSON as 'coverage')")
    p.add_argument("--skip-unknown-labels", action="store_true",
                   help="score only the lines whose label the model knows, and report how many lines of which "
                        "labels were left out (without it, a classifier refuses data with labels it does not know, "
                        "and a conditioned generator scores their lines without a category and says so)")
    add_json_options(p, "the result")
    p.set_defaults(func=run)


def _coverage(config, model, tokenizer, target) -> list:
    """Accuracy against coverage of the model's answers on ``target`` (lines; births for gender)."""
    import numpy as np
    from namemodels.evaluate import classifier_logprobs
    from namemodels.inference.scoring import coverage_curve
    logp = classifier_logprobs(model, tokenizer, target.names)
    if config["task"] == "gender":
        female = np.exp(logp[:, config["labels"].index("F")])
        share = np.array(target.female_shares)
        return coverage_curve(np.maximum(female, 1 - female), np.where(female >= 0.5, share, 1 - share),
                              np.array(target.weights))
    index = {label: i for i, label in enumerate(config["labels"])}
    y = np.array([index[r.label] for r in target.records])
    return coverage_curve(np.exp(logp.max(1)), logp.argmax(1) == y)


def run(args) -> int:
    from namemodels.config import TrainConfig
    from namemodels.splits import split_parts
    from namemodels.data import data_sha256, load
    from namemodels.errors import UsageError
    from namemodels.evaluate import describe_counts, evaluate_split, known_label_part, unknown_labels
    from namemodels.inference.torch_backend import load_torch_model
    from namemodels.tokenizer import CharTokenizer
    model, config, directory = load_torch_model(args.model)
    tokenizer = CharTokenizer.from_dict(config["tokenizer"])
    ds = load(args.data)
    trained_on = config.get("data") if isinstance(config.get("data"), dict) else {}   # absent: not written by train
    same = data_sha256(args.data) == trained_on.get("sha256")
    split = args.split or ("test" if same else "all")
    recorded = trained_on.get("split") or {}
    layout = TrainConfig(split_seed=recorded.get("seed", 0), folds=recorded.get("folds", 0),
                         fold=recorded.get("fold", 0), train_on=recorded.get("train_on", "split"))
    parts = dict(zip(("train", "valid", "test"), split_parts(ds, layout))) if split != "all" or args.baseline else {}
    if split != "all" and not len(parts[split]):
        raise UsageError(f"{args.model} was trained on every line of its data (--train-on all): there is no {split} "
                         "part; its expected quality is the cross-validation estimate in its model card "
                         "(`namemodels cv`), and --split all scores it on lines it has seen")
    if split != "all" and not same:
        print(f"note: {args.data} differs from the training data; its {split} split may overlap the training names")
    target = ds if split == "all" else parts[split]
    where = f"{args.data}" + ("" if split == "all" else f" ({split} split)")
    unconditioned = {}
    if config["task"] == "generate" and not args.skip_unknown_labels:
        # a conditioned generator scores a line whose label it does not know without a category (category 0,
        # as with --category-dropout): no line is left out, and the output says how many were scored so
        unconditioned = unknown_labels(config, target)
        left_out = {}
    else:
        target, left_out = known_label_part(config, target, where, skip_unknown=args.skip_unknown_labels)
    metrics = evaluate_split(config, model, tokenizer, target, interval=True)
    result = {"model": str(directory), "task": config["task"], "split": split, "metrics": metrics}
    if args.skip_unknown_labels:
        result["left_out"] = {"lines": sum(left_out.values()), "labels": left_out}
    if unconditioned:
        result["scored_without_category"] = {"lines": sum(unconditioned.values()), "labels": unconditioned}
    if args.baseline:
        from namemodels.baselines import baseline_metrics
        fit_on = parts["train"]
        if left_out:   # the baseline learns the labels the model knows, as the model did
            fit_on, _ = known_label_part(config, fit_on, f"{args.data} (train split)", skip_unknown=True)
        result["baseline"] = baseline_metrics(config, fit_on, target, tokenizer)
    if config["task"] in ("classify", "gender"):   # to choose predict/gender --min-prob
        result["coverage"] = _coverage(config, model, tokenizer, target)
        if args.coverage_plot:
            from namemodels.plots import coverage_plot
            coverage_plot(result["coverage"], args.coverage_plot,
                          f"{directory.name} on {split}: accuracy against coverage (model alone)")
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
        print(f"scored without a category: {sum(unconditioned.values()):,} lines whose labels the model is not "
              f"conditioned on: {describe_counts(unconditioned)} (--skip-unknown-labels leaves them out)")
    if left_out:
        print(f"left out: {sum(left_out.values()):,} lines whose labels the model does not know: "
              f"{describe_counts(left_out)}")
    rows = [("model", metrics)] + ([("baseline", result["baseline"])] if args.baseline else [])
    keys = [k for k in metrics if k != "n" and not isinstance(metrics[k], list)]
    print(f"{'':10}" + "".join(f"{k:>20}" for k in keys))
    for name, vals in rows:
        print(f"{name:10}" + "".join(f"{vals[k]:>20.4f}" if isinstance(vals.get(k), float)
                                     else f"{vals.get(k, '-'):>20}" for k in keys))
    for name, vals in rows:
        if "accuracy_ci95" in vals:
            lo, hi = vals["accuracy_ci95"]
            print(f"{name} accuracy, 95% interval from resampling whole names: {lo:.3f} to {hi:.3f}")
    if args.baseline:
        b = result["baseline"]
        print(f"baseline: {b['model']}")
        if "uniform_nll" in b:
            print(f"uniform over {b['uniform_perplexity']:.0f} symbols: nll {b['uniform_nll']:.4f}  "
                  f"perplexity {b['uniform_perplexity']:.4f}")
    if "coverage" in result:
        unit = "births" if config["task"] == "gender" else "lines"
        print(f"--min-prob P: share of {unit} answered (the rest 'unknown') and their accuracy (model alone):")
        print("  " + "  ".join(f"P {c['min_prob']:g}: {c['coverage']:.3f} at {c['accuracy']:.4f}"
                               if c["accuracy"] is not None else f"P {c['min_prob']:g}: none" for c in result["coverage"]))
    if args.coverage_plot:
        print(f"coverage plot written to {args.coverage_plot}")
    if config["task"] == "classify" and not args.json:
        from namemodels.plots import classification_report
        print(classification_report(config, model, tokenizer, target))
    if args.plot:
        print(f"plot written to {args.plot}")
    return 0
