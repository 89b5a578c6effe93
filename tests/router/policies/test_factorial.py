"""The factorial policy: the Laplace fit, the pool's probabilities, the search and the per-level floor."""

import itertools

import numpy as np
import pytest

from croupier.router.policies import POLICIES, ArmStats, PolicyError, make_policy, thompson_probabilities
from croupier.router.policies.factorial import (Design, FactorialState, FactorialThompson, laplace_fit, level_floor,
                                               level_sums, logistic, winning_combinations)


def full(*n_levels: int) -> np.ndarray:
    return np.array(list(itertools.product(*(range(n) for n in n_levels))))


def truth(design: Design, seed: int, scale: float = 0.3, base: float = -3.2) -> np.ndarray:
    """Coefficients of a known model on ``design``'s columns."""
    beta = np.random.default_rng(seed).normal(0.0, scale, len(design.columns))
    beta[0] = base
    return beta


def test_columns_of_four_factors_of_four_levels():
    levels = full(4, 4, 4, 4)
    assert len(Design.build(levels, (4, 4, 4, 4)).columns) == 1 + 12 + 6 * 9
    assert len(Design.build(levels, (4, 4, 4, 4), "none").columns) == 1 + 12
    design = Design.build(levels, (4, 4, 4, 4))
    # every combination's score is the sum of its active columns, which the dense matrix spells out
    ext = np.append(np.arange(len(design.columns), dtype=float), 0.0)
    np.testing.assert_array_equal(ext[design.active].sum(axis=1), design.matrix @ np.arange(len(design.columns)))


def test_a_pair_of_levels_no_allowed_combination_holds_has_no_column():
    levels = full(3, 3)
    allowed = levels[~((levels[:, 0] == 2) & (levels[:, 1] == 1))]
    columns = Design.build(allowed, (3, 3)).columns
    assert (0, 2, 1, 1) not in columns and (0, 2, 1, 2) in columns
    assert len(columns) == 1 + 4 + 3


@pytest.mark.parametrize("levels, n_levels, field", [
    (full(2, 2), (2,), "levels:"),
    (full(2, 2), (2, 1), "n_levels:"),
    (full(2, 3), (2, 2), "levels:"),
    (np.vstack([full(2, 2), [[0, 0]]]), (2, 2), "levels:"),
    (full(2, 2).astype(float), (2, 2), "levels:"),
    (full(2, 2), "ab", "n_levels:"),
    (np.zeros((2, 64), dtype=int) + np.array([[0], [1]]), (2,) * 64, "n_levels:"),
])
def test_a_bad_design_names_the_field(levels, n_levels, field):
    with pytest.raises(ValueError) as err:
        Design.build(levels, n_levels)
    assert str(err.value).startswith(field)


def test_no_data_gives_the_prior():
    policy = FactorialThompson(prior_scale=0.7, base_rate=0.03)
    levels = full(3, 4)
    post = policy.posterior(levels, (3, 4), np.zeros(12), np.zeros(12))
    mean, sd = post.design.prior(0.03, 0.7)
    np.testing.assert_allclose(post.mean, mean)
    np.testing.assert_allclose(post.cov, np.diag(sd ** 2), atol=1e-15)
    assert mean[0] == pytest.approx(np.log(0.03 / 0.97))
    assert sd[0] == 2.0 and sd[1] == 0.7 and sd[-1] == 0.35  # interactions: half the main effects' sd
    assert post.iterations == 0


def test_large_samples_recover_the_true_logits():
    """2 x 3 with pairwise interactions is saturated: with a million visitors per combination and
    expected counts, the mode is the maximum likelihood estimate, i.e. the truth, within the prior's pull."""
    levels = full(2, 3)
    design = Design.build(levels, (2, 3))
    beta = truth(design, 0)
    n = np.full(6, 1e6)
    post = FactorialThompson().posterior(levels, (2, 3), n, n * logistic(design.matrix @ beta))
    np.testing.assert_allclose(post.mean, beta, atol=2e-3)
    # the covariance is the inverse of the binomial counts' Fisher information plus the prior precision
    p = logistic(design.matrix @ beta)
    fisher = design.matrix.T @ (design.matrix * (n * p * (1 - p))[:, None])
    _, sd = design.prior(0.05, FactorialThompson().prior_scale)
    np.testing.assert_allclose(post.cov, np.linalg.inv(fisher + np.diag(sd ** -2.0)), rtol=2e-3)


def test_mode_and_curvature_match_a_fine_grid():
    """One factor of two levels and few visitors, so the prior matters: the mode found on a fine
    grid of the log-posterior, and its curvature by finite differences."""
    levels = np.array([[0], [1]])
    trials, successes = np.array([40.0, 25.0]), np.array([3.0, 6.0])
    policy = FactorialThompson(prior_scale=0.8, base_rate=0.1)
    post = policy.posterior(levels, (2,), trials, successes)
    mu, sd = post.design.prior(0.1, 0.8)

    def log_post(b0, b1):
        likelihood = sum(s * eta - n * np.logaddexp(0, eta) for n, s, eta in zip(trials, successes, (b0, b0 + b1)))
        return likelihood - 0.5 * ((b0 - mu[0]) / sd[0]) ** 2 - 0.5 * ((b1 - mu[1]) / sd[1]) ** 2

    grid0 = np.linspace(post.mean[0] - 0.3, post.mean[0] + 0.3, 601)
    grid1 = np.linspace(post.mean[1] - 0.3, post.mean[1] + 0.3, 601)
    values = log_post(grid0[:, None], grid1[None, :])
    i, j = np.unravel_index(np.argmax(values), values.shape)
    assert abs(grid0[i] - post.mean[0]) <= 1e-3 and abs(grid1[j] - post.mean[1]) <= 1e-3
    h = 1e-4
    b0, b1 = post.mean
    hessian = np.array([
        [log_post(b0 + h, b1) - 2 * log_post(b0, b1) + log_post(b0 - h, b1),
         (log_post(b0 + h, b1 + h) - log_post(b0 + h, b1 - h) - log_post(b0 - h, b1 + h)
          + log_post(b0 - h, b1 - h)) / 4],
        [0.0, log_post(b0, b1 + h) - 2 * log_post(b0, b1) + log_post(b0, b1 - h)]]) / h ** 2
    hessian[1, 0] = hessian[0, 1]
    # the covariance is the curvature where the last Newton step started, a few hundredths of a
    # posterior sd from the mode (laplace_fit's _ONE_STEP): within 1%
    np.testing.assert_allclose(post.cov, np.linalg.inv(-hessian), rtol=1e-2)


def test_data_on_some_combinations_generalise_through_shared_levels():
    """Main effects only; visitors only on combinations with at least one control level. The
    all-treatment combination, never shown, is predicted from its levels' effects."""
    levels = full(3, 3)
    design = Design.build(levels, (3, 3), "none")
    beta = np.array([-3.0, 0.3, -0.2, 0.4, 0.2])
    shown = (levels == 0).any(axis=1)
    n = np.where(shown, 200_000.0, 0.0)
    post = FactorialThompson(interactions="none").posterior(levels, (3, 3), n,
                                                          n * logistic(design.matrix @ beta))
    unseen = np.flatnonzero(~shown)
    predicted = design.matrix[unseen] @ post.mean
    np.testing.assert_allclose(predicted, design.matrix[unseen] @ beta, atol=0.01)
    sd = np.sqrt(np.einsum("ci,ij,cj->c", design.matrix[unseen], post.cov, design.matrix[unseen]))
    assert np.all(sd < 0.05)  # the prior alone: sd above 2


def test_a_refit_from_the_previous_mode_gives_the_same_posterior_in_fewer_steps():
    levels = full(4, 4, 4)
    design = Design.build(levels, (4, 4, 4))
    rates = logistic(design.matrix @ truth(design, 1))
    rng = np.random.default_rng(1)
    n = rng.integers(100, 2000, 64).astype(float)
    s = rng.binomial(n.astype(int), rates).astype(float)
    policy = FactorialThompson()
    first = policy.posterior(levels, (4, 4, 4), n, s)
    n2 = n + rng.multinomial(100, np.full(64, 1 / 64))
    s2 = s + rng.binomial((n2 - n).astype(int), rates)
    cold = policy.posterior(levels, (4, 4, 4), n2, s2)
    warm = policy.posterior(levels, (4, 4, 4), n2, s2, previous=first)
    assert warm.design is first.design  # the design is reused, not rebuilt
    assert warm.iterations < cold.iterations
    sd = np.sqrt(np.diag(cold.cov))
    assert np.max(np.abs(warm.mean - cold.mean) / sd) < 1e-2
    np.testing.assert_allclose(warm.cov, cold.cov, rtol=1e-2, atol=1e-6)


def test_successes_above_trials_are_capped_and_bad_counts_refused():
    levels = full(2, 2)
    policy = FactorialThompson()
    capped = policy.posterior(levels, (2, 2), np.full(4, 10.0), np.array([10.0, 3, 3, 3]))
    over = policy.posterior(levels, (2, 2), np.full(4, 10.0), np.array([12.0, 3, 3, 3]))
    np.testing.assert_allclose(capped.mean, over.mean)
    with pytest.raises(ValueError, match="^trials:"):
        policy.posterior(levels, (2, 2), np.array([1.0, -1, 0, 0]), np.zeros(4))
    with pytest.raises(ValueError, match="^successes:"):
        policy.posterior(levels, (2, 2), np.zeros(4), np.zeros(3))


def test_the_router_facing_probabilities_are_the_pool_shares():
    """What the router draws from (and logs as propensities) is exactly the share of pool members
    each combination wins: the same draws, scored here by hand, give the same vector."""
    levels = full(4, 4, 4, 4)
    policy = FactorialThompson(pool=512)
    rng = np.random.default_rng(7)
    n = rng.integers(0, 300, 256).astype(float)
    s = rng.binomial(n.astype(int), 0.04).astype(float)
    state = policy.allocate(levels, (4, 4, 4, 4), n, s, np.random.default_rng(3))
    assert isinstance(state, FactorialState)
    coefficients = state.posterior.draws(np.random.default_rng(3), 512, policy.temperature)
    by_hand = np.bincount(np.argmax(coefficients @ state.posterior.design.matrix.T, axis=1), minlength=256) / 512
    np.testing.assert_array_equal(state.probs, by_hand)
    np.testing.assert_array_equal(state.shares, state.probs)  # no floor asked for
    assert state.probs.sum() == pytest.approx(1.0)
    assert state.mean is state.posterior.mean and state.columns == state.posterior.design.columns


def test_the_temperature_scales_the_pools_covariance_and_leaves_the_posterior_alone():
    levels = full(3, 3)
    rng = np.random.default_rng(4)
    n = rng.integers(100, 1000, 9).astype(float)
    s = rng.binomial(n.astype(int), 0.05).astype(float)
    tempered = FactorialThompson(temperature=0.5).allocate(levels, (3, 3), n, s, np.random.default_rng(0))
    plain = FactorialThompson(temperature=1.0).allocate(levels, (3, 3), n, s, np.random.default_rng(0))
    np.testing.assert_array_equal(tempered.mean, plain.mean)
    np.testing.assert_array_equal(tempered.cov, plain.cov)  # the rollups read the untempered posterior
    draws = plain.posterior.draws(np.random.default_rng(1), 200_000, 0.5)
    np.testing.assert_allclose(np.cov(draws.T), 0.5 * plain.cov, rtol=0.03, atol=1e-4)
    assert FactorialThompson().temperature == 0.7


def test_the_pool_concentrates_on_the_true_best_with_enough_data():
    levels = full(4, 4, 4, 4)
    design = Design.build(levels, (4, 4, 4, 4))
    beta = truth(design, 2, scale=0.25)
    rates = logistic(design.matrix @ beta)
    best = int(np.argmax(rates))
    policy = FactorialThompson()
    rng = np.random.default_rng(2)
    state = policy.allocate(levels, (4, 4, 4, 4), np.zeros(256), np.zeros(256), rng)
    assert state.probs.max() < 0.05  # no data: spread out
    n = np.full(256, 20_000.0)
    state = policy.allocate(levels, (4, 4, 4, 4), n, rng.binomial(20_000, rates).astype(float), rng,
                            previous=state)
    assert state.probs.sum() == pytest.approx(1.0)
    assert int(np.argmax(state.probs)) == best and state.probs[best] > 0.9


@pytest.mark.parametrize("interactions", ["none", "pairwise"])
def test_the_search_finds_the_exact_argmax(interactions):
    """5 factors of 4 levels, a constraint removing 64 combinations: the search's winner
    against scoring all 960 combinations, for 2,000 posterior draws."""
    levels = full(4, 4, 4, 4, 4)
    levels = levels[~((levels[:, 0] == 3) & (levels[:, 2] == 1))]
    design = Design.build(levels, (4,) * 5, interactions)
    rng = np.random.default_rng(5)
    rates = logistic(design.matrix @ truth(design, 5, scale=0.3))
    n = rng.integers(50, 500, len(levels)).astype(float)
    post = FactorialThompson(interactions=interactions).posterior(
        levels, (4,) * 5, n, rng.binomial(n.astype(int), rates).astype(float))
    coefficients = post.draws(rng, 2000)
    exact = winning_combinations(design, coefficients, rng, search_above=10 ** 6)
    searched = winning_combinations(design, coefficients, rng, search_above=100, mean=post.mean)
    np.testing.assert_array_equal(exact, np.argmax(coefficients @ design.matrix.T, axis=1))
    agree = np.mean(exact == searched)
    assert agree >= (1.0 if interactions == "none" else 0.995), agree
    # wherever they differ, the search's combination is allowed and scores no better
    scores = coefficients @ design.matrix.T
    rows = np.arange(len(coefficients))
    assert np.all(scores[rows, searched] <= scores[rows, exact])


def test_allocate_uses_the_search_past_search_above():
    levels = full(4, 4, 4, 4)
    policy = FactorialThompson(search_above=64, pool=256)
    design = Design.build(levels, (4, 4, 4, 4))
    rates = logistic(design.matrix @ truth(design, 6, scale=0.2))
    n = np.full(256, 5000.0)
    s = np.random.default_rng(6).binomial(5000, rates).astype(float)
    state = policy.allocate(levels, (4, 4, 4, 4), n, s, np.random.default_rng(1))
    exact = FactorialThompson(pool=256).allocate(levels, (4, 4, 4, 4), n, s, np.random.default_rng(1))
    assert state.probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(state.probs, exact.probs, atol=0.02)


def marginals(probs, levels, n_levels):
    return level_sums(probs, levels, n_levels)


def test_level_floor_gives_every_level_its_share_with_the_least_mixing():
    levels = full(4, 4, 4)
    levels = levels[~((levels[:, 0] == 3) & (levels[:, 1] != 0))]  # level 3 of factor 0 only with control of 1
    c = len(levels)
    probs = np.zeros(c)
    probs[5], probs[17] = 0.7, 0.3
    floored = level_floor(probs, levels, (4, 4, 4), 0.05)
    share = marginals(floored, levels, (4, 4, 4))
    assert share.min() == pytest.approx(0.05, rel=1e-9)  # the tightest level sits exactly at the floor
    assert np.all(share >= 0.05)
    np.testing.assert_allclose(floored.sum(), 1.0)
    # it is the stated mixture, and any less mixing leaves a level short
    lam = (floored[0] - probs[0]) * c
    np.testing.assert_allclose(floored, (1 - lam) * probs + lam / c)
    less = (1 - 0.99 * lam) * probs + 0.99 * lam / c
    assert marginals(less, levels, (4, 4, 4)).min() < 0.05


def test_level_floor_leaves_a_split_that_already_meets_it_and_refuses_the_impossible():
    levels = full(4, 4)
    probs = np.full(16, 1 / 16)
    np.testing.assert_array_equal(level_floor(probs, levels, (4, 4), 0.2), probs)
    np.testing.assert_array_equal(level_floor(probs, levels, (4, 4), 0.0), probs)
    np.testing.assert_allclose(marginals(level_floor(np.eye(16)[3], levels, (4, 4), 0.25), levels, (4, 4)), 0.25)
    with pytest.raises(PolicyError, match=r"^min_share: 0.3 per level is infeasible: level 0 of factor 0"):
        level_floor(probs, levels, (4, 4), 0.3)
    with pytest.raises(PolicyError, match="^min_share:"):
        level_floor(probs, levels, (4, 4), -0.1)


def test_allocate_applies_the_level_floor():
    levels = full(4, 4, 4, 4)
    n = np.full(256, 5000.0)
    design = Design.build(levels, (4, 4, 4, 4))
    s = np.random.default_rng(8).binomial(5000, logistic(design.matrix @ truth(design, 8))).astype(float)
    state = FactorialThompson().allocate(levels, (4, 4, 4, 4), n, s, np.random.default_rng(0), min_share=0.01)
    assert marginals(state.probs, levels, (4, 4, 4, 4)).min() >= 0.01 - 1e-12
    assert marginals(state.shares, levels, (4, 4, 4, 4)).min() < 0.01  # the pool alone would starve a level


def test_without_a_design_it_is_beta_thompson_sampling():
    arms = ArmStats.from_counts([100.0, 120.0, 90.0], [5.0, 9.0, 4.0])
    probs = FactorialThompson().probabilities(arms, np.random.default_rng(0))
    np.testing.assert_array_equal(probs, thompson_probabilities(arms.alpha, arms.beta))
    assert POLICIES["factorial_thompson"] is FactorialThompson


INVALID = [
    ({"interactions": "all"}, "interactions:"),
    ({"interactions": True}, "interactions:"),
    ({"prior_scale": 0}, "prior_scale:"),
    ({"prior_scale": float("nan")}, "prior_scale:"),
    ({"base_rate": 0}, "base_rate:"),
    ({"base_rate": 1.0}, "base_rate:"),
    ({"pool": 8}, "pool:"),
    ({"pool": 1024.0}, "pool:"),
    ({"search_above": 0}, "search_above:"),
    ({"search_above": 10 ** 6}, "search_above:"),
    ({"temperature": 0}, "temperature:"),
    ({"temperature": 1.5}, "temperature:"),
]


@pytest.mark.parametrize("params, field", INVALID)
def test_invalid_parameter_names_the_field(params, field):
    with pytest.raises(PolicyError) as err:
        make_policy("factorial_thompson", params)
    assert str(err.value).startswith(field)


def test_allocate_checks_min_share():
    with pytest.raises(PolicyError, match="^min_share:"):
        FactorialThompson().allocate(full(2, 2), (2, 2), np.zeros(4), np.zeros(4), np.random.default_rng(0),
                                     min_share=2.0)
