"""Grouped k-fold cross-validation: which lines each fold holds out, one fold's run (the model through
the trainer, the baselines on the same lines), and the summary over the folds (mean ± sd of every
metric, and the paired difference model − baseline fold by fold).

The folds come from :func:`namemodels.data.split.grouped_parts` with ``k`` equal fractions, so they are
grouped by name string (no string in two folds) and stratified by label like the train/valid/test
split. Fold ``i``'s model trains on the other folds: with ``train_on="split"`` a grouped ninth of
them is held out as its validation part for early stopping (train : valid = 8 : 1, as in the
80/10/10 split); with ``train_on="all"`` it trains on all of them for exactly ``epochs`` (the way
``train --train-on all`` ships a model). The baselines tune their one setting on that same
validation part (a grouped ninth of the training folds in either case) and are refitted on all the
training folds. ``namemodels train --folds K --fold I`` trains one fold's model alone.

Results go to ``OUT/fold-<i>/`` (``baselines.json``, the model directory ``model/``, and
``result.json`` last); a run started again with the same settings reuses every finished fold and
resumes an interrupted one from its last epoch. This module imports no torch at the top: the fold
split is also what ``evaluate`` uses to find a model's held-out lines."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import numpy as np

from ..baselines import classifier_baselines, lm_baselines
from ..checkpoint_json import read_json, write_json
from ..config import CLASSIFIER_TASKS, EARLY_STOPPING, TrainConfig, option, saved_options
from ..cores import spawn, split_cores
from ..data.loader import PathLike, data_sha256, load
from ..data.records import NameDataset
from ..data.run_parts import inner_split, joined
from ..data.split import grouped_parts
from ..errors import UsageError
from ..outlock import output_lock
from ..tasks import LOWER_IS_BETTER, check_task
from .train import prepare, train

# The metrics reported per task; the first one picks the strongest baseline.
REPORTED: dict[str, tuple[str, ...]] = {
    "classify": ("accuracy", "accuracy_unique", "macro_f1"),
    "gender": ("roc_auc", "roc_auc_weighted", "accuracy"),
    "generate": ("nll", "perplexity"),
}
# Options that say which lines a run trains on, not how: a CV report describes a recipe whatever they are.
LAYOUT = ("folds", "fold", "train_on", "split_seed", "split_by", "device") + EARLY_STOPPING
RESULT, BASELINES, SETTINGS, REPORT = "result.json", "baselines.json", "settings.json", "cv.json"
PREDICTIONS = "predictions.npz"  # a classifier fold's held-out (and validation) log-probabilities and target counts
# Options the baselines depend on (with the task, the data and the fold seed); runs that agree on them
# can share baselines (--baselines-from).
BASELINE_INPUTS = ("folds", "max_train", "final_fit", "lowercase", "init_from", "split_by")


# ------------------------------------------------------------------------------------- one fold's run


def _epoch_of(message: str) -> int | None:
    match = re.match(r"epoch (\d+):", message)
    return int(match.group(1)) if match else None


def fold_baselines(cfg: TrainConfig, data_path: PathLike) -> dict[str, dict]:
    """The task's baselines on fold ``cfg.fold``: tuned on a grouped ninth of the training folds,
    refitted on all of them, scored on the held-out fold."""
    _, train_ds, valid_ds, test_ds, labels, tok = prepare(cfg, data_path)
    if len(valid_ds):  # train_on="split": the model's own validation part
        fit, valid, refit = train_ds, valid_ds, joined([train_ds, valid_ds], train_ds)
    else:
        (fit, valid), refit = inner_split(train_ds, cfg.data_seed(), by_lines=cfg.split_by == "lines"), train_ds
    if cfg.task == "generate":
        return lm_baselines(fit, valid, refit, test_ds, tok)
    return classifier_baselines(cfg.task, labels, fit, valid, refit, test_ds)


def run_fold(
    cfg: TrainConfig, data_path: PathLike, fold_dir: Path, tell: Callable[[str], None] = lambda m: None
) -> dict:
    """Baselines, then the model, on fold ``cfg.fold``; each step's file is reused when present.
    Writes and returns ``result.json``'s content."""
    fold_dir.mkdir(parents=True, exist_ok=True)
    if (fold_dir / BASELINES).exists():
        baselines = read_json(fold_dir / BASELINES)
    else:
        baselines = fold_baselines(cfg, data_path)
        write_json(fold_dir / BASELINES, baselines)
    tell("baselines done")
    model_dir = fold_dir / "model"
    if (model_dir / "config.json").exists():  # written last by train: the model is finished
        config = read_json(model_dir / "config.json")
    else:
        # fold models are scored alone: a name table would go unused
        config = train(cfg, data_path, model_dir, resume=True, progress=False, log=tell, name_table=False)
    history = read_json(model_dir / "history.json")
    if cfg.task in CLASSIFIER_TASKS:
        fold_predictions(cfg, data_path, fold_dir)
    result = {
        "fold": cfg.fold,
        "train": config["data"]["split"]["train"],
        "valid": config["data"]["split"]["valid"],
        "test": config["data"]["split"]["test"],
        "model": config["metrics"]["test"],
        "baselines": baselines,
        "epochs_run": len(history.get("epochs", [])),
        "best_epoch": _best_epoch(history, cfg),
        "training_seconds": config.get("training_seconds"),
    }
    write_json(fold_dir / RESULT, result)
    return result


def fold_predictions(cfg: TrainConfig, data_path: PathLike, fold_dir: Path) -> dict[str, np.ndarray]:
    """The fold model's log-probabilities on its held-out fold (``test_logp``) and, where it has one,
    its validation part (``valid_logp``), with their target counts (``test_counts``, ``valid_counts``:
    births per sex or lines per label, one row per distinct name; :func:`namemodels.evaluate.target_counts`).
    Read from ``fold_dir/predictions.npz`` when present, else computed from ``fold_dir/model`` and saved
    (so a fold finished before this file existed gets it on the next run)."""
    path = fold_dir / PREDICTIONS
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from ..evaluate import classifier_logprobs, target_counts
    from ..inference.torch_backend import load_torch_model
    from ..tokenizer import CharTokenizer

    model, config, _ = load_torch_model(fold_dir / "model")
    tok = CharTokenizer.from_dict(config["tokenizer"])
    _, _, valid_ds, test_ds, _, _ = prepare(cfg, data_path)
    out: dict[str, np.ndarray] = {}
    for part, ds in (("test", test_ds), ("valid", valid_ds)):
        if len(ds):
            names, counts = target_counts(ds, config["labels"])
            out[f"{part}_logp"] = classifier_logprobs(model, tok, names).astype(np.float32)
            out[f"{part}_counts"] = counts
    import io

    from ..fileio import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **out)  # type: ignore[arg-type]  # numpy's stub matches **kwds to allow_pickle: bool
    atomic_write_bytes(path, buf.getvalue())
    return out


def cv_calibration(preds: list[dict[str, np.ndarray]], train_on: str, seed: int = 0) -> dict:
    """Calibration of each fold's model on its held-out fold, before and after temperature scaling
    with a temperature fitted inside its training folds (:func:`namemodels.inference.calibration.choose_temperature`):
    with a validation part (``train_on="split"``), on the fold model's own predictions there; without
    one (``train_on="all"``), on the out-of-fold predictions of the other folds' models on their
    held-out folds (all inside fold k's training folds; cut into halves by fold). Also the temperature
    fitted on every fold's out-of-fold predictions (what a model trained on all the data would be
    given), and mean ± sd over folds of log-loss, ECE and the temperature."""
    from ..inference.calibration import choose_temperature, expected_calibration_error, log_loss, temper

    folds = []
    for k, p in enumerate(preds):
        if train_on != "all" and "valid_logp" in p:
            lp, n, groups = p["valid_logp"], p["valid_counts"], None
            how = "its validation part"
        else:
            others = [j for j in range(len(preds)) if j != k]
            lp = np.concatenate([preds[j]["test_logp"] for j in others])
            n = np.concatenate([preds[j]["test_counts"] for j in others])
            groups = (
                np.concatenate([np.full(len(preds[j]["test_logp"]), r) for r, j in enumerate(others)])
                if len(others) > 1
                else None
            )
            how = "out-of-fold predictions of the other folds' models on their held-out folds"
        t, rep = choose_temperature(lp, n, seed=seed, groups=groups)
        tl, tn = p["test_logp"], p["test_counts"]
        folds.append(
            {
                "fold": k,
                "temperature": t,
                "fitted": rep["fitted"],
                "kept": rep["kept"],
                "fitted_on": how,
                "log_loss_before": log_loss(tl, tn),
                "log_loss_after": log_loss(temper(tl, t), tn),
                "ece_before": expected_calibration_error(tl, tn),
                "ece_after": expected_calibration_error(temper(tl, t), tn),
            }
        )
    every = choose_temperature(
        np.concatenate([p["test_logp"] for p in preds]),
        np.concatenate([p["test_counts"] for p in preds]),
        seed=seed,
        groups=np.concatenate([np.full(len(p["test_logp"]), k) for k, p in enumerate(preds)]),
    )
    keys = ("log_loss_before", "log_loss_after", "ece_before", "ece_after", "temperature")
    return {
        "folds": folds,
        **{k: _spread([f[k] for f in folds]) for k in keys},
        "all_folds": {
            "temperature": every[0],
            **every[1],
            "how": "fitted on the out-of-fold predictions of every fold (halves by fold)",
        },
    }


def _best_epoch(history: dict, cfg: TrainConfig) -> int | None:
    """The epoch whose validation score was best (None without validation, e.g. ``train_on="all"``)."""
    metric = cfg.default_metric()
    scored = [
        (e["valid"][metric], e["epoch"])
        for e in history.get("epochs", [])
        if isinstance(e.get("valid"), dict) and e["valid"].get(metric) is not None
    ]
    if not scored or cfg.train_on == "all" or cfg.final_fit:
        return None
    return (min if metric in LOWER_IS_BETTER else max)(scored, key=lambda s: s[0])[
        1
    ]  # ties: the first, as train keeps it


def _fold_job(job: tuple) -> dict:
    """Runs in a worker process: one fold on ``threads`` threads, its log lines sent to ``queue``."""
    import torch

    cfg, data_path, fold_dir, threads, queue = job
    torch.set_num_threads(threads)
    return run_fold(cfg, data_path, fold_dir, tell=lambda m: queue.put((cfg.fold, m)))


# ------------------------------------------------------------------------------------------ the run


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS
    if path.exists():
        saved = read_json(path)
        old, new = saved_options(saved.get("train", {})), saved_options(settings["train"])
        if {**saved, "train": old} != {**settings, "train": new}:
            changed = sorted(k for k in new if old.get(k) != new[k])
            what = ", ".join(option(k) for k in changed) if changed else "the data or the task"
            raise UsageError(
                f"{out}: holds a cross-validation run with other settings ({what} differ); "
                "run the same command to resume it, or choose a new --out"
            )
    else:
        write_json(path, settings)


def _baseline_key(settings: dict) -> dict:
    options = saved_options(settings["train"])
    return {
        "task": settings["task"],
        "data_sha256": settings["data_sha256"],
        "fold_seed": TrainConfig(seed=options["seed"], split_seed=options["split_seed"]).data_seed(),
        **{k: options[k] for k in BASELINE_INPUTS},
    }


def copy_baselines(source: PathLike, out: Path, settings: dict) -> int:
    """Copy the baselines of another CV run's folds (same task, data, folds and fold seed: the same
    baselines) into ``out``'s folds that have none yet; returns how many were copied."""
    theirs = read_json(Path(source) / SETTINGS)
    mine, other = _baseline_key(settings), _baseline_key(theirs)
    if mine != other:
        what = ", ".join(k for k in mine if mine[k] != other[k])
        raise UsageError(
            f"--baselines-from {source}: its folds differ from this run's ({what}); its baselines are not this run's"
        )
    copied = 0
    for i in range(settings["train"]["folds"]):
        src, dst = Path(source) / f"fold-{i}" / BASELINES, out / f"fold-{i}" / BASELINES
        if src.exists() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_json(dst, read_json(src))
            copied += 1
    return copied


def run_cv(
    cfg: TrainConfig,
    data_path: PathLike,
    out_dir: PathLike,
    workers: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    command: str = "",
    baselines_from: PathLike | None = None,
) -> dict:
    """Cross-validate ``cfg`` (``cfg.folds`` folds) on ``data_path``; returns the report (see
    :func:`summarize`), also written to ``OUT/cv.json``. ``baselines_from``: the folder of another CV
    run on the same folds whose baselines are reused (see :func:`copy_baselines`)."""
    if cfg.task not in REPORTED:
        raise UsageError(f"cv runs classify, gender or generate, got {cfg.task!r}")
    if cfg.folds < 2:
        raise UsageError(f"--folds must be at least 2, got {cfg.folds}")
    cfg = dataclasses.replace(cfg, fold=0).check()
    ds = load(data_path)
    check_task(cfg, ds)
    sizes = [len(p) for p in grouped_parts(ds, (1,) * cfg.folds, seed=cfg.data_seed())]
    if min(sizes) == 0 or len(ds) < 10 * cfg.folds:
        raise UsageError(
            f"{data_path}: {len(ds)} names are too few for {cfg.folds} folds (folds of {sizes}); "
            f"give at least {10 * cfg.folds} names or fewer --folds"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out, "cv"):  # one run per folder: a second stops at once instead of training the same folds
        return _run_locked(cfg, data_path, out, ds, workers, progress, log, command, baselines_from)


def _run_locked(
    cfg: TrainConfig,
    data_path: PathLike,
    out: Path,
    ds: NameDataset,
    workers: int,
    progress: bool,
    log: Callable[[str], None],
    command: str,
    baselines_from: PathLike | None,
) -> dict:
    """:func:`run_cv` once it holds ``out``'s lock."""
    if (out / "config.json").is_file() and not (out / SETTINGS).is_file():
        raise UsageError(f"{out} holds a trained model, not a cross-validation run; choose another --out")
    sha = data_sha256(data_path)
    settings = {"task": cfg.task, "data_sha256": sha, "train": dataclasses.asdict(cfg)}
    _check_settings(out, settings)
    if baselines_from:
        log(f"cv: baselines of {copy_baselines(baselines_from, out, settings)} fold(s) copied from {baselines_from}")
    dirs = [out / f"fold-{i}" for i in range(cfg.folds)]
    results: dict[int, dict] = {i: read_json(d / RESULT) for i, d in enumerate(dirs) if (d / RESULT).exists()}
    pending = [i for i in range(cfg.folds) if i not in results]
    workers, threads = split_cores(len(pending), workers)
    log(
        f"cv: {cfg.folds} folds of {data_path} ({len(ds)} names); {len(results)} finished before (reused), "
        f"{len(pending)} to run in {workers} process(es) of {threads} thread(s); results in {out}"
    )
    if pending:
        results.update(_run_pending(cfg, data_path, dirs, pending, workers, threads, progress))
    report = summarize(cfg, [results[i] for i in range(cfg.folds)])
    if cfg.task in CLASSIFIER_TASKS:
        preds = [fold_predictions(dataclasses.replace(cfg, fold=i), data_path, d) for i, d in enumerate(dirs)]
        report["calibration"] = cv_calibration(preds, cfg.train_on, seed=cfg.data_seed())
    report.update(command=command, data={"path": str(data_path), "sha256": sha, "names": len(ds)})
    write_json(out / REPORT, report)
    return report


def _run_pending(
    cfg: TrainConfig,
    data_path: PathLike,
    dirs: list[Path],
    pending: list[int],
    workers: int,
    threads: int,
    progress: bool,
) -> dict[int, dict]:
    """Run the pending folds (in ``workers`` processes) with one progress bar over their epochs."""
    from tqdm.auto import tqdm

    steps = cfg.epochs + 1  # the baselines, then each epoch
    bar = tqdm(total=steps * len(pending), desc="cv", unit="step", disable=not progress, leave=False)
    done_steps = {i: 0 for i in pending}

    def seen(fold: int, message: str) -> None:
        epoch = _epoch_of(message)
        reached = 1 if message == "baselines done" else (1 + epoch if epoch else None)
        if reached and reached > done_steps[fold]:
            bar.update(reached - done_steps[fold])
            done_steps[fold] = reached

    def finished(fold: int) -> None:
        seen(fold, f"epoch {cfg.epochs}:")  # early stopping ends a fold before its last epoch

    jobs = {i: dataclasses.replace(cfg, fold=i) for i in pending}
    results = {}
    try:
        if workers == 1:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for i in pending:
                    results[i] = run_fold(jobs[i], data_path, dirs[i], tell=functools.partial(seen, i))
                    finished(i)
            finally:
                torch.set_num_threads(before)
            return results
        import queue as queue_mod
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        ctx = spawn()
        with ctx.Manager() as manager, ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            messages = manager.Queue()
            futures = {pool.submit(_fold_job, (jobs[i], data_path, dirs[i], threads, messages)): i for i in pending}
            running = set(futures)
            while running:
                done, running = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                while True:
                    try:
                        seen(*messages.get_nowait())
                    except queue_mod.Empty:
                        break
                for future in done:
                    error = future.exception()
                    if error is not None:
                        for other in running:
                            other.cancel()
                        raise error
                    results[futures[future]] = future.result()
                    finished(futures[future])
        return results
    finally:
        bar.close()


# ---------------------------------------------------------------------------------------- the summary


def _spread(values: Sequence[float]) -> dict:
    arr = np.array(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "sd": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "per_fold": [float(v) for v in arr],
    }


def summarize(cfg: TrainConfig, results: list[dict]) -> dict:
    """The report: per fold and mean ± sd (sample standard deviation over folds) of each metric for
    the model and each baseline, the strongest baseline (by the mean of the task's first metric), and
    for every baseline the paired difference model − baseline per metric with its mean ± sd and the
    number of folds where the model is better (higher; for nll and perplexity lower)."""
    keys = [k for k in REPORTED[cfg.task] if all(isinstance(r["model"].get(k), float) for r in results)]
    model = {k: _spread([r["model"][k] for r in results]) for k in keys}
    names = list(results[0]["baselines"])
    baselines = {
        b: {
            "model": results[0]["baselines"][b]["model"],
            "per_fold_model": [r["baselines"][b]["model"] for r in results],
            **{k: _spread([r["baselines"][b][k] for r in results]) for k in keys if k in results[0]["baselines"][b]},
        }
        for b in names
    }
    first = keys[0]
    candidates = [b for b in names if first in baselines[b]]
    best = (min if first in LOWER_IS_BETTER else max)(candidates, key=lambda b: baselines[b][first]["mean"])
    differences: dict[str, dict] = {}
    for b in names:
        differences[b] = {}
        for k in keys:
            if k not in baselines[b]:
                continue
            diff = np.array(model[k]["per_fold"]) - np.array(baselines[b][k]["per_fold"])
            better = int(np.sum(diff < 0 if k in LOWER_IS_BETTER else diff > 0))
            differences[b][k] = {**_spread(diff), "model_better_folds": better}
    options = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "fold"}
    return {
        "task": cfg.task,
        "folds": cfg.folds,
        "seed": cfg.data_seed(),
        "train_on": cfg.train_on,
        "train": options,
        "metrics": keys,
        "model": model,
        "baselines": baselines,
        "best_baseline": best,
        "differences": differences,
        "fold_sizes": [{"train": r["train"], "valid": r["valid"], "test": r["test"]} for r in results],
        "epochs_run": [r["epochs_run"] for r in results],
        "best_epoch": [r["best_epoch"] for r in results],
        "training_seconds": [r["training_seconds"] for r in results],
    }


def _pm(s: dict) -> str:
    return f"{s['mean']:.4f} ± {s['sd']:.4f}"


def format_report(report: dict) -> str:
    """The report as a table: mean ± sd per metric, paired differences, and each fold's figures."""
    keys, k_first = report["metrics"], report["metrics"][0]
    width = max([len("model")] + [len(b) for b in report["baselines"]]) + 2
    lines = [
        f"{report['folds']}-fold grouped cross-validation, task {report['task']}, "
        f"{report['data']['names'] if 'data' in report else '?'} names; mean ± sd over folds"
        + (
            "; each fold's model trained on all its training folds for a fixed number of epochs"
            if report["train_on"] == "all"
            else "; each fold's model early-stopped on a grouped ninth of its training folds"
        ),
        "",
        f"{'':{width}}" + "".join(f"{k:>22}" for k in keys),
    ]
    rows = [("model", report["model"])] + [(b, v) for b, v in report["baselines"].items()]
    for name, vals in rows:
        lines.append(f"{name:{width}}" + "".join(f"{_pm(vals[k]) if k in vals else '-':>22}" for k in keys))
    lines += ["", "paired difference model − baseline, mean ± sd over folds (folds where the model is better):"]
    for b, diffs in report["differences"].items():
        tag = " (strongest baseline)" if b == report["best_baseline"] else ""
        lines.append(
            f"  vs {b}{tag}: "
            + "; ".join(
                f"{k} {d['mean']:+.4f} ± {d['sd']:.4f} ({d['model_better_folds']}/{report['folds']})"
                for k, d in diffs.items()
            )
        )
    best = report["best_baseline"]
    lines += ["", f"per fold ({k_first}: model / {best}):"]
    for i, size in enumerate(report["fold_sizes"]):
        extra = f", best epoch {report['best_epoch'][i]}" if report["best_epoch"][i] else ""
        lines.append(
            f"  fold {i}: {size['test']} held-out names, trained on {size['train']} (+{size['valid']} valid){extra}: "
            f"{report['model'][k_first]['per_fold'][i]:.4f} / "
            f"{report['baselines'][best][k_first]['per_fold'][i]:.4f}"
        )
    if report.get("calibration"):
        lines += [""] + format_calibration(report["calibration"], report["task"])
    return "\n".join(lines)


def format_calibration(cal: dict, task: str) -> list[str]:
    """The report's lines on calibration: held-out log-loss and ECE before and after each fold's temperature."""
    unit = "births" if task == "gender" else "lines"
    where = cal["folds"][0]["fitted_on"] if cal["folds"] else ""
    lines = [
        f"calibration of the model on the held-out folds ({unit}-weighted), mean ± sd over folds; each fold's "
        f"temperature fitted inside its training folds ({where}):",
        f"  log-loss {_pm(cal['log_loss_before'])} -> {_pm(cal['log_loss_after'])} tempered; "
        f"ECE {_pm(cal['ece_before'])} -> {_pm(cal['ece_after'])}; temperature {_pm(cal['temperature'])}",
    ]
    for f in cal["folds"]:
        lines.append(
            f"  fold {f['fold']}: T {f['temperature']:.4g}"
            f"{'' if f['kept'] else ' (fitted ' + format(f['fitted'], '.4g') + ', not kept)'}: "
            f"log-loss {f['log_loss_before']:.4f} -> {f['log_loss_after']:.4f}, "
            f"ECE {f['ece_before']:.4f} -> {f['ece_after']:.4f}"
        )
    a = cal["all_folds"]
    lines.append(
        f"  fitted on every fold's out-of-fold predictions: T {a['temperature']:.4g}"
        f"{'' if a['kept'] else ' (fitted ' + format(a['fitted'], '.4g') + ', not kept)'}"
    )
    return lines


# --------------------------------------------------------------------- the estimate in a model's card


def cv_estimate(report: dict, cfg: TrainConfig, data_sha256_: str, source: str = "") -> dict:
    """What a model card keeps of a CV report: the mean ± sd and the paired difference against the
    strongest baseline. The report must describe this recipe (the same options apart from which lines
    are trained on, see :data:`LAYOUT`) on the same data; else :class:`UsageError` names what differs."""
    if not isinstance(report, dict) or "model" not in report or "train" not in report:
        raise UsageError(f"{source or 'the CV report'}: not a report of `namemodels cv` (its --json file or cv.json)")
    if report.get("data", {}).get("sha256") != data_sha256_:
        raise UsageError(
            f"{source}: the cross-validation ran on other data (SHA-256 differs); run `namemodels cv` on this --data"
        )
    mine, theirs = dataclasses.asdict(cfg), saved_options(report["train"])
    differ = [k for k in mine if k not in LAYOUT and theirs[k] != mine[k]]
    if report["task"] != cfg.task or differ:
        what = (
            f"task {report['task']} vs {cfg.task}"
            if report["task"] != cfg.task
            else ", ".join(f"{option(k)} {report['train'].get(k)!r} vs {mine[k]!r}" for k in differ)
        )
        raise UsageError(
            f"{source}: the cross-validation is of another recipe ({what}); use the same options, "
            "or run `namemodels cv` with these"
        )
    best = report["best_baseline"]
    return {
        "folds": report["folds"],
        "train_on": report["train_on"],
        "command": report.get("command", ""),
        "model": {k: {"mean": v["mean"], "sd": v["sd"]} for k, v in report["model"].items()},
        "baseline": {
            "name": best,
            "model": report["baselines"][best]["model"],
            **{
                k: {"mean": v["mean"], "sd": v["sd"]}
                for k, v in report["baselines"][best].items()
                if isinstance(v, dict)
            },
        },
        "difference": {
            k: {"mean": d["mean"], "sd": d["sd"], "model_better_folds": d["model_better_folds"]}
            for k, d in report["differences"][best].items()
        },
    }
