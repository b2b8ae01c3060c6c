"""``namemodels bench latency`` end to end on a tiny model with very few repeats (no timing asserts)."""
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
sys.path.insert(0, str(Path(__file__).parent))
from test_export import make_model_dir  # noqa: E402

from namemodels.cli import main  # noqa: E402
from namemodels.export import export_model_dir  # noqa: E402


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_bench_latency_json(tmp_path, capsys):
    d = make_model_dir(tmp_path / "m", cell="gru", bidirectional=True)
    export_model_dir(d)
    out = tmp_path / "lat.json"
    assert main(["bench", "latency", "--model", str(d), "--repeat", "5", "--block", "2", "--batch", "16",
                 "--batch-repeat", "2", "--cold", "1", "--json", str(out)]) == 0
    assert "targets:" in capsys.readouterr().out
    r = json.loads(out.read_text())
    for key in ("benchmark", "timestamp", "command", "device", "device_name", "versions", "model", "config",
                "single", "speedup", "throughput", "throughput_ratio", "cold_start", "targets", "agreement"):
        assert key in r, key
    assert r["benchmark"] == "latency" and r["model"]["stand_in"] is False and r["config"]["block"] == 2
    assert all(_positive(r["single"]["onnx_network"][k]) for k in ("p50_us", "p90_us"))
    for backend in ("onnx", "torch"):
        assert all(_positive(r["single"][backend][k]) for k in ("p50_us", "p90_us"))
        assert _positive(r["throughput"][backend]["names_per_s"])
        assert len(r["raw_samples_s"]["single"][backend]) == 5
    assert all(_positive(v) for v in r["speedup"].values())
    assert _positive(r["throughput_ratio"]["of_medians"]) and _positive(r["cold_start"]["median_s"])
    assert r["cold_start"]["backend"] == ["OnnxBackend"] and r["cold_start"]["torch_imported"] is False
    assert [t["holds"] in (True, False) and _positive(t["value"]) for t in r["targets"]] == [True] * 3
    assert r["agreement"]["max_abs_err"] < 1e-4


@pytest.mark.parametrize("block,order", [(1, "abbaab"), (2, "aabbbbaa"), (3, "aaabbbbbbaaa")])
def test_interleaved_takes_turns_in_blocks(block, order):
    from namemodels.bench.latency import _interleaved
    log = []
    fns = {k: (lambda arg, k=k: log.append((k, arg))) for k in "ab"}
    rounds = len(order) // 2
    samples = _interleaved(fns, list(range(10)), rounds, warmup=0, block=block)
    assert "".join(k for k, _ in log) == order
    assert [arg for k, arg in log if k == "a"] == list(range(rounds)) == [arg for k, arg in log if k == "b"]
    assert {k: len(v) for k, v in samples.items()} == {"a": rounds, "b": rounds}


def test_bench_latency_bad_input(tmp_path, capsys):
    gen = make_model_dir(tmp_path / "gen", kind="lm", cell="gru")
    export_model_dir(gen)
    assert main(["bench", "latency", "--model", str(gen)]) == 2
    assert "needs a classifier" in capsys.readouterr().err
    cls = make_model_dir(tmp_path / "cls", cell="gru")
    assert main(["bench", "latency", "--model", str(cls)]) == 2
    assert "no model.onnx" in capsys.readouterr().err
    assert main(["bench", "latency", "--model", str(cls), "--repeat", "0"]) == 2
