"""Acceptance test for ``namemodels study``: the whole study on a tiny data set made here."""

import json
import math
import random
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from namemodels.cli import main  # noqa: E402

SYLLABLES = {
    "Japanese": (["ka", "ta", "mo", "ri", "na", "shi", "yama", "ko", "hi", "su", "mu", "to"], "", ""),
    "Italian": (["ros", "bian", "col", "fer", "ma", "ri", "lon", "gal", "vi", "ben", "tor"], "", "io"),
    "Russian": (["iv", "pet", "sok", "vol", "kuz", "smir", "nov", "bog", "dan", "lav"], "", "ov"),
    "Irish": (["brien", "connor", "neill", "sulli", "mur", "kel", "doh", "ly", "ghan", "ran"], "o'", ""),
}
FEMALE = [
    "Anna",
    "Maria",
    "Julia",
    "Sofia",
    "Emma",
    "Olivia",
    "Laura",
    "Clara",
    "Nina",
    "Elena",
    "Rosa",
    "Lena",
    "Mia",
    "Ella",
    "Paula",
    "Greta",
    "Ida",
    "Vera",
    "Lara",
    "Alma",
    "Irene",
    "Grace",
    "Alice",
    "Rose",
]
MALE = [
    "John",
    "Peter",
    "Mark",
    "David",
    "Paul",
    "Frank",
    "Oscar",
    "Victor",
    "Hugo",
    "Brian",
    "Carl",
    "Erik",
    "Tom",
    "Sam",
    "Adam",
    "Noah",
    "Liam",
    "Ivan",
    "Leon",
    "Felix",
    "Simon",
    "Jack",
    "Owen",
    "Otto",
]
ELEMENTS = [
    "Hydrogen",
    "Helium",
    "Lithium",
    "Beryllium",
    "Boron",
    "Carbon",
    "Nitrogen",
    "Oxygen",
    "Fluorine",
    "Neon",
    "Sodium",
    "Magnesium",
    "Aluminium",
    "Silicon",
    "Phosphorus",
    "Sulfur",
    "Chlorine",
    "Argon",
]


def make_data(root: Path) -> Path:
    rng = random.Random(0)
    (root / "names").mkdir(parents=True)
    for lang, (syl, pre, suf) in SYLLABLES.items():
        names = {(pre + "".join(rng.choice(syl) for _ in range(rng.randint(1, 3))) + suf).title() for _ in range(60)}
        (root / "names" / f"{lang}.txt").write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    rows = ["name,sex,count"]
    for i in range(3):  # variants so that the split has enough of both sexes
        for n in FEMALE:
            rows.append(f"{n}{'ea'[i % 2] * i},F,{rng.randint(5, 500)}")
        for n in MALE:
            rows.append(f"{n}{'ns'[i % 2] * i},M,{rng.randint(5, 500)}")
    rows.append("Alex,F,40")
    rows.append("Alex,M,60")
    (root / "first_names.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "elements.txt").write_text("\n".join(ELEMENTS) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    data = make_data(root / "data")
    lines = root / "items.txt"
    lines.write_text(
        "\n".join(
            ["apple", "banana", "cherry", "grape", "lemon", "mango", "melon", "peach", "pear", "plum", "kiwi", "lime"]
        )
        + "\n",
        encoding="utf-8",
    )
    out = root / "out"
    t0 = time.perf_counter()
    rc = main(["study", "--tiny", "--quiet", "--data", str(data), "--out", str(out), "--lines", str(lines)])
    seconds = time.perf_counter() - t0
    assert rc == 0
    return out, json.loads((out / "results.json").read_text()), seconds, data


def _numbers(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _numbers(v)
    elif isinstance(x, list):
        for v in x:
            yield from _numbers(v)
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield x


def test_outputs_exist(study):
    out, res, seconds, _ = study
    html = (out / "report.html").read_text(encoding="utf-8")
    pngs = sorted(p.name for p in out.glob("*.png"))
    expected = [
        "cells_loss_classify.png",
        "cells_loss_gender.png",
        "cells_loss_generate.png",
        "cells_loss_multitask.png",
        "data_first_names.png",
        "data_surnames.png",
        "embeddings_chars.png",
        "embeddings_names.png",
        "gender_loss.png",
        "generation_loss.png",
        "gradients.png",
        "memorizer.png",
        "momentum_sweep.png",
        "perplexity_baselines.png",
        "reading.png",
        "regularisation.png",
    ]
    assert pngs == expected
    for p in pngs:
        assert (out / p).stat().st_size > 1000
        assert f'alt="{p}"' in html  # every PNG is embedded in the report
    assert html.count("data:image/png;base64,") == len(pngs)
    assert "<svg" in html and "<title>" in html  # the interactive scatter, inline
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert (out / "embeddings_names.html").exists()
    assert set(res["parts"]) == {
        "data",
        "cells",
        "perplexity",
        "gender-loss",
        "gradients",
        "momentum",
        "memorizer",
        "embeddings",
        "reading",
        "regularisation",
        "generation",
    }
    print(f"tiny study took {seconds:.1f} s")


def test_results_finite_and_plausible(study):
    _, res, _, _ = study
    assert all(math.isfinite(v) for v in _numbers(res))  # NaN/inf never reach results.json
    p = res["perplexity"]
    vocab = p["vocabulary_outputs"]
    for key in ("perplexity_exp_mean_ce", "perplexity_product", "unigram"):
        assert 1.0 < p[key] < 3 * vocab, key  # an untrained model can be a bit worse than uniform
    assert p["uniform"] == vocab
    assert abs(p["perplexity_exp_mean_ce"] - p["perplexity_product"]) < 1e-6
    assert p["agree_1e_6"] is True
    for tr in res["cells"]["tasks"].values():
        for entry in tr["cells"].values():
            assert entry["parameters"] > 0
            for run in entry["runs"]:
                for split in ("valid", "test"):
                    m = run[split]
                    for k in ("accuracy", "macro_f1"):
                        if k in m:
                            assert 0.0 <= m[k] <= 1.0
                    if m.get("roc_auc") is not None:
                        assert 0.0 <= m["roc_auc"] <= 1.0
                    if "perplexity" in m:
                        assert 1.0 < m["perplexity"] < 3 * vocab
    # AUC in [0.5, 1]: the gender signal in the test data (last letter) is easy, so the mean over cells
    # and seeds must beat chance
    aucs = [
        r["test"]["roc_auc"]
        for e in res["cells"]["tasks"]["gender"]["cells"].values()
        for r in e["runs"]
        if r["test"].get("roc_auc") is not None
    ]
    assert aucs and 0.5 <= sum(aucs) / len(aucs) <= 1.0
    mem = res["memorizer"]
    assert [int(t) for t in mem["T"]] == [5, 10, 25, 50, 100]
    for by_t in mem["accuracy"].values():
        for st in by_t.values():
            assert all(0.0 <= v <= 1.0 for v in st["values"])
    for st in res["regularisation"]["settings"].values():
        for k in ("train", "valid", "test"):
            assert all(0.0 <= v <= 1.0 for v in st[k]["values"])
    grads = res["gradients"]["tasks"]
    for task in ("generate", "gender"):
        assert grads[task]["cells"]["lstm"]["batch1_vs_batched_max_abs_diff"] < 1e-5
        for e in grads[task]["cells"].values():
            assert len(e["initial"]["mean_per_position"]) >= grads[task]["length"]
    for probs in res["reading"]["probabilities"].values():
        for col in zip(*probs):
            assert abs(sum(col) - 1) < 1e-4
    gen = res["generation"]["files"]
    assert set(gen) == {"elements", "lines"}
    assert all(len(v) == 10 for f in gen.values() for v in f["samples"].values())


def test_single_part_subcommand(study, tmp_path):
    _, _, _, data = study
    rc = main(["study", "perplexity", "--tiny", "--quiet", "--data", str(data), "--out", str(tmp_path)])
    assert rc == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["parts"] == ["perplexity"] and "perplexity" in res
    assert (tmp_path / "report.html").exists() and (tmp_path / "perplexity_baselines.png").exists()


def test_usage_errors(tmp_path, capsys):
    assert main(["study", "--tiny", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert "error" in capsys.readouterr().err
    assert main(["study", "--tiny", "--data", str(tmp_path)]) == 2
