"""Synthetic event histories with a known relationship between context, variant and conversion:
as stream entries (pure tests) or written through the store (tests on a real redis-server)."""

from __future__ import annotations

import json

import numpy as np

from croupier.router.store import AssignmentRecord, BeaconEvent, Store

SEGMENTS = ("device=mobile", "device=desktop")
ARMS = ("a", "b")
# mobile visitors convert on a, desktop visitors on b; ``flipped`` reverses it
RATES = {("device=mobile", "a"): 0.25, ("device=mobile", "b"): 0.04,
         ("device=desktop", "a"): 0.04, ("device=desktop", "b"): 0.25}


def rate(segment: str, arm: str, flipped: bool = False) -> float:
    if flipped:
        arm = ARMS[1 - ARMS.index(arm)]
    return RATES[(segment, arm)]


def draws(n: int, seed: int, flipped: bool = False) -> list[tuple[str, str, bool]]:
    """``n`` visitors: (segment, arm, converted)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        segment, arm = SEGMENTS[rng.integers(2)], ARMS[rng.integers(2)]
        out.append((segment, arm, bool(rng.random() < rate(segment, arm, flipped))))
    return out


def entries(n: int, seed: int = 0, *, flipped: bool = False, start_ms: int = 1_700_000_000_000,
            prefix: str = "v") -> list[tuple[str, dict]]:
    """Stream entries as the router writes them: an assignment per visitor, a conversion after it."""
    out, seq = [], 0
    probs = json.dumps({a: 0.5 for a in ARMS})
    for i, (segment, arm, converted) in enumerate(draws(n, seed, flipped)):
        ts = start_ms + 10 * i
        visitor = f"{prefix}{seed}-{i}"
        out.append((f"{ts}-0", {"type": "assign", "variant": arm, "visitor": visitor, "reason": "new",
                                "probs": probs, "ts": str(ts), "segment": segment}))
        if converted:
            seq += 1
            out.append((f"{ts + 1}-0", {"type": "convert", "variant": arm, "visitor": visitor, "goal": "signup",
                                        "value": "", "ts": str(ts + 1), "id": "", "segment": segment}))
    return out


async def write(store: Store, experiment: str, n: int, seed: int, *, flipped: bool = False,
                start: float = 1_700_000_000.0) -> int:
    """Write ``n`` visitors' assignments and conversions through the store; returns the conversions."""
    rows = draws(n, seed, flipped)
    split = tuple((a, 0.5) for a in ARMS)
    visitors = [f"s{seed}-{i}" for i in range(n)]
    records = [AssignmentRecord(experiment, arm, visitors[i], "new", split, start + i * 0.01, segment)
               for i, (segment, arm, _) in enumerate(rows)]
    for at in range(0, n, 2000):
        await store.record_assignments(records[at:at + 2000])
    converted = 0
    for i, (segment, arm, won) in enumerate(rows):
        if won:
            await store.record_event(BeaconEvent(experiment, arm, visitors[i], "convert", "signup",
                                                 ts=start + i * 0.01 + 0.005, segment=segment))
            converted += 1
    return converted
