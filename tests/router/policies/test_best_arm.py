"""Thompson sampling's probabilities by quadrature: the stated error, against the closed form,
a finer rule and a large Monte Carlo estimate; the properties every split must have."""

import math

import numpy as np
import pytest

from croupier.router.policies import ArmStats, ThompsonSampling, best_arm, thompson_probabilities
from croupier.router.policies.nonstationary import DiscountedThompson

STATED = 1e-8  # the module docstring's bound for alpha, beta in [0.1, 1e7]
MC_DRAWS = 2_000_000


def two_arm_closed_form(a1, b1, a2, b2) -> float:
    """P(theta_2 > theta_1) for integer a2 (Miller 2015, "Formulas for Bayesian A/B Testing")."""
    log_b1 = math.lgamma(a1) + math.lgamma(b1) - math.lgamma(a1 + b1)
    total = 0.0
    for i in range(int(a2)):
        total += math.exp(math.lgamma(a1 + i) + math.lgamma(b1 + b2) - math.lgamma(a1 + b1 + b2 + i)
                          - math.log(b2 + i) - (math.lgamma(1 + i) + math.lgamma(b2) - math.lgamma(1 + i + b2))
                          - log_b1)
    return total


def monte_carlo(alpha, beta, draws=MC_DRAWS, seed=0, chunk=200_000):
    rng = np.random.default_rng(seed)
    alpha, beta = np.asarray(alpha, float), np.asarray(beta, float)
    wins = np.zeros(alpha.shape[-1])
    for _ in range(draws // chunk):
        wins += np.bincount(np.argmax(rng.beta(alpha, beta, size=(chunk, alpha.size)), axis=1),
                            minlength=alpha.size)
    return wins / draws


def counts(trials, successes, prior=1.0):
    t, s = np.asarray(trials, float), np.asarray(successes, float)
    return prior + s, prior + t - s


CASES = {
    "two arms": counts([1000, 1000], [50, 60]),
    "three arms": counts([1000, 1200, 900], [50, 70, 40]),
    "ten arms": counts([500] * 10, [50, 55, 45, 60, 52, 48, 58, 50, 49, 61]),
    "fifty arms": counts(np.full(50, 2000), np.arange(50) + 80),
    "flat priors": counts([0, 0, 0], [0, 0, 0]),
    "very unequal evidence": counts([10, 100_000, 1000], [1, 5000, 60]),
    "narrow posteriors, 100k trials": counts([100_000] * 3, [5000, 5050, 4980]),
    "a zero-trials arm beside a data-rich one": counts([0, 100_000], [0, 5000]),
    "Jeffreys prior, small counts": counts([3, 0, 7], [1, 0, 2], prior=0.5),
}


@pytest.mark.parametrize("alpha, beta", CASES.values(), ids=CASES.keys())
def test_agrees_with_two_million_monte_carlo_draws(alpha, beta):
    exact = thompson_probabilities(alpha, beta)
    estimate = monte_carlo(alpha, beta)
    se = np.sqrt(np.maximum(exact * (1 - exact), 1e-12) / MC_DRAWS)
    # five standard errors per arm (plus rounding): false alarms about once in a million arms
    assert np.all(np.abs(exact - estimate) <= 5 * se + 1e-6), (exact, estimate)


@pytest.mark.parametrize("a1, b1, a2, b2", [
    (1, 1, 5001, 95001), (5001, 95001, 5101, 95001), (1, 101, 1, 1), (0.5, 0.5, 3, 2), (3, 10, 1, 1),
    (51, 951, 60, 951), (2, 1, 1, 2), (1, 1, 100_001, 1), (0.1, 0.3, 2, 7),
])
def test_two_arms_match_the_closed_form(a1, b1, a2, b2):
    p = thompson_probabilities([a1, a2], [b1, b2])
    assert p[1] == pytest.approx(two_arm_closed_form(a1, b1, a2, b2), abs=STATED)


def test_two_close_arms_beside_a_far_one_with_the_most_evidence():
    """The log-densities share a softplus centred on the arm with the most evidence (here a rate near
    1e-8 from ten million trials); two arms near 0.5 far from it still split as the closed form says."""
    p = thompson_probabilities([0.1, 701, 731], [1e7, 701, 671])
    assert p[0] == pytest.approx(0.0, abs=STATED)
    assert p[2] == pytest.approx(two_arm_closed_form(701, 701, 731, 671), abs=STATED)


def test_shared_log_densities_agree_with_each_arms_own_form():
    """Where an arm's density is above e^-30 of its peak, the shared form is within its stated rounding."""
    rng = np.random.default_rng(11)
    e, k = 400, 4
    trials = np.floor(10 ** rng.uniform(0, 7, (e, k)))
    rate = 10 ** rng.uniform(-3, -0.01, (e, 1)) * rng.uniform(0.8, 1.2, (e, k))
    successes = rng.binomial(trials.astype(np.int64), np.clip(rate, 0, 1))
    a, b = 10 ** rng.uniform(-1, 0.5, (e, 1)) + successes, 10 ** rng.uniform(-1, 0.5, (e, 1)) + trials - successes
    mode, cut, breaks = best_arm._breakpoints(a, b, best_arm.GRADES)
    t = best_arm._legendre_rule(best_arm.NODES)[0]
    half = (breaks[:, 1:] - breaks[:, :-1]) / 2.0
    y = (breaks[:, None, :-1] + half[:, None]) + half[:, None] * t[:, None]
    own = best_arm._log_density(y[:, None] - mode[..., None, None], a[..., None, None], b[..., None, None])
    shared = best_arm._log_densities(y, a, b, mode, cut, np.empty(own.shape))
    bound = 3 * np.finfo(float).eps * best_arm.SHARED_REACH
    assert np.max(np.where(own > -best_arm.TAIL, np.abs(shared - own), 0.0)) <= bound


@pytest.mark.parametrize("k", [2, 3, 10])
def test_stated_error_against_a_finer_rule(k):
    """Random experiments: counts up to 1e7 trials, rates 0.001-0.8, priors 0.1-3, a fifth of arms unplayed."""
    rng = np.random.default_rng(k)
    e = 300
    trials = np.where(rng.random((e, k)) < 0.2, 0, np.floor(10 ** rng.uniform(0, 7, (e, k))))
    rate = 10 ** rng.uniform(-3, -0.1, (e, 1)) * rng.uniform(0.9, 1.1, (e, k))
    successes = rng.binomial(trials.astype(np.int64), np.clip(rate, 0, 1))
    alpha = 10 ** rng.uniform(-1, 0.5, (e, 1)) + successes
    beta = 10 ** rng.uniform(-1, 0.5, (e, 1)) + trials - successes
    reference = thompson_probabilities(alpha, beta, nodes=48, grades=10)
    np.testing.assert_allclose(thompson_probabilities(alpha, beta), reference, rtol=0, atol=STATED)


def test_very_large_counts():
    alpha, beta = np.array([1e6 + 1, 1e6 + 1001]), np.array([1e7, 1e7])
    p = thompson_probabilities(alpha, beta)
    reference = thompson_probabilities(alpha, beta, nodes=48, grades=10)
    np.testing.assert_allclose(p, reference, atol=STATED)
    # normal approximation of the difference: z = gap / sd
    mean = alpha / (alpha + beta)
    var = alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1))
    z = (mean[1] - mean[0]) / math.sqrt(var.sum())
    assert p[1] == pytest.approx(0.5 * math.erfc(-z / math.sqrt(2)), abs=1e-4)


def test_sums_to_one_non_negative_and_deterministic():
    rng = np.random.default_rng(5)
    alpha = 1 + rng.integers(0, 300, (4, 6, 5))
    beta = 1 + rng.integers(0, 3000, (4, 6, 5))
    p = thompson_probabilities(alpha, beta)
    assert p.shape == (4, 6, 5)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(p, thompson_probabilities(alpha, beta))


def test_batch_equals_one_experiment_at_a_time():
    rng = np.random.default_rng(6)
    alpha, beta = 1 + rng.integers(0, 100, (20, 3)), 1 + rng.integers(0, 2000, (20, 3))
    batch = thompson_probabilities(alpha, beta)
    for row in range(20):
        np.testing.assert_allclose(batch[row], thompson_probabilities(alpha[row], beta[row]), atol=1e-15)


@pytest.mark.parametrize("k, a, b", [(2, 1, 1), (3, 51, 951), (10, 5001, 95001), (50, 7, 3)])
def test_equal_arms_get_equal_shares(k, a, b):
    np.testing.assert_allclose(thompson_probabilities(np.full(k, a), np.full(k, b)), 1 / k, atol=1e-12)


def test_one_arm_and_empty_batches():
    np.testing.assert_array_equal(thompson_probabilities([3.0], [4.0]), [1.0])
    assert thompson_probabilities(np.ones((0, 3)), np.ones((0, 3))).shape == (0, 3)


@pytest.mark.parametrize("alpha, beta, field", [
    ([1.0, 0.0], [1.0, 1.0], "alpha"), ([1.0, 1.0], [1.0, -2.0], "beta"),
    ([1.0, np.nan], [1.0, 1.0], "alpha"), ([1.0, 1.0], [np.inf, 1.0], "beta"), (1.0, 1.0, "alpha"),
])
def test_invalid_parameters_name_the_field(alpha, beta, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        thompson_probabilities(alpha, beta)


def test_policies_use_it_and_keep_the_monte_carlo_estimate():
    arms = ArmStats.from_counts([1000, 1200, 900], [50, 70, 40])
    policy = ThompsonSampling(draws=200_000)
    exact = policy.probabilities(arms, np.random.default_rng(0))
    np.testing.assert_array_equal(exact, thompson_probabilities(arms.alpha, arms.beta))
    np.testing.assert_allclose(policy.monte_carlo_probabilities(arms, np.random.default_rng(0)), exact, atol=5e-3)
    # fractional (discounted) counts are still a Beta posterior
    discounted = DiscountedThompson().history_stats([[400, 500, 450], [1000, 1200, 900]], [[30, 20, 25], [50, 70, 40]],
                                                   bucket_seconds=3600.0)
    np.testing.assert_array_equal(DiscountedThompson().probabilities(discounted, None),
                                  thompson_probabilities(discounted.alpha, discounted.beta))
