"""Export tests: ONNX and TorchScript vs PyTorch for all seven cells (pool="max" classifiers on a few),
re-export reproducibility, bad files."""

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from helpers import LABELS, REPO_ROOT, make_model_dir  # noqa: E402

from namemodels.errors import UsageError  # noqa: E402
from namemodels.export import ExportError, export, export_model_dir, load_torch_model  # noqa: E402
from namemodels.export import verify as V  # noqa: E402
from namemodels.tokenizer import CharTokenizer  # noqa: E402
from namemodels.training.checkpoint import atomic_save_tensors  # noqa: E402

CELLS = ("rnn_tanh", "rnn_relu", "gru", "lstm", "momentum_rnn", "momentum_lstm", "momentum_gru")


def _runtimes():
    """Every runtime that is installed (all of them for every cell, rnn_relu included)."""
    return [r for r in V.RUNTIMES if V.available(r) is None]


def _verify(model, cfg, onnx_path, ts_path, runtimes=None):
    # The quick case set (one case of each kind) keeps the reference evaluator affordable; the export
    # command's --verify runs the full set.
    report = V.verify(model, cfg, onnx_path, ts_path, runtimes=runtimes or _runtimes(), timing=False, cases="quick")
    checked = [r["runtime"] for r in report["rows"] if r["status"] == "ok"]
    assert checked == list(runtimes or _runtimes()), report["rows"]
    return report


def _check(report):
    bad = [r for r in report["rows"] if r["status"] != "ok"]
    assert not bad, bad


@pytest.mark.parametrize("cell", CELLS)
def test_classifier_bidirectional_two_layers(tmp_path, cell):
    d = make_model_dir(tmp_path / "m", cell=cell, layers=2, bidirectional=True)
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "onnx", tmp_path / "m.onnx")
    export(model, cfg, "torchscript", tmp_path / "m.pt")
    _check(_verify(model, cfg, tmp_path / "m.onnx", tmp_path / "m.pt"))


@pytest.mark.parametrize("cell", CELLS)
def test_conditioned_generator_step(tmp_path, cell):
    d = make_model_dir(tmp_path / "m", kind="lm", cell=cell, conditioned=True, layers=2 if cell == "lstm" else 1)
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "onnx", tmp_path / "m.onnx")
    export(model, cfg, "torchscript", tmp_path / "m.pt")
    _check(_verify(model, cfg, tmp_path / "m.onnx", tmp_path / "m.pt"))


@pytest.mark.parametrize("cell", ["gru", "momentum_lstm"])
def test_binary_classifier_and_plain_generator(tmp_path, cell):
    for kw in (dict(binary=True), dict(kind="lm")):
        d = make_model_dir(tmp_path / str(len(kw)) / "m", cell=cell, **kw)
        model, cfg, _ = load_torch_model(d)
        export(model, cfg, "onnx", d / "m.onnx")
        _check(_verify(model, cfg, d / "m.onnx", None, runtimes=[r for r in _runtimes() if r != "torchscript"]))


@pytest.mark.parametrize(
    "cell,kw",
    [
        ("lstm", dict(layers=2, bidirectional=True)),
        ("momentum_gru", dict(layers=2, bidirectional=True)),
        ("rnn_relu", dict(bidirectional=True, binary=True)),
    ],
)
def test_classifier_pool_max(tmp_path, cell, kw):
    """pool="max": [final states, max over each name's own steps of the top layer's outputs] in every runtime."""
    import onnx

    d = make_model_dir(tmp_path / "m", cell=cell, pool="max", **kw)
    model, cfg, _ = load_torch_model(d)
    assert model.pool == "max"
    export(model, cfg, "onnx", tmp_path / "m.onnx")
    export(model, cfg, "torchscript", tmp_path / "m.pt")
    report = _verify(model, cfg, tmp_path / "m.onnx", tmp_path / "m.pt")
    _check(report)
    assert report["pool"] == "max"
    m = onnx.load(str(tmp_path / "m.onnx"))
    assert {p.key: p.value for p in m.metadata_props}["namemodels.pool"] == "max"
    assert {"ReduceMax", "Where", "Less"} <= {n.op_type for n in m.graph.node}
    from namemodels.export.torchscript import load

    assert load(tmp_path / "m.pt")[1]["namemodels.pool"] == "max"


@pytest.mark.parametrize(
    "cell,kw", [("gru", dict(bidirectional=True)), ("momentum_lstm", dict(pool="max", binary=True, ngram_max=5))]
)
def test_classifier_ngram_wide_part(tmp_path, cell, kw):
    """The hashed n-gram part is computed inside every graph from ids and lengths (padding excluded)."""
    import onnx

    d = make_model_dir(tmp_path / "m", cell=cell, ngram_buckets=97, **kw)
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "onnx", tmp_path / "m.onnx")
    export(model, cfg, "torchscript", tmp_path / "m.pt")
    _check(_verify(model, cfg, tmp_path / "m.onnx", tmp_path / "m.pt"))
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["namemodels.ngrams"]) == {"buckets": 97, "max_n": kw.get("ngram_max", 3)}


def test_too_many_ngram_buckets_for_exact_float32_integers(tmp_path):
    d = make_model_dir(tmp_path / "m", cell="gru", binary=True, ngram_buckets=600_000)  # 600k * 31 symbols > 2^24
    model, cfg, _ = load_torch_model(d)
    with pytest.raises(ExportError, match="past 2\\^24.*fewer --ngram-buckets"):
        export(model, cfg, "onnx", tmp_path / "m.onnx")


def test_float16_weights_are_stored_half_size_in_onnx(tmp_path):
    """Weights that are all float16 values (``--save-dtype float16``) go into the ONNX file as float16
    with a Cast; every runtime still matches PyTorch, and the file is about half the size."""
    import onnx

    d = make_model_dir(tmp_path / "m", cell="lstm", bidirectional=True, ngram_buckets=997, hidden=32)
    model, cfg, _ = load_torch_model(d)
    full = export(model, cfg, "onnx", tmp_path / "full.onnx")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    half = export(model, cfg, "onnx", tmp_path / "half.onnx")
    _check(_verify(model, cfg, half, None, runtimes=[r for r in _runtimes() if r != "torchscript"]))
    inits = onnx.load(str(half)).graph.initializer
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in inits)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    assert all(i.data_type != onnx.TensorProto.FLOAT16 for i in onnx.load(str(full)).graph.initializer)


def test_pool_max_padding_and_opset18(tmp_path):
    """Padding past a name's length cannot change its max; opset 18 takes ReduceMax's axes as an input."""
    import onnx
    import onnxruntime as ort

    d = make_model_dir(tmp_path / "m", cell="gru", pool="max", bidirectional=True)
    model, cfg, _ = load_torch_model(d)
    ids = np.array([[5, 6, 7]], np.int64)
    padded = np.concatenate([ids, np.full((1, 9), 9, np.int64)], 1)
    expected = model.log_probs(torch.from_numpy(ids), torch.tensor([3])).detach().numpy()
    for opset in (17, 18):
        path = export(model, cfg, "onnx", tmp_path / f"m{opset}.onnx", opset=opset)
        rm = [n for n in onnx.load(str(path)).graph.node if n.op_type == "ReduceMax"]
        assert len(rm) == 1 and len(rm[0].input) == (2 if opset == 18 else 1)
        s = ort.InferenceSession(str(path))
        for x in (ids, padded):
            np.testing.assert_allclose(s.run(None, {"ids": x, "lengths": np.array([3])})[0], expected, atol=1e-5)


@pytest.mark.skipif(V.available("openvino") is not None, reason="openvino is not installed")
def test_openvino_installed_runs():  # the parametrized tests above include it; this records the skip reason
    assert V.available("openvino") is None


def _bf16_default_core():
    """An OpenVINO Core whose CPU default precision is forced to bf16, as it is out of the box on CPUs with
    AVX-512 BF16 or AMX (where the CPU lacks AVX-512, OpenVINO keeps f32: the checks below hold either way)."""
    import openvino as ov

    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    return core


@pytest.mark.skipif(V.available("openvino") is not None, reason="openvino is not installed")
@pytest.mark.parametrize("kind", ["classifier", "lm"])
def test_openvino_verifies_in_f32_when_the_cpu_default_is_bf16(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(V, "openvino_core", _bf16_default_core)
    d = make_model_dir(
        tmp_path / "m",
        kind=kind,
        cell="lstm",
        layers=2,
        bidirectional=kind == "classifier",
        hidden=32,
        conditioned=kind == "lm",
    )
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "onnx", tmp_path / "m.onnx")
    report = V.verify(
        model, cfg, tmp_path / "m.onnx", None, runtimes=("openvino", V.OPENVINO_NATIVE), timing=False, cases="quick"
    )
    f32, native = report["rows"]
    assert f32["precision"] == "f32" and f32["status"] == "ok" and f32["max_abs_err"] <= V.TOLERANCE, f32
    assert native["precision"] == _bf16_default_core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()
    # the native row is judged against the low-precision tolerance, not the fp32 one
    within = (
        native["max_abs_err"] <= V.LOW_PRECISION_TOLERANCE["max_abs_err"]
        and native["top1_mismatches"] <= V.LOW_PRECISION_TOLERANCE["top1_mismatch_share"] * native["compared_rows"]
    )
    assert native["status"] == ("ok" if within else "FAIL") and within, native
    assert "openvino f32" in V.format_table([report]) and f"openvino {native['precision']}" in V.format_table([report])


def test_export_verify_adds_the_native_openvino_row_only_off_f32(monkeypatch):
    monkeypatch.setattr(V, "openvino_default_precision", lambda: "f32")
    assert V.onnx_runtimes() == ("onnxruntime", "reference", "openvino", "tract")
    monkeypatch.setattr(V, "openvino_default_precision", lambda: "bf16")
    assert V.onnx_runtimes() == ("onnxruntime", "reference", "openvino", "tract", V.OPENVINO_NATIVE)
    monkeypatch.setattr(V, "openvino_default_precision", lambda: None)  # OpenVINO not installed
    assert V.OPENVINO_NATIVE not in V.onnx_runtimes()


@pytest.mark.skipif(V.available("tract") is not None, reason="tract is not installed")
def test_tract_installed_runs():
    assert V.available("tract") is None


def test_padding_does_not_change_results(tmp_path):
    d = make_model_dir(tmp_path / "m", cell="momentum_gru", bidirectional=True)
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "onnx", tmp_path / "m.onnx")
    import onnxruntime as ort

    s = ort.InferenceSession(str(tmp_path / "m.onnx"))
    ids = np.array([[5, 6, 7]], np.int64)
    a = s.run(None, {"ids": ids, "lengths": np.array([3])})[0]
    padded = np.concatenate([ids, np.full((1, 9), 9, np.int64)], 1)
    b = s.run(None, {"ids": padded, "lengths": np.array([3])})[0]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_onnx_metadata_and_checker(tmp_path):
    import onnx

    d = make_model_dir(tmp_path / "m", cell="momentum_rnn")
    path = export_model_dir(d)
    m = onnx.load(str(path))
    onnx.checker.check_model(m, full_check=True)
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["namemodels.cell"] == "momentum_rnn" and json.loads(meta["namemodels.labels"]) == LABELS
    assert json.loads(meta["namemodels.vocab"])[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert m.opset_import[0].version >= 17
    assert not any(n.op_type == "Loop" for n in m.graph.node)
    assert all(len(n.input) < 5 or n.input[4] == "" for n in m.graph.node if n.op_type in ("RNN", "GRU", "LSTM"))


def _on_real_names(cfg: dict, logprobs, step) -> list:
    """A model's outputs on ``verify.REAL_NAMES`` through its own tokenizer: a classifier's
    log-probabilities, or a generator's next-token log-probabilities at every step of the names fed
    after <bos> (each with a category, 0 = none, where the model has them), its state fed back."""
    from namemodels.batching import encode_batch

    tok = CharTokenizer.from_dict(cfg["tokenizer"])
    if cfg["model"]["kind"] in ("classifier", "ensemble"):
        return [logprobs(*encode_batch(tok, V.REAL_NAMES))]
    ids, _ = encode_batch(tok, V.REAL_NAMES, bos=True)
    conditioned = bool(cfg["model"].get("num_categories"))
    category = np.arange(len(ids)) % (len(cfg["labels"]) + 1) if conditioned else None
    outs, state = [], None
    for t in range(ids.shape[1]):
        out, state = step(ids[:, t], state, category)
        outs.append(out)
    return outs


def _torch_on_real_names(model, cfg: dict) -> list:
    def logprobs(ids, lengths):
        with torch.no_grad():
            return model.log_probs(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()

    def step(tokens, state, category):
        out, state = model.step(
            torch.from_numpy(tokens), state, torch.from_numpy(category) if category is not None else None
        )
        return out.numpy(), state

    return _on_real_names(cfg, logprobs, step)


def _onnx_on_real_names(backend, cfg: dict) -> list:
    return _on_real_names(cfg, backend.logprobs, backend.step)


def _shipped_dirs(tmp_path) -> list:
    """The shipped model directories (a small exported one where none are installed)."""
    from namemodels.inference.locate import PRETRAINED

    dirs = sorted(p for p in PRETRAINED.iterdir() if (p / "model.onnx").is_file()) if PRETRAINED.is_dir() else []
    if not dirs:
        d = make_model_dir(tmp_path / "m", cell="lstm")
        export_model_dir(d)
        dirs = [d]
    return dirs


def test_reexport_matches_committed_model_onnx(tmp_path):
    """Re-exporting each shipped model from its weights reproduces its committed model.onnx: the same
    outputs within 1e-6 on real names (what a change to the ONNX builder must keep)."""
    from namemodels.inference.onnx_backend import OnnxBackend

    for d in _shipped_dirs(tmp_path):
        cfg = json.loads((d / "config.json").read_text())
        committed = OnnxBackend(d / "model.onnx", cfg)
        work = tmp_path / ("re_" + d.name)
        work.mkdir()
        for f in ("config.json", "model.safetensors"):
            (work / f).write_bytes((d / f).read_bytes())
        fresh = OnnxBackend(export_model_dir(work), json.loads((work / "config.json").read_text()))  # its new hash
        for old, new in zip(_onnx_on_real_names(committed, cfg), _onnx_on_real_names(fresh, cfg)):
            np.testing.assert_allclose(new, old, rtol=0, atol=1e-6, err_msg=d.name)


def test_shipped_onnx_matches_the_torch_model(tmp_path):
    """Each shipped model.onnx (on onnxruntime, as users run it) against the PyTorch model on the same
    weights, on real names: within the export tolerance, the same best class or next character."""
    from namemodels.inference.onnx_backend import OnnxBackend

    for d in _shipped_dirs(tmp_path):
        model, cfg, _ = load_torch_model(d)
        got = _onnx_on_real_names(OnnxBackend(d / "model.onnx", cfg), cfg)
        expected = _torch_on_real_names(model, cfg)
        assert len(got) == len(expected) > 0
        for g, e in zip(got, expected):
            np.testing.assert_allclose(g, e, rtol=0, atol=V.TOLERANCE, err_msg=d.name)
            top2 = np.sort(e, 1)[:, -2:]
            clear = top2[:, 1] - top2[:, 0] > 2 * V.TOLERANCE  # rows whose best is not a tie within tolerance
            assert clear.mean() > 0.9 and (g.argmax(1) == e.argmax(1))[clear].all(), d.name


def test_truncated_missing_and_mismatched_onnx(tmp_path):
    from namemodels.inference.onnx_backend import OnnxBackend

    d = make_model_dir(tmp_path / "m", cell="gru")
    path = export_model_dir(d)
    cfg = json.loads((d / "config.json").read_text())
    unhashed = {k: v for k, v in cfg.items() if k != "sha256"}  # as saved before hashes were recorded
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"model\.onnx: the file is damaged or was changed"):
        OnnxBackend(path, cfg)
    with pytest.raises(UsageError, match=r"model\.onnx: cannot load the ONNX model.*truncated"):
        OnnxBackend(path, unhashed)
    with pytest.raises(UsageError, match=r"nothere\.onnx: not found"):
        OnnxBackend(tmp_path / "nothere.onnx", cfg)
    path.write_bytes(data)
    other = dict(unhashed, labels=["X", "Y", "Z", "W", "V"])
    with pytest.raises(UsageError, match=r"model\.onnx: does not match .*labels differ"):
        OnnxBackend(path, other)
    r = subprocess.run(
        [sys.executable, "-m", "namemodels.cli", "predict", "--model", str(d), "Smith"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    path.write_bytes(data[:100])
    r = subprocess.run(
        [sys.executable, "-m", "namemodels.cli", "predict", "--model", str(d), "Smith"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "model.onnx" in r.stderr and "damaged" in r.stderr, r.stderr


def test_unsupported_configuration(tmp_path):
    d = make_model_dir(tmp_path / "m", cell="lstm")
    model, cfg, _ = load_torch_model(d)
    with pytest.raises(ExportError, match="opset"):
        export(model, cfg, "onnx", tmp_path / "x.onnx", opset=13)
    with pytest.raises(ExportError, match="format"):
        export(model, cfg, "tflite", tmp_path / "x.tfl")
    bad = dict(cfg, model=dict(cfg["model"], cell="momentum_gru"))
    with pytest.raises(ExportError, match="config.json says cell"):
        export(model, bad, "onnx", tmp_path / "x.onnx")


HIDE_NAMEMODELS = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('namemodels',):
            raise ImportError('namemodels is hidden')
sys.meta_path.insert(0, Block())
sys.path = [p for p in sys.path if p.rstrip('/') != {str(REPO_ROOT)!r}]
"""


def test_torchscript_loads_without_namemodels(tmp_path):
    d = make_model_dir(tmp_path / "m", cell="momentum_lstm", bidirectional=True, ngram_buckets=97)
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "torchscript", tmp_path / "m.pt")
    ids = torch.tensor([[5, 6, 7], [8, 0, 0]])
    lengths = torch.tensor([3, 1])
    expected = model.log_probs(ids, lengths).detach().numpy()
    np.save(tmp_path / "expected.npy", expected)
    code = (
        HIDE_NAMEMODELS
        + f"""
import numpy as np, torch
files = {{'labels.json': '', 'namemodels.json': ''}}
m = torch.jit.load({str(tmp_path / "m.pt")!r}, _extra_files=files)
out = m(torch.tensor([[5, 6, 7], [8, 0, 0]]), torch.tensor([3, 1])).numpy()
assert abs(out - np.load({str(tmp_path / "expected.npy")!r})).max() < 1e-5
import json; assert json.loads(files['labels.json'])[0] == 'Arabic'
assert 'namemodels' not in sys.modules
print('ok')
"""
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


@pytest.mark.parametrize("cell", ["momentum_gru", "lstm"])
def test_torchscript_generator_loads_without_namemodels(tmp_path, cell):
    """A generator's TorchScript step, from its own zero state, decodes as the PyTorch model does."""
    d = make_model_dir(tmp_path / "m", kind="lm", cell=cell, conditioned=True, layers=2)
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "torchscript", tmp_path / "m.pt")
    tokens = np.array([[1, 1, 1], [5, 9, 30], [6, 2, 7], [7, 12, 2]], np.int64)
    category = np.array([0, 2, 5], np.int64)
    state, expected = None, []
    for tok in tokens:
        out, state = model.step(torch.from_numpy(tok), state, torch.from_numpy(category))
        expected.append(out.numpy())
    np.save(tmp_path / "expected.npy", np.stack(expected))
    code = (
        HIDE_NAMEMODELS
        + f"""
import numpy as np, torch
m = torch.jit.load({str(tmp_path / "m.pt")!r})
state, outs = m.initial_state(3), []
for tok in {tokens.tolist()!r}:
    out, state = m(torch.tensor(tok), state, torch.tensor({category.tolist()!r}))
    outs.append(out.numpy())
assert abs(np.stack(outs) - np.load({str(tmp_path / "expected.npy")!r})).max() < 1e-5
assert 'namemodels' not in sys.modules
print('ok')
"""
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_torchscript_is_the_models_own_code(tmp_path):
    """The TorchScript file is torch.jit.script of the model classes themselves (their log_probs and
    step), only the recurrent layer swapped for the scriptable one: no second classifier to keep in step."""
    from namemodels.export.torchscript import load

    for kw, top in (
        (dict(cell="gru", bidirectional=True), "CharClassifier"),
        (dict(kind="lm", cell="lstm", conditioned=True), "CharLM"),
        (dict(kind="multitask", cell="momentum_lstm"), "MultiTask"),
    ):
        d = make_model_dir(tmp_path / top, **kw)
        module, _ = load(export(*load_torch_model(d)[:2], "torchscript", tmp_path / f"{top}.pt"))
        assert module.model.original_name == top
        assert module.model.encoder.original_name == "CharEncoder"
        assert module.model.encoder.rnn.original_name == "ScriptableRecurrent"


def test_rnn_relu_graphs_avoid_the_rnn_op(tmp_path):
    """rnn_relu: Scan over time in the classifier, MatMul/Add/Relu in the step; never RNN(Relu), no Loop."""
    import onnx

    for kind, want in (("classifier", {"Scan"}), ("lm", {"Relu", "Gemm"})):
        d = make_model_dir(tmp_path / kind, kind=kind, cell="rnn_relu", layers=2)
        ops = {n.op_type for n in onnx.load(str(export_model_dir(d))).graph.node}
        assert want <= ops and not ops & {"RNN", "Loop"}, ops


def test_onnx_backend_builds_its_wide_session_once_under_threads(tmp_path, monkeypatch):
    """The first large decoding steps from several threads at once share one multi-threaded session."""
    import threading
    import time

    import namemodels.inference.onnx_backend as ob

    d = make_model_dir(tmp_path / "m", kind="lm", cell="gru")
    backend = ob.OnnxBackend(export_model_dir(d), threads=2)
    made, real = [], ob._session

    def slow_session(path, threads):
        made.append(threads)
        time.sleep(0.2)  # widen the window in which a second thread could start its own
        return real(path, threads)

    monkeypatch.setattr(ob, "_session", slow_session)
    tokens = np.full(ob.SMALL_BATCH + 1, 5, np.int64)
    outs = []
    threads = [threading.Thread(target=lambda: outs.append(backend.step(tokens, None, None)[0])) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert made == [2] and len(outs) == 4
    assert all(np.array_equal(o, outs[0]) for o in outs)


@pytest.mark.parametrize("threads", [1, 3])
def test_onnx_backend_runs_classifier_batches_at_once_in_order(tmp_path, threads):
    """logprobs_map with several batches in flight gives each batch's own logprobs, in order, and stops
    cleanly when the caller stops reading."""
    import namemodels.inference.onnx_backend as ob

    d = make_model_dir(tmp_path / "m", cell="lstm", bidirectional=True)
    backend = ob.OnnxBackend(export_model_dir(d), threads=threads)
    rng = np.random.default_rng(0)
    batches = []
    for _b in range(9):
        lengths = rng.integers(1, 9, size=int(rng.integers(1, 300))).astype(np.int64)
        ids = rng.integers(3, 20, size=(len(lengths), int(lengths.max()))).astype(np.int64)
        batches.append((ids, lengths))
    one_by_one = [backend.logprobs(i, n) for i, n in batches]
    mapped = list(backend.logprobs_map(iter(batches)))
    assert len(mapped) == len(batches)
    assert all(np.array_equal(a, b) for a, b in zip(mapped, one_by_one))
    first = next(backend.logprobs_map(iter(batches)))  # abandoned generator: nothing hangs
    assert np.array_equal(first, one_by_one[0])


@pytest.mark.parametrize("name", ["surnames", "gender"])
def test_shipped_classifier_onnx_is_right_in_every_runtime(name):
    """The committed model.onnx of each shipped classifier (wide parts included) in every installed runtime."""
    from namemodels.inference.locate import PRETRAINED

    model, cfg, d = load_torch_model(name)
    rows = V.verify(
        model,
        cfg,
        PRETRAINED / name / "model.onnx",
        None,
        runtimes=[r for r in _runtimes() if r != "torchscript"],
        timing=False,
        cases="quick",
    )["rows"]
    assert [r["status"] for r in rows] == ["ok"] * len(rows), rows


@pytest.mark.parametrize(
    "cell,kw",
    [
        ("lstm", dict(bidirectional=True, pool="max", ngram_buckets=97, ngram_max=4)),
        ("momentum_gru", dict(binary=True)),
    ],
)
def test_ensemble_graphs_average_their_members(tmp_path, cell, kw):
    """An ensemble exports as one graph; its output is log(mean(p)) of the members' own exported graphs."""
    import onnxruntime as ort
    from safetensors.torch import load_file

    members = [make_model_dir(tmp_path / f"m{k}", cell=cell, seed=k, **kw) for k in range(2)]
    cfg = json.loads((members[0] / "config.json").read_text())
    cfg["model"] = {"kind": "ensemble", "members": 2, "member": cfg["model"]}
    d = tmp_path / "ens"
    d.mkdir()
    weights = {
        f"members.{k}.{n}": t for k, m in enumerate(members) for n, t in load_file(m / "model.safetensors").items()
    }
    atomic_save_tensors(d / "model.safetensors", weights, {"format": "pt"})
    (d / "config.json").write_text(json.dumps(cfg))
    model, cfg, _ = load_torch_model(d)
    export(model, cfg, "onnx", tmp_path / "e.onnx")
    export(model, cfg, "torchscript", tmp_path / "e.pt")
    _check(_verify(model, cfg, tmp_path / "e.onnx", tmp_path / "e.pt"))
    ids = np.random.default_rng(0).integers(4, 30, size=(5, 9))
    lengths = np.array([9, 1, 4, 7, 2])
    feeds = {"ids": ids, "lengths": lengths}
    outs = []
    for k, m in enumerate(members):
        export(*load_torch_model(m)[:2], "onnx", tmp_path / f"m{k}.onnx")
        outs.append(ort.InferenceSession(str(tmp_path / f"m{k}.onnx")).run(None, feeds)[0])
    got = ort.InferenceSession(str(tmp_path / "e.onnx")).run(None, feeds)[0]
    np.testing.assert_allclose(got, np.log(np.mean(np.exp(outs), 0)), atol=1e-5)


@pytest.mark.parametrize(
    "kw",
    [
        dict(cell="lstm", layers=2, bidirectional=True),
        dict(cell="momentum_lstm", layers=2, bidirectional=True, pool="max"),
        dict(kind="lm", cell="lstm", layers=2, conditioned=True),
        dict(kind="multitask", cell="momentum_lstm", layers=2),
    ],
)
def test_torchscript_lstm_with_projections(tmp_path, kw):
    """proj_size: the TorchScript twin (torch.lstm with W_hr in its weight list) equals the eager model,
    classifiers at several lengths and generator steps from the zero state."""
    d = make_model_dir(tmp_path / "m", proj_size=5, **kw)
    model, cfg, _ = load_torch_model(d)
    assert model.encoder.rnn.proj_size == 5
    export(model, cfg, "torchscript", tmp_path / "m.pt")
    _check(_verify(model, cfg, None, tmp_path / "m.pt", runtimes=["torchscript"]))


@pytest.mark.parametrize(
    "kw",
    [
        dict(cell="lstm", layers=2),
        dict(cell="lstm", layers=2, bidirectional=True, pool="max", ngram_buckets=97),
        dict(cell="momentum_lstm", layers=2, bidirectional=True),
        dict(kind="lm", cell="lstm", layers=2, conditioned=True),
        dict(kind="multitask", cell="momentum_lstm", layers=2),
    ],
)
def test_onnx_lstm_with_projections(tmp_path, kw):
    """proj_size in ONNX: the classifier's layers run as a Scan with the projection (the LSTM op has
    none), the step graph's h state is proj_size wide; every installed ONNX runtime matches the eager
    model (several lengths and batches, bidirectional, 2 layers; generator steps from the zero state)."""
    import onnx

    d = make_model_dir(tmp_path / "m", proj_size=5, **kw)
    model, cfg, _ = load_torch_model(d)
    path = export(model, cfg, "onnx", tmp_path / "m.onnx")
    m = onnx.load(str(path))
    ops = {n.op_type for n in m.graph.node}
    assert "LSTM" not in ops and ("Scan" in ops) == (kw.get("kind", "classifier") == "classifier"), ops
    if kw.get("kind") in ("lm", "multitask"):
        shapes = {i.name: [x.dim_value or x.dim_param for x in i.type.tensor_type.shape.dim] for i in m.graph.input}
        assert shapes["h"] == [2, "batch", 5] and shapes["c"] == [2, "batch", 16]
    assert {p.key: p.value for p in m.metadata_props}["namemodels.proj_size"] == "5"
    _check(_verify(model, cfg, path, None, runtimes=[r for r in _runtimes() if r != "torchscript"]))
