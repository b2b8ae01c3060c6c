"""Grouped k-fold cross-validation (namemodels cv), training on every line (--train-on all), and the
tuned baselines, on small data the tests make themselves."""

import collections
import json
import math
import shutil

import numpy as np
import pytest
from cli_args import train_argv
from helpers import QUIET
from sklearn.metrics import f1_score

import namemodels.data.run_parts as run_parts
import namemodels.training.cv as cv
from namemodels.baselines import AddKNgram, unigram_nll
from namemodels.cli import main
from namemodels.config import TrainConfig
from namemodels.data.loader import load
from namemodels.data.records import NameDataset, NameRecord
from namemodels.data.split import grouped_parts
from namemodels.errors import UsageError
from namemodels.inference.predictor import load as load_model
from namemodels.tokenizer import CharTokenizer
from namemodels.training.train import train

TINY = dict(embed=8, hidden=12, batch_size=16, lr=0.02, epochs=2)
TINY_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]  # TINY on the command line


def _cv_argv(data, *more):
    """``cv --task classify --data DATA MORE...``."""
    return ["cv", "--task", "classify", "--data", str(data), *more]


@pytest.fixture(scope="module")
def cv_run(small_surnames, tmp_path_factory, single_thread):
    out = tmp_path_factory.mktemp("cv")
    cfg = TrainConfig(task="classify", folds=3, **TINY)
    return cfg, out, cv.run_cv(cfg, small_surnames, out, workers=1, **QUIET)


def _repeated(n_strings: int = 120, seed: int = 0) -> NameDataset:
    """Labelled lines where strings repeat (up to 9 lines each, some in another case)."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_strings):
        label = ["A", "B", "C"][i % 3] if i % 10 else "A"  # A is the biggest class
        name = f"n{i:03d}x"
        for k in range(int(rng.integers(1, 10))):
            records.append(NameRecord(name.upper() if k % 4 == 3 else name, label))
    order = rng.permutation(len(records))
    return NameDataset([records[i] for i in order], ["A", "B", "C"], "labeled", "synthetic")


def test_folds_are_grouped_stratified_and_cover_every_line_once():
    ds = _repeated()
    k = 5
    folds = grouped_parts(ds, (1,) * k, seed=3)
    assert len(folds) == k and sum(len(f) for f in folds) == len(ds)
    assert collections.Counter(n for f in folds for n in f.names) == collections.Counter(ds.names)
    fold_of = {}
    for i, f in enumerate(folds):
        for name in f.names:
            assert fold_of.setdefault(name.casefold(), i) == i, f"{name} is in folds {fold_of[name.casefold()]} and {i}"
    biggest = max(collections.Counter(n.casefold() for n in ds.names).values())  # lines of one string
    for label in ds.labels:
        total = sum(r.label == label for r in ds.records)
        for f in folds:  # each fold holds its share of every label, up to one string's lines either way
            assert abs(sum(r.label == label for r in f.records) - total / k) <= biggest


def test_fold_runs_hold_out_their_fold_and_validate_on_part_of_the_rest():
    ds = _repeated()
    folds = grouped_parts(ds, (1,) * 4, seed=0)
    for fold in range(4):
        train_ds, valid_ds, test_ds = run_parts.split_parts(ds, TrainConfig(folds=4, fold=fold))
        assert sorted(test_ds.names) == sorted(folds[fold].names)
        assert sorted(train_ds.names + valid_ds.names) == sorted(
            n for i, f in enumerate(folds) if i != fold for n in f.names
        )
        assert not {n.casefold() for n in train_ds.names} & {n.casefold() for n in valid_ds.names}
        assert 0.05 < len(valid_ds) / (len(train_ds) + len(valid_ds)) < 0.2  # about a ninth
        everything, none, _ = run_parts.split_parts(ds, TrainConfig(folds=4, fold=fold, train_on="all"))
        assert len(everything) == len(ds) - len(folds[fold]) and len(none) == 0


def test_cv_summary_is_the_mean_of_each_folds_own_evaluation(cv_run, small_surnames):
    cfg, out, report = cv_run
    ds = load(small_surnames)
    accuracy, macro_f1 = [], []
    for fold in range(cfg.folds):
        _, held_out = run_parts.fold_parts(ds, cfg.folds, fold, cfg.data_seed())
        model = load_model(out / f"fold-{fold}" / "model", backend="torch")
        labels = model.labels
        y = np.array([labels.index(r.label) for r in held_out.records])
        pred = model.predict_logproba(held_out.names).argmax(1)
        accuracy.append(np.mean(pred == y))
        macro_f1.append(f1_score(y, pred, average="macro", labels=range(len(labels)), zero_division=0))
    assert report["model"]["accuracy"]["per_fold"] == pytest.approx(accuracy)
    assert report["model"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracy))
    assert report["model"]["accuracy"]["sd"] == pytest.approx(np.std(accuracy, ddof=1))
    assert report["model"]["macro_f1"]["mean"] == pytest.approx(np.mean(macro_f1))
    best = report["best_baseline"]
    base = report["baselines"][best]["accuracy"]["per_fold"]
    diff = report["differences"][best]["accuracy"]
    assert diff["mean"] == pytest.approx(np.mean(accuracy) - np.mean(base))
    assert diff["model_better_folds"] == sum(a > b for a, b in zip(accuracy, base))
    assert best == max(report["baselines"], key=lambda b: report["baselines"][b]["accuracy"]["mean"])
    assert json.loads((out / "cv.json").read_text())["model"] == report["model"]


def test_resume_runs_only_the_folds_that_did_not_finish(cv_run, small_surnames, tmp_path, monkeypatch):
    cfg, _, first = cv_run
    calls = []
    real = cv.run_fold

    def interrupted(job_cfg, data_path, fold_dir, tell):
        calls.append(job_cfg.fold)

        def stop_in_fold_1(message):  # the run is stopped once fold 1's baselines are saved
            if job_cfg.fold == 1 and not stopped:
                stopped.append(message)
                raise RuntimeError("stopped")
            tell(message)

        return real(job_cfg, data_path, fold_dir, tell=stop_in_fold_1)

    stopped = []
    monkeypatch.setattr(cv, "run_fold", interrupted)
    with pytest.raises(RuntimeError, match="stopped"):
        cv.run_cv(cfg, small_surnames, tmp_path, workers=1, **QUIET)
    assert calls == [0, 1] and (tmp_path / "fold-0" / cv.RESULT).exists()
    assert (tmp_path / "fold-1" / cv.BASELINES).exists() and not (tmp_path / "fold-1" / cv.RESULT).exists()
    calls.clear()
    again = cv.run_cv(cfg, small_surnames, tmp_path, workers=1, **QUIET)
    assert calls == [1, 2]  # fold 0 was reused
    assert again["model"] == first["model"] and again["baselines"] == first["baselines"]
    calls.clear()
    cv.run_cv(cfg, small_surnames, tmp_path, workers=1, **QUIET)
    assert calls == []
    with pytest.raises(UsageError, match="other settings.*--hidden"):
        other = TrainConfig(task="classify", folds=3, **{**TINY, "hidden": 13})
        cv.run_cv(other, small_surnames, tmp_path, workers=1, **QUIET)


def test_a_run_saved_with_a_retired_option_is_still_resumed(cv_run, small_surnames, tmp_path, monkeypatch):
    """Settings written before an option was retired (``extra``) still name the same recipe: every
    fold is reused and the report, and its card estimate, are the same."""
    cfg, out, first = cv_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    settings = json.loads((old / cv.SETTINGS).read_text())
    settings["train"]["extra"] = {}
    (old / cv.SETTINGS).write_text(json.dumps(settings))
    monkeypatch.setattr(cv, "run_fold", lambda *a, **k: pytest.fail("a finished fold was run again"))
    again = cv.run_cv(cfg, small_surnames, old, workers=1, **QUIET)
    assert again["model"] == first["model"]
    assert cv.cv_estimate({**again, "train": {**again["train"], "extra": {}}}, cfg, again["data"]["sha256"])


def test_train_on_all_trains_on_every_line_for_fixed_epochs(small_surnames, tmp_path, single_thread):
    config = train(TrainConfig(task="classify", train_on="all", **TINY), small_surnames, tmp_path, **QUIET)
    lines = len(load(small_surnames))
    split = config["data"]["split"]
    assert (split["train"], split["valid"], split["test"]) == (lines, 0, 0)
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["epochs"]) == TINY["epochs"]
    assert len(history["steps"]) == TINY["epochs"] * math.ceil(lines / TINY["batch_size"])  # every line, each epoch
    assert list(config["metrics"]) == ["train"] and config["metrics"]["train"]["n"] == lines
    assert "every line of the data" in (tmp_path / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize(
    "flags", [["--patience", "5"], ["--metric", "macro_f1"], ["--final-fit"], ["--no-final-fit", "--patience=2"]]
)
def test_train_on_all_refuses_early_stopping_options(small_surnames, tmp_path, capsys, flags):
    out = tmp_path / "run"
    code = main(train_argv(small_surnames, "--out", str(out), "--train-on", "all", *flags))
    err = capsys.readouterr().err
    assert code == 2 and "--train-on all" in err and flags[0].replace("--no-", "--").split("=")[0] in err
    assert "Traceback" not in err and not out.exists()
    with pytest.raises(UsageError, match="--patience"):
        TrainConfig(train_on="all", patience=2).check()


def test_cv_report_becomes_the_card_estimate_of_a_model_trained_on_all(cv_run, small_surnames, tmp_path, capsys):
    cfg, out, report = cv_run
    args = train_argv(small_surnames, "--train-on", "all", "--quiet", "--cv-report", str(out / cv.REPORT), *TINY_FLAGS)
    assert main(args + ["--out", str(tmp_path / "m")]) == 0
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["cv"]["model"]["accuracy"]["mean"] == report["model"]["accuracy"]["mean"]
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert f"accuracy {report['model']['accuracy']['mean']:.4f}" in card and "3-fold" in card
    capsys.readouterr()
    assert main(args + ["--hidden", "20", "--out", str(tmp_path / "other")]) == 2  # not the recipe that was validated
    assert "--hidden" in capsys.readouterr().err


def test_cv_command_prints_the_table_and_writes_json(cv_run, small_surnames, tmp_path, capsys):
    cfg, out, report = cv_run
    args = _cv_argv(
        small_surnames, "--folds", "3", "--out", str(out), "--quiet", "--json-out", str(tmp_path / "r.json")
    )
    args += ["--workers", "1", *TINY_FLAGS]
    assert main(args) == 0  # every fold is reused from the run above
    printed = capsys.readouterr().out
    assert "model" in printed and report["best_baseline"] in printed and "±" in printed
    assert json.loads((tmp_path / "r.json").read_text())["model"]["accuracy"] == report["model"]["accuracy"]
    # --json prints the report as JSON on stdout, the table going to stderr (as for predict, evaluate, ...)
    without_file = [a for a in args if a != "--json-out" and a != str(tmp_path / "r.json")]
    assert main(without_file + ["--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["model"]["accuracy"] == report["model"]["accuracy"] and "±" in err
    # the old spelling --json FILE still writes FILE, with a note
    assert main(without_file + ["--json", str(tmp_path / "old.json")]) == 0
    out, err = capsys.readouterr()
    assert "±" in out and f"`--json FILE` is deprecated, write `--json-out {tmp_path / 'old.json'}`" in err
    assert json.loads((tmp_path / "old.json").read_text())["model"] == report["model"]
    assert main(without_file + ["--json", str(tmp_path / "a.json"), "--json-out", str(tmp_path / "b.json")]) == 2
    assert "give --json-out FILE only" in capsys.readouterr().err
    assert main(_cv_argv(small_surnames, "--folds", "1", "--out", str(tmp_path / "x"))) == 2


def test_add_k_ngram_is_a_distribution_and_order_1_with_k_1_is_the_unigram_baseline():
    names = ["anna", "anne", "ben", "bella", "nan"]
    tok = CharTokenizer.fit(names)
    test = ["ann", "belle", "ben"]
    assert AddKNgram(tok, 1, names).nll(test, 1.0) == pytest.approx(unigram_nll(names, test, tok)["nll"])
    model = AddKNgram(tok, 3, names)
    symbols = [c for c in tok.to_dict()["chars"]]
    for context in ["", "a", "an", "be", "zz"]:  # P(next | context) over every symbol and the end sums to 1
        total = 0.0
        for nxt in symbols + [None]:
            ids = tok.encode(context + (nxt or ""), bos=False, eos=nxt is None)
            hist = ((tok.bos_id,) * 2 + tuple(ids[:-1]))[-2:]
            joint, ctx = model.joint[hist + (ids[-1],)], model.context[hist]
            total += (joint + 0.1) / (ctx + 0.1 * model.symbols)
        assert total == pytest.approx(1.0)
    k, scores = model.tune(test)
    assert scores[k] == min(scores.values()) and scores[k] == pytest.approx(model.nll(test, k))


def test_folds_run_in_parallel_processes_for_a_generator(tmp_path):
    names = tmp_path / "names.txt"
    rng = np.random.default_rng(1)
    names.write_text("\n".join("".join(rng.choice(list("abcdefgh"), rng.integers(3, 7))) for _ in range(120)) + "\n")
    cfg = TrainConfig(task="generate", folds=2, train_on="all", **{**TINY, "epochs": 1})
    report = cv.run_cv(cfg, names, tmp_path / "out", workers=2, **QUIET)
    assert set(report["baselines"]) == {"uniform", "unigram", "add-k 3-gram", "add-k 4-gram", "add-k 5-gram"}
    for fold in range(2):
        result = json.loads((tmp_path / "out" / f"fold-{fold}" / cv.RESULT).read_text())
        assert report["model"]["nll"]["per_fold"][fold] == result["model"]["nll"]
        assert result["valid"] == 0 and result["train"] + result["test"] == 120  # trained on all its training folds
    assert report["model"]["nll"]["mean"] == pytest.approx(np.mean(report["model"]["nll"]["per_fold"]))
    assert report["differences"]["uniform"]["nll"]["mean"] == pytest.approx(
        report["model"]["nll"]["mean"] - report["baselines"]["uniform"]["nll"]["mean"]
    )


def test_baselines_are_shared_between_runs_on_the_same_folds(cv_run, small_surnames, tmp_path, monkeypatch):
    cfg, out, first = cv_run
    monkeypatch.setattr(cv, "fold_baselines", lambda *a: pytest.fail("baselines computed again"))
    other = TrainConfig(task="classify", folds=3, train_on="all", **{**TINY, "hidden": 10, "epochs": 1})
    report = cv.run_cv(other, small_surnames, tmp_path / "a", workers=1, baselines_from=out, **QUIET)
    assert report["baselines"] == first["baselines"] and report["model"] != first["model"]
    with pytest.raises(UsageError, match="folds"):  # other folds: other baselines
        cv.run_cv(
            TrainConfig(task="classify", folds=4, **TINY),
            small_surnames,
            tmp_path / "b",
            workers=1,
            baselines_from=out,
            **QUIET,
        )


def test_cv_folds_1_speaks_of_folds(small_surnames, tmp_path, capsys):
    for folds in ("1", "0"):
        assert main(_cv_argv(small_surnames, "--folds", folds, "--out", str(tmp_path / "cv"))) == 2
        err = capsys.readouterr().err
        assert f"--folds must be at least 2, got {folds}" in err and "--fold " not in err
    assert main(train_argv(small_surnames, "--out", str(tmp_path / "m"), "--folds", "1")) == 2
    err = capsys.readouterr().err
    assert "--folds must be at least 2" in err and "--fold " not in err
    # no abbreviation: --fold is not cv's --folds
    assert main(_cv_argv(small_surnames, "--fold", "5")) == 2
    assert "unrecognized arguments: --fold 5" in capsys.readouterr().err


def test_a_second_cv_run_on_the_same_out_stops_at_once(small_surnames, tmp_path, capsys):
    from helpers import held_lock, make_model_dir

    out = tmp_path / "cv"
    out.mkdir()
    argv = _cv_argv(small_surnames, "--folds", "2", "--epochs", "1", "--quiet", "--out", str(out))
    with held_lock(out, "cv"):
        assert main(argv) == 2
        assert "is in use by another run (namemodels cv, process" in capsys.readouterr().err
        assert [p.name for p in out.iterdir()] == [".namemodels.lock"]  # no settings, no fold started
    model = make_model_dir(tmp_path / "model")
    assert main(argv[:-1] + [str(model)]) == 2
    assert "holds a trained model, not a cross-validation run" in capsys.readouterr().err
