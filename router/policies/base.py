"""What every policy is: a pure function of the arms' statistics and a random generator.

State lives in Redis, not in the policy: the router hands a policy numpy arrays
indexed by arm (with optional leading batch dimensions, so a benchmark can run
many simulations at once) and an injected ``numpy.random.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np


class PolicyError(ValueError):
    """A policy parameter is invalid; the message names the field."""


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


class Policy:
    """Base class. Subclasses are frozen dataclasses whose fields are hyperparameters."""

    name: ClassVar[str]

    def select(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        """The chosen arm for each leading index: shape ``arms.trials.shape[:-1]``."""
        raise NotImplementedError

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        """Every arm's selection probability, shape ``(..., K)``, summing to 1.

        Exact where the policy allows it, otherwise a Monte Carlo estimate; the
        router computes it once per snapshot refresh and samples from it, so
        each assignment is logged with the probability it was actually drawn with.
        """
        raise NotImplementedError

    def params(self) -> dict:
        from dataclasses import asdict
        return asdict(self)  # type: ignore[call-overload]
