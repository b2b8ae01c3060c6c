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
