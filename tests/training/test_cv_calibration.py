"""namemodels.training.cv: each fold's temperature fitted inside its training folds (the other folds'
out-of-fold predictions with --train-on all, its validation part otherwise) and the held-out
calibration before and after."""

import numpy as np
import pytest
from helpers import QUIET

import namemodels.training.cv as cv
from namemodels.config import TrainConfig
from namemodels.inference.calibration import choose_temperature, expected_calibration_error, log_loss, temper


def _preds(folds=4, seed=0, valid=False):
    """Over-confident predictions (logits x 3) of two labels, one fold at a time."""
    rng = np.random.default_rng(seed)
    out = []
    for _k in range(folds):
        part = {}
        for name in ("test",) + (("valid",) if valid else ()):
            logit = rng.normal(size=(50, 2)) * 2
            p = np.exp(logit) / np.exp(logit).sum(1, keepdims=True)
            counts = np.stack([rng.binomial(20, p[:, 0]), 0 * p[:, 0]], 1).astype(float)
            counts[:, 1] = 20 - counts[:, 0]
            z = 3 * logit
            part[f"{name}_logp"] = (z - np.log(np.exp(z).sum(1, keepdims=True))).astype(np.float32)
            part[f"{name}_counts"] = counts
        out.append(part)
    return out


def test_train_on_all_fits_fold_k_on_the_other_folds_only():
    preds = _preds()
    report = cv.cv_calibration(preds, "all", seed=0)
    for k, fold in enumerate(report["folds"]):
        others = [j for j in range(4) if j != k]
        lp = np.concatenate([preds[j]["test_logp"] for j in others])
        n = np.concatenate([preds[j]["test_counts"] for j in others])
        groups = np.concatenate([np.full(50, r) for r in range(3)])
        t, _ = choose_temperature(lp, n, seed=0, groups=groups)
        assert fold["temperature"] == pytest.approx(t)
        assert fold["kept"] and fold["temperature"] > 2  # logits x 3: a temperature near 3
        tl, tn = preds[k]["test_logp"], preds[k]["test_counts"]
        assert fold["log_loss_before"] == pytest.approx(log_loss(tl, tn))
        assert fold["log_loss_after"] == pytest.approx(log_loss(temper(tl, t), tn))
        assert fold["ece_after"] == pytest.approx(expected_calibration_error(temper(tl, t), tn))
        assert fold["log_loss_after"] < fold["log_loss_before"]
    # fold 0's own labels play no part in its temperature
    changed = [dict(p) for p in preds]
    changed[0]["test_counts"] = changed[0]["test_counts"][:, ::-1].copy()
    assert cv.cv_calibration(changed, "all")["folds"][0]["temperature"] == report["folds"][0]["temperature"]
    assert report["log_loss_after"]["mean"] < report["log_loss_before"]["mean"]
    assert len(report["temperature"]["per_fold"]) == 4 and report["all_folds"]["temperature"] > 2


def test_with_a_validation_part_it_is_fitted_there():
    preds = _preds(folds=3, valid=True)
    report = cv.cv_calibration(preds, "split", seed=0)
    for k, fold in enumerate(report["folds"]):
        t, _ = choose_temperature(preds[k]["valid_logp"], preds[k]["valid_counts"], seed=0)
        assert fold["temperature"] == pytest.approx(t) and fold["fitted_on"] == "its validation part"


def test_cv_run_reports_calibration(small_surnames, tmp_path, single_thread, capsys):
    cfg = TrainConfig(task="classify", folds=3, train_on="all", embed=8, hidden=12, batch_size=16, lr=0.02, epochs=2)
    report = cv.run_cv(cfg, small_surnames, tmp_path, workers=1, **QUIET)
    cal = report["calibration"]
    assert len(cal["folds"]) == 3 and {"mean", "sd"} <= set(cal["ece_after"])
    saved = cv.fold_predictions(cfg, small_surnames, tmp_path / "fold-1")
    assert saved["test_counts"].sum() == report["fold_sizes"][1]["test"]  # one line, one count
    # a fold finished before predictions were saved gets them on the next run: the same report
    (tmp_path / "fold-1" / cv.PREDICTIONS).unlink()
    again = cv.run_cv(cfg, small_surnames, tmp_path, workers=1, **QUIET)
    for key in ("temperature", "log_loss_before", "log_loss_after", "ece_before", "ece_after"):
        assert again["calibration"]["folds"][1][key] == pytest.approx(cal["folds"][1][key], abs=1e-6)
    assert "calibration of the model on the held-out folds" in cv.format_report(again)
