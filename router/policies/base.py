"""What every policy is: a pure function of the arms' statistics and a random generator.

State lives in Redis, not in the policy: the router hands a policy numpy arrays
indexed by arm (with optional leading batch dimensions, so a benchmark can run
many simulations at once) and an injected ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np


class PolicyError(ValueError):
    """A policy parameter is invalid; the message names the field."""


def check_number(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False) -> None:
    """Raise ``PolicyError("name: ...")`` unless ``value`` is a finite number in the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PolicyError(f"{name}: must be a number")
    if value < lo or value > hi or (lo_open and value == lo):
        raise PolicyError(f"{name}: must be in {'(' if lo_open else '['}{lo:g}, {hi:g}]")


def check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise PolicyError(f"{name}: must be an integer in [{lo}, {hi}]")


@dataclass(frozen=True)
class ArmStats:
    """Per-arm evidence. Every array has shape ``(..., K)``.

    ``trials`` are assignments, ``successes`` conversions of the experiment's goal,
    ``value_sum``/``value_sq_sum`` the goal's values (revenue goals), and
    ``prior_alpha``/``prior_beta`` the Beta prior of each arm.
    """

    trials: np.ndarray
    successes: np.ndarray
    prior_alpha: np.ndarray
    prior_beta: np.ndarray
    value_sum: np.ndarray | None = None
    value_sq_sum: np.ndarray | None = None

    @classmethod
    def from_counts(cls, trials, successes, prior_alpha=1.0, prior_beta=1.0,
                    value_sum=None, value_sq_sum=None) -> ArmStats:
        t = np.asarray(trials, dtype=np.float64)
        s = np.minimum(np.asarray(successes, dtype=np.float64), t)
        return cls(
            trials=t,
            successes=s,
            prior_alpha=np.broadcast_to(np.asarray(prior_alpha, dtype=np.float64), t.shape),
            prior_beta=np.broadcast_to(np.asarray(prior_beta, dtype=np.float64), t.shape),
            value_sum=None if value_sum is None else np.asarray(value_sum, dtype=np.float64),
            value_sq_sum=None if value_sq_sum is None else np.asarray(value_sq_sum, dtype=np.float64),
        )

    @property
    def n_arms(self) -> int:
        return int(self.trials.shape[-1])

    @property
    def alpha(self) -> np.ndarray:
        return self.prior_alpha + self.successes

    @property
    def beta(self) -> np.ndarray:
        return self.prior_beta + np.maximum(self.trials - self.successes, 0.0)

    @property
    def empirical_rate(self) -> np.ndarray:
        """successes / trials, 0 for arms never played."""
        return self.successes / np.maximum(self.trials, 1.0)


def sample_arms(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One arm per leading index, drawn from ``probs`` (shape ``(..., K)``) by inverse CDF."""
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(probs.shape[:-1] + (1,)) * cdf[..., -1:]
    # arms with probability 0 have cdf equal to their predecessor's and are never chosen
    return np.minimum((cdf <= u).sum(axis=-1), probs.shape[-1] - 1)


def argmax_probabilities(index: np.ndarray) -> np.ndarray:
    """A deterministic index policy as probabilities: ties split evenly."""
    top = index == index.max(axis=-1, keepdims=True)
    return top / top.sum(axis=-1, keepdims=True)


def winner_shares(samples: np.ndarray) -> np.ndarray:
    """Share of draws each arm wins: ``samples`` (D, ..., K) -> (..., K)."""
    draws, k = samples.shape[0], samples.shape[-1]
    batch = samples.shape[1:-1]
    winners = np.argmax(samples, axis=-1).reshape(draws, -1)
    cells = winners.shape[1]
    # one bincount over (cell, arm) pairs instead of a Python loop over cells
    counts = np.bincount((winners + k * np.arange(cells)).ravel(), minlength=cells * k)
    return counts.reshape(*batch, k) / draws


class Policy:
    """Base class. Subclasses are frozen dataclasses whose fields are hyperparameters.

    ``needs_history`` tells the router to build the arms' statistics from the
    time-bucketed counts with the policy's ``history_stats`` (non-stationary
    policies) instead of the lifetime totals.
    """

    name: ClassVar[str]
    needs_history: ClassVar[bool] = False
    # contextual policies choose per visitor from per-arm regressions (router/policies/contextual.py)
    needs_context: ClassVar[bool] = False

    def select(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        """The chosen arm for each leading index: shape ``arms.trials.shape[:-1]``.

        By default a draw from ``probabilities``; policies that can sample
        directly more cheaply (Thompson sampling) override it.
        """
        return sample_arms(self.probabilities(arms, rng), rng)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        """Every arm's selection probability, shape ``(..., K)``, summing to 1.

        Exact where the policy allows it, otherwise a Monte Carlo estimate; the
        router computes it once per snapshot refresh and samples from it, so
        each assignment is logged with the probability it was actually drawn with.
        """
        raise NotImplementedError

    def params(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]
