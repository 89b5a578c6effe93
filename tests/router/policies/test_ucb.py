import math

import numpy as np

from croupier.router.policies import KLUCB, UCB1, ArmStats, bernoulli_kl
from croupier.router.policies.ucb import kl_upper_bound


def test_bernoulli_kl_known_values():
    assert math.isclose(float(bernoulli_kl(0.4, 0.5)), 0.4 * math.log(0.8) + 0.6 * math.log(1.2))
    assert float(bernoulli_kl(0.3, 0.3)) == 0.0
    assert math.isclose(float(bernoulli_kl(0.0, 0.5)), math.log(2))


def test_kl_upper_bound_solves_the_equation():
    p = np.array([0.0, 0.05, 0.4, 0.9, 1.0])
    n = np.array([10.0, 1000.0, 50.0, 7.0, 3.0])
    budget = np.full(5, math.log(5000))
    q = kl_upper_bound(p, n, budget)
    assert np.all(q >= np.minimum(p, 1 - 1e-9))
    inside = q < 1 - 1e-9
    np.testing.assert_allclose(n[inside] * bernoulli_kl(p, q)[inside], budget[inside], rtol=1e-6)


def test_unplayed_arms_come_first_and_ties_split():
    arms = ArmStats.from_counts([10, 0, 0], [5, 0, 0])
    for policy in (UCB1(), KLUCB()):
        np.testing.assert_allclose(policy.probabilities(arms, np.random.default_rng(0)), [0, 0.5, 0.5])


def test_ucb1_index_matches_the_formula():
    arms = ArmStats.from_counts([100, 400], [50, 220])
    t = 500
    index = [0.5 + math.sqrt(2 * math.log(t) / 100), 0.55 + math.sqrt(2 * math.log(t) / 400)]
    probs = UCB1().probabilities(arms, np.random.default_rng(0))
    assert np.argmax(probs) == int(np.argmax(index))
