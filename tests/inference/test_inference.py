"""namemodels.inference: the backend protocol met by both backends, the one sampler against the
sampling equations in NumPy, the novelty set, model location, and what each module imports."""

import inspect
import subprocess
import sys
import zlib

import numpy as np
import pytest

from namemodels.errors import UsageError
from namemodels.inference.locate import PRETRAINED, resolve, shipped_models
from namemodels.inference.novelty import NOVELTY_FILE, NoveltySet, write_novelty_hashes
from namemodels.inference.protocol import Backend
from namemodels.inference.sampler import next_tokens, sample
from namemodels.tokenizer import CharTokenizer

# ------------------------------------------------------------------------------------------ the sampling step


def _reference_probs(logp, temperature, top_k, banned):
    """The sampling distribution from its definition: softmax(logp / T) over the allowed, top-k ids."""
    z = logp.astype(np.float64) / temperature
    allowed = np.ones_like(z, dtype=bool)
    allowed[:, list(banned)] = False
    if top_k is not None:
        for row, keep in zip(np.where(allowed, z, -np.inf), allowed):
            keep[np.argsort(row)[:-top_k]] = False
    w = np.where(allowed, np.exp(z - np.where(allowed, z, -np.inf).max(1, keepdims=True)), 0.0)
    return w / w.sum(1, keepdims=True)


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.5, None), (1.7, 4), (0.8, 1), (1.0, 9)])
def test_next_tokens_is_inverse_cdf_sampling_of_the_tempered_top_k_softmax(temperature, top_k):
    rng = np.random.default_rng(7)
    logp = np.log(rng.dirichlet(np.ones(12), size=64)).astype(np.float32)
    banned = (0, 1, 3)
    got = next_tokens(logp, np.random.default_rng(11), temperature, top_k, banned)
    p = _reference_probs(logp, temperature, top_k, banned)
    u = np.random.default_rng(11).random(len(logp))  # the same seed: one uniform per row
    want = np.array([np.searchsorted(np.cumsum(row), x, side="right") for row, x in zip(p, u)])
    assert got.dtype == np.int64 and np.array_equal(got, want)
    assert not np.isin(got, banned).any()


def test_next_tokens_frequencies_follow_the_distribution():
    logp = np.log(np.array([[0.05, 0.1, 0.15, 0.2, 0.3, 0.2]]))
    n = 200_000
    draws = next_tokens(np.repeat(logp, n, 0), np.random.default_rng(3), temperature=0.7, top_k=4, banned=(1,))
    p = _reference_probs(logp, 0.7, 4, (1,))[0]
    freq = np.bincount(draws, minlength=6) / n
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12), (freq, p)


def test_tiny_temperature_is_greedy():
    logp = np.log(np.random.default_rng(0).dirichlet(np.ones(9), size=50))
    logp[:, 2] = 0.0  # a banned id that would win
    got = next_tokens(logp, np.random.default_rng(0), temperature=1e-9, banned=(2,))
    masked = logp.copy()
    masked[:, 2] = -np.inf
    assert np.array_equal(got, masked.argmax(1))


# ------------------------------------------------------------------------------------------ the sampling loop


class BigramBackend:
    """A NumPy generator that meets the protocol: the next token depends on the current one only
    (``table[token]``); the state counts the steps, to show it is threaded through."""

    def __init__(self, table):
        self.table = np.log(np.asarray(table, np.float64)).astype(np.float32)
        self.categories = []

    def logprobs(self, ids, lengths):
        raise UsageError("a generator cannot classify")

    def initial_state(self, batch):
        return np.zeros(batch, np.int64)

    def step(self, tokens, state, category):
        self.categories.append(category)
        assert state is not None and len(state) == len(tokens)
        return self.table[tokens], state + 1


def _tok():
    return CharTokenizer("abc")  # ids: specials 0..3, a=4, b=5, c=6


def _chain(next_of, v=7):
    """A table that goes from each token to ``next_of[token]`` with probability 1 (others ~0)."""
    table = np.full((v, v), 1e-30)
    for t, nxt in next_of.items():
        table[t, nxt] = 1.0
    return table


def test_the_sampler_reads_bos_and_the_prefix_and_stops_at_eos():
    tok = _tok()
    # <bos> -> a, a -> b, b -> c, c -> <eos>
    backend = BigramBackend(_chain({1: 4, 4: 5, 5: 6, 6: 2}))
    assert isinstance(backend, Backend)
    cat = np.array([2, 1], np.int64)
    out = sample(backend, tok, 2, np.random.default_rng(0), temperature=1.0, category=cat)
    assert out == [[4, 5, 6], [4, 5, 6]]
    assert all(c is cat for c in backend.categories)
    out = sample(backend, tok, 3, np.random.default_rng(0), prefix="b")  # reads <bos>, b; then draws c, <eos>
    assert [tok.decode(o) for o in out] == ["bc"] * 3


def test_the_sampler_stops_at_max_len():
    # a -> a forever: the names are cut at max_len characters, prefix included
    backend = BigramBackend(_chain({1: 4, 4: 4, 5: 4}))
    out = sample(backend, _tok(), 2, np.random.default_rng(0), prefix="b", max_len=5)
    assert out == [[5, 4, 4, 4, 4]] * 2


def test_the_sampler_first_letters_follow_the_tempered_model():
    table = np.full((7, 7), 1e-30)
    table[1, [2, 4, 5, 6]] = [0.1, 0.2, 0.3, 0.4]  # <bos> -> <eos>, a, b, c
    table[4:, 2] = 1.0  # then <eos>
    n = 50_000
    out = sample(BigramBackend(table), _tok(), n, np.random.default_rng(5), temperature=0.5)
    first = np.array([o[0] if o else 2 for o in out])
    p = _reference_probs(np.log(table[1:2]), 0.5, None, (0, 1, 3))[0]
    freq = np.bincount(first, minlength=7) / n
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12), (freq, p)


def test_the_sampler_passes_each_steps_log_probabilities_to_check():
    seen = []
    backend = BigramBackend(_chain({1: 4, 4: 5, 5: 2}))
    sample(backend, _tok(), 2, np.random.default_rng(0), check=seen.append)
    assert len(seen) == 3 and all(s.shape == (2, 7) for s in seen)


# ------------------------------------------------------------------------------------------ the two backends


def _backends(tmp_path, **kw):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from helpers import make_model_dir

    from namemodels.config import read_model_config
    from namemodels.export import export_model_dir
    from namemodels.inference.onnx_backend import OnnxBackend
    from namemodels.inference.torch_backend import TorchBackend, load_torch_model, open_directory

    d = make_model_dir(tmp_path / "m", **kw)
    export_model_dir(d)
    config = read_model_config(d)
    model, _, directory = load_torch_model(d)
    assert directory == d
    return torch, model, config, OnnxBackend(d / "model.onnx", config), open_directory(d, config), TorchBackend(model)


def test_protocol_methods_are_what_both_backends_define():
    pytest.importorskip("torch")
    from namemodels.inference.onnx_backend import OnnxBackend
    from namemodels.inference.torch_backend import TorchBackend

    for method in ("logprobs", "initial_state", "step"):
        want = list(inspect.signature(getattr(Backend, method)).parameters)
        for cls in (OnnxBackend, TorchBackend):
            assert list(inspect.signature(getattr(cls, method)).parameters) == want, (cls, method)


@pytest.mark.parametrize("cell", ["lstm", "momentum_gru"])
def test_both_backends_classify_as_the_model_does(tmp_path, cell):
    torch, model, config, onnx_b, torch_b, memory_b = _backends(tmp_path, cell=cell, bidirectional=True)
    tok = CharTokenizer.from_dict(config["tokenizer"])
    from namemodels.batching import encode_batch

    ids, lengths = encode_batch(tok, ["Rossi", "Nguyen", "O'Brien", "Li"])
    with torch.no_grad():  # the reference: the classifier's forward pass, softmax written out
        logits = model(torch.from_numpy(ids), torch.from_numpy(lengths))
        want = (logits - torch.logsumexp(logits, 1, keepdim=True)).numpy()
    for b in (onnx_b, torch_b, memory_b):
        assert isinstance(b, Backend)
        got = b.logprobs(ids, lengths)
        assert got.shape == (4, len(config["labels"])) and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=2e-5)


@pytest.mark.parametrize("cell,conditioned", [("lstm", True), ("momentum_lstm", False)])
def test_both_backends_step_as_the_model_reads_a_sequence(tmp_path, cell, conditioned):
    torch, model, config, onnx_b, torch_b, _ = _backends(tmp_path, kind="lm", cell=cell, conditioned=conditioned)
    tok = CharTokenizer.from_dict(config["tokenizer"])
    seqs = np.array([[tok.bos_id] + tok.encode(n) for n in ("rosa", "anna")], np.int64)  # equal lengths
    category = np.array([1, 3], np.int64) if conditioned else None
    with torch.no_grad():  # the reference: the whole sequence in one forward call
        cat = torch.from_numpy(category) if conditioned else None
        logits, _ = model(torch.from_numpy(seqs), torch.full((2,), seqs.shape[1]), cat)
        want = torch.log_softmax(logits, 2).numpy()
    for b in (onnx_b, torch_b):
        state = b.initial_state(2)
        for t in range(seqs.shape[1]):
            logp, state = b.step(seqs[:, t], state, category)
            assert logp.shape == (2, len(tok)) and logp.dtype == np.float32
            np.testing.assert_allclose(logp, want[:, t], atol=2e-5)


def test_the_predictor_and_the_study_share_the_sampler(tmp_path):
    """Same model, seed and temperature: the study's samples are the predictor's names (either backend)."""
    from namemodels.inference.predictor import Predictor
    from namemodels.inference.sampler import MAX_GENERATED
    from namemodels.study.common import sample as study_sample

    torch, model, config, *_ = _backends(tmp_path, kind="lm", cell="gru")
    tok = CharTokenizer.from_dict(config["tokenizer"])
    for seed in range(50):  # a seed whose 6 names are not empty, so the predictor keeps all 6 in one round
        names = study_sample(model, tok, 6, temperature=0.9, seed=seed, max_len=MAX_GENERATED)
        if all(names):
            break
    assert all(names)
    for backend in ("torch", "onnx"):
        pred = Predictor(tmp_path / "m", backend=backend)
        assert pred.generate(n=6, temperature=0.9, seed=seed) == [n.capitalize() for n in names]


def test_a_torch_backend_pickles(tmp_path):
    import pickle

    torch, model, config, _, torch_b, memory_b = _backends(tmp_path, cell="gru")
    ids, lengths = np.array([[5, 6, 7]], np.int64), np.array([3], np.int64)
    for b in (torch_b, memory_b):
        again = pickle.loads(pickle.dumps(b))
        np.testing.assert_array_equal(again.logprobs(ids, lengths), b.logprobs(ids, lengths))
    assert pickle.loads(pickle.dumps(torch_b)).directory == torch_b.directory


# ------------------------------------------------------------------------------------------ novelty, location


def test_novelty_set_holds_the_training_names_by_crc32(tmp_path):
    names = ["Rossi", "rossi", "Nguyen", "O'Brien"]
    write_novelty_hashes(tmp_path, names)
    stored = np.fromfile(tmp_path / NOVELTY_FILE, dtype="<u4")
    want = sorted({zlib.crc32(n.lower().encode("utf-8")) for n in names})
    assert stored.tolist() == want
    novelty = NoveltySet.read(tmp_path)
    assert all(n in novelty for n in ("ROSSI", "nguyen", "o'brien"))
    assert not any(n in novelty for n in ("Ross", "Nguyena", ""))
    assert "Rossi" not in NoveltySet.read(tmp_path / "elsewhere")  # no file: no training name


def test_resolve_finds_shipped_names_and_directories(tmp_path):
    assert shipped_models() and all((PRETRAINED / m / "config.json").is_file() for m in shipped_models())
    assert resolve(shipped_models()[0]) == PRETRAINED / shipped_models()[0]
    (tmp_path / "config.json").write_text("{}")
    assert resolve(tmp_path) == tmp_path
    with pytest.raises(UsageError, match="unknown model 'nope'.*" + shipped_models()[0]):
        resolve("nope")
    with pytest.raises(UsageError, match="not a model directory"):
        resolve(tmp_path / "..")


@pytest.mark.parametrize(
    "module",
    [
        "namemodels.inference",
        "namemodels.inference.locate",
        "namemodels.inference.novelty",
        "namemodels.inference.sampler",
        "namemodels.export",
    ],
)
def test_the_small_modules_do_not_load_the_predictor(module):
    code = (
        f"import sys, {module}; loaded = [m for m in sys.modules if m.startswith('namemodels.inference.predictor')"
        " or m.split('.')[0] == 'torch']; assert not loaded, loaded"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_predictor_path_imports_no_data_module():
    """The torch-free path: load and predict import the text module, never the data loaders."""
    code = (
        "import sys, namemodels; namemodels.load('surnames').predict(['Hinton']); "
        "bad = [m for m in ('namemodels.data', 'torch', 'namemodels.inference.torch_backend') if m in sys.modules];"
        " assert not bad, bad; assert 'namemodels.text' in sys.modules"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
