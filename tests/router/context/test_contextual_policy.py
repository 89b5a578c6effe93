"""Linear Thompson sampling: pure."""

from __future__ import annotations

import numpy as np
import pytest

from croupier.router.experiments import InvalidExperiment, parse_experiment
from croupier.router.policies import ArmStats, PolicyError, make_policy
from bench.context import pool_choice
from croupier.router.policies.contextual import LinearThompson, pool_shares


@pytest.mark.parametrize("params, field", [
    ({"dimensions": 16}, "dimensions"), ({"dimensions": 512}, "dimensions"), ({"dimensions": 64.0}, "dimensions"),
    ({"regularization": 0}, "regularization"), ({"regularization": "1"}, "regularization"),
    ({"exploration": -1}, "exploration"), ({"exploration": float("nan")}, "exploration"),
    ({"pool": 1}, "pool"), ({"draws": 10}, "draws"), ({"alpha": 1}, "alpha"),
])
def test_invalid_params_name_the_field(params, field):
    with pytest.raises(PolicyError, match=f"^{field}:"):
        make_policy("linear_thompson", params)


def test_an_experiment_with_bad_params_is_refused_naming_the_field():
    with pytest.raises(InvalidExperiment, match=r"^policy_params\.dimensions:"):
        parse_experiment({"id": "x", "variants": [{"id": "a", "upstream": "h:1"}], "policy": "linear_thompson",
                          "policy_params": {"dimensions": 1000}})


def learned(rates_by_feature, n=4000, d=32, seed=0):
    """Sufficient statistics of 2 arms after n uniform visitors with feature 1 or 2 (plus intercept)."""
    rng = np.random.default_rng(seed)
    gram, rewards = np.zeros((2, d, d)), np.zeros((2, d))
    for _ in range(n):
        feature = 1 + rng.integers(2)
        arm = rng.integers(2)
        x = np.zeros(d)
        x[[0, feature]] = 1
        gram[arm] += np.outer(x, x)
        rewards[arm] += x * (rng.random() < rates_by_feature[feature][arm])
    return gram, rewards


def test_the_pool_prefers_the_arm_that_converts_for_this_context():
    policy = LinearThompson(dimensions=32, exploration=0.1)
    gram, rewards = learned({1: (0.02, 0.10), 2: (0.10, 0.02)})
    pool = policy.posterior_pool(gram, rewards, np.random.default_rng(1))
    assert pool.shape == (policy.pool, 2, 32)
    assert pool_shares(pool, (0, 1))[1] > 0.9
    assert pool_shares(pool, (0, 2))[0] > 0.9
    shares = pool_shares(pool, (0, 1))
    assert shares.sum() == pytest.approx(1.0)


def test_without_data_every_arm_is_as_likely():
    policy = LinearThompson(dimensions=32)
    pool = policy.posterior_pool(np.zeros((3, 32, 32)), np.zeros((3, 32)), np.random.default_rng(0), size=6000)
    assert pool_shares(pool, (0, 3)) == pytest.approx([1 / 3] * 3, abs=0.03)


def test_batched_pool_and_vectorised_choice_agree_with_the_shares():
    policy = LinearThompson(dimensions=32, exploration=0.1, pool=64)
    gram, rewards = learned({1: (0.02, 0.10), 2: (0.10, 0.02)})
    pools = policy.posterior_pool(np.stack([gram] * 3), np.stack([rewards] * 3), np.random.default_rng(2))
    assert pools.shape == (3, 64, 2, 32)
    features = np.array([[0, 1], [0, 2]] * 50)[None].repeat(3, 0)
    arms = pool_choice(pools, features, np.ones_like(features, dtype=float),
                       np.random.default_rng(3).integers(64, size=(3, 100)))
    assert arms.shape == (3, 100)
    assert (arms[:, 0::2] == 1).mean() > 0.9 and (arms[:, 1::2] == 0).mean() > 0.9


def test_without_a_context_it_is_thompson_sampling_on_the_counts():
    arms = ArmStats.from_counts([1000, 1000], [10, 100])
    probs = LinearThompson().probabilities(arms, np.random.default_rng(0))
    assert probs[1] > 0.99
