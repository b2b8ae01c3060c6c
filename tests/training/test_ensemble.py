"""namemodels.training.ensemble (through train --ensemble): members on one split, averaged into one model, resumable."""

import json

import numpy as np
import pytest
import torch
from helpers import FAST

from namemodels.config import TrainConfig
from namemodels.inference.predictor import load
from namemodels.training.train import train


def test_ensemble_averages_members_trained_on_one_split(surnames, tmp_path):
    """--ensemble 2: members with seeds 0 and 1 on the split of seed 0, saved as one model whose
    probabilities are the mean of the members' own (each loaded from its own directory)."""
    from namemodels.data.loader import load as load_data
    from namemodels.data.split import grouped_split

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
    assert not np.allclose(probs[0], probs[1])  # two seeds, two different models
    ensemble = load(tmp_path, calibrate=False)  # the network's own probabilities: the members' mean
    np.testing.assert_allclose(ensemble.predict_proba(names), np.mean(probs, 0), atol=1e-5)
    # the answer users get is that mean tempered by the ensemble's temperature (fitted on its validation part)
    t = config["calibration"]["temperature"]
    tempered = torch.softmax(torch.log(torch.tensor(np.mean(probs, 0), dtype=torch.float64)) / t, -1).numpy()
    np.testing.assert_allclose(load(tmp_path).predict_proba(names), tempered, atol=1e-5)
    accuracy = np.mean(np.array(ensemble.labels)[np.mean(probs, 0).argmax(1)] == [r.label for r in test.records])
    assert config["metrics"]["test"]["accuracy"] == pytest.approx(accuracy)
    assert "ensemble of 2 members" in (tmp_path / "MODEL_CARD.md").read_text()
    logs.clear()
    train(cfg, surnames, tmp_path, resume=True, progress=False, log=logs.append)  # finished members are kept
    assert any("0 to train" in m for m in logs)


def read_member(directory):
    return json.loads((directory / "config.json").read_text()), load(directory, calibrate=False)
