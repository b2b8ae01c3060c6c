"""Name tasks end to end on small data: training for each task, resume, predictor, CLI."""
import json
import threading

import numpy as np
import pytest
import torch

import namemodels
import namemodels.tasks as tasks
from namemodels.cli import main
from namemodels.config import TrainConfig
from namemodels.evaluate import lm_scores
from namemodels.inference.predictor import load
from namemodels.train import train

from helpers import make_first_names, make_surnames

FAST = dict(embed=8, hidden=16, batch_size=16, lr=0.01)


@pytest.fixture(scope="module")
def surnames(tmp_path_factory):
    return make_surnames(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def first_names(tmp_path_factory):
    return make_first_names(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def classifier_dir(surnames, tmp_path_factory):
    out = tmp_path_factory.mktemp("cls")
    train(TrainConfig(task="classify", epochs=6, bidirectional=True, **FAST), surnames, out, progress=False, log=lambda m: None)
    return out


@pytest.fixture(scope="module")
def lm_dir(surnames, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    train(TrainConfig(task="generate", epochs=4, cell="momentum_lstm", **FAST), surnames, out, progress=False, log=lambda m: None)
    return out


def test_classifier_learns_the_syllables(classifier_dir):
    config = json.loads((classifier_dir / "config.json").read_text())
    assert config["metrics"]["test"]["accuracy"] > 0.6  # 3 classes: chance is about 0.33
    for name in ("model.safetensors", "history.json", "MODEL_CARD.md"):
        assert (classifier_dir / name).is_file()
    assert len(json.loads((classifier_dir / "history.json").read_text())["epochs"]) >= 1


def test_ngram_wide_part_is_a_bag_of_framed_ngrams():
    """The wide part equals the sum of one table row per n-gram of ``<bos> name <eos>`` (listed here
    by plain enumeration) over sqrt(count); padding adds nothing."""
    from namemodels.models import NGRAM_STRIDE, CharClassifier
    torch.manual_seed(0)
    V, K = 9, 53
    model = CharClassifier(V, 4, cell="gru", embed=4, hidden=6, ngram_buckets=K, ngram_max=3).eval()
    torch.nn.init.normal_(model.ngrams.weight)
    names = [[5, 6, 7, 8], [4], [8, 8]]
    ids = torch.zeros(3, 6, dtype=torch.long)
    for i, n in enumerate(names):
        ids[i, :len(n)] = torch.tensor(n)
    got = model.ngram_logits(ids, torch.tensor([len(n) for n in names]))
    for i, n in enumerate(names):
        framed = [1] + n + [2]
        grams = [framed[p:p + k] for k in (1, 2, 3) for p in range(len(framed) - k + 1)]
        rows = []
        for g in grams:
            code = 0
            for c in g:
                code = code * V + c
            rows.append(model.ngrams.weight[(code + len(g) * NGRAM_STRIDE) % K])
        want = torch.stack(rows).sum(0) / len(grams) ** 0.5
        torch.testing.assert_close(got[i], want)
    # 5-grams over a batch of one-letter names (T = 1): <bos> c <eos> has no 4- or 5-grams at all
    short = CharClassifier(V, 4, cell="gru", embed=4, hidden=6, ngram_buckets=K, ngram_max=5).eval()
    torch.nn.init.normal_(short.ngrams.weight)
    w = short.ngrams.weight
    codes = [1 + 1000003, 6 + 1000003, 2 + 1000003, 1 * V + 6 + 2 * 1000003, 6 * V + 2 + 2 * 1000003,
             (1 * V + 6) * V + 2 + 3 * 1000003]
    want = torch.stack([w[c % K] for c in codes]).sum(0) / 6 ** 0.5
    torch.testing.assert_close(short.ngram_logits(torch.tensor([[6]]), torch.tensor([1]))[0], want)
    with pytest.raises(ValueError, match="overflow int64"):   # 10^4 symbols, 5-grams: ids past 2^63
        CharClassifier(10 ** 4, 2, ngram_buckets=8, ngram_max=5)


def test_save_dtype_float16_halves_the_weights_and_scores_what_it_saved(surnames, tmp_path):
    from safetensors import safe_open
    config = train(TrainConfig(task="classify", epochs=2, ngram_buckets=512, save_dtype="float16", **FAST), surnames,
                   tmp_path, progress=False, log=lambda m: None)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    p = load(tmp_path, backend="torch")   # float16 on disk, float32 in the model
    assert all(t.dtype == torch.float32 for t in p.backend.model.state_dict().values())
    from namemodels.data import grouped_split, load as load_data
    from namemodels.evaluate import classifier_logprobs
    test = grouped_split(load_data(surnames), seed=0)[2]
    lp = classifier_logprobs(p.backend.model, p.tokenizer, test.names)
    labels = config["labels"]
    accuracy = float(np.mean(lp.argmax(1) == np.array([labels.index(r.label) for r in test.records])))
    assert accuracy == pytest.approx(config["metrics"]["test"]["accuracy"])   # the recorded metric is the saved model's


def test_wide_and_deep_classifier_trains(surnames, tmp_path):
    config = train(TrainConfig(task="classify", epochs=4, ngram_buckets=512, **FAST), surnames, tmp_path,
                   progress=False, log=lambda m: None)
    assert config["model"]["ngram_buckets"] == 512
    assert config["metrics"]["test"]["accuracy"] > 0.6
    p = load(tmp_path, backend="torch")
    assert p.predict(["Tanaka"])[0][0][0] in config["labels"]


@pytest.mark.parametrize("task,cell", [("gender", "gru"), ("multitask", "momentum_gru")])
def test_gender_tasks_train(first_names, tmp_path, task, cell):
    config = train(TrainConfig(task=task, epochs=3, cell=cell, **FAST), first_names, tmp_path, progress=False, log=lambda m: None)
    auc = config["metrics"]["test"]["roc_auc"]
    assert 0.5 < auc <= 1.0
    if task == "multitask":
        assert 1.0 < config["metrics"]["test"]["perplexity"] < len(config["tokenizer"]["chars"]) + 1


def test_lm_nll_equals_sum_of_step_logprobs(lm_dir):
    """Teacher-forced NLL of the whole sequence == the sum over one-token decoding steps."""
    pred = load(lm_dir, backend="torch")
    model, tok = pred.backend.model, pred.tokenizer
    names = ["Rossi", "Kawa", "Ivanov"]
    nll, tokens, _ = lm_scores(model, tok, names, categories=[1, 2, 3])
    for i, name in enumerate(names):
        ids = tok.encode(name, bos=True, eos=True)
        state, total = None, 0.0
        for cur, nxt in zip(ids[:-1], ids[1:]):
            logp, state = model.step(torch.tensor([cur]), state, torch.tensor([i + 1]))
            total -= float(logp[0, nxt])
        assert tokens[i] == len(name) + 1
        assert nll[i] == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_after_a_crash_gives_the_same_model(surnames, tmp_path, monkeypatch, ema):
    cfg = TrainConfig(task="classify", epochs=3, dropout=0.3, ema=ema, **FAST)
    train(cfg, surnames, tmp_path / "full", progress=False, log=lambda m: None)
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
        train(cfg, surnames, tmp_path / "resumed", progress=False, log=lambda m: None)
    assert json.loads((tmp_path / "resumed" / "last.json").read_text())["epochs_done"] == 1
    monkeypatch.setattr(tasks.Classify, "loss", real_loss)
    train(cfg, surnames, tmp_path / "resumed", resume=True, progress=False, log=lambda m: None)
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
    train(TrainConfig(task="classify", epochs=1, ema=decay, ngram_buckets=64, **dict(FAST, batch_size=4)), surnames, tmp_path,
          progress=False, log=lambda m: None)
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
    assert not torch.allclose(saved[names[-1]], seen[-1][-1])   # not simply the last weights


def test_final_fit_trains_on_train_and_valid_for_every_epoch(surnames, tmp_path):
    from safetensors.torch import load_file
    plain = train(TrainConfig(task="classify", epochs=1, **FAST), surnames, tmp_path / "plain", progress=False,
                  log=lambda m: None)
    config = train(TrainConfig(task="classify", epochs=3, patience=1, final_fit=True, **FAST), surnames,
                   tmp_path / "final", progress=False, log=lambda m: None)
    split = config["data"]["split"]
    assert split["valid_in_train"] and not plain["data"]["split"]["valid_in_train"]
    assert split["train"] == plain["data"]["split"]["train"] + split["valid"]
    history = json.loads((tmp_path / "final" / "history.json").read_text())
    assert len(history["epochs"]) == 3 and len(history["steps"]) == 3 * int(np.ceil(split["train"] / FAST["batch_size"]))
    saved, last = load_file(tmp_path / "final" / "model.safetensors"), load_file(tmp_path / "final" / "checkpoint-0003.safetensors")
    for k, v in saved.items():   # the last epoch's weights, whatever the validation score did
        torch.testing.assert_close(v, last["model." + k], rtol=0, atol=0)
    assert "--final-fit" in (tmp_path / "final" / "MODEL_CARD.md").read_text()


def test_resume_accepts_checkpoints_from_before_newer_options(surnames, tmp_path):
    train(TrainConfig(task="classify", epochs=1, **FAST), surnames, tmp_path, progress=False, log=lambda m: None)
    state = json.loads((tmp_path / "last.json").read_text())
    for option in ("ema", "label_smoothing", "final_fit"):   # a checkpoint written before these existed
        del state["config"]["train"][option]
    (tmp_path / "last.json").write_text(json.dumps(state))
    config = train(TrainConfig(task="classify", epochs=1, **FAST), surnames, tmp_path, resume=True, progress=False,
                   log=lambda m: None)
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 1 and config["metrics"]["test"]


def test_resume_refuses_other_settings(surnames, tmp_path):
    train(TrainConfig(task="classify", epochs=1, **FAST), surnames, tmp_path, progress=False, log=lambda m: None)
    with pytest.raises(namemodels.errors.UsageError, match="other settings"):
        train(TrainConfig(task="classify", epochs=2, **FAST), surnames, tmp_path, resume=True, progress=False, log=lambda m: None)


def test_predictor_matches_softmax_and_is_thread_safe(classifier_dir):
    pred = namemodels.load(classifier_dir)
    names = ["Rossini", "Kawayama", "Ivanovich", "Bianchi"] * 8
    proba = pred.predict_proba(names)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    top = pred.predict(names, top=2)
    assert [t[0][0] for t in top] == [pred.labels[i] for i in proba.argmax(1)]
    results = [None] * 4

    def work(i):
        results[i] = pred.predict_proba(names)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    for r in results:
        np.testing.assert_allclose(r, proba, atol=1e-6)


def test_generate_options(lm_dir):
    pred = load(lm_dir)
    a = pred.generate(n=5, seed=3, category="Japanese")
    assert a == pred.generate(n=5, seed=3, category="japanese")
    assert len(a) == 5 and all(n[0].isupper() for n in a)
    assert all(n.lower().startswith("ka") for n in pred.generate(n=5, seed=1, start="Ka"))
    assert len(pred.generate(n=3, seed=2, top_k=1)) == 3
    assert len(pred.generate(n=3, seed=2)) == 3  # without a category
    with pytest.raises(namemodels.errors.UsageError, match="unknown category"):
        pred.generate(n=1, category="Klingon")


def test_cli_predict_prints_top_labels_and_reports_bad_names(classifier_dir, capsys):
    code = main(["predict", "Rossini", "", "12345", "Kawayama", "--model", str(classifier_dir)])
    out, err = capsys.readouterr()
    assert code == 2
    lines = out.strip().splitlines()
    assert lines[0] == "> Rossini" and lines[4] == "> Kawayama" and len(lines) == 8
    assert all(l.startswith("(-") or l.startswith("(0") for l in lines[1:4])
    assert err.count("error:") == 2 and "Traceback" not in err
    assert main(["predict", "Rossini", "--model", str(classifier_dir), "--json", "--top", "1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["name"] == "Rossini" and len(data[0]["predictions"]) == 1


@pytest.mark.parametrize("argv,message", [
    (["predict", "Smith", "--model", "no-such-model"], "unknown model"),
    (["train", "classify", "--data", "/no/such/path", "--out", "/tmp/x"], "/no/such/path"),
    (["evaluate", "no-such-model", "--data", "."], "unknown model"),
])
def test_cli_errors_exit_2_without_traceback(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("task,flags,message", [("classify", ["--ngram-buckets", "-1"], "--ngram-buckets must be"),
                                                ("classify", ["--save-dtype", "int8"], "--save-dtype must be"),
                                                ("classify", ["--ngram-max", "0"], "--ngram-max must be between 1 and 8"),
                                                ("generate", ["--ngram-buckets", "64"], "has none"),
                                                ("classify", ["--ema", "1.0"], "--ema must be at least 0 and below 1"),
                                                ("classify", ["--label-smoothing", "-0.1"], "--label-smoothing must be"),
                                                ("generate", ["--ensemble", "2"], "--ensemble must be"),
                                                ("classify", ["--ensemble", "0"], "--ensemble must be")])
def test_cli_train_rejects_bad_options(surnames, tmp_path, capsys, task, flags, message):
    assert main(["train", task, "--data", str(surnames), "--out", str(tmp_path / "m"), "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_cli_train_evaluate_generate(surnames, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["train", "generate", "--data", str(surnames), "--out", str(out), "--epochs", "1",
                 "--hidden", "16", "--embed", "8", "--quiet", "--cell", "gru"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out), "--data", str(surnames), "--json", "--baseline"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["split"] == "test" and 1 < res["metrics"]["perplexity"] < res["baseline"]["uniform_perplexity"] + 5
    assert main(["generate", "--model", str(out), "--n", "4", "--seed", "1", "--category", "Italian"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 4
    assert main(["generate", "--model", str(out), "--category", "Martian"]) == 2


def test_name_level_accuracy_counts_repeated_names_once():
    from namemodels.evaluate import name_level_accuracy
    rng = np.random.default_rng(1)
    correct = rng.random(400) < 0.8
    keys = [(f"n{i}", "A") for i in range(400)]
    once = name_level_accuracy(correct, keys)
    assert once["accuracy_unique"] == pytest.approx(correct.mean())
    p, half = correct.mean(), 1.96 * np.sqrt(correct.mean() * (1 - correct.mean()) / 400)
    assert once["accuracy_ci95"] == pytest.approx([p - half, p + half], abs=0.01)   # the binomial interval
    # each name on ten lines: the same accuracy and the same interval (the copies add no evidence)
    tenfold = name_level_accuracy(np.repeat(correct, 10), [k for k in keys for _ in range(10)])
    assert tenfold["accuracy_unique"] == pytest.approx(once["accuracy_unique"])
    assert tenfold["accuracy_ci95"] == pytest.approx(once["accuracy_ci95"])
    # one name holding a third of the lines widens the interval of the line accuracy
    lopsided = name_level_accuracy(np.r_[correct, np.zeros(200, bool)], keys + [("big", "A")] * 200)
    assert lopsided["accuracy_unique"] == pytest.approx(correct.sum() / 401)
    assert np.diff(lopsided["accuracy_ci95"])[0] > 2 * np.diff(once["accuracy_ci95"])[0]


def test_evaluate_reports_accuracy_over_unique_names(classifier_dir, surnames, capsys):
    from namemodels.data import load as load_data
    assert main(["evaluate", str(classifier_dir), "--data", str(surnames), "--split", "all", "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["metrics"]
    records = load_data(surnames).records
    pred = load(classifier_dir).predict([r.name for r in records], top=1)
    right = {}
    for r, top in zip(records, pred):
        right.setdefault((r.name, r.label), []).append(top[0][0] == r.label)
    assert m["accuracy_unique"] == pytest.approx(np.mean([np.mean(v) for v in right.values()]))
    lo, hi = m["accuracy_ci95"]
    assert lo <= m["accuracy"] <= hi
    assert main(["evaluate", str(classifier_dir), "--data", str(surnames), "--split", "all"]) == 0
    assert "95% interval from resampling whole names" in capsys.readouterr().out


def test_ensemble_averages_members_trained_on_one_split(surnames, tmp_path):
    """--ensemble 2: members with seeds 0 and 1 on the split of seed 0, saved as one model whose
    probabilities are the mean of the members' own (each loaded from its own directory)."""
    from namemodels.data import grouped_split, load as load_data
    logs = []
    cfg = TrainConfig(task="classify", epochs=2, ensemble=2, **FAST)
    config = train(cfg, surnames, tmp_path, progress=False, log=logs.append)
    assert config["model"]["kind"] == "ensemble" and [m["seed"] for m in config["members"]] == [0, 1]
    members = [read_member(tmp_path / "members" / str(k)) for k in range(2)]
    assert [c["train"]["seed"] for c, _ in members] == [0, 1]
    assert all(c["data"]["split"]["seed"] == 0 for c, _ in members)
    test = grouped_split(load_data(surnames), seed=0)[2]
    names = test.names
    probs = [pred.predict_proba(names) for _, pred in members]
    assert not np.allclose(probs[0], probs[1])                       # two seeds, two different models
    ensemble = load(tmp_path)
    np.testing.assert_allclose(ensemble.predict_proba(names), np.mean(probs, 0), atol=1e-5)
    accuracy = np.mean(np.array(ensemble.labels)[np.mean(probs, 0).argmax(1)] == [r.label for r in test.records])
    assert config["metrics"]["test"]["accuracy"] == pytest.approx(accuracy)
    assert "ensemble of 2 members" in (tmp_path / "MODEL_CARD.md").read_text()
    logs.clear()
    train(cfg, surnames, tmp_path, resume=True, progress=False, log=logs.append)   # finished members are kept
    assert any("0 to train" in m for m in logs)


def read_member(directory):
    return json.loads((directory / "config.json").read_text()), load(directory)


def test_generate_novel_rejects_training_names(lm_dir, surnames):
    from namemodels.data import load as load_data
    pred = load(lm_dir)
    known = {n.lower() for n in load_data(surnames).names}
    assert all(pred.is_training_name(n) for n in list(known)[:20])
    assert not any(pred.is_training_name(n) for n in ("Zzyzx", "Qwerty", "Rossiniov"))
    novel = pred.generate(n=10, seed=0, temperature=0.5, novel=True)
    assert len(novel) == 10 and not any(n.lower() in known for n in novel)


@pytest.mark.parametrize("task,source,cell", [
    ("classify", "names", "lstm"), ("gender", "first_names.csv", "momentum_gru"),
    ("generate", "first_names.csv", "gru"), ("multitask", "first_names.csv", "momentum_lstm")])
def test_short_real_training_run(shared_data, tmp_path, task, source, cell):
    """A few hundred real names, one epoch, every task: the numbers land in plausible ranges."""
    config = train(TrainConfig(task=task, cell=cell, epochs=1, max_train=400, **FAST), shared_data / source,
                   tmp_path, progress=False, log=lambda m: None)
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
    from namemodels.train import init_encoder, prepare
    quiet = dict(progress=False, log=lambda m: None)
    lm = dict(task="generate", conditional=False, epochs=1, **FAST)
    train(TrainConfig(**lm), surnames, tmp_path / "fwd", **quiet)
    train(TrainConfig(reverse_names=True, **lm), surnames, tmp_path / "rev", **quiet)
    cfg = TrainConfig(task="classify", bidirectional=True, init_from=str(tmp_path / "fwd"),
                      init_reverse_from=str(tmp_path / "rev"), **FAST)
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
