"""Per-variant capacity ("at most 5,000 customers get the cashback offer"): the split a
router draws from once some variants are full. Pure.

A variant's ``capacity`` counts every assignment it gets, from the web, the channels
API and batches together. Batches take their units in Redis with their claims
(``lua/claim_customers.lua``); web and channels decisions, which never wait on Redis,
take them from a reservation each router holds (``router/capacity_leases.py``). A
variant with no unit left for this router gets probability 0 and the others share its
part in proportion, so the logged propensities are the split the visitor was really
drawn from.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from croupier.router.snapshot import Arms


def restrict(arms: Arms, full: frozenset[str]) -> Arms | None:
    """``arms`` without the variants in ``full``, the rest renormalised (the holdout's uniform
    part over the remaining variants too); None when every variant is full. The labels keep
    every variant, the full ones at 0, so an assignment's logged probabilities name all arms."""
    keep = [i for i, v in enumerate(arms.variants) if v.id not in full]
    if len(keep) == len(arms.variants):
        return arms
    if not keep:
        return None
    bandit = np.diff(np.concatenate(([0.0], arms.cumulative)))[keep]
    total = bandit.sum()
    bandit = bandit / total if total > 0 else np.full(len(keep), 1.0 / len(keep))
    narrowed = Arms.build(tuple(arms.variants[i] for i in keep), bandit, arms.holdout,
                          arms.holdout_shares()[keep] if arms.holdout_cumulative else None)
    left = dict(narrowed.labels)
    return replace(narrowed, labels=tuple((v.id, left.get(v.id, 0.0)) for v in arms.variants))


def capacities(variants) -> dict[str, int]:
    """Variant id → capacity, for the variants that have one."""
    return {v.id: v.capacity for v in variants if v.capacity is not None}


def capacity_figures(capacity: int, used: int, reserved: int) -> dict[str, int | bool]:
    """What a capped variant's capacity holds, as the stats show it: ``used`` (batches' claims and
    the decisions routers reported), ``reserved`` (routers hold it and have not reported it used),
    ``remaining`` (free for anyone), ``full`` (every unit used: nobody gets the variant any more).
    A capacity lowered below what is used reads full with nothing remaining; what routers still
    hold shows as reserved until their first top-up under the new cap gives it back (meanwhile
    their decisions may use it: used can end above a lowered capacity by that much)."""
    return {"capacity": capacity, "used": used, "reserved": reserved,
            "remaining": max(capacity - used - reserved, 0), "full": used >= capacity}
