"""From a policy's probabilities to the traffic split an experiment actually uses.

The experiment-level controls live here, not in the policies: a burn-in (uniform
until every arm has ``burn_in`` trials), a minimum share per arm, and a holdout
that always stays on a fixed split (uniform, but never more than a guardrail's
limit to a breached arm). Pure.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from croupier.router.policies import ArmStats, Policy
from croupier.router.policies.base import check_int, check_number


def apply_floor(probs: np.ndarray, min_share: float) -> np.ndarray:
    """Raise every arm to at least ``min_share`` (capped at 1/K), taking the difference proportionally from the rest.

    The result is ``max(min_share, c * p_k)`` with ``c`` chosen so it sums to 1
    (water-filling), so a policy sure of its winner loses only what the floor
    needs, rather than mixing all traffic with a uniform split.
    """
    k = probs.shape[-1]
    floor = min(float(min_share), 1.0 / k)
    if floor <= 0.0:
        return probs
    ordered = -np.sort(-probs, axis=-1)
    head = np.cumsum(ordered, axis=-1)
    scaled = np.arange(1, k + 1)
    # the m largest arms stay above the floor iff the m-th is still above it after rescaling
    above = ordered * (1.0 - (k - scaled) * floor) >= floor * head * (1.0 - 1e-12)
    m = np.max(np.where(above, scaled, 1), axis=-1, keepdims=True)
    c = (1.0 - (k - m) * floor) / np.take_along_axis(head, m - 1, axis=-1)
    out = np.maximum(floor, c * probs)
    return out / out.sum(axis=-1, keepdims=True)


def allocate_with_holdout(policy: Policy, arms: ArmStats, rng: np.random.Generator, *,
                          min_share: float = 0.0, burn_in: int = 0, holdout: float = 0.0,
                          burn_in_trials: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """The bandit's split and the holdout share, for a router that labels the holdout.

    Returns ``(probs, holdout)``: send a visitor to the holdout with probability
    ``holdout`` and give them a uniformly random arm (propensity ``1/K`` inside the
    holdout, an unbiased A/B split to analyse on its own); everyone else gets an
    arm drawn from ``probs`` (shape ``(..., K)``, after burn-in and floor).
    ``burn_in_trials`` are the counts the burn-in looks at (default
    ``arms.trials``; pass lifetime totals when ``arms`` are windowed).
    """
    check_number("min_share", min_share, 0.0, 1.0)
    check_int("burn_in", burn_in, 0, 10**12)
    check_number("holdout", holdout, 0.0, 1.0)
    k = arms.n_arms
    uniform = np.full(arms.trials.shape, 1.0 / k)
    if k == 1:
        return uniform, float(holdout)
    seen = arms.trials if burn_in_trials is None else np.asarray(burn_in_trials)
    warming = (seen < burn_in).any(axis=-1, keepdims=True)
    if np.all(warming):
        probs = uniform
    else:
        probs = np.where(warming, uniform, apply_floor(policy.probabilities(arms, rng), min_share))
    return probs / probs.sum(axis=-1, keepdims=True), float(holdout)


def allocate(policy: Policy, arms: ArmStats, rng: np.random.Generator, *,
             min_share: float = 0.0, burn_in: int = 0, holdout: float = 0.0,
             burn_in_trials: np.ndarray | None = None) -> np.ndarray:
    """Selection probability of each arm, holdout included: shape ``(..., K)``, summing to 1.

    ``(1 - holdout) * bandit + holdout / K``: the propensity of every assignment,
    whether or not the router labels the holdout separately.
    """
    probs, share = allocate_with_holdout(policy, arms, rng, min_share=min_share, burn_in=burn_in,
                                         holdout=holdout, burn_in_trials=burn_in_trials)
    return with_holdout(probs, share)


def with_holdout(bandit: np.ndarray, holdout: float, fixed: np.ndarray | None = None) -> np.ndarray:
    """Each arm's probability, holdout included: ``(1 - holdout) * bandit + holdout * fixed``.

    ``fixed`` is the holdout's own split (``(K,)``): uniform over the arms by default. A
    guardrail's limit must hold for the total, so under a breach the holdout's split gives the
    breached arm at most its limit too (``holdout_split``): with the bandit's part capped at the
    same limit, the mixture stays within it, and a paused arm gets nothing from either part.
    """
    bandit = np.asarray(bandit, dtype=np.float64)
    k = bandit.shape[-1]
    fixed = np.full(k, 1.0 / k) if fixed is None else np.asarray(fixed, dtype=np.float64)
    return (1.0 - holdout) * bandit + holdout * fixed


def holdout_split(k: int, limit: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """The holdout's fixed split over ``k`` arms: uniform, then ``limit`` (the split with every
    breached arm held at its limit, ``guardrail_check.capped``) applied to it, so what a
    breached arm loses goes evenly to the open ones."""
    uniform = np.full(k, 1.0 / k)
    return uniform if limit is None else np.asarray(limit(uniform), dtype=np.float64)
