"""Simulated logs whose true policy values are known."""

from __future__ import annotations

import numpy as np

from croupier.router.allocation import allocate
from croupier.router.ope import LoggedData
from croupier.router.policies import ArmStats, Policy, sample_arms

ARMS = ("a", "b", "c")
RATES = np.array([0.04, 0.09, 0.05])


def random_logging(seed: int, n: int = 3000, rates: np.ndarray = RATES) -> LoggedData:
    """A logging policy that changes every row: a Dirichlet split, every arm at least 10%."""
    rng = np.random.default_rng(seed)
    k = len(rates)
    probs = 0.1 + (1.0 - 0.1 * k) * rng.dirichlet(np.ones(k), size=n)
    actions = sample_arms(probs, rng)
    rewards = (rng.random(n) < rates[actions]).astype(np.float64)
    return LoggedData.from_arrays(ARMS[:k], actions, rewards, probs)


def bandit_logging(seed: int, policy: Policy, n: int = 3000, batch: int = 200, min_share: float = 0.05,
                   rates: np.ndarray = RATES, holdout: float = 0.0) -> LoggedData:
    """An adaptive log as the router writes it: the policy's split recomputed every ``batch``
    visitors from what it saw, with a floor and an optional uniform holdout (logged as the mixture)."""
    rng = np.random.default_rng(seed)
    k = len(rates)
    trials, successes = np.zeros(k), np.zeros(k)
    actions, rewards, probs, uniform = [], [], [], []
    for _ in range(0, n, batch):
        split = allocate(policy, ArmStats.from_counts(trials, successes), rng, min_share=min_share)
        held = rng.random(batch) < holdout
        a = np.where(held, rng.integers(0, k, batch), sample_arms(np.broadcast_to(split, (batch, k)), rng))
        r = (rng.random(batch) < rates[a]).astype(np.float64)
        np.add.at(trials, a, 1.0)
        np.add.at(successes, a, r)
        actions.append(a)
        rewards.append(r)
        probs.append(np.broadcast_to((1.0 - holdout) * split + holdout / k, (batch, k)))
        uniform.append(held)
    return LoggedData.from_arrays(ARMS[:k], np.concatenate(actions), np.concatenate(rewards),
                                  np.concatenate(probs), np.concatenate(uniform))
