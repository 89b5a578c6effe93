import numpy as np
import pytest

from croupier.router.policies import DiscountedThompson, SlidingWindowThompson, ThompsonSampling, stats_from_buckets


def test_discount_weights_newest_bucket_fully():
    trials = np.array([[100.0, 100.0], [10.0, 0.0], [1.0, 2.0]])  # oldest first
    successes = trials / 2
    arms = stats_from_buckets(trials, successes, discount=0.5)
    np.testing.assert_allclose(arms.trials, [25 + 5 + 1, 25 + 0 + 2])
    np.testing.assert_allclose(arms.successes, arms.trials / 2)


def test_window_drops_old_buckets_and_keeps_batch_dimensions():
    trials = np.ones((5, 3, 2))  # (B, runs, K)
    arms = stats_from_buckets(trials, trials * 0, window=2, prior_alpha=2.0, prior_beta=3.0)
    assert arms.trials.shape == (3, 2)
    np.testing.assert_allclose(arms.trials, 2.0)
    np.testing.assert_allclose(arms.prior_alpha, 2.0)


def test_history_stats_use_seconds():
    trials = np.ones((4, 2))
    policy = DiscountedThompson(half_life=120.0)
    np.testing.assert_allclose(policy.history_stats(trials, trials, bucket_seconds=60.0).trials,
                               1 + 2 ** -0.5 + 0.5 + 2 ** -1.5)
    window = SlidingWindowThompson(window=150.0)  # three 60 s buckets
    np.testing.assert_allclose(window.history_stats(trials, trials, bucket_seconds=60.0).trials, 3.0)


@pytest.mark.parametrize("policy", [DiscountedThompson(half_life=3600.0), SlidingWindowThompson(window=3600.0)])
def test_router_hints(policy):
    assert policy.needs_history and not ThompsonSampling.needs_history
    assert 3600.0 <= policy.history_seconds <= 7 * 3600.0


def test_a_stale_loser_is_explored_again():
    """The old winner's evidence fades, so a change is noticed: its share falls as it ages."""
    rng = np.random.default_rng(0)
    trials = np.zeros((20, 2))
    successes = np.zeros((20, 2))
    trials[:2] = [5000.0, 50.0]  # long ago: arm 0 looked far better
    successes[:2] = [500.0, 2.0]
    trials[-1] = [10.0, 10.0]  # lately: a few visitors each, arm 1 better
    successes[-1] = [1.0, 3.0]
    fresh = DiscountedThompson(half_life=1e9).history_stats(trials, successes, bucket_seconds=60.0)
    faded = DiscountedThompson(half_life=120.0).history_stats(trials, successes, bucket_seconds=60.0)
    policy = ThompsonSampling()
    assert policy.probabilities(faded, rng)[1] > policy.probabilities(fresh, rng)[1] + 0.2
