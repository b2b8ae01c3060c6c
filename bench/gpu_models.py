"""The model measurements of the GPU check (:mod:`namemodels.bench.gpu_check`): classifying 1,024
names (:func:`classifier`: the shipped ``surnames`` model through ``namemodels.load`` and a 2-layer
bidirectional LSTM classifier of the shipped size) and one training epoch of the shipped
configuration (:func:`training`), ours against cuDNN (and the CPU), with the names and data they
use. Each returns its section of ``results.json``; torch is imported inside."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from namemodels.bench.gpu_setup import Setting
from namemodels.bench.gpu_timing import pair
from namemodels.inference.locate import PRETRAINED

if TYPE_CHECKING:  # annotations only: torch loads when a section runs
    from torch import nn

    from namemodels.kernels.layers import RecurrentBase


# ---- classifier on 1,024 names ----------------------------------------------------------------------
def classifier(s: Setting) -> dict:
    import numpy as np
    import torch

    import namemodels
    from namemodels.batching import encode_batch
    from namemodels.inference.torch_backend import TorchBackend

    timer = s.timer
    names = _names(s.repo, s.data, 16 if s.dry else 1024)
    result: dict[str, Any] = {"names": len(names)}
    # The shipped model through the public API.
    try:
        ours = namemodels.load("surnames", backend="torch", device=s.device)
        cudnn = namemodels.load("surnames", backend="torch", device=s.device)
        assert isinstance(ours.backend, TorchBackend) and isinstance(cudnn.backend, TorchBackend)
        if s.dry:
            _rnn(ours.backend.model).backend = "triton"
        _rnn(cudnn.backend.model).backend = "torch"
        samples = timer.interleave(
            {"ours": lambda: ours.predict_logproba(names), "cudnn": lambda: cudnn.predict_logproba(names)}
        )
        diff = float(np.abs(ours.predict_logproba(names) - cudnn.predict_logproba(names)).max())
        result["shipped_surnames"] = pair(samples, diff=diff, model="shipped surnames (1-layer biLSTM 128 + n-grams)")
    except Exception as exc:  # e.g. safetensors missing on the machine
        result["shipped_surnames"] = {"error": f"{type(exc).__name__}: {exc}"}
    # A 2-layer bidirectional LSTM classifier of the shipped size (random weights: speed only).
    from namemodels.models import build_model
    from namemodels.tokenizer import CharTokenizer

    cfg = json.loads((PRETRAINED / "surnames" / "config.json").read_text(encoding="utf-8"))
    spec = dict(cfg["model"], layers=2)
    if s.dry:
        spec.update(hidden=16, ngram_buckets=0)
    tok = CharTokenizer.from_dict(cfg["tokenizer"])
    torch.manual_seed(0)
    models: dict[str, nn.Module] = {}
    for name in ("ours", "cudnn"):
        m = build_model(spec).to(s.device).eval()
        if models:
            m.load_state_dict(models["ours"].state_dict())
        _rnn(m).backend = "torch" if name == "cudnn" else ("auto" if s.device == "cuda" else "triton")
        models[name] = m

    def classify(model):
        def call():
            ids, lengths = encode_batch(tok, names)
            with torch.inference_mode():
                return (
                    model.log_probs(torch.from_numpy(ids).to(s.device), torch.from_numpy(lengths).to(s.device))
                    .cpu()
                    .numpy()
                )

        return call

    samples = timer.interleave({k: classify(m) for k, m in models.items()})
    diff = float(np.abs(classify(models["ours"])() - classify(models["cudnn"])()).max())
    result["bilstm2_128"] = pair(
        samples, diff=diff, model=f"2-layer biLSTM {spec['hidden']} classifier (tokenize, copy, forward, copy back)"
    )
    result["backend_used"] = _last_backend(models["ours"])
    return result


# ---- one training epoch -----------------------------------------------------------------------------
def training(s: Setting) -> dict:
    """One epoch of the training loop ``namemodels train`` runs (the model, task and
    :class:`namemodels.training.loop.Loop` that :func:`namemodels.training.train.build` makes, over the
    task's batches moved to the device), timed without the validation and saving around it."""
    import dataclasses

    import numpy as np
    import torch

    from namemodels.batching import batches
    from namemodels.config import TrainConfig
    from namemodels.training.train import build, prepare, steps_per_epoch

    data_path, kind = _training_data(s.repo, s.data, tiny=s.dry)
    shipped = json.loads((PRETRAINED / "surnames" / "config.json").read_text(encoding="utf-8"))["train"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    base = TrainConfig(**{k: v for k, v in shipped.items() if k in fields and k != "extra"})
    if s.dry:
        base = dataclasses.replace(base, hidden=16, ngram_buckets=0)
    runs = [("ours_cuda", "cuda", "auto"), ("cudnn_cuda", "cuda", "torch"), ("cpu", "cpu", "torch")]
    if s.dry:
        runs = [("ours_interpreter", "cpu", "triton"), ("cpu", "cpu", "torch")]
    result: dict[str, Any] = {
        "data": kind,
        "config": {
            k: getattr(base, k)
            for k in ("cell", "hidden", "layers", "bidirectional", "batch_size", "ngram_buckets", "dropout")
        },
    }
    for name, dev, backend in runs:
        if s.left() < 25 and not s.dry:
            result[name] = {"skipped": "out of time"}
            continue
        cfg = dataclasses.replace(base, device=dev)
        torch.manual_seed(0)
        data = prepare(cfg, data_path)
        run = build(cfg, data, data_path, s.out)
        _rnn(run.model).backend = backend
        per_epoch = steps_per_epoch(cfg, data)
        rng = np.random.default_rng([cfg.seed, 0])
        limit = 3 if s.dry else per_epoch
        deadline = time.monotonic() + max(10.0, min(60.0, s.left() - 60))
        timed = {"tokens": 0}

        def stream(
            data: Any,
            cfg: TrainConfig,
            rng: np.random.Generator,
            limit: int,
            deadline: float,
            task: Any,
            dev: str,
            timed: dict,
        ) -> Iterator[Any]:
            for i, idx in enumerate(batches(len(data.train), cfg.batch_size, rng)):
                if i >= limit or time.monotonic() > deadline:
                    return
                b = task.batch(data.tok, data.train, idx, rng).to(dev)
                timed["tokens"] += int(b.lengths.sum())
                yield b

        start = time.perf_counter()
        losses = run.loop.epoch(stream(data, cfg, rng, limit, deadline, run.task, dev, timed))
        if dev == "cuda":
            s.timer.sync()
        wall = time.perf_counter() - start
        steps = len(losses)
        result[name] = {
            "device": dev,
            "backend": backend,
            "steps": steps,
            "steps_per_epoch": per_epoch,
            "wall_s": wall,
            "epoch_s_estimate": wall * per_epoch / max(steps, 1),
            "tokens_per_s": timed["tokens"] / wall,
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "backend_used": _last_backend(run.model)[0],
        }
    epoch = {k: v["epoch_s_estimate"] for k, v in result.items() if isinstance(v, dict) and "epoch_s_estimate" in v}
    if "ours_cuda" in epoch and "cudnn_cuda" in epoch:
        result["speedup_over_cudnn"] = epoch["cudnn_cuda"] / epoch["ours_cuda"]
    if "ours_cuda" in epoch and "cpu" in epoch:
        result["speedup_over_cpu"] = epoch["cpu"] / epoch["ours_cuda"]
    return result


# ---- helpers ----------------------------------------------------------------------------------------
def _rnn(model: nn.Module) -> RecurrentBase:
    """The recurrent layer of a model built by :func:`namemodels.models.build_model` (``encoder.rnn``)."""
    return cast("RecurrentBase", model.get_submodule("encoder.rnn"))


def _last_backend(model: nn.Module) -> tuple[str, str]:
    """``(backend, why)`` of the model's recurrent layer's last forward (kept in the layer's ``__dict__``)."""
    return vars(_rnn(model))["last_backend"]


def _surnames_folder(repo: Path, data: str | None) -> Path:
    """``--data``, else the surnames folder of the shared data beside the repository."""
    return Path(data) if data else repo.parent / "shared" / "data" / "names"


def _names(repo: Path, data: str | None, n: int) -> list[str]:
    """``n`` surnames from the data when it is there, else synthetic names with surname lengths."""
    path = _surnames_folder(repo, data)
    names: list[str] = []
    if path.is_dir():
        for f in sorted(path.glob("*.txt")):
            names += [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        names = _synthetic_names(n, seed=1)
    return [names[(i * 7919) % len(names)] for i in range(n)]


def _synthetic_names(n: int, seed: int) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = np.clip(rng.normal(6.8, 2.0, n).round().astype(int), 2, 18)
    return ["".join(rng.choice(letters, k)).capitalize() for k in lengths]


def _training_data(repo: Path, data: str | None, tiny: bool) -> tuple[Path, str]:
    """The surnames folder, or a synthetic one of the same size (18 labels, 18,040 names)."""
    path = _surnames_folder(repo, data)
    if path.is_dir() and not tiny:
        return path, f"the surnames data ({path})"
    import tempfile

    import numpy as np

    n, labels = (400, 6) if tiny else (18040, 18)
    folder = Path(tempfile.mkdtemp(prefix="gpu_check_names_"))  # not in OUTDIR: made again on every run
    names = _synthetic_names(n, seed=2)
    rng = np.random.default_rng(3)
    which = rng.integers(0, labels, n)
    for k in range(labels):
        (folder / f"Lang{k:02d}.txt").write_text(
            "\n".join(nm for nm, w in zip(names, which) if w == k) + "\n", encoding="utf-8"
        )
    return folder, f"synthetic: {n} random names, surname-like lengths, {labels} labels (the real data was absent)"
