"""``namemodels bench latency`` end to end on a tiny model with very few repeats (no timing asserts)."""

import json
import math

import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")
from helpers import make_model_dir  # noqa: E402

from namemodels.cli import main  # noqa: E402
from namemodels.export import export_model_dir  # noqa: E402


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _bench_cells(batches, *more):
    """``bench cells`` at a tiny shape (seq 2, hidden 4, embed 3; one repeat on one thread), for ``batches``."""
    tiny = ["--seq", "2", "--hidden", "4", "--embed", "3", "--repeat", "1", "--threads", "1"]
    return ["bench", "cells", "--batch", *batches, *tiny, *more]


def test_bench_latency_json(tmp_path, capsys):
    d = make_model_dir(tmp_path / "m", cell="gru", bidirectional=True)
    export_model_dir(d)
    out = tmp_path / "lat.json"
    assert (
        main(
            [
                "bench",
                "latency",
                "--model",
                str(d),
                "--repeat",
                "5",
                "--block",
                "2",
                "--batch",
                "16",
                "--batch-repeat",
                "2",
                "--cold",
                "1",
                "--json-out",
                str(out),
            ]
        )
        == 0
    )
    assert "targets:" in capsys.readouterr().out
    r = json.loads(out.read_text())
    for key in (
        "benchmark",
        "timestamp",
        "command",
        "device",
        "device_name",
        "versions",
        "model",
        "config",
        "single",
        "speedup",
        "throughput",
        "throughput_ratio",
        "cold_start",
        "targets",
        "agreement",
    ):
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
    from namemodels.bench.timing import per_call

    log = []
    fns = {k: (lambda arg, k=k: log.append((k, arg))) for k in "ab"}
    rounds = len(order) // 2
    samples = per_call(fns, list(range(10)), rounds, warmup=0, block=block)
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


def test_bench_cells_sweep_json(tmp_path, capsys):
    """A two-shape sweep without the naive loop: one run per shape, the summary and the CPU targets."""
    out = tmp_path / "cells.json"
    assert main(_bench_cells(["2", "3"], "--no-naive", "--cells", "gru", "momentum_gru", "--json-out", str(out))) == 0
    printed = capsys.readouterr().out
    assert "sweep on" in printed and "targets held:" in printed
    r = json.loads(out.read_text())
    assert r["benchmark"] == "cells-sweep" and len(r["runs"]) == 2
    assert [(e["batch"], e["cell"]) for e in r["summary"]] == [
        (2, "gru"),
        (2, "momentum_gru"),
        (3, "gru"),
        (3, "momentum_gru"),
    ]
    for run in r["runs"]:
        assert run["config"]["naive"] is False
        assert all("naive" not in row for row in run["rows"])
        # CPU targets: gru vs its twin (fwd, fwd+bwd); momentum_gru is not a CPU momentum target.
        assert [t["name"] for t in run["targets"]] == ["gru/torch.nn time (fwd)", "gru/torch.nn time (fwd+bwd)"]
    for e in r["summary"]:
        assert all(_positive(v) for v in e["ours_over_torch_nn"].values())
        assert all(_positive(v) for v in e["ours_tokens_per_s"].values())
    assert r["targets_held"]["of"] == 4


def test_bench_cells_single_run_with_naive(tmp_path, capsys):
    out = tmp_path / "one.json"
    assert main(_bench_cells(["2"], "--cells", "momentum_lstm", "--json-out", str(out))) == 0
    r = json.loads(out.read_text())
    assert r["benchmark"] == "cells" and r["config"]["naive"] is True
    (row,) = r["rows"]
    assert _positive(row["naive"]["fwd"]["tokens_per_s"]) and row["plain"] == "lstm"
    assert [t["limit"] for t in r["targets"]] == [1.3, 1.3]
    assert main(["bench", "cells", "--batch", "0"]) == 2
    assert "--batch must be a positive integer" in capsys.readouterr().err


def test_bench_json_is_a_flag_and_the_old_file_spelling_still_works(tmp_path, capsys):
    """--json prints the result as JSON on stdout alone (the table goes to stderr); --json FILE, the old
    spelling of --json-out FILE, writes FILE with a deprecation note."""
    args = _bench_cells(["2"], "--no-naive", "--cells", "gru")
    assert main(args + ["--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["benchmark"] == "cells" and "targets:" in err
    old = tmp_path / "old.json"
    assert main(args + ["--json", str(old)]) == 0
    out, err = capsys.readouterr()
    assert "targets:" in out and f"write `--json-out {old}`" in err
    assert json.loads(old.read_text())["benchmark"] == "cells"
