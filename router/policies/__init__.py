"""Bandit policies: pure numpy, no I/O. ``make_policy`` builds one from an experiment's config."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from croupier.router.policies.base import ArmStats, Policy, PolicyError, sample_arms
from croupier.router.policies.best_arm import thompson_probabilities
from croupier.router.policies.contextual import LinearThompson
from croupier.router.policies.epsilon import DecayingEpsilonGreedy, EpsilonGreedy
from croupier.router.policies.factorial import FactorialThompson
from croupier.router.policies.gaussian import GaussianThompson
from croupier.router.policies.nonstationary import DiscountedThompson, SlidingWindowThompson, stats_from_buckets
from croupier.router.policies.thompson import ThompsonSampling, TopTwoThompson
from croupier.router.policies.ucb import KLUCB, UCB1, bernoulli_kl

POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (
    ThompsonSampling, TopTwoThompson, UCB1, KLUCB, EpsilonGreedy, DecayingEpsilonGreedy,
    DiscountedThompson, SlidingWindowThompson, GaussianThompson, LinearThompson, FactorialThompson,
)}


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    """The policy ``name`` with hyperparameters ``params``; ``PolicyError`` names the bad field."""
    cls = POLICIES.get(name)
    if cls is None:
        raise PolicyError(f"policy: unknown policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise PolicyError("policy_params: must be a JSON object")
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(params) - known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise PolicyError(f"{unknown[0]}: unknown parameter for policy {name!r} (accepted: {accepted})")
    return cls(**params)


__all__ = [
    "ArmStats", "Policy", "PolicyError", "POLICIES", "make_policy", "sample_arms", "stats_from_buckets",
    "bernoulli_kl", "ThompsonSampling", "TopTwoThompson", "UCB1", "KLUCB", "EpsilonGreedy",
    "DecayingEpsilonGreedy", "DiscountedThompson", "SlidingWindowThompson", "GaussianThompson",
    "LinearThompson", "FactorialThompson", "thompson_probabilities",
]
