"""Linear Thompson sampling over hashed context features (a contextual bandit). Pure numpy.

Each arm ``k`` has a Bayesian linear regression of the conversion on the
visitor's features ``x`` (hashed one-hot, ``x_0 = 1`` the intercept):
``A_k = lambda I + sum x x^T`` over the arm's assignments and
``b_k = sum r x`` over its conversions. The posterior of the weights is
``theta_k ~ N(A_k^-1 b_k, v^2 A_k^-1)``; a visitor gets ``argmax_k x . theta_k``
for one posterior draw (Agrawal & Goyal 2013, "Thompson Sampling for
Contextual Bandits with Linear Payoffs"; Chapelle & Li 2011).

Delayed rewards: ``A`` grows at assignment and ``b`` at conversion, so a
visitor whose conversion has not arrived counts as a non-conversion until it
does: a small, shrinking pessimism, never a double count.

The router draws a pool of ``pool`` posterior samples per arm once per snapshot
refresh; a visitor takes one pool member at random, so the probability of every
arm for that visitor is exactly the share of pool members under which it wins.
``x`` is binary and sparse, so a score is a sum of a few weights.

Without a context (``probabilities(arms, rng)``) the policy is Beta-Bernoulli
Thompson sampling on the counts, its probabilities computed exactly
(``best_arm.thompson_probabilities``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from croupier.router.policies.base import ArmStats, Policy, check_int, check_number
from croupier.router.policies.best_arm import thompson_probabilities

MAX_DIMENSIONS = 256  # one byte per feature index in the assignment cookie


@dataclass(frozen=True)
class LinearThompson(Policy):
    """Linear Thompson sampling; ``dimensions`` features (router/context.py ``feature_indices``), ``regularization`` the prior
    precision ``lambda``, ``exploration`` the posterior scale ``v``, ``pool`` samples per refresh."""

    name: ClassVar[str] = "linear_thompson"
    needs_context: ClassVar[bool] = True
    dimensions: int = 64
    regularization: float = 1.0
    exploration: float = 0.2
    pool: int = 256
    draws: int = 4000  # no longer used (the context-free probabilities are exact); kept for stored configs

    def __post_init__(self) -> None:
        check_int("dimensions", self.dimensions, 32, MAX_DIMENSIONS)
        check_number("regularization", self.regularization, 0.0, 1e6, lo_open=True)
        check_number("exploration", self.exploration, 0.0, 100.0, lo_open=True)
        check_int("pool", self.pool, 16, 65536)
        check_int("draws", self.draws, 100, 1_000_000)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return thompson_probabilities(arms.alpha, arms.beta)

    def precision(self, gram: np.ndarray) -> np.ndarray:
        """``A = lambda I + gram``; ``gram`` (..., K, d, d) the summed ``x x^T``."""
        return gram + self.regularization * np.eye(gram.shape[-1])

    def posterior_pool(self, gram: np.ndarray, rewards: np.ndarray, rng: np.random.Generator,
                       size: int | None = None) -> np.ndarray:
        """Posterior weight samples: shape ``(..., P, K, d)`` from ``gram`` (..., K, d, d) and
        ``rewards`` ``b`` (..., K, d); ``P = size or pool``."""
        size = size or self.pool
        cov = np.linalg.inv(self.precision(gram))
        cov = 0.5 * (cov + np.swapaxes(cov, -1, -2))  # exact symmetry for the Cholesky factor
        mean = np.einsum("...ij,...j->...i", cov, rewards)
        chol = np.linalg.cholesky(cov)  # (..., K, d, d)
        batch, (k, d) = gram.shape[:-3], gram.shape[-3:-1]
        z = rng.standard_normal((*batch, size, k, d))
        noise = np.einsum("...kij,...pkj->...pki", chol, z)
        return mean[..., None, :, :] + self.exploration * noise


def pool_shares(pool: np.ndarray, features: tuple[int, ...] | np.ndarray) -> np.ndarray:
    """Each arm's probability for a visitor with ``features``: the share of pool members it wins.

    ``pool``: (P, K, d). Ties (rare with continuous draws) go to the lowest arm."""
    scores = pool[:, :, features].sum(axis=-1)  # (P, K)
    winners = np.argmax(scores, axis=-1)
    return np.bincount(winners, minlength=pool.shape[1]) / pool.shape[0]
