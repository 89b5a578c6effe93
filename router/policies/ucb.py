"""Upper-confidence-bound index policies: UCB1 and KL-UCB.

Both are deterministic: play the arm with the largest index (ties split evenly),
so their probabilities are exact. Arms never played come first. They ignore the
Beta priors; only observed trials count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from croupier.router.policies.base import ArmStats, Policy, argmax_probabilities, check_number

_EDGE = 1e-12  # keeps rates off 0 and 1, where the Bernoulli KL is infinite


def _xlogx(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x * np.log(np.maximum(x, _EDGE)), 0.0)


def bernoulli_kl(p, q) -> np.ndarray:
    """KL(Bernoulli(p) || Bernoulli(q)) = p ln(p/q) + (1-p) ln((1-p)/(1-q))."""
    p = np.asarray(p, dtype=np.float64)
    q = np.clip(np.asarray(q, dtype=np.float64), _EDGE, 1.0 - _EDGE)
    # the sum cancels to rounding error when p == q; KL is never negative
    return np.maximum(_xlogx(p) + _xlogx(1.0 - p) - p * np.log(q) - (1.0 - p) * np.log1p(-q), 0.0)


def kl_upper_bound(p: np.ndarray, n: np.ndarray, budget: np.ndarray, iterations: int = 40) -> np.ndarray:
    """The largest q >= p with n * KL(p, q) <= budget, by Newton's method.

    Starts from Pinsker's bound ``p + sqrt(budget / 2n)``, which lies above the
    root since KL(p, q) >= 2 (q - p)^2; KL(p, .) is convex and increasing on
    [p, 1), so Newton's iterates then fall monotonically onto the root. A few
    iterations suffice except for roots within a hair of 1, which take longer.
    """
    n = np.maximum(n, 1.0)
    radius = budget / n
    neg_entropy = _xlogx(p) + _xlogx(1.0 - p)
    floor = np.maximum(p, _EDGE)
    q = np.clip(p + np.sqrt(radius / 2.0), floor, 1.0 - _EDGE)
    for _ in range(iterations):
        gap = neg_entropy - p * np.log(q) - (1.0 - p) * np.log1p(-q) - radius
        # gap < 0 only when the Pinsker start was clipped at 1: the root is 1
        if np.all(gap <= 1e-10 * radius + 1e-15):
            break
        step = gap * q * (1.0 - q) / np.maximum(q - p, _EDGE)
        q = np.clip(q - np.maximum(step, 0.0), floor, 1.0 - _EDGE)
    return q


def _total_trials(arms: ArmStats) -> np.ndarray:
    return np.maximum(arms.trials.sum(axis=-1, keepdims=True), 1.0)


@dataclass(frozen=True)
class UCB1(Policy):
    """UCB1: play ``argmax_k  mean_k + sqrt(exploration * ln t / n_k)``.

    ``t`` is the experiment's total trials, ``n_k`` the arm's. ``exploration = 2``
    is Auer, Cesa-Bianchi & Fischer (2002), "Finite-time Analysis of the
    Multiarmed Bandit Problem"; smaller values explore less.
    """

    name: ClassVar[str] = "ucb1"
    exploration: float = 2.0

    def __post_init__(self) -> None:
        check_number("exploration", self.exploration, 0.0, 100.0, lo_open=True)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        n = arms.trials
        bonus = np.sqrt(self.exploration * np.log(_total_trials(arms)) / np.maximum(n, 1.0))
        return argmax_probabilities(np.where(n > 0, arms.empirical_rate + bonus, np.inf))


@dataclass(frozen=True)
class KLUCB(Policy):
    """KL-UCB: play ``argmax_k max{q : n_k KL(mean_k, q) <= ln t + c ln ln t}``.

    Garivier & Cappé (2011), "The KL-UCB Algorithm for Bounded Stochastic
    Bandits and Beyond"; asymptotically optimal for Bernoulli rewards (it meets
    the Lai-Robbins bound). ``c = 0`` is the authors' recommendation in practice.
    """

    name: ClassVar[str] = "kl_ucb"
    c: float = 0.0

    def __post_init__(self) -> None:
        check_number("c", self.c, 0.0, 10.0)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        log_t = np.log(_total_trials(arms))
        budget = log_t + self.c * np.log(np.maximum(log_t, 1.0))
        n = arms.trials
        index = kl_upper_bound(arms.empirical_rate, n, budget)
        return argmax_probabilities(np.where(n > 0, index, np.inf))
