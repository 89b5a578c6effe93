"""Beta-Bernoulli Thompson sampling (the default) and its top-two variant.

Their probabilities are computed exactly by quadrature (``croupier.router.policies.best_arm``);
``monte_carlo_probabilities`` keeps the estimate from posterior draws for
subclasses whose posterior is not Beta and for comparisons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from croupier.router.policies.base import ArmStats, Policy, check_int, check_number, winner_shares
from croupier.router.policies.best_arm import thompson_probabilities


@dataclass(frozen=True)
class ThompsonSampling(Policy):
    """Play the arm whose posterior draw is largest.

    Each arm's conversion rate has posterior ``Beta(alpha0 + s, beta0 + n - s)``;
    draw ``theta_k`` from each and play ``argmax_k theta_k`` (Thompson 1933;
    Chapelle & Li 2011, "An Empirical Evaluation of Thompson Sampling"). The
    probability of each arm, ``P(theta_k is the largest) = integral f_k prod_{j != k} F_j``,
    is computed by quadrature to within 1e-8 (``best_arm.thompson_probabilities``),
    deterministically: the generator is not used.
    """

    name: ClassVar[str] = "thompson"
    draws: int = 4000  # posterior draws of monte_carlo_probabilities (non-Beta posteriors)

    def __post_init__(self) -> None:
        check_int("draws", self.draws, 100, 1_000_000)

    def posterior_draws(self, arms: ArmStats, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        """Posterior samples of every arm's rate: shape ``(size, ..., K)``, or ``(..., K)``."""
        alpha, beta = arms.alpha, arms.beta
        shape = alpha.shape if size is None else (size, *alpha.shape)
        return rng.beta(alpha, beta, size=shape)

    def select(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return np.argmax(self.posterior_draws(arms, rng), axis=-1)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return thompson_probabilities(arms.alpha, arms.beta)

    def monte_carlo_probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        """The share of ``draws`` joint posterior draws each arm wins: standard error ``sqrt(p (1 - p) / draws)``."""
        return winner_shares(self.posterior_draws(arms, rng, self.draws))


@dataclass(frozen=True)
class TopTwoThompson(ThompsonSampling):
    """Top-two Thompson sampling: play the posterior leader with probability ``beta``, else a challenger.

    The leader ``I`` is the argmax of one posterior draw; the challenger ``J`` is
    the argmax of an independent draw with ``I`` excluded (equivalently: resample
    once and, if ``I`` wins again, take the runner-up). Russo (2016), "Simple
    Bayesian Algorithms for Best-Arm Identification", resamples until another
    arm wins, which takes unboundedly many draws once the posterior has
    concentrated; the one-resample challenger is the bounded-cost variant
    discussed by Jourdan et al. (2022), "Top Two Algorithms Revisited".

    Built to identify the best arm fast, not to minimise regret: a constant
    share of traffic keeps going to challengers.

    Probabilities: with ``p`` the leader distribution and ``N[i, k]`` the chance
    that a draw ranks ``i`` first and ``k`` second,
    ``P(J = k) = p_k (1 - p_k) + sum_i p_i N[i, k]`` and
    ``P(play k) = beta p_k + (1 - beta) P(J = k)``, estimated from ``draws``
    joint posterior draws (the ``K^2`` pair integrals would cost ``K`` times the
    quadrature of plain Thompson sampling).
    """

    name: ClassVar[str] = "top_two_thompson"
    beta: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("beta", self.beta, 0.0, 1.0)

    def select(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        leader = np.argmax(self.posterior_draws(arms, rng), axis=-1)
        rerun = self.posterior_draws(arms, rng)
        np.put_along_axis(rerun, leader[..., None], -np.inf, axis=-1)
        challenger = np.argmax(rerun, axis=-1)
        return np.where(rng.random(leader.shape) < self.beta, leader, challenger)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        samples = self.posterior_draws(arms, rng, self.draws)
        k = samples.shape[-1]
        first = np.argmax(samples, axis=-1)
        np.put_along_axis(samples, first[..., None], -np.inf, axis=-1)
        second = np.argmax(samples, axis=-1)
        draws = samples.shape[0]
        cells = int(np.prod(samples.shape[1:-1], dtype=np.int64))
        flat = (first * k + second).reshape(draws, cells) + (k * k) * np.arange(cells)
        pairs = np.bincount(flat.ravel(), minlength=cells * k * k).reshape(*samples.shape[1:-1], k, k) / draws
        p = pairs.sum(axis=-1)  # the leader distribution
        challenger = p * (1.0 - p) + np.einsum("...i,...ik->...k", p, pairs)
        return self.beta * p + (1.0 - self.beta) * challenger
