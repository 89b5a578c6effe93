"""From a policy's probabilities to the traffic split an experiment actually uses.

The experiment-level controls live here, not in the policies: a burn-in (uniform
until every arm has ``burn_in`` trials), a minimum share per arm, and a holdout
that always stays on a fixed uniform split. Pure.
"""

from __future__ import annotations

import numpy as np

from router.policies import ArmStats, Policy


def apply_floor(probs: np.ndarray, min_share: float) -> np.ndarray:
    """Mix with uniform so every arm gets at least ``min_share`` (when K * min_share <= 1)."""
    k = probs.shape[-1]
    floor = min(min_share, 1.0 / k)
    return (1.0 - k * floor) * probs + floor


def allocate(policy: Policy, arms: ArmStats, rng: np.random.Generator, *,
             min_share: float = 0.0, burn_in: int = 0, holdout: float = 0.0) -> np.ndarray:
    """Selection probability of each arm, shape ``(..., K)``, summing to 1."""
    k = arms.n_arms
    uniform = np.full(arms.trials.shape, 1.0 / k)
    if k == 1:
        return uniform
    if burn_in and np.any(arms.trials < burn_in):
        probs = uniform
    else:
        probs = apply_floor(policy.probabilities(arms, rng), min_share)
    probs = (1.0 - holdout) * probs + holdout * uniform
    return probs / probs.sum(axis=-1, keepdims=True)
