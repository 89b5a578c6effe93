"""The validation figures and the gate, without servers."""

from __future__ import annotations

import numpy as np
import pytest

from croupier.router.model_validation import ValidationError, figures, judge, log_loss


def outcomes(p: np.ndarray, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(len(p)) < p).astype(float)


def test_log_loss_of_known_values():
    assert log_loss(np.array([0.5, 0.5]), np.array([1.0, 0.0])) == pytest.approx(np.log(2))
    assert log_loss(np.array([0.0]), np.array([1.0])) == pytest.approx(-np.log(1e-6))  # clipped, finite


def test_a_calibrated_model_has_small_ece_slope_one_intercept_zero():
    p = np.random.default_rng(1).uniform(0.02, 0.4, 40_000)
    f = figures(p, outcomes(p))
    assert f.ece < 0.01
    assert f.slope == pytest.approx(1.0, abs=0.1) and f.intercept == pytest.approx(0.0, abs=0.25)
    assert sum(n for _, _, n in f.reliability) == 40_000 and len(f.reliability) == 10
    assert f.ece_noise < 0.01
    for predicted, observed, _ in f.reliability:
        assert observed == pytest.approx(predicted, abs=0.03)


def test_an_overconfident_model_has_slope_below_one_and_a_larger_ece():
    truth = np.random.default_rng(2).uniform(0.05, 0.3, 40_000)
    y = outcomes(truth)
    logit = np.log(truth / (1 - truth))
    mean = logit.mean()
    overconfident = 1 / (1 + np.exp(-(mean + 3 * (logit - mean))))  # pushed away from the mean
    calibrated, bad = figures(truth, y), figures(overconfident, y)
    assert bad.slope == pytest.approx(1 / 3, abs=0.1)
    assert bad.ece > calibrated.ece + 0.02 and bad.log_loss > calibrated.log_loss


def test_figures_refuse_unusable_input():
    with pytest.raises(ValidationError, match="no rows"):
        figures([], [])
    with pytest.raises(ValidationError, match="one each per row"):
        figures([0.1, 0.2], [1])
    with pytest.raises(ValidationError, match="outcomes 0 or 1"):
        figures([0.1], [2])
    assert figures([0.1] * 5, [0] * 5).conversions == 0  # no conversion at all still has figures


def test_gate_accepts_a_better_model_and_rejects_a_worse_or_equal_one():
    rng = np.random.default_rng(3)
    truth = rng.uniform(0.02, 0.3, 5000)
    y = outcomes(truth, 4)
    good, base = figures(truth, y), figures(np.full(5000, y.mean()), y)
    verdict = judge(good, None, base)
    assert verdict.accepted and "base-rate model" in verdict.reason
    assert not judge(base, None, base).accepted  # no better than the base rate: the first model is refused
    assert not judge(good, good, base).accepted  # equal to the current: no churn
    worse = figures(np.clip(truth + rng.normal(0, 0.1, 5000), 0.001, 0.999), y)
    refused = judge(worse, good, base)
    assert not refused.accepted and "not below the current model's" in refused.reason
    assert judge(good, worse, base).accepted


def test_gate_refuses_a_lower_log_loss_with_worse_calibration():
    better_loss = figures([0.1] * 100, [0] * 90 + [1] * 10)
    worse_calibrated = better_loss.__class__(**{**better_loss.__dict__, "log_loss": better_loss.log_loss * 0.5,
                                                "ece": better_loss.ece + 0.05})
    verdict = judge(worse_calibrated, better_loss, better_loss)
    assert not verdict.accepted and "calibration error" in verdict.reason


def test_gate_needs_enough_held_out_rows():
    few = figures([0.1] * 10, [0] * 9 + [1])
    verdict = judge(few, None, figures([0.5] * 10, [0] * 9 + [1]))
    assert not verdict.accepted and "fewer than the 50" in verdict.reason
