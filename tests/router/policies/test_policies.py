"""Properties every policy must have: probabilities that sum to 1 over any batch shape,
selections drawn from those probabilities, a floor that holds, convergence on a clear winner."""

import numpy as np
import pytest

from croupier.router.allocation import allocate
from croupier.router.policies import POLICIES, ArmStats, Policy, make_policy

NAMES = sorted(POLICIES)
# large enough that Monte Carlo noise stays below the tolerances used here
SETTINGS = {"thompson": {"draws": 20_000}, "top_two_thompson": {"draws": 20_000},
            "gaussian_thompson": {"draws": 20_000}, "discounted_thompson": {"draws": 20_000},
            "sliding_window_thompson": {"draws": 20_000}, "decaying_epsilon_greedy": {"d": 0.2}}


def policy_for(name: str) -> Policy:
    return make_policy(name, SETTINGS.get(name, {}))


def decision_stats(policy: Policy, trials, successes, prior=1.0) -> ArmStats:
    """What the router would hand the policy: lifetime totals, or one bucket of history."""
    if policy.needs_history:
        return policy.history_stats(np.asarray(trials, float)[None], np.asarray(successes, float)[None],
                                    bucket_seconds=60.0, prior_alpha=prior, prior_beta=prior)
    return ArmStats.from_counts(trials, successes, prior, prior)


@pytest.mark.parametrize("name", NAMES)
def test_probabilities_sum_to_one_with_batch_dimensions(name):
    rng = np.random.default_rng(0)
    policy = policy_for(name)
    trials = rng.integers(0, 500, size=(2, 3, 4)).astype(float)
    arms = decision_stats(policy, trials, rng.binomial(trials.astype(int), 0.2))
    probs = policy.probabilities(arms, rng)
    assert probs.shape == (2, 3, 4)
    assert np.all(probs >= 0)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-9)
    chosen = policy.select(arms, rng)
    assert chosen.shape == (2, 3)
    assert np.all((chosen >= 0) & (chosen < 4))


@pytest.mark.parametrize("name", NAMES)
def test_cold_start_is_uniform_or_close(name):
    policy = policy_for(name)
    arms = decision_stats(policy, np.zeros(3), np.zeros(3))
    probs = policy.probabilities(arms, np.random.default_rng(1))
    np.testing.assert_allclose(probs, 1 / 3, atol=0.02)


@pytest.mark.parametrize("name", NAMES)
def test_select_draws_from_probabilities(name):
    rng = np.random.default_rng(2)
    policy = policy_for(name)
    arms = decision_stats(policy, [200.0, 180.0, 220.0], [30.0, 36.0, 40.0])
    probs = policy.probabilities(arms, rng)
    many = ArmStats(*(np.broadcast_to(a, (20_000, 3)) for a in (arms.trials, arms.successes,
                                                                arms.prior_alpha, arms.prior_beta)))
    freq = np.bincount(policy.select(many, rng), minlength=3) / 20_000
    np.testing.assert_allclose(freq, probs, atol=0.02)


@pytest.mark.parametrize("name", NAMES)
def test_floor_holds_after_allocation(name):
    rng = np.random.default_rng(3)
    policy = policy_for(name)
    arms = decision_stats(policy, [5000.0, 5000.0, 5000.0, 5000.0], [50.0, 500.0, 1000.0, 1500.0])
    probs = allocate(policy, arms, rng, min_share=0.05)
    assert probs.min() >= 0.05 - 1e-12
    np.testing.assert_allclose(probs.sum(), 1.0)


@pytest.mark.parametrize("name", NAMES)
def test_converges_on_a_clear_winner(name):
    """Feedback every 100 visitors, rates 0.1 / 0.3 / 0.5: the best arm ends up with most traffic."""
    rng = np.random.default_rng(4)
    policy = policy_for(name)
    rates = np.array([0.1, 0.3, 0.5])
    trials, successes = np.zeros(3), np.zeros(3)
    for _ in range(100):
        probs = allocate(policy, decision_stats(policy, trials, successes), rng)
        counts = rng.multinomial(100, probs)
        trials += counts
        successes += rng.binomial(counts, rates)
    final = allocate(policy, decision_stats(policy, trials, successes), rng)
    assert np.argmax(final) == 2
    # top-two keeps half its traffic for challengers by design
    assert final[2] >= (0.5 if name == "top_two_thompson" else 0.85)
