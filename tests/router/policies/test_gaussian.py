import numpy as np

from croupier.router.policies import ArmStats, GaussianThompson


def test_posterior_matches_conjugate_update():
    values = np.array([3.0, 0.0, 0.0, 5.0, 0.0, 2.0])
    arms = ArmStats.from_counts([len(values)], [3], value_sum=[values.sum()], value_sq_sum=[(values ** 2).sum()])
    policy = GaussianThompson(prior_mean=1.0, prior_count=2.0, prior_shape=3.0, prior_scale=4.0)
    draws = policy.posterior_draws(arms, np.random.default_rng(0), size=400_000)[:, 0]
    n, mean = len(values), values.mean()
    k = 2.0 + n
    m = (2.0 * 1.0 + n * mean) / k
    a = 3.0 + n / 2
    b = 4.0 + ((values - mean) ** 2).sum() / 2 + 2.0 * n * (mean - 1.0) ** 2 / (2 * k)
    # Student-t with 2a degrees of freedom, scale sqrt(b / (a k)): variance scale^2 * 2a / (2a - 2)
    assert abs(draws.mean() - m) < 0.01
    assert abs(draws.var() - b / (a * k) * (2 * a) / (2 * a - 2)) < 0.01


def test_without_values_conversions_count_one():
    arms = ArmStats.from_counts([1000, 1000], [50, 80])
    probs = GaussianThompson().probabilities(arms, np.random.default_rng(1))
    assert probs[1] > 0.95


def test_revenue_beats_rate():
    """Fewer conversions but larger orders: the value goal prefers arm 1."""
    arms = ArmStats.from_counts([2000, 2000], [100, 60], value_sum=[100 * 20.0, 60 * 60.0],
                                value_sq_sum=[100 * 400.0, 60 * 3600.0])
    assert GaussianThompson().probabilities(arms, np.random.default_rng(2))[1] > 0.9
