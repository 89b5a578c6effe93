"""Thompson sampling for value goals (revenue per visitor), Normal-Inverse-Gamma model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from croupier.router.policies.base import ArmStats, check_number
from croupier.router.policies.thompson import ThompsonSampling


@dataclass(frozen=True)
class GaussianThompson(ThompsonSampling):
    """Thompson sampling on each arm's mean value per visitor.

    Values per visitor are modelled as Normal with unknown mean and variance
    under a Normal-Inverse-Gamma prior ``NIG(m0, k0, a0, b0)``; after ``n``
    visitors with mean ``x`` and sum of squared deviations ``S`` the posterior is
    ``k = k0 + n``, ``m = (k0 m0 + n x) / k``, ``a = a0 + n / 2``,
    ``b = b0 + S / 2 + k0 n (x - m0)^2 / (2 k)``, and the mean's marginal is
    ``m + sqrt(b / (a k)) * StudentT(2a)`` (Murphy 2007, "Conjugate Bayesian
    analysis of the Gaussian distribution", section 6). Visitors who do not
    convert count with value 0. Without value sums, each conversion is worth 1.

    ``prior_scale / prior_shape`` is the prior guess of the per-visitor
    variance, worth ``2 prior_shape`` visitors; ``prior_count`` visitors' worth
    of belief that the mean is ``prior_mean``.

    The posteriors are Student t, not Beta: the probabilities are the Monte
    Carlo estimate from ``draws`` joint draws.
    """

    name: ClassVar[str] = "gaussian_thompson"
    prior_mean: float = 0.0
    prior_count: float = 1.0
    prior_shape: float = 1.0
    prior_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("prior_mean", self.prior_mean, -1e12, 1e12)
        check_number("prior_count", self.prior_count, 0.0, 1e9, lo_open=True)
        check_number("prior_shape", self.prior_shape, 0.0, 1e9, lo_open=True)
        check_number("prior_scale", self.prior_scale, 0.0, 1e18, lo_open=True)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return self.monte_carlo_probabilities(arms, rng)

    def posterior_draws(self, arms: ArmStats, rng: np.random.Generator, size: int | None = None) -> np.ndarray:
        n = arms.trials
        total = arms.successes if arms.value_sum is None else arms.value_sum
        squares = arms.successes if arms.value_sq_sum is None else arms.value_sq_sum
        k0, m0 = self.prior_count, self.prior_mean
        k = k0 + n
        mean = (k0 * m0 + total) / k
        safe_n = np.maximum(n, 1.0)
        # rounding can make the sum of squared deviations slightly negative
        deviations = np.maximum(squares - total * total / safe_n, 0.0)
        shift = np.where(n > 0, k0 * (total - n * m0) ** 2 / (safe_n * k), 0.0)
        a = self.prior_shape + n / 2.0
        b = self.prior_scale + deviations / 2.0 + shift / 2.0
        shape = a.shape if size is None else (size, *a.shape)
        return mean + np.sqrt(b / (a * k)) * rng.standard_t(2.0 * a, size=shape)
