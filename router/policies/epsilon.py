"""Epsilon-greedy, with a fixed or a decaying exploration rate. Probabilities are exact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from croupier.router.policies.base import ArmStats, Policy, argmax_probabilities, check_number


def _epsilon_greedy(arms: ArmStats, epsilon: np.ndarray | float) -> np.ndarray:
    greedy = argmax_probabilities(arms.empirical_rate)
    return epsilon / arms.n_arms + (1.0 - epsilon) * greedy


@dataclass(frozen=True)
class EpsilonGreedy(Policy):
    """With probability ``epsilon`` play a uniformly random arm, else the best empirical mean.

    ``P(k) = epsilon / K + (1 - epsilon) [k = argmax mean]``. Regret grows linearly
    (a fixed share keeps exploring); Sutton & Barto (2018), "Reinforcement
    Learning", section 2.2.
    """

    name: ClassVar[str] = "epsilon_greedy"
    epsilon: float = 0.1

    def __post_init__(self) -> None:
        check_number("epsilon", self.epsilon, 0.0, 1.0)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return _epsilon_greedy(arms, self.epsilon)


@dataclass(frozen=True)
class DecayingEpsilonGreedy(Policy):
    """Epsilon-greedy with ``epsilon_t = min(1, c K / (d^2 t))`` after ``t`` total trials.

    The epsilon_n-greedy of Auer, Cesa-Bianchi & Fischer (2002): logarithmic
    regret when ``0 < d`` is at most the gap between the best and the second-best
    rate. ``d`` is therefore the smallest lift worth detecting (absolute rate);
    a smaller ``d`` explores longer.
    """

    name: ClassVar[str] = "decaying_epsilon_greedy"
    c: float = 1.0
    d: float = 0.01

    def __post_init__(self) -> None:
        check_number("c", self.c, 0.0, 1000.0, lo_open=True)
        check_number("d", self.d, 0.0, 1.0, lo_open=True)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        t = np.maximum(arms.trials.sum(axis=-1, keepdims=True), 1.0)
        return _epsilon_greedy(arms, np.minimum(1.0, self.c * arms.n_arms / (self.d ** 2 * t)))
