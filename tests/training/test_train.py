"""namemodels.training.train on small synthetic data: each task trains, float16 saving, the wide part, resume after a
crash, EMA weights, --final-fit, encoders started from trained generators, and a short run on the real data."""

import json

import numpy as np
import pytest
import torch
from cli_args import tiny_train_argv
from helpers import FAST, QUIET

import namemodels
import namemodels.tasks as tasks
from namemodels.config import TrainConfig
from namemodels.inference.predictor import load
from namemodels.training.train import train


def _classifier(data, out, resume=False, **settings):
    """train() of a small classifier (FAST; one epoch unless ``settings`` say otherwise), quietly."""
    return train(
        TrainConfig(**{"task": "classify", "epochs": 1, **FAST, **settings}), data, out, resume=resume, **QUIET
    )


def test_classifier_learns_the_syllables(classifier_dir):
    config = json.loads((classifier_dir / "config.json").read_text())
    assert config["metrics"]["test"]["accuracy"] > 0.6  # 3 classes: chance is about 0.33
    for name in ("model.safetensors", "history.json", "MODEL_CARD.md"):
        assert (classifier_dir / name).is_file()
    assert len(json.loads((classifier_dir / "history.json").read_text())["epochs"]) >= 1


def test_save_dtype_float16_halves_the_weights_and_scores_what_it_saved(surnames, tmp_path):
    from safetensors import safe_open

    config = _classifier(surnames, tmp_path, epochs=2, ngram_buckets=512, save_dtype="float16")
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    p = load(tmp_path, backend="torch")  # float16 on disk, float32 in the model
    assert all(t.dtype == torch.float32 for t in p.backend.model.state_dict().values())
    from namemodels.data.loader import load as load_data
    from namemodels.data.split import grouped_split
    from namemodels.evaluate import classifier_logprobs

    test = grouped_split(load_data(surnames), seed=0)[2]
    lp = classifier_logprobs(p.backend.model, p.tokenizer, test.names)
    labels = config["labels"]
    accuracy = float(np.mean(lp.argmax(1) == np.array([labels.index(r.label) for r in test.records])))
    assert accuracy == pytest.approx(config["metrics"]["test"]["accuracy"])  # the recorded metric is the saved model's


def test_wide_and_deep_classifier_trains(surnames, tmp_path):
    config = _classifier(surnames, tmp_path, epochs=4, ngram_buckets=512)
    assert config["model"]["ngram_buckets"] == 512
    assert config["metrics"]["test"]["accuracy"] > 0.6
    p = load(tmp_path, backend="torch")
    assert p.predict(["Tanaka"])[0][0][0] in config["labels"]


@pytest.mark.parametrize("task,cell", [("gender", "gru"), ("multitask", "momentum_gru")])
def test_gender_tasks_train(first_names, tmp_path, task, cell):
    config = train(TrainConfig(task=task, epochs=3, cell=cell, **FAST), first_names, tmp_path, **QUIET)
    auc = config["metrics"]["test"]["roc_auc"]
    assert 0.5 < auc <= 1.0
    if task == "multitask":
        assert 1.0 < config["metrics"]["test"]["perplexity"] < len(config["tokenizer"]["chars"]) + 1


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_after_a_crash_gives_the_same_model(surnames, tmp_path, monkeypatch, ema):
    cfg = TrainConfig(task="classify", epochs=3, dropout=0.3, ema=ema, **FAST)
    train(cfg, surnames, tmp_path / "full", **QUIET)
    steps_per_epoch = int(np.ceil(len(json.loads((tmp_path / "full" / "history.json").read_text())["steps"]) / 3))
    calls = {"n": 0}
    real_loss = tasks.Classify.loss

    def crashing_loss(*a, **k):
        calls["n"] += 1
        if calls["n"] == steps_per_epoch + 3:  # mid-way through the second epoch
            raise KeyboardInterrupt
        return real_loss(*a, **k)

    monkeypatch.setattr(tasks.Classify, "loss", crashing_loss)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, surnames, tmp_path / "resumed", **QUIET)
    assert json.loads((tmp_path / "resumed" / "last.json").read_text())["epochs_done"] == 1
    monkeypatch.setattr(tasks.Classify, "loss", real_loss)
    train(cfg, surnames, tmp_path / "resumed", resume=True, **QUIET)
    from safetensors.torch import load_file

    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(tmp_path / "resumed" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_ema_saves_the_moving_average_of_every_step(surnames, tmp_path, monkeypatch):
    """With --ema the saved weights are avg_t = k_t avg_(t-1) + (1 - k_t) w_t, k_t = min(decay, (1+t)/(10+t)),
    over the weights after every optimizer step, starting from the initial weights."""
    seen = []

    class Recording(torch.optim.AdamW):
        def __init__(self, params, **kw):
            params = list(params)
            super().__init__(params, **kw)
            self.watched = params
            seen.append([p.detach().clone() for p in params])

        def step(self, *a, **k):
            out = super().step(*a, **k)
            seen.append([p.detach().clone() for p in self.watched])
            return out

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    decay = 0.95
    _classifier(surnames, tmp_path, ema=decay, ngram_buckets=64, batch_size=4)
    avg = [p.double() for p in seen[0]]
    for t, weights in enumerate(seen[1:], 1):
        keep = min(decay, (1 + t) / (10 + t))
        avg = [keep * a + (1 - keep) * w.double() for a, w in zip(avg, weights)]
    model = load(tmp_path, backend="torch").backend.model
    saved = dict(model.named_parameters())
    names = [n for n, _ in model.named_parameters()]
    assert len(seen) > 20 and len(names) == len(avg)
    for name, expected in zip(names, avg):
        torch.testing.assert_close(saved[name].double(), expected, rtol=0, atol=1e-6)
    assert not torch.allclose(saved[names[-1]], seen[-1][-1])  # not simply the last weights


def test_final_fit_trains_on_train_and_valid_for_every_epoch(surnames, tmp_path):
    from safetensors.torch import load_file

    plain = _classifier(surnames, tmp_path / "plain")
    config = _classifier(surnames, tmp_path / "final", epochs=3, patience=1, final_fit=True)
    split = config["data"]["split"]
    assert split["valid_in_train"] and not plain["data"]["split"]["valid_in_train"]
    assert split["train"] == plain["data"]["split"]["train"] + split["valid"]
    history = json.loads((tmp_path / "final" / "history.json").read_text())
    assert len(history["epochs"]) == 3 and len(history["steps"]) == 3 * int(
        np.ceil(split["train"] / FAST["batch_size"])
    )
    saved, last = (
        load_file(tmp_path / "final" / "model.safetensors"),
        load_file(tmp_path / "final" / "checkpoint-0003.safetensors"),
    )
    for k, v in saved.items():  # the last epoch's weights, whatever the validation score did
        torch.testing.assert_close(v, last["model." + k], rtol=0, atol=0)
    assert "--final-fit" in (tmp_path / "final" / "MODEL_CARD.md").read_text()


def test_resume_accepts_checkpoints_from_before_newer_options(surnames, tmp_path):
    _classifier(surnames, tmp_path)
    state = json.loads((tmp_path / "last.json").read_text())
    for option in ("ema", "label_smoothing", "final_fit"):  # a checkpoint written before these existed
        del state["config"]["train"][option]
    (tmp_path / "last.json").write_text(json.dumps(state))
    config = _classifier(surnames, tmp_path, resume=True)
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 1 and config["metrics"]["test"]


def test_resume_refuses_other_settings(surnames, tmp_path):
    _classifier(surnames, tmp_path)
    with pytest.raises(namemodels.errors.UsageError, match="other settings"):
        _classifier(surnames, tmp_path, resume=True, epochs=2)


@pytest.mark.parametrize(
    "task,source,cell",
    [
        ("classify", "names", "lstm"),
        ("gender", "first_names.csv", "momentum_gru"),
        ("generate", "first_names.csv", "gru"),
        ("multitask", "first_names.csv", "momentum_lstm"),
    ],
)
def test_short_real_training_run(shared_data, tmp_path, task, source, cell):
    """A few hundred real names, one epoch, every task: the numbers land in plausible ranges."""
    config = train(
        TrainConfig(task=task, cell=cell, epochs=1, max_train=400, **FAST),
        shared_data / source,
        tmp_path,
        **QUIET,
    )
    test = config["metrics"]["test"]
    if task == "classify":
        assert len(config["labels"]) == 18 and 0.3 < test["accuracy"] <= 1  # Russian alone is ~47%
    if task in ("gender", "multitask"):
        assert 0.5 < test["roc_auc"] <= 1
    if task in ("generate", "multitask"):
        assert 1 < test["perplexity"] < len(config["tokenizer"]["chars"]) + 1


def test_encoder_starts_from_pretrained_generators(surnames, tmp_path):
    from safetensors.torch import load_file

    from namemodels.models import build_model
    from namemodels.tasks import model_spec
    from namemodels.training.train import init_encoder, prepare

    lm = dict(task="generate", conditional=False, epochs=1, **FAST)
    train(TrainConfig(**lm), surnames, tmp_path / "fwd", **QUIET)
    train(TrainConfig(reverse_names=True, **lm), surnames, tmp_path / "rev", **QUIET)
    cfg = TrainConfig(
        task="classify",
        bidirectional=True,
        init_from=str(tmp_path / "fwd"),
        init_reverse_from=str(tmp_path / "rev"),
        **FAST,
    )
    *_, labels, tok = prepare(cfg, surnames)
    model = build_model(model_spec(cfg, len(tok), labels))
    assert init_encoder(model, cfg) == 1 + 4 + 4  # embedding, forward layer, reverse layer
    fwd, rev = load_file(tmp_path / "fwd" / "model.safetensors"), load_file(tmp_path / "rev" / "model.safetensors")
    own = model.state_dict()
    torch.testing.assert_close(own["encoder.embedding.weight"], fwd["encoder.embedding.weight"])
    torch.testing.assert_close(own["encoder.rnn.weight_hh_l0"], fwd["encoder.rnn.weight_hh_l0"])
    torch.testing.assert_close(own["encoder.rnn.weight_hh_l0_reverse"], rev["encoder.rnn.weight_hh_l0"])
    with pytest.raises(namemodels.errors.UsageError, match="no encoder weights fit"):
        other = TrainConfig(task="classify", init_from=str(tmp_path / "fwd"), **{**FAST, "hidden": 24})
        init_encoder(build_model(model_spec(other, len(tok), labels)), other)


def test_logit_adjust_shifts_each_label_by_its_share_of_the_training_lines(tmp_path, single_thread):
    """``--logit-adjust TAU``: the saved classifier's log-probabilities are the plain model's with
    ``TAU * log prior`` taken off each label's logit and renormalised, the prior counted here from the
    files (every line is trained on with --train-on all; add-one smoothed); ONNX gives the same."""
    from helpers import make_surnames

    data = make_surnames(tmp_path / "data", per_class=60)
    files = sorted(data.glob("*.txt"))
    for f, keep in zip(files, (50, 20, 6)):  # unequal languages, so the prior matters
        f.write_text("\n".join(f.read_text(encoding="utf-8").split()[:keep]) + "\n", encoding="utf-8")
    lines = {f.stem: len(f.read_text(encoding="utf-8").split()) for f in files}
    common = dict(task="classify", epochs=1, train_on="all", ngram_buckets=64, **FAST)
    train(TrainConfig(**common), data, tmp_path / "plain", **QUIET)
    train(TrainConfig(**common, logit_adjust=0.7), data, tmp_path / "adjusted", **QUIET)
    plain, adjusted = load(tmp_path / "plain", backend="torch"), load(tmp_path / "adjusted", backend="torch")
    assert plain.labels == adjusted.labels
    prior = np.array([lines[label] + 1.0 for label in plain.labels])
    prior /= prior.sum()
    names = ["Kovac", "Smith", "Li", "Abbas", "Dvorak", "Ng"]
    shifted = plain.predict_logproba(names) - 0.7 * np.log(prior)
    expected = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    np.testing.assert_allclose(adjusted.predict_logproba(names), expected, atol=1e-5)
    from namemodels.export import export_model_dir

    export_model_dir(tmp_path / "adjusted")
    onnx = load(tmp_path / "adjusted", backend="onnx").predict_logproba(names)
    np.testing.assert_allclose(onnx, expected, atol=1e-5)


@pytest.mark.parametrize("task", ["gender", "generate"])
def test_logit_adjust_is_refused_without_language_labels(task):
    from namemodels.errors import UsageError

    with pytest.raises(UsageError, match="--logit-adjust"):
        TrainConfig(task=task, logit_adjust=0.5).check()


def test_train_refuses_a_finished_model_without_resume_or_force(small_surnames, tmp_path, capsys):
    from namemodels.cli import main

    out = tmp_path / "m"
    assert main(tiny_train_argv(small_surnames, out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(tiny_train_argv(small_surnames, out, "--seed", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds a finished model" in err and "--resume" in err and "--force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched
    # --resume keeps it: a finished run is not trained further, its weights are written again unchanged
    assert main(tiny_train_argv(small_surnames, out, "--resume")) == 0
    assert (out / "model.safetensors").read_bytes() == before["model.safetensors"]
    # --force trains a new model in its place; an ONNX file of the old model is removed, not left to be refused
    (out / "model.onnx").write_bytes(b"the old model's export")
    assert main(tiny_train_argv(small_surnames, out, "--seed", "1", "--force")) == 0
    assert (out / "model.safetensors").read_bytes() != before["model.safetensors"]
    assert json.loads((out / "config.json").read_text())["train"]["seed"] == 1
    assert not (out / "model.onnx").exists() and not (out / ".namemodels.lock").exists()
    assert main(tiny_train_argv(small_surnames, out, "--resume", "--force")) == 2


def test_train_refuses_an_unfinished_checkpoint_and_an_ensemble_without_resume(small_surnames, tmp_path, capsys):
    from helpers import make_model_dir

    from namemodels.checkpoint_json import MANIFEST
    from namemodels.cli import main

    out = tmp_path / "half"
    out.mkdir()
    (out / MANIFEST).write_text("{}")  # refused before the checkpoint is read
    assert main(tiny_train_argv(small_surnames, out)) == 2
    assert "holds an unfinished run's checkpoint" in capsys.readouterr().err
    model = make_model_dir(tmp_path / "ens")
    assert main(tiny_train_argv(small_surnames, model, "--ensemble", "2")) == 2
    assert "holds a finished model" in capsys.readouterr().err
    # --resume on a finished model without a checkpoint would train afresh over it
    assert main(tiny_train_argv(small_surnames, model, "--resume")) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err


@pytest.mark.parametrize("ensemble", ["1", "2"])
def test_a_second_run_on_the_same_out_stops_at_once(small_surnames, tmp_path, capsys, ensemble):
    import time

    from helpers import held_lock

    from namemodels.cli import main
    from namemodels.outlock import LOCK_NAME

    out = tmp_path / "busy"
    out.mkdir()
    with held_lock(out, "train") as first:  # another process plays the first run
        start = time.perf_counter()
        assert main(tiny_train_argv(small_surnames, out, "--ensemble", ensemble)) == 2
        assert time.perf_counter() - start < 5
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"is in use by another run (namemodels train, process {first.pid})" in err
        assert "choose another --out" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]


def test_the_lock_is_released_and_removed_and_reentrant(tmp_path):
    from namemodels.outlock import output_lock

    with output_lock(tmp_path, "train"):
        with output_lock(tmp_path, "train"):  # the CLI takes it before importing torch, then train() again
            pass
        assert (tmp_path / ".namemodels.lock").exists()
    assert list(tmp_path.iterdir()) == []


def test_a_lock_left_by_a_killed_run_is_not_stale(tmp_path):
    """flock is released by the kernel when its process dies: a run killed with SIGKILL leaves the
    file, and the next run takes the lock at once."""
    from helpers import held_lock

    from namemodels.errors import UsageError
    from namemodels.outlock import LOCK_NAME, output_lock

    with held_lock(tmp_path, "train") as first:
        with pytest.raises(UsageError, match=rf"in use by another run \(namemodels train, process {first.pid}\)"):
            with output_lock(tmp_path, "train"):
                pass
    assert (tmp_path / LOCK_NAME).exists()  # left behind by the killed run ...
    with output_lock(tmp_path, "train"):  # ... and not in the way
        pass


def test_an_out_that_is_a_file_is_a_usage_error(small_surnames, tmp_path, capsys):
    from namemodels.cli import main

    a_file = tmp_path / "model.txt"
    a_file.write_text("not a folder")
    assert main(tiny_train_argv(small_surnames, a_file)) == 2
    assert main(["cv", "--task", "classify", "--data", str(small_surnames), "--out", str(a_file / "cv")]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "cannot create the folder" in err and "Traceback" not in err
    assert a_file.read_text() == "not a folder"


def test_proj_size_is_a_saved_model_option(surnames, tmp_path):
    """--proj-size: trained, saved in config.json's model spec, and the saved model loads and predicts."""
    from namemodels.cli import main

    out = tmp_path / "m"
    assert (
        main(
            [
                "train",
                "classify",
                "--data",
                str(surnames),
                "--out",
                str(out),
                "--quiet",
                "--epochs",
                "1",
                "--embed",
                "8",
                "--hidden",
                "16",
                "--proj-size",
                "6",
                "--bidirectional",
                "--pool",
                "max",
                "--max-train",
                "40",
            ]
        )
        == 0
    )
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["proj_size"] == 6 and config["train"]["proj_size"] == 6
    p = load(out, backend="torch")
    assert p.backend.model.state_dict()["encoder.rnn.weight_hr_l0"].shape == (6, 16)
    assert p.predict(["Tanaka"])[0][0][0] in config["labels"]


@pytest.mark.parametrize(
    "argv,words",
    [
        (["--hidden", "16", "--proj-size", "16"], "--proj-size must be below --hidden (16), got 16"),
        (["--cell", "gru", "--proj-size", "4"], "--cell gru has none: use --cell lstm or momentum_lstm"),
        (["--proj-size", "-1"], "--proj-size must be at least 0, got -1"),
    ],
)
def test_proj_size_out_of_range_is_a_usage_error(tmp_path, capsys, argv, words):
    from namemodels.cli import main

    assert main(["train", "classify", "--data", str(tmp_path), "--out", str(tmp_path / "o")] + argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
