"""namemodels.training.train: the temperature fitted on the validation part (config.json "calibration"), and a
line-by-line split whose name table counts the training lines only."""

import numpy as np
import pytest
from helpers import QUIET

from namemodels.config import TrainConfig
from namemodels.data.loader import load
from namemodels.data.run_parts import split_parts
from namemodels.inference.calibration import fit_temperature
from namemodels.training.train import train

TINY = dict(embed=8, hidden=12, batch_size=16, lr=0.02, epochs=2)


@pytest.fixture(scope="module")
def line_model(small_surnames, tmp_path_factory, single_thread):
    out = tmp_path_factory.mktemp("lines")
    cfg = TrainConfig(task="classify", split_by="lines", **TINY)
    return cfg, out, train(cfg, small_surnames, out, **QUIET)


def test_temperature_is_fitted_on_the_validation_part(line_model, small_surnames):
    import torch

    from namemodels.evaluate import classifier_logprobs
    from namemodels.inference.torch_backend import load_torch_model
    from namemodels.tokenizer import CharTokenizer

    cfg, out, config = line_model
    section = config["calibration"]
    assert section["part"] == "valid" and section["unit"] == "lines" and section["temperature"] > 0
    assert section["temperature"] == pytest.approx(section["fitted"] if section["kept"] else 1.0, rel=1e-5)
    # independently: the validation lines, one-hot per line, and the temperature that minimises their loss
    _, valid, _ = split_parts(load(small_surnames), cfg)
    model, conf, _ = load_torch_model(out)
    tok = CharTokenizer.from_dict(conf["tokenizer"])
    logp = classifier_logprobs(model, tok, valid.names)
    onehot = np.zeros_like(logp)
    onehot[np.arange(len(valid)), [conf["labels"].index(r.label) for r in valid.records]] = 1
    assert section["fitted"] == pytest.approx(fit_temperature(logp, onehot), rel=1e-3)
    z = torch.from_numpy(logp).double() / section["fitted"]
    want = torch.nn.functional.cross_entropy(z, torch.from_numpy(onehot.argmax(1))).item()
    if section["kept"]:
        assert section["log_loss_after"] == pytest.approx(want, abs=1e-4)
    assert "## Calibration" in (out / "MODEL_CARD.md").read_text()


def test_the_model_loads_with_its_calibration(line_model):
    from namemodels.inference.predictor import load as load_model

    cfg, out, config = line_model
    pred = load_model(out, backend="torch")  # the hashes recorded after the section was added
    assert pred.predict(["Rossi"], top=1)


def test_line_split_name_table_counts_the_training_lines_only(line_model, small_surnames):
    cfg, out, config = line_model
    train_part, _, test_part = split_parts(load(small_surnames), cfg)
    assert config["data"]["split"]["grouped"] is False
    assert config["name_table"]["total"] == len(train_part)


def test_no_validation_part_no_temperature(small_surnames, tmp_path, single_thread):
    config = train(TrainConfig(task="classify", train_on="all", **TINY), small_surnames, tmp_path, **QUIET)
    assert "calibration" not in config
