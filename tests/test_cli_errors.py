"""Bad input on the command line: one line on stderr naming the problem, exit code 2, no traceback,
and nothing left behind."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from namemodels.cli import build_parser, main
from namemodels.inference.locate import PRETRAINED

sys.path.insert(0, str(Path(__file__).parent))
from helpers import cli_without, fails_one_line, make_surnames  # noqa: E402


@pytest.mark.parametrize(
    "argv, words",
    [
        (["gender", "--model", "surnames", "Maria"], ["not a gender model", "Arabic"]),
        (["gender", "--model", "first-names", "Maria"], ["predict needs a classifier"]),
        (["generate", "--seed", "-1"], ["--seed must be at least 0, got -1"]),
        (["generate", "--n", "0"], ["--n must be between 1 and 1,000,000"]),
        (["generate", "--n", "1000001"], ["--n must be between 1 and 1,000,000"]),
        (["generate", "--temperature", "nan"], ["--temperature must be a finite number"]),
        (["generate", "--temperature", "0"], ["--temperature must be above 0"]),
        (["generate", "--start", "Ro9"], ["'Ro9' contains digits"]),
        (["generate", "--top-k", "0"], ["--top-k must be at least 1"]),
        (["predict", "--top", "0", "Smith"], ["--top must be at least 1"]),
        (["predict", "--top", "two", "Smith"], ["--top must be a whole number, got 'two'"]),
        (["train", "classify", "--data", "d", "--out", "o", "--pool", "bogus"], ["--pool must be one of last, max"]),
        (["train", "classify", "--data", "d", "--out", "o", "--schedule", "linear"], ["--schedule must be one of"]),
        (["train", "classify", "--data", "d", "--out", "o", "--hidden", "0"], ["--hidden must be at least 1, got 0"]),
        (["train", "classify", "--data", "d", "--out", "o", "--batch-size", "0"], ["--batch-size must be at least 1"]),
        (["train", "classify", "--data", "d", "--out", "o", "--epochs", "0"], ["--epochs must be at least 1"]),
        (
            ["train", "classify", "--data", "d", "--out", "o", "--dropout", "1"],
            ["--dropout must be at least 0 and below 1"],
        ),
        (["train", "classify", "--data", "d", "--out", "o", "--lr", "inf"], ["--lr must be a finite number"]),
        (
            ["train", "classify", "--data", "d", "--out", "o", "--metric", "nll"],
            ["--metric for classify must be one of"],
        ),
        (["study", "--seeds", "0", "--out", "o"], ["--seeds must be at least 1"]),
        (["export", "surnames", "--out", "x.onnx", "--opset", "-3"], ["--opset must be at least 1"]),
    ],
)
def test_bad_options_are_one_line(capsys, tmp_path, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    fails_one_line(capsys, argv, *words)
    assert list(tmp_path.iterdir()) == []


# Minimal valid command lines, to which one bad option is added.
BASE = {
    ("predict",): ["predict", "Smith"],
    ("gender",): ["gender", "Maria"],
    ("generate",): ["generate"],
    ("train",): ["train", "classify", "--data", "d", "--out", "o"],
    ("export",): ["export", "surnames", "--out", "x"],
    ("study",): ["study", "--out", "o"],
}


def _commands(parser, path=()):
    subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    yield path, parser
    for sub in subs:
        for name, p in sub.choices.items():
            yield from _commands(p, path + (name,))


def _numeric_options():
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if action.option_strings and (action.type in (int, float) or hasattr(action.type, "allowed")):
                yield path, action


def _outside(action) -> str:
    allowed = getattr(action.type, "allowed", None)
    if allowed is None:  # bench's own checks: every number there is a positive count
        return "0"
    if allowed.low is not None:
        return str(allowed.low if allowed.low_open else allowed.low - 1)
    return str(allowed.high + 1)


def test_every_numeric_option_is_range_checked(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked = []
    for path, action in _numeric_options():
        if path[:1] != ("bench",):  # commands of this package: checked by the parser itself
            assert hasattr(action.type, "allowed"), (path, action.option_strings)
        base = BASE.get(path[:1], list(path)) if path[:1] != ("bench",) else list(path)  # a benchmark needs no argument
        if path[:1] == ("study",) and len(path) == 2:
            base = ["study", path[1], "--out", "o"]
        flag = action.option_strings[-1]
        for bad in (_outside(action),) + (
            ("nan",) if action.type is float or getattr(action.type, "__name__", "") == "float" else ()
        ):
            fails_one_line(capsys, base + [flag, bad], flag)
        checked.append(" ".join(path) + " " + flag)
    assert len(checked) > 40 and "train --hidden" in checked and "generate --seed" in checked
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_help_lists_choices_and_no_empty_default(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default )" not in text and "--pool {last,max}" in text and "{cosine,constant}" in text
    assert main(["study", "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: namemodels study [PART] --out DIR")
    assert "about 3 minutes" not in text


# ------------------------------------------------------------------------------------------ config.json


@pytest.fixture
def model_copy(tmp_path):
    d = tmp_path / "m"
    shutil.copytree(PRETRAINED / "surnames", d)
    return d


def _edit(d, change):
    path = d / "config.json"
    config = json.loads(path.read_text())
    config = change(config)
    path.write_text(json.dumps(config))


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda c: {k: v for k, v in c.items() if k != "task"}, ["'task' is missing"]),
        (lambda c: {k: v for k, v in c.items() if k != "labels"}, ["'labels' is missing"]),
        (lambda c: {k: v for k, v in c.items() if k != "tokenizer"}, ["'tokenizer' is missing"]),
        (lambda c: {**c, "labels": "Arabic"}, ["'labels' must be a list"]),
        (lambda c: {**c, "tokenizer": ["a"]}, ["'tokenizer' must be an object"]),
        (lambda c: {**c, "model": {**c["model"], "hidden": "128"}}, ["'model.hidden' must be a positive whole number"]),
        (lambda c: {**c, "model": {**c["model"], "kind": "lm"}}, ["'model.kind'"]),
        (lambda c: {**c, "labels": c["labels"][:-1]}, ["'model.num_classes' is 18, but 'labels' has 17"]),
        (
            lambda c: {**c, "model": {**c["model"], "proj_size": 144}},
            ["config.json: 'model.proj_size' must be below 'model.hidden' (128), got 144; restore the file"],
        ),
        (lambda c: [c], ["must hold a JSON object"]),
    ],
)
def test_config_json_is_checked_against_its_schema(capsys, model_copy, change, words):
    _edit(model_copy, change)
    fails_one_line(capsys, ["predict", "--model", model_copy, "Smith"], str(model_copy / "config.json"), *words)


def test_wrong_hidden_size_is_one_line(capsys, model_copy):
    pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    (model_copy / "model.onnx").unlink()  # the torch path reads model.hidden
    # without the SHA-256 record (a model saved before they were written), so that the weights are read
    _edit(
        model_copy, lambda c: {**{k: v for k, v in c.items() if k != "sha256"}, "model": {**c["model"], "hidden": 64}}
    )
    fails_one_line(
        capsys, ["predict", "--model", model_copy, "Smith"], "do not match config.json", "512x32 in the file but 256x32"
    )


# ------------------------------------------------------------------------------------------ missing modules

MISSING = cli_without("safetensors")


def test_evaluate_names_the_missing_module(tmp_path):
    pytest.importorskip("torch")
    data = make_surnames(tmp_path, per_class=10)
    r = subprocess.run(
        [sys.executable, "-c", MISSING, "evaluate", "surnames", "--data", str(data)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "safetensors" in r.stderr and "torch is not installed" not in r.stderr


# ------------------------------------------------------------------------------------------ nothing left behind


def test_offline_download_suggests_url_and_leaves_no_folder(capsys, tmp_path):
    to = tmp_path / "new" / "data"
    fails_one_line(
        capsys, ["data", "download", "surnames", "--to", to, "--url", "http://127.0.0.1:9/data.zip", "--quiet"], "--url"
    )
    assert list(tmp_path.iterdir()) == []


def test_failed_train_leaves_no_folder_but_keeps_an_existing_one(capsys, tmp_path):
    fails_one_line(
        capsys, ["train", "classify", "--data", tmp_path / "missing", "--out", tmp_path / "a" / "b"], "missing"
    )
    assert list(tmp_path.iterdir()) == []
    mine = tmp_path / "mine"
    mine.mkdir()
    fails_one_line(capsys, ["train", "classify", "--data", tmp_path / "missing", "--out", mine], "missing")
    assert mine.is_dir()
