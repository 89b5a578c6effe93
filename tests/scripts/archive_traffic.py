"""Events written through the real store, for the archive's tests."""

from __future__ import annotations

import time

import numpy as np

from croupier.router.experiments import parse_experiment
from croupier.router.store import AssignmentRecord, BeaconEvent, ExperimentExists, Store

ARMS = ("a", "b", "c")
RATES = {"a": 0.05, "b": 0.15, "c": 0.08}


async def create(store: Store, experiment: str) -> None:
    try:
        await store.create_experiment(parse_experiment(
            {"id": experiment, "variants": [{"id": v, "upstream": f"v{v}:80"} for v in ARMS]}))
    except ExperimentExists:
        pass


async def write_traffic(store: Store, experiment: str, visitors: int, seed: int, *, batch: int = 500) -> int:
    """``visitors`` assignments on an even split, each converting at its arm's rate; returns
    how many stream entries that made (assignments and conversions)."""
    await create(store, experiment)
    rng = np.random.default_rng(seed)
    split = tuple((arm, 1.0 / len(ARMS)) for arm in ARMS)
    entries = 0
    for start in range(0, visitors, batch):
        now = time.time()
        chosen = rng.choice(ARMS, size=min(batch, visitors - start))
        records = [AssignmentRecord(experiment, str(arm), f"s{seed}v{start + i}", "new", split, now)
                   for i, arm in enumerate(chosen)]
        await store.record_assignments(records)
        entries += len(records)
        for record in records:
            if rng.random() < RATES[record.variant]:
                await store.record_event(BeaconEvent(experiment, record.variant, record.visitor, "convert",
                                                     goal="signup", ts=now + 0.5))
                entries += 1
    return entries
