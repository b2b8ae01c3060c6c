"""Calibration against independent references: torch's log_softmax, a brute-force search for the
temperature, and ECE computed by hand on a small example."""

import numpy as np
import pytest
import torch

from namemodels.inference.calibration import (
    calibration_bins,
    choose_temperature,
    expected_calibration_error,
    fit_temperature,
    log_loss,
    temper,
    temper_row,
)


def test_temper_is_log_softmax_of_scaled_logits():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, 5)).astype(np.float32) * 3
    logp = torch.log_softmax(torch.from_numpy(logits), -1).numpy()
    for t in (0.5, 1.0, 2.5):
        want = torch.log_softmax(torch.from_numpy(logits.astype(np.float64)) / t, -1).numpy()
        np.testing.assert_allclose(temper(logp, t), want, atol=2e-6)
        assert (temper(logp, t).argmax(1) == logits.argmax(1)).all()
    with pytest.raises(ValueError):
        temper(logp, 0.0)


def test_temper_row_is_log_softmax_of_one_scaled_row():
    """The single-name path's Python arithmetic against torch's float64 log_softmax, row by row."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(20, 18)) * 4
    logp = torch.log_softmax(torch.from_numpy(logits), -1).numpy()
    for t in (0.3, 1.299, 4.0):
        want = torch.log_softmax(torch.from_numpy(logits) / t, -1).numpy()
        for row, expected in zip(logp, want):
            np.testing.assert_allclose(temper_row(row.tolist(), t), expected, rtol=0, atol=1e-12)


def test_fit_temperature_finds_the_minimum_of_the_loss():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(4000, 3)) * 4
    truth = torch.softmax(torch.from_numpy(logits) / 2.0, -1).numpy()  # the data is softer: T = 2
    labels = np.array([rng.choice(3, p=p) for p in truth])
    counts = np.eye(3)[labels] * rng.integers(1, 5, size=(4000, 1))
    logp = torch.log_softmax(torch.from_numpy(logits), -1).numpy()
    t = fit_temperature(logp, counts)
    grid = np.linspace(0.5, 5, 4501)
    brute = grid[np.argmin([log_loss(temper(logp, g), counts) for g in grid])]
    assert abs(t - brute) < 2e-3
    assert 1.7 < t < 2.3
    kept, report = choose_temperature(logp, counts)
    assert report["kept"] and kept == pytest.approx(t)
    assert report["ece_after"] < report["ece_before"] and report["log_loss_after"] < report["log_loss_before"]


def test_choose_temperature_keeps_one_for_a_calibrated_model():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(3000, 2)) * 2
    p = torch.softmax(torch.from_numpy(logits), -1).numpy()
    labels = (rng.random(3000) < p[:, 1]).astype(int)
    logp = np.log(p)
    t, report = choose_temperature(logp, np.eye(2)[labels])
    assert 0.85 < report["fitted"] < 1.15
    assert report["ece_before"] < 0.04


def test_ece_by_hand():
    # three items: confidences 0.9 (right), 0.8 (wrong), 0.6 with soft counts 3 right, 1 wrong
    logp = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    counts = np.array([[2.0, 0.0], [2.0, 0.0], [3.0, 1.0]])
    # 15 bins: 0.9 -> bin 13, 0.8 -> bin 12, 0.6 -> bin 9; weights 2, 2, 4 of 8
    want = (2 * abs(1 - 0.9) + 2 * abs(0 - 0.8) + 4 * abs(0.75 - 0.6)) / 8
    assert expected_calibration_error(logp, counts) == pytest.approx(want)
    bins = calibration_bins(logp, counts)
    assert [round(b["weight"], 6) for b in bins] == [0.5, 0.25, 0.25]
    assert sum(b["weight"] for b in bins) == pytest.approx(1.0)
    assert log_loss(logp, counts) == pytest.approx(
        -(2 * np.log(0.9) + 2 * np.log(0.2) + 3 * np.log(0.6) + np.log(0.4)) / 8
    )
