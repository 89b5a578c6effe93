"""Bandit policies: pure numpy, no I/O. ``make_policy`` builds one from an experiment's config."""

from __future__ import annotations

from typing import Any

from router.policies.base import ArmStats, Policy, PolicyError
from router.policies.thompson import ThompsonSampling

POLICIES: dict[str, type[Policy]] = {cls.name: cls for cls in (ThompsonSampling,)}


def make_policy(name: str, params: dict[str, Any] | None = None) -> Policy:
    cls = POLICIES.get(name)
    if cls is None:
        raise PolicyError(f"policy: unknown policy {name!r}; choose one of {', '.join(sorted(POLICIES))}")
    try:
        return cls(**(params or {}))
    except TypeError as exc:
        raise PolicyError(f"policy_params: {exc}") from None


__all__ = ["ArmStats", "Policy", "PolicyError", "POLICIES", "make_policy"]
