import math

import numpy as np
import pytest

from croupier.router.sequential import (Interval, always_valid_p_value, arm_moments, difference_sequence,
                                        rho_for)

LOOKS = np.arange(20, 3001, 10)  # a look every 10 observations per arm: 299 looks per run


def _cumulative(x: np.ndarray) -> np.ndarray:
    return np.cumsum(x, axis=1)[:, LOOKS - 1]


@pytest.mark.parametrize("control, variant", [(0.4, 0.45), (0.02, 0.03), (0.5, 0.5)])
def test_proportions_hold_the_truth_at_every_look(control, variant):
    rng = np.random.default_rng(1)
    runs, n = 1000, LOOKS[-1]
    k_c = _cumulative(rng.random((runs, n)) < control)
    k_v = _cumulative(rng.random((runs, n)) < variant)
    looks = LOOKS.astype(float)
    interval = difference_sequence("proportion", (looks, k_c), (looks, k_v), 0.05)
    missed = ~interval.contains(variant - control).all(axis=1)  # a run fails if any look misses
    assert missed.mean() <= 0.05


def test_means_of_a_skewed_metric_hold_the_truth_with_unequal_arms():
    rng = np.random.default_rng(2)
    runs = 1000
    control = rng.lognormal(3.0, 1.0, (runs, 2 * LOOKS[-1]))
    variant = rng.lognormal(3.0, 1.0, (runs, LOOKS[-1])) + 5.0
    both = 2 * LOOKS
    c = (both.astype(float), np.cumsum(control, 1)[:, both - 1], np.cumsum(control ** 2, 1)[:, both - 1])
    v = (LOOKS.astype(float), _cumulative(variant), _cumulative(variant ** 2))
    interval = difference_sequence("mean", c, v, 0.05)
    assert (~interval.contains(5.0).all(axis=1)).mean() <= 0.05


def test_an_adaptive_split_keeps_the_coverage():
    """A greedy split that favours whichever arm looks better: the looks are at random sample sizes."""
    rng = np.random.default_rng(3)
    runs, steps, batch, rate = 1000, 300, 20, 0.3
    n, k = np.ones((runs, 2)), np.zeros((runs, 2))
    missed = np.zeros(runs, dtype=bool)
    for _ in range(steps):
        leader = (k[:, 1] / n[:, 1] > k[:, 0] / n[:, 0]).astype(int)
        to_leader = rng.binomial(batch, 0.9)
        counts = np.where(leader[:, None] == np.arange(2), to_leader, batch - to_leader)
        n += counts
        k += rng.binomial(counts, rate)
        if n.min() >= 20:
            interval = difference_sequence("proportion", (n[:, 0], k[:, 0]), (n[:, 1], k[:, 1]), 0.05)
            missed |= ~interval.contains(0.0)
    assert missed.mean() <= 0.05


def test_it_narrows_with_n():
    n = np.array([100.0, 1000.0, 10_000.0, 100_000.0])
    interval = difference_sequence("proportion", (n, 0.04 * n), (n, 0.05 * n), 0.05)
    width = interval.high - interval.low
    assert np.all(np.diff(width) < 0)
    # about 1 / sqrt(n), up to the sequence's log factor
    assert width[-1] < width[0] / 25
    fixed = 2 * 1.96 * math.sqrt((0.04 * 0.96 + 0.05 * 0.95) / 1000)
    assert fixed < width[1] < 2.5 * fixed  # the price of looking at every refresh: within 2.5x


def test_rho_for_gives_the_narrowest_sequence_at_n_opt():
    n = 5000.0

    def width(rho):
        return difference_sequence("proportion", (n, 0.3 * n), (n, 0.3 * n), 0.05, rho=rho).high

    best = rho_for(n, 0.05)
    assert width(best) <= min(width(best * 0.8), width(best * 1.25))
    assert rho_for(2 * n, 0.05) == pytest.approx(2 * best)
    with pytest.raises(ValueError, match="n_opt"):
        rho_for(0.0)


def test_relative_contrast_is_variant_minus_ratio_times_control():
    control, variant = (2000.0, 400.0), (2000.0, 500.0)
    interval = difference_sequence("proportion", control, variant, 0.05, ratio=1.1)
    assert interval.estimate == pytest.approx(0.25 - 1.1 * 0.2)
    plain = difference_sequence("proportion", control, variant, 0.05)
    # the control's spread weighs ratio^2: a little wider than the plain difference
    assert interval.high - interval.low > plain.high - plain.low


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_p_value_agrees_with_the_interval(alternative):
    rng = np.random.default_rng(4)
    n = rng.integers(50, 5000, size=(2, 400)).astype(float)
    k = rng.binomial(n.astype(int), rng.uniform(0.1, 0.6, size=(2, 400)))
    null = rng.uniform(-0.1, 0.1, size=400)
    interval = difference_sequence("proportion", (n[0], k[0]), (n[1], k[1]), 0.05)
    p = always_valid_p_value("proportion", (n[0], k[0]), (n[1], k[1]), null=null, alternative=alternative)
    excluded = {"greater": interval.low > null, "less": interval.high < null,
                "two-sided": ~interval.contains(null)}[alternative]
    np.testing.assert_array_equal(p < 0.05, excluded)
    assert np.all((0 <= p) & (p <= 1))


def test_an_empty_arm_says_nothing():
    interval = difference_sequence("proportion", (0, 0), (100, 10), 0.05)
    assert math.isnan(interval.estimate) and interval.low == -np.inf and interval.high == np.inf
    assert always_valid_p_value("proportion", (0, 0), (100, 10)) == 1.0
    one = difference_sequence("mean", (1, 5.0, 25.0), (100, 500.0, 2600.0), 0.05)
    assert one.low == -np.inf  # a single value has no variance yet


def test_a_proportion_without_successes_is_not_certain():
    n, mean, var = arm_moments("proportion", (300, 0))
    assert mean == 0.0 and var > 0.0


def test_vectorised_equals_one_at_a_time():
    n = np.array([300.0, 900.0, 4000.0])
    k_c, k_v = np.array([30.0, 100.0, 400.0]), np.array([45.0, 80.0, 480.0])
    batch = difference_sequence("proportion", (n, k_c), (n[::-1], k_v), 0.1)
    for i in range(3):
        one = difference_sequence("proportion", (n[i], k_c[i]), (n[::-1][i], k_v[i]), 0.1)
        for field in ("estimate", "low", "high"):
            assert getattr(one, field) == pytest.approx(getattr(batch, field)[i])
    assert isinstance(batch, Interval)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="kind"):
        difference_sequence("median", (1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"mean statistics: must be \(n, sum, sum_of_squares\)"):
        difference_sequence("mean", (10, 1), (10, 1))
    with pytest.raises(ValueError, match="alpha"):
        difference_sequence("proportion", (10, 1), (10, 1), 1.5)
    with pytest.raises(ValueError, match="rho"):
        difference_sequence("proportion", (10, 1), (10, 1), rho=0.0)
    with pytest.raises(ValueError, match="alternative"):
        always_valid_p_value("proportion", (10, 1), (10, 1), alternative="bigger")
