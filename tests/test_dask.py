"""namemodels.dask on a real distributed.LocalCluster (2 worker processes): 100,000 names scored
partition by partition equal the single-process predictions row for row. Skipped when the dask
extra is not installed (CI installs it through the dev extra)."""

import numpy as np
import pytest

pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pd = pytest.importorskip("pandas")

import dask.dataframe as dd  # noqa: E402

import namemodels  # noqa: E402
import namemodels.dask  # noqa: E402

N = 100_000


def surnames_sample(shared_root, n: int, seed: int = 0):
    """``n`` lines drawn from the real surname files, or made from syllables when they are absent."""
    rng = np.random.default_rng(seed)
    folder = shared_root / "names"
    if folder.is_dir():
        pool = [
            line.strip()
            for f in sorted(folder.glob("*.txt"))
            for line in f.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
    else:
        syllables = ["ro", "ssi", "ka", "wa", "iv", "ov", "ko", "vich", "an", "mo", "yama", "ni"]
        pool = ["".join(rng.choice(syllables, rng.integers(1, 5))).capitalize() for _ in range(20_000)]
        pool += ["", "Rafaj1", "Smith\u263a"]  # bad rows travel too
    return [pool[i] for i in rng.integers(0, len(pool), n)]


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_local_cluster_equals_single_process(client):
    from helpers import SHARED_DATA

    names = surnames_sample(SHARED_DATA, N)
    df = pd.DataFrame({"id": np.arange(N), "surname": names})
    ddf = dd.from_pandas(df, npartitions=8)
    lazy = namemodels.dask.predict(ddf, column="surname", model="surnames", top=2)
    assert list(lazy.columns) == [
        "id",
        "surname",
        "label",
        "logprob",
        "label_2",
        "logprob_2",
        "source",
        "count",
        "error",
    ]
    out = lazy.compute()
    assert len(out) == N and out["id"].tolist() == list(range(N))  # every row, in order
    assert out["surname"].tolist() == names

    model = namemodels.load("surnames")
    answers = model.predict(names, top=2, errors="return")
    ok = [not isinstance(a, Exception) for a in answers]
    assert out["error"].isna().tolist() == ok
    assert [str(a) for a in answers if isinstance(a, Exception)] == out["error"].dropna().tolist()
    good = [a for a in answers if not isinstance(a, Exception)]
    scored = out[np.array(ok)]
    assert scored["label"].tolist() == [a[0][0] for a in good]
    assert scored["label_2"].tolist() == [a[1][0] for a in good]
    np.testing.assert_allclose(scored["logprob"].to_numpy(), [a[0][1] for a in good], rtol=0, atol=1e-6)
    np.testing.assert_allclose(scored["logprob_2"].to_numpy(), [a[1][1] for a in good], rtol=0, atol=1e-6)


def test_gender_on_the_cluster(client):
    names = ["Maria", "John", "Alex", "", "Kim"] * 200
    ddf = dd.from_pandas(pd.DataFrame({"first": names}), npartitions=3)
    out = namemodels.dask.gender(ddf, column="first").compute()
    model = namemodels.load("gender")
    p_female = np.exp(model.predict_logproba([n for n in names if n])[:, model.labels.index("F")])
    got = out[out["error"].isna()]
    assert got["label"].tolist() == ["F" if p >= 0.5 else "M" for p in p_female]
    np.testing.assert_allclose(got["probability"], np.maximum(p_female, 1 - p_female), atol=1e-6)
    assert out["error"].notna().sum() == 200


def test_a_pandas_frame_is_refused_with_what_to_do():
    """No cluster needed: a pandas frame (or a list) is a UsageError (and a TypeError) naming what to pass."""
    df = pd.DataFrame({"surname": ["Hinton"]})
    with pytest.raises(
        namemodels.errors.UsageError, match="needs a Dask DataFrame, got pandas.DataFrame; .*predict_frame.*from_pandas"
    ) as info:
        namemodels.dask.predict(df, column="surname")
    assert isinstance(info.value, TypeError)
    with pytest.raises(namemodels.errors.UsageError, match="got builtins.list"):
        namemodels.dask.gender(["Maria"], column="name")
