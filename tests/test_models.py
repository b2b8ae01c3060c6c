"""namemodels.models: the classifier's wide part (hashed n-grams) against plain enumeration."""

import pytest
import torch


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
        ids[i, : len(n)] = torch.tensor(n)
    got = model.ngram_logits(ids, torch.tensor([len(n) for n in names]))
    for i, n in enumerate(names):
        framed = [1] + n + [2]
        grams = [framed[p : p + k] for k in (1, 2, 3) for p in range(len(framed) - k + 1)]
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
    codes = [
        1 + 1000003,
        6 + 1000003,
        2 + 1000003,
        1 * V + 6 + 2 * 1000003,
        6 * V + 2 + 2 * 1000003,
        (1 * V + 6) * V + 2 + 3 * 1000003,
    ]
    want = torch.stack([w[c % K] for c in codes]).sum(0) / 6**0.5
    torch.testing.assert_close(short.ngram_logits(torch.tensor([[6]]), torch.tensor([1]))[0], want)
    with pytest.raises(ValueError, match="overflow int64"):  # 10^4 symbols, 5-grams: ids past 2^63
        CharClassifier(10**4, 2, ngram_buckets=8, ngram_max=5)


@pytest.mark.parametrize(
    "kind,cell,bidirectional,pool",
    [
        ("classifier", "lstm", True, "max"),
        ("classifier", "momentum_lstm", False, "last"),
        ("lm", "lstm", False, "last"),
        ("multitask", "momentum_lstm", False, "last"),
    ],
)
def test_proj_size_models_train_and_read_the_projected_width(kind, cell, bidirectional, pool):
    """``proj_size`` reaches the layer (``weight_hr_l{k}``), the heads read ``proj_size x directions``
    features, one training step runs, and a plain LSTM encoder equals torch.nn.LSTM with the same
    projection weights."""
    from namemodels.models import build_model

    torch.manual_seed(0)
    V, H, P = 12, 16, 5
    spec = dict(kind=kind, vocab_size=V, cell=cell, embed=6, hidden=H, layers=2, dropout=0.0, proj_size=P)
    if cell.startswith("momentum"):
        spec.update(mu=0.6, s=0.6, learn_momentum=False)
    if kind == "classifier":
        spec.update(num_classes=3, bidirectional=bidirectional, pool=pool)
    model = build_model(spec)
    state = model.state_dict()
    D = 2 if bidirectional else 1
    assert state["encoder.rnn.weight_hr_l0"].shape == (P, H)
    assert state["encoder.rnn.weight_hh_l1"].shape == (4 * H, P)
    assert state["encoder.rnn.weight_ih_l1"].shape == (4 * H, P * D)
    ids = torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0]])
    lengths = torch.tensor([4, 2])
    out, states = model.encoder(ids, lengths)
    assert out.shape == (2, 4, P * D) and states[0].shape == (2 * D, 2, P) and states[1].shape == (2 * D, 2, H)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    if kind == "classifier":
        loss = torch.nn.functional.cross_entropy(model(ids, lengths), torch.tensor([0, 2]))
    else:
        result = model(ids, lengths)
        loss = result[0].logsumexp(2).mean() + (result[1].sum() if kind == "multitask" else 0)
    before = model.encoder.rnn.weight_hr_l0.detach().clone()
    loss.backward()
    opt.step()
    assert not torch.equal(before, model.encoder.rnn.weight_hr_l0)
    if cell == "lstm":  # the reference: torch.nn.LSTM with projections, on the same weights
        ref = torch.nn.LSTM(6, H, num_layers=2, batch_first=True, bidirectional=bidirectional, proj_size=P)
        ref.load_state_dict(model.encoder.rnn.state_dict())
        with torch.no_grad():
            x = model.encoder.embedding(ids[:1])
            got, _ = model.encoder.rnn(x)
            want, _ = ref(x)
        torch.testing.assert_close(got, want)


def test_proj_size_is_refused_where_it_cannot_apply():
    from namemodels.models import CharClassifier, CharLM

    with pytest.raises(ValueError, match="cell gru has none: use cell lstm or momentum_lstm"):
        CharClassifier(10, 2, cell="gru", hidden=16, proj_size=4)
    with pytest.raises(ValueError, match=r"proj_size must be below hidden \(16\), got 16"):
        CharLM(10, cell="lstm", hidden=16, proj_size=16)
    assert "weight_hr_l0" not in CharLM(10, cell="lstm", hidden=16, proj_size=0).state_dict()
