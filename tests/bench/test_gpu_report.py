"""The GPU check's report: targets computed from a results dict (against values worked out by hand),
the Markdown report and the heat map (with matplotlib, and the plain PNG without it)."""

import builtins
import math
import zlib

import pytest

from namemodels.bench.gpu_report import heatmap, markdown, targets
from namemodels.cli import main


def _results():
    rows = []
    for dtype, base in (("bfloat16", 1.0), ("float32", 2.0)):
        for B, speed in ((64, 4.0), (1024, 1.0)):
            for cell in ("lstm", "momentum_lstm"):
                mom = 1.2 if cell == "momentum_lstm" else None
                rows.append(
                    {
                        "cell": cell,
                        "dtype": dtype,
                        "B": B,
                        "T": 16,
                        "H": 128,
                        "ours_fwd_ms": base / speed,
                        "cudnn_fwd_ms": base,
                        "speedup_fwd": speed,
                        "ours_graph_ms": base / speed / 2,
                        "ours_fwd+bwd_ms": 2 * base,
                        "cudnn_fwd+bwd_ms": 2 * base,
                        "speedup_fwd+bwd": 1.0,
                        "momentum_over_plain_fwd": mom,
                        "momentum_over_plain_fwd+bwd": mom,
                    }
                )
    return {
        "device_name": "test GPU",
        "command": "gpu-check out",
        "sections": {
            "grid": {"rows": rows},
            "memory": {
                "rows": [
                    {
                        "cell": "lstm",
                        "dtype": "bfloat16",
                        "B": 1024,
                        "T": 64,
                        "H": 256,
                        "ours_peak_mb": 90.0,
                        "cudnn_peak_mb": 100.0,
                        "ratio": 0.9,
                    }
                ]
            },
            "classifier": {"bilstm2_128": {"ours_ms": 1.0, "cudnn_ms": 2.5, "speedup": 2.5, "model": "m"}},
            "training": {"speedup_over_cudnn": 1.3},
            "compile": {"skipped": "CUDA only"},
        },
    }


def test_targets_from_results():
    t = {x["name"]: x for x in targets(_results())}
    fwd = t["forward vs cuDNN, lstm bfloat16: geometric mean"]
    assert math.isclose(fwd["value"], 2.0) and fwd["holds"] is True  # sqrt(4 * 1)
    share = t["forward vs cuDNN, lstm bfloat16: share of shapes >= 1.5x"]
    assert share["value"] == 0.5 and share["holds"] is False
    assert t["forward+backward vs cuDNN, lstm float32: geometric mean"]["holds"] is False
    # bf16 ours (1/4 and 1 ms) against cuDNN's faster dtype (bf16: 1 ms) -> sqrt(4 * 1) = 2
    assert math.isclose(t["forward bf16 vs cuDNN's faster dtype, lstm: geometric mean"]["value"], 2.0)
    graph = t["eager / CUDA-graph replay at B=64, T=16, H=128, lstm bfloat16"]
    assert graph["value"] == 2.0 and graph["holds"] is False
    step = t["kernel time per step (graph / T), lstm bf16 B=64, T=16, H=128 (us)"]
    assert math.isclose(step["value"], 0.125 / 16 * 1e3)
    assert t["momentum_lstm / lstm forward time, bfloat16: geometric mean"]["holds"] is False
    assert t["peak memory forward+backward ours / cuDNN, lstm bfloat16 B=1024 T=64 H=256"]["holds"] is True
    assert t["2-layer biLSTM 128 classifier, 1,024 names: speed-up over cuDNN"]["holds"] is False
    assert t["one training epoch (shipped surnames configuration): speed-up over cuDNN"]["holds"] is True


def test_markdown_lists_targets_tables_and_what_was_not_done():
    res = _results()
    res["targets"] = targets(res)
    md = markdown(res)
    assert "# GPU check: test GPU" in md and "## Targets" in md and "## Grid" in md
    assert "- compile: CUDA only" in md and "**no**" in md and "| lstm | bfloat16 | 64 | 16 | 128 |" in md


def _is_png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos = 8
    while pos < len(data):  # every chunk's CRC is right
        n = int.from_bytes(data[pos : pos + 4], "big")
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        assert int.from_bytes(data[pos + 8 + n : pos + 12 + n], "big") == zlib.crc32(tag + body)
        pos += 12 + n
    return True


def test_heatmap_with_and_without_matplotlib(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    assert heatmap(_results(), tmp_path / "a.png") == "a.png" and _is_png(tmp_path / "a.png")
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("hidden")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert heatmap(_results(), tmp_path / "b.png") == "b.png" and _is_png(tmp_path / "b.png")
    assert heatmap({"sections": {}}, tmp_path / "c.png") is None and not (tmp_path / "c.png").exists()


def test_gpu_check_without_cuda_is_a_clear_error(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("checks the message on a machine without CUDA")
    assert main(["bench", "gpu-check", str(tmp_path / "out")]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err and not (tmp_path / "out").exists()
