"""Crash-safe checkpoints: a crash between any two writes of the trainer resumes to the same weights,
an inconsistent checkpoint set is refused with a message, a finished run says so, and an
interrupted run's folder passed to predict says how to finish it."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from cli_args import train_argv
from helpers import QUIET
from safetensors.torch import save_file

import namemodels
import namemodels.checkpoint_json as checkpoint_json
import namemodels.tasks as tasks
from namemodels.cli import main
from namemodels.config import TrainConfig
from namemodels.errors import UsageError
from namemodels.training.checkpoint import CRASH_EXIT, CRASH_POINTS, checkpoint_name
from namemodels.training.train import train

TINY = dict(task="classify", epochs=3, embed=4, hidden=8, batch_size=16, lr=0.01, dropout=0.2, ema=0.9)
COMMAND = "namemodels train classify --tiny"
CRASH = textwrap.dedent("""
    import json, sys, torch
    torch.set_num_threads(1)
    from namemodels.config import TrainConfig
    from namemodels.training.train import train
    train(TrainConfig(**json.loads(sys.argv[1])), sys.argv[2], sys.argv[3], progress=False, log=lambda m: None,
          command=sys.argv[4])
""")


@pytest.fixture(scope="module")
def reference(small_surnames, tmp_path_factory, single_thread):
    """The uninterrupted run (one thread, as the crashed and resumed runs)."""
    out = tmp_path_factory.mktemp("reference")
    return out, train(TrainConfig(**TINY), small_surnames, out, **QUIET)


def crash(data, out, point: str, cfg: dict = TINY) -> None:
    """Train in a fresh process that ends like `kill -9` right after the write named by ``point``."""
    env = dict(os.environ, NAMEMODELS_CRASH_AFTER=point, OMP_NUM_THREADS="1")
    run = subprocess.run(
        [sys.executable, "-c", CRASH, json.dumps(cfg), str(data), str(out), COMMAND],
        env=env,
        cwd=out.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == CRASH_EXIT, run.stderr


def history(out):
    h = json.loads((out / "history.json").read_text())
    return h["steps"], [(e["epoch"], e["train_loss"], e["valid"]) for e in h["epochs"]]  # not the timings


@pytest.mark.parametrize("point", ["checkpoint:2", "manifest:2", "manifest:3", "model:3"])
def test_a_crash_between_writes_resumes_to_the_weights_of_an_uninterrupted_run(
    small_surnames, reference, tmp_path, point, single_thread
):
    """The fault-injection hook ends the process between two writes (checkpoint file / manifest of
    epoch 2; manifest / history.json of the last epoch; model.safetensors / config.json at the end);
    --resume must then give byte-identical weights and the history of the uninterrupted run (no epoch
    replayed or lost)."""
    assert point.split(":")[0] in CRASH_POINTS
    ref_dir, ref_config = reference
    out = tmp_path / "run"
    out.mkdir()
    crash(small_surnames, out, point)
    assert not (out / "config.json").exists()
    manifest = json.loads((out / "last.json").read_text())
    assert manifest["epochs_done"] == (1 if point == "checkpoint:2" else int(point[-1]))
    assert list(manifest["files"]) == [checkpoint_name(manifest["epochs_done"])]
    if point == "checkpoint:2":  # the new file was written, the manifest still names the old one
        assert (out / checkpoint_name(2)).is_file() and (out / checkpoint_name(1)).is_file()
    with pytest.raises(
        UsageError,
        match=rf"stopped after epoch {manifest['epochs_done']} of 3 .*no config\.json.*"
        rf"`{COMMAND} --resume`",
    ):
        namemodels.load(out)

    logs = []
    config = train(TrainConfig(**TINY), small_surnames, out, resume=True, progress=False, log=logs.append)
    assert (out / "model.safetensors").read_bytes() == (ref_dir / "model.safetensors").read_bytes()
    assert history(out) == history(ref_dir)
    assert config["metrics"] == ref_config["metrics"]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == [checkpoint_name(3)]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    if point.endswith(":3"):
        assert any("had finished (3 of 3 epochs)" in m for m in logs), logs
    else:
        assert any(f"resuming from epoch {manifest['epochs_done'] + 1} of 3" in m for m in logs), logs


@pytest.fixture(scope="module")
def finished(small_surnames, tmp_path_factory):
    out = tmp_path_factory.mktemp("two")
    train(TrainConfig(**dict(TINY, epochs=2)), small_surnames, out, **QUIET)
    return out


def _copy(src, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    (dst / "config.json").unlink()  # an interrupted run: no final model yet
    return dst


def _resume(data, out):
    return train(TrainConfig(**dict(TINY, epochs=2)), data, out, resume=True, **QUIET)


def _drop_the_last_checkpoint(out):
    (out / checkpoint_name(2)).unlink()


def _replace_the_last_checkpoint(out):
    save_file({"model.x": torch.zeros(2)}, str(out / checkpoint_name(2)), metadata={"format": "pt", "epoch": "2"})


def _move_the_manifest_to_epoch_1(out):
    manifest = json.loads((out / "last.json").read_text())
    manifest["epochs_done"] = 1
    (out / "last.json").write_text(json.dumps(manifest))


def _write_the_old_layout(out):
    manifest = json.loads((out / "last.json").read_text())
    (out / "last.json").write_text(json.dumps({"config": manifest["config"], "epoch": 1, "best": 0.5}))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (
            _drop_the_last_checkpoint,
            r"inconsistent: last\.json names checkpoint-0002\.safetensors \(epoch 2\), "
            r"which is missing; start the run again",
        ),
        (
            _replace_the_last_checkpoint,
            r"checkpoint-0002\.safetensors is not the file last\.json names \(its SHA-256 differs",
        ),
        (
            _move_the_manifest_to_epoch_1,
            r"last\.json is at epoch 1 but checkpoint-0002\.safetensors holds epoch 2",
        ),
        (_write_the_old_layout, r"older namemodels.*start the run again with a new --out"),
    ],
)
def test_an_inconsistent_checkpoint_set_is_refused(small_surnames, finished, tmp_path, capsys, spoil, message):
    """By train() and by the command line, with the same message."""
    out = _copy(finished, tmp_path)
    spoil(out)
    with pytest.raises(UsageError, match=message):
        _resume(small_surnames, out)
    assert main(train_argv(small_surnames, "--out", str(out), "--resume", "--epochs", "2")) == 2
    assert re.search(message, capsys.readouterr().err)


def test_resuming_a_finished_run_says_it_had_finished(small_surnames, finished, tmp_path):
    """Once 'resuming from epoch 3 of 2'; now the final model is written again, unchanged."""
    out = tmp_path / "done"
    shutil.copytree(finished, out)
    logs = []
    train(TrainConfig(**dict(TINY, epochs=2)), small_surnames, out, resume=True, progress=False, log=logs.append)
    assert any("nothing left to train: this run had finished (2 of 2 epochs)" in m for m in logs), logs
    assert not any("resuming from epoch" in m for m in logs)
    assert (out / "model.safetensors").read_bytes() == (finished / "model.safetensors").read_bytes()
    assert len(json.loads((out / "history.json").read_text())["epochs"]) == 2


def test_an_early_stopped_run_is_not_continued_on_resume(small_surnames, tmp_path, monkeypatch):
    """Early stopping ends the run: --resume must not train the epochs after it."""
    monkeypatch.setattr(tasks.Task, "metrics", lambda *a, **k: {"accuracy": 0.5})  # never improves
    cfg = TrainConfig(**dict(TINY, epochs=5, patience=1))
    train(cfg, small_surnames, tmp_path, **QUIET)
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 2
    logs = []
    train(cfg, small_surnames, tmp_path, resume=True, progress=False, log=logs.append)
    assert any("had finished (2 of 5 epochs, stopped early)" in m for m in logs), logs
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 2


def test_stray_temporary_and_stale_files_are_cleared_on_resume(small_surnames, finished, tmp_path):
    out = _copy(finished, tmp_path)
    for name in (".last.json.ab12cd", ".checkpoint-0003.safetensors.x1y2z3", checkpoint_name(3), ".history.json.q"):
        (out / name).write_bytes(b"half")
    (out / "notes.txt").write_text("mine")
    (out / ".hidden").write_text("mine")
    _resume(small_surnames, out)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith((".", "checkpoint"))) == [
        ".hidden",
        checkpoint_name(2),
    ]
    assert (out / "notes.txt").read_text() == "mine"


def test_files_are_flushed_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)  # the writer is namemodels.fileio's (checkpoint_json uses it)
    monkeypatch.setattr(os, "replace", replace)
    checkpoint_json.write_json(tmp_path / "last.json", {"epochs_done": 1})
    (kind1, tmp), (kind2, src, dst), (kind3, folder) = events
    assert (kind1, kind2, kind3) == ("fsync", "replace", "fsync")
    assert tmp == src and dst == str(tmp_path / "last.json") and folder == str(tmp_path)
