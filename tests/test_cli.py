"""namemodels.cli end to end on trained models: predict, train, evaluate and generate, and their errors."""

import json

import pytest

from namemodels.cli import main


def test_cli_predict_prints_top_labels_and_reports_bad_names(classifier_dir, capsys):
    code = main(["predict", "Rossini", "", "12345", "Kawayama", "--model", str(classifier_dir)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = out.strip().splitlines()
    # each name's line says what its answer rests on: (model), or (data: N lines) for a training name
    assert lines[0].startswith("> Rossini (") and lines[4].startswith("> Kawayama (") and len(lines) == 8
    assert all(line.startswith("(-") or line.startswith("(0") for line in lines[1:4])
    assert err.count("error:") == 2 and "Traceback" not in err
    assert main(["predict", "Rossini", "--model", str(classifier_dir), "--json", "--top", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["name"] == "Rossini" and len(data[0]["predictions"]) == 1


@pytest.mark.parametrize(
    "argv,message",
    [
        (["predict", "Smith", "--model", "no-such-model"], "unknown model"),
        (["train", "classify", "--data", "/no/such/path", "--out", "/tmp/x"], "/no/such/path"),
        (["evaluate", "no-such-model", "--data", "."], "unknown model"),
    ],
)
def test_cli_errors_exit_2_without_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize(
    "task,flags,message",
    [
        ("classify", ["--ngram-buckets", "-1"], "--ngram-buckets must be"),
        ("classify", ["--save-dtype", "int8"], "--save-dtype must be"),
        ("classify", ["--ngram-max", "0"], "--ngram-max must be between 1 and 8"),
        ("generate", ["--ngram-buckets", "64"], "has none"),
        ("classify", ["--ema", "1.0"], "--ema must be at least 0 and below 1"),
        ("classify", ["--label-smoothing", "-0.1"], "--label-smoothing must be"),
        ("generate", ["--ensemble", "2"], "--ensemble must be"),
        ("classify", ["--ensemble", "0"], "--ensemble must be"),
    ],
)
def test_cli_train_rejects_bad_options(surnames, tmp_path, capsys, task, flags, message):
    assert main(["train", task, "--data", str(surnames), "--out", str(tmp_path / "m"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_cli_train_evaluate_generate(surnames, tmp_path, capsys):
    out = tmp_path / "m"
    assert (
        main(
            [
                "train",
                "generate",
                "--data",
                str(surnames),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--hidden",
                "16",
                "--embed",
                "8",
                "--quiet",
                "--cell",
                "gru",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(surnames), "--json", "--baseline"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["split"] == "test" and 1 < res["metrics"]["perplexity"] < res["baseline"]["uniform_perplexity"] + 5
    assert main(["generate", "--model", str(out), "--n", "4", "--seed", "1", "--category", "Italian"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    assert main(["generate", "--model", str(out), "--category", "Martian"]) == 2


def _parsers(parser, path=("namemodels",)):
    """Every parser of the CLI, with the words that reach it: the top one and each (sub)subcommand's."""
    import argparse

    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, path + (name,))


def test_no_parser_accepts_an_abbreviated_option():
    """argparse's prefix matching is off everywhere: `cv --fold 5` must not be taken as `--folds 5`. Each
    parser, its required arguments made optional, is given every shortened spelling of each long option
    that is not itself an option: none may be taken as the option."""
    import argparse

    from namemodels.cli import build_parser

    walked = list(_parsers(build_parser()))
    assert len(walked) > 10 and {p[-1] for p, _ in walked} >= {"cv", "train", "stats", "cells", "generate"}
    for path, parser in walked:
        assert parser.allow_abbrev is False, " ".join(path)
        for action in parser._actions:
            action.required = False
            if not action.option_strings and not isinstance(action, argparse._SubParsersAction):
                action.nargs = "?"
        options = set(parser._option_string_actions)
        for option in options:
            for k in range(3, len(option)):
                short = option[:k]
                if short in options or not short.startswith("--"):
                    continue
                _, extras = parser.parse_known_args([short])
                assert extras == [short], f"{' '.join(path)} took {short} as {option}"
    from namemodels.cli import main

    assert main(["cv", "--task", "classify", "--data", "x", "--fold", "5"]) == 2


def test_json_means_one_thing_in_every_command(tmp_path, first_names, capsys):
    """--json is a flag that prints JSON on stdout in every command that has it, and --json-out FILE writes
    the same JSON to a file (where the old --json FILE spelling is kept, it is optional: nargs "?")."""
    from namemodels.cli import build_parser

    with_json = [(path, p) for path, p in _parsers(build_parser()) if "--json" in p._option_string_actions]
    assert {path[-1] for path, _ in with_json} >= {
        "predict",
        "gender",
        "generate",
        "train",
        "cv",
        "evaluate",
        "stats",
        "export",
        "cells",
        "latency",
        "bulk",
        "kernel-build",
    }
    for path, p in with_json:
        action = p._option_string_actions["--json"]
        assert action.const is True and action.nargs in (0, "?"), " ".join(path)
        if path[-1] not in ("predict", "gender", "generate"):  # these write files with --output
            assert "--json-out" in p._option_string_actions, " ".join(path)
    assert main(["data", "stats", str(first_names), "--json-out", str(tmp_path / "s.json")]) == 0
    assert "records" in capsys.readouterr().out  # the text, on stdout
    assert json.loads((tmp_path / "s.json").read_text())["kind"] == "gender"
    assert main(["export", "surnames", "--out", str(tmp_path / "m.onnx"), "--json"]) == 2
    assert "add --verify" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()


def test_python_dash_m_runs_the_command(tmp_path):
    """`python -m namemodels` is the `namemodels` command: same output, same exit codes."""
    import subprocess
    import sys

    ok = subprocess.run([sys.executable, "-m", "namemodels", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.startswith("namemodels")
    bad = subprocess.run(
        [sys.executable, "-m", "namemodels", "predict", "--top", "0", "Hinton"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "--top" in bad.stderr
