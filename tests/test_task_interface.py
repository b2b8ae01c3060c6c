"""The task interface (namemodels.tasks) and the pieces it shares with evaluation (namemodels.batching):
the next-character shift against the tokenizer's own encoding, the label indexer, each task's batch
and its loss against the equations."""

import numpy as np
import pytest
import torch

from namemodels.batching import IGNORE, label_ids, next_char_pairs
from namemodels.config import TrainConfig
from namemodels.data.records import NameDataset, NameRecord
from namemodels.models import build_model
from namemodels.tasks import class_weights, make_task, model_spec, task_labels
from namemodels.tokenizer import CharTokenizer

NAMES = ["Ab", "Cdef", "Gh i", "Zz"]
LABELS = ["x", "y", "z"]
SIZES = dict(embed=4, hidden=6)


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer.fit(NAMES, lowercase=True)


def dataset(labels=("x", "y", None, "q"), shares=(0.0, 1.0, 0.25, 0.5)) -> NameDataset:
    return NameDataset([NameRecord(n, label, soft=s) for n, label, s in zip(NAMES, labels, shares)], LABELS)


def test_next_char_pairs_shift_the_encoded_name_by_one(tok):
    inputs, targets, lengths = next_char_pairs(tok, NAMES)
    width = max(len(tok.encode(n)) for n in NAMES) + 1
    assert inputs.shape == targets.shape == (len(NAMES), width)
    for row, name in enumerate(NAMES):
        ids = tok.encode(name, bos=True, eos=True)  # <bos> c1 .. cn <eos>
        pad = width - (len(ids) - 1)
        assert inputs[row, : len(ids) - 1].tolist() == ids[:-1]  # the steps after a name's length are not read
        assert targets[row].tolist() == ids[1:] + [IGNORE] * pad
        assert lengths[row] == len(ids) - 1


def test_label_ids():
    assert label_ids(LABELS, ["z", "x"]).tolist() == [2, 0]
    assert label_ids(LABELS, ["y", "q", None], unknown=-1).tolist() == [1, -1, -1]
    assert label_ids(LABELS, []).dtype == np.int64
    with pytest.raises(KeyError, match="q"):
        label_ids(LABELS, ["x", "q"])


def test_task_labels():
    data_labels = ["a", "b"]
    assert task_labels(TrainConfig(task="classify"), data_labels) == data_labels
    assert task_labels(TrainConfig(task="gender"), data_labels) == ["M", "F"]
    assert task_labels(TrainConfig(task="multitask"), data_labels) == ["M", "F"]
    assert task_labels(TrainConfig(task="generate"), data_labels) == data_labels
    assert task_labels(TrainConfig(task="generate", conditional=False), data_labels) == []


def test_classify_batch_and_loss(tok):
    ds = dataset(labels=("x", "z", "y", "z"))
    cfg = TrainConfig(task="classify", label_smoothing=0.2, **SIZES)
    task = make_task(cfg, LABELS, ds)
    b = task.batch(tok, ds, [3, 0, 1])
    assert b.y.tolist() == [2, 0, 2] and b.targets is None
    ids, lengths = [torch.tensor(tok.encode(NAMES[i])) for i in (3, 0, 1)], [2, 2, 4]
    assert b.lengths.tolist() == lengths
    for row, expected in enumerate(ids):
        assert b.ids[row, : len(expected)].tolist() == expected.tolist()
    torch.manual_seed(0)
    model = build_model(model_spec(cfg, len(tok), LABELS))
    logp = torch.log_softmax(model(b.ids, b.lengths), 1).double()
    smooth = (0.8 * -logp[torch.arange(3), b.y] + 0.2 * -logp.mean(1)).mean()  # label smoothing by its definition
    torch.testing.assert_close(task.loss(model, b).double(), smooth, rtol=1e-6, atol=1e-7)

    weighted = make_task(TrainConfig(task="classify", class_weight="balanced", **SIZES), LABELS, ds)
    w = weighted.class_weights.double()
    expected = (w[b.y] * -logp[torch.arange(3), b.y]).sum() / w[b.y].sum()
    torch.testing.assert_close(weighted.loss(model, b).double(), expected, rtol=1e-6, atol=1e-7)


def test_class_weights_balance_the_label_counts():
    ds = dataset(labels=("x", "x", "x", "y"))
    counts = np.array([3, 1, 0])
    for kind, scale in (("balanced", lambda w: w), ("sqrt", np.sqrt)):
        w = scale(4 / np.maximum(counts, 1) / 3)
        got = class_weights(TrainConfig(task="classify", class_weight=kind), ds, LABELS)
        np.testing.assert_allclose(got.numpy(), w / w.mean(), rtol=1e-6)
    assert class_weights(TrainConfig(task="classify"), ds, LABELS) is None


def test_generate_batch_categories_and_loss(tok):
    ds = dataset()
    cfg = TrainConfig(task="generate", category_dropout=0.5, **SIZES)
    task = make_task(cfg, LABELS)
    b = task.batch(tok, ds, [0, 1, 2, 3])
    inputs, targets, lengths = next_char_pairs(tok, NAMES)
    assert b.ids.tolist() == inputs.tolist() and b.targets.tolist() == targets.tolist()
    assert b.lengths.tolist() == lengths.tolist()
    assert b.y.tolist() == [1, 2, 0, 0]  # 1-based label, 0 for none or an unknown label
    dropped = task.batch(tok, ds, [0, 1, 2, 3], np.random.default_rng(5)).y.tolist()
    drop = np.random.default_rng(5).random(4) < 0.5
    assert dropped == [0 if d else c for c, d in zip([1, 2, 0, 0], drop)]
    assert make_task(TrainConfig(task="generate", conditional=False), []).batch(tok, ds, [0]).y is None

    torch.manual_seed(0)
    model = build_model(model_spec(cfg, len(tok), LABELS))
    logits, _ = model(b.ids, b.lengths, b.y)
    logp = torch.log_softmax(logits.double(), -1)
    picked = [-logp[i, t, targets[i, t]] for i in range(len(NAMES)) for t in range(lengths[i])]
    torch.testing.assert_close(task.loss(model, b).double(), torch.stack(picked).mean(), rtol=1e-6, atol=1e-7)


def test_reverse_names_reads_names_backwards(tok):
    ds = dataset()
    b = make_task(TrainConfig(task="generate", conditional=False, reverse_names=True), []).batch(tok, ds, [1])
    assert b.ids[0].tolist() == [tok.bos_id] + tok.encode("fedC")


def test_gender_and_multitask_losses(tok):
    ds = dataset()
    share = torch.tensor([0.0, 1.0, 0.25, 0.5], dtype=torch.float64)

    def bce(logit):
        p = torch.sigmoid(logit.double())
        return -(share * torch.log(p) + (1 - share) * torch.log(1 - p)).mean()

    gender = make_task(TrainConfig(task="gender", **SIZES), ["M", "F"])
    b = gender.batch(tok, ds, range(4))
    assert b.y.tolist() == share.tolist() and b.y.dtype == torch.float32
    torch.manual_seed(0)
    model = build_model(model_spec(gender.cfg, len(tok), ["M", "F"]))
    torch.testing.assert_close(gender.loss(model, b).double(), bce(model(b.ids, b.lengths)), rtol=1e-6, atol=1e-7)

    cfg = TrainConfig(task="multitask", gender_weight=0.3, **SIZES)
    multi = make_task(cfg, ["M", "F"])
    b = multi.batch(tok, ds, range(4))
    model = build_model(model_spec(cfg, len(tok), ["M", "F"]))
    logits, gender_logit, _ = model(b.ids, b.lengths)
    logp = torch.log_softmax(logits.double(), -1)
    mask = b.targets != IGNORE
    lm = -logp.gather(2, b.targets.clamp(min=0).unsqueeze(2)).squeeze(2)[mask].mean()
    torch.testing.assert_close(multi.loss(model, b).double(), lm + 0.3 * bce(gender_logit), rtol=1e-6, atol=1e-7)
