"""Beta-Bernoulli Thompson sampling, the default policy.

Each arm's conversion rate has posterior Beta(alpha0 + s, beta0 + n - s); draw one
sample per arm and play the largest (Thompson 1933; Chapelle & Li 2011). The
probability of each arm is P(arm's draw is the largest), estimated by Monte Carlo.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from router.policies.base import ArmStats, Policy, PolicyError


@dataclass(frozen=True)
class ThompsonSampling(Policy):
    name: ClassVar[str] = "thompson"
    draws: int = 4000  # Monte Carlo draws for the probabilities

    def __post_init__(self) -> None:
        if not isinstance(self.draws, int) or not 100 <= self.draws <= 1_000_000:
            raise PolicyError("draws must be an integer in [100, 1000000]")

    def select(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return np.argmax(rng.beta(arms.alpha, arms.beta), axis=-1)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        samples = rng.beta(arms.alpha, arms.beta, size=(self.draws, *arms.trials.shape))
        winners = np.argmax(samples, axis=-1)
        k = arms.n_arms
        counts = np.apply_along_axis(np.bincount, 0, winners.reshape(self.draws, -1), minlength=k)
        return (counts.T.reshape(*arms.trials.shape[:-1], k) / self.draws).astype(np.float64)
