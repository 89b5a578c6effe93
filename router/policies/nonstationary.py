"""Thompson sampling for conversion rates that drift: discounted and sliding-window.

These policies set ``needs_history``: instead of lifetime totals, the router reads
the per-variant counts the store keeps in time buckets (arrays ``(B, K)``, oldest
first, the current partial bucket last) for the last ``history_seconds`` and
turns them into statistics with ``policy.history_stats(...)``; the rest (select,
probabilities, allocation) is plain Thompson sampling on those statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from croupier.router.policies.base import ArmStats, check_number
from croupier.router.policies.thompson import ThompsonSampling


def stats_from_buckets(trials_b, successes_b, *, discount: float = 1.0, window: int | None = None,
                       prior_alpha=1.0, prior_beta=1.0, value_sum_b=None, value_sq_sum_b=None) -> ArmStats:
    """Weighted sums of bucketed counts: arrays ``(B, ..., K)``, oldest bucket first.

    The bucket ``a`` steps old (the newest has ``a = 0``) weighs ``discount ** a``,
    and nothing if ``a >= window``. ``discount = 1`` with a window is a sliding
    window; ``discount < 1`` the discounting of Raj & Kalyani (2017), applied per
    bucket instead of per visitor.
    """
    trials_b = np.asarray(trials_b, dtype=np.float64)
    n_buckets = trials_b.shape[0]
    age = np.arange(n_buckets - 1, -1, -1, dtype=np.float64)
    weights = discount ** age
    if window is not None:
        weights[age >= window] = 0.0

    def weigh(counts):
        return None if counts is None else np.tensordot(weights, np.asarray(counts, dtype=np.float64), axes=(0, 0))

    return ArmStats.from_counts(weigh(trials_b), weigh(successes_b), prior_alpha, prior_beta,
                                weigh(value_sum_b), weigh(value_sq_sum_b))


class _HistoryThompson(ThompsonSampling):
    """Thompson sampling on statistics rebuilt from the time-bucketed history."""

    needs_history: ClassVar[bool] = True

    @property
    def history_seconds(self) -> float:
        """How far back the router should read buckets; older ones would weigh (almost) nothing."""
        raise NotImplementedError

    def _weighting(self, bucket_seconds: float) -> dict:
        raise NotImplementedError

    def history_stats(self, trials_b, successes_b, *, bucket_seconds: float,
                      prior_alpha=1.0, prior_beta=1.0) -> ArmStats:
        """The statistics this policy decides on, from buckets ``(B, ..., K)`` of ``bucket_seconds`` each."""
        return stats_from_buckets(trials_b, successes_b, prior_alpha=prior_alpha, prior_beta=prior_beta,
                                  **self._weighting(bucket_seconds))


@dataclass(frozen=True)
class DiscountedThompson(_HistoryThompson):
    """Discounted Thompson sampling: evidence loses half its weight every ``half_life`` seconds.

    Posterior ``Beta(alpha0 + sum_a g^a s_a, beta0 + sum_a g^a (n_a - s_a))`` over
    buckets ``a`` steps old, ``g = 2 ** (-bucket_seconds / half_life)``. Raj &
    Kalyani (2017), "Taming Non-stationary Bandits: A Bayesian Approach". An
    arm that stops being played drifts back towards its prior and gets explored
    again, which is how a change is noticed.
    """

    name: ClassVar[str] = "discounted_thompson"
    half_life: float = 6 * 3600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("half_life", self.half_life, 0.0, 1e9, lo_open=True)

    @property
    def history_seconds(self) -> float:
        return 7.0 * self.half_life  # later buckets weigh under 1%

    def _weighting(self, bucket_seconds: float) -> dict:
        return {"discount": 0.5 ** (bucket_seconds / self.half_life)}


@dataclass(frozen=True)
class SlidingWindowThompson(_HistoryThompson):
    """Sliding-window Thompson sampling: only the last ``window`` seconds count.

    Trovò, Paladino, Restelli & Gatti (2020), "Sliding-Window Thompson Sampling
    for Non-Stationary Settings".
    """

    name: ClassVar[str] = "sliding_window_thompson"
    window: float = 24 * 3600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("window", self.window, 0.0, 1e9, lo_open=True)

    @property
    def history_seconds(self) -> float:
        return self.window

    def _weighting(self, bucket_seconds: float) -> dict:
        return {"window": max(1, math.ceil(self.window / bucket_seconds))}
