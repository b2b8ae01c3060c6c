"""The shipped models: complete, small, reproducible from their recorded command and data."""

import json

import numpy as np
import pytest

import namemodels
from namemodels.data.loader import data_sha256
from namemodels.inference.locate import PRETRAINED, shipped_models

EXPECTED = {"surnames": "classify", "gender": "gender", "first-names": "generate", "surnames-gen": "generate"}


def test_all_four_models_ship():
    assert set(shipped_models()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_model_card_records_how_it_was_made(name):
    d = PRETRAINED / name
    config = json.loads((d / "config.json").read_text())
    assert config["task"] == EXPECTED[name]
    assert config["command"].startswith(f"namemodels train {EXPECTED[name]} ") and "--seed" in config["command"]
    assert len(config["data"]["sha256"]) == 64 and config["data"]["split"]["grouped"]
    card = (d / "MODEL_CARD.md").read_text()
    if config["data"]["split"].get("train_on") == "all":  # trained on every line: its quality is the CV estimate
        held_out = {k: v["mean"] for k, v in config["cv"]["model"].items()}
        assert "expected quality" in card and "every line of the data" in card
    else:
        held_out = config["metrics"]["test"]
    assert held_out and all(np.isfinite(v) for v in held_out.values() if isinstance(v, float))
    assert config["command"] in card and config["data"]["sha256"] in card
    size = sum(f.stat().st_size for f in d.iterdir() if f.name in ("model.safetensors", "model.onnx"))
    assert size <= 2 * 1024 * 1024, f"{name}: weights + ONNX are {size} bytes, over 2 MB"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recorded_data_hash_matches_the_shared_data(name, shared_data):
    config = json.loads((PRETRAINED / name / "config.json").read_text())
    path = shared_data / config["data"]["path"].split("data/", 1)[1]
    assert data_sha256(path) == config["data"]["sha256"]


@pytest.mark.parametrize("name", ["surnames", "gender"])
def test_onnx_and_torch_backends_agree(name):
    names = ["Hinton", "Schmidhuber", "Nakamura", "O'Neil", "Maria", "Li"]
    onnx = namemodels.load(name, backend="onnx").predict_logproba(names)
    torch_ = namemodels.load(name, backend="torch").predict_logproba(names)
    np.testing.assert_allclose(onnx, torch_, atol=1e-4)


@pytest.mark.parametrize("name,category", [("first-names", "F"), ("surnames-gen", "Italian")])
def test_generators_sample_the_same_names_on_both_backends(name, category):
    a = namemodels.load(name, backend="onnx").generate(n=8, seed=5, category=category)
    b = namemodels.load(name, backend="torch").generate(n=8, seed=5, category=category)
    assert a == b and len(set(a)) > 1
