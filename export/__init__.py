"""TorchScript and ONNX export of namemodels models, with verification in several runtimes.

``export_model_dir(directory)`` writes ``model.onnx`` beside a model directory's weights (how the
shipped models get their torch-free inference file); ``export(model_or_dir, fmt, out)`` writes one
artifact anywhere. Needs torch and onnx (the ``train`` extra); inference from the result does not.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from namemodels.errors import UsageError
from namemodels.fileio import atomic_path

from .weights import ExportError, ModelWeights, extract, quiet_torchscript  # noqa: F401

if TYPE_CHECKING:  # torch and onnx are imported where they are used
    import onnx
    from torch import nn

FORMATS = ("onnx", "torchscript", "bundle", "pt2", "aoti")


def load_torch_model(name_or_dir: str | Path) -> tuple[nn.Module, dict, Path]:
    """``(model in eval mode, config, directory)`` from a shipped name or a model directory
    (:func:`namemodels.inference.torch_backend.load_torch_model`; imported here, so that importing
    this package does not import torch)."""
    from namemodels.inference.torch_backend import load_torch_model as load

    return load(name_or_dir)


def onnx_model(model: nn.Module, config: dict, opset: int | None = None) -> onnx.ModelProto:
    from . import onnx_graph

    return onnx_graph.build(extract(model, config), opset or onnx_graph.DEFAULT_OPSET)


def export(
    model: nn.Module,
    config: dict,
    fmt: str,
    out: str | Path,
    opset: int | None = None,
    directory: str | Path | None = None,
    max_length: int | None = None,
) -> Path:
    """Write ``model`` (a namemodels nn.Module with its config dict) as ``fmt`` to ``out``.
    ``directory``: the model directory ``model`` was loaded from; when ``out`` is its ``model.onnx``,
    the file's SHA-256 is recorded in its config.json (the ONNX path checks it on every load).
    ``max_length``: ``aoti`` only, a classifier package's longest name (default
    :data:`namemodels.export.pt2.AOTI_MAX_LENGTH`)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    if fmt == "bundle":  # a folder: model.onnx, tokenizer.json, conformance.json, ... (export/bundle.py)
        if directory is None:
            raise UsageError("--format bundle needs the model's directory (its name table and model card)")
        from . import bundle

        return bundle.write(model, config, Path(directory), out, opset)
    if out.parent and not out.parent.is_dir():
        raise UsageError(f"{out.parent}: output directory does not exist")
    w = extract(model, config)
    # a unique hidden file beside ``out``, fsynced and renamed over it (removed if the export fails)
    with atomic_path(out, suffix=".pt2" if fmt in ("pt2", "aoti") else ".tmp") as tmp:  # torch.export wants .pt2
        if fmt == "onnx":
            from . import onnx_graph

            m = onnx_graph.build(w, opset or onnx_graph.DEFAULT_OPSET)
            tmp.write_bytes(m.SerializeToString(deterministic=True))
        elif fmt == "pt2":  # torch.export's ExportedProgram (export/pt2.py)
            from . import pt2

            pt2.save(model, w, tmp)
        elif fmt == "aoti":  # an AOTInductor package for C++ (export/pt2.py)
            from . import pt2

            pt2.save_aoti(model, w, tmp, max_length or pt2.AOTI_MAX_LENGTH)
        else:
            from . import torchscript

            with quiet_torchscript():
                torchscript.save(model, w, tmp)
    if fmt == "onnx" and directory is not None and out.resolve() == (Path(directory) / "model.onnx").resolve():
        _record_onnx_hash(Path(directory))
    return out


def _record_onnx_hash(directory: Path) -> None:
    from namemodels.checkpoint_json import read_json, write_json
    from namemodels.integrity import record

    write_json(directory / "config.json", record(directory, read_json(directory / "config.json")))


def export_model_dir(directory: str | Path, opset: int | None = None) -> Path:
    """Write ``model.onnx`` beside ``model.safetensors`` in a model directory; returns its path."""
    model, config, directory = load_torch_model(directory)
    return export(model, config, "onnx", Path(directory) / "model.onnx", opset, directory=directory)
