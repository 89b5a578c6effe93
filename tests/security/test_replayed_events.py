"""Every beacon event sent twice, in shuffled order and concurrently: the counters stay exact.

Against a real redis-server, through ``Store.record_event`` (the beacon's one write).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

from croupier.router.settings import Settings
from croupier.router.store import BeaconEvent, Store
from croupier.router.token import new_visitor_id

VARIANTS = ("a", "b", "c")
EVENTS = 10_000
CONCURRENCY = 64


def truth_and_events(rng: random.Random) -> tuple[Counter, list[BeaconEvent]]:
    truth: Counter = Counter()
    events = []
    now = time.time()
    for i in range(EVENTS):
        variant = rng.choice(VARIANTS)
        kind = rng.choices(("view", "click", "convert"), weights=(5, 3, 2))[0]
        # each convert is a distinct visitor; values are whole numbers so float sums stay exact
        value = float(rng.randint(1, 500)) if kind == "convert" else None
        events.append(BeaconEvent("replay", variant, new_visitor_id(), kind, "signup" if kind == "convert" else "",
                                  value, f"evt-{i:06d}-{rng.getrandbits(32):08x}", now))
        truth[variant, "conv:signup" if kind == "convert" else kind] += 1
        if value is not None:
            truth[variant, "value:signup"] += value
            truth[variant, "value2:signup"] += value * value
    return truth, events


async def send_twice_shuffled(store: Store, events: list[BeaconEvent], rng: random.Random) -> Counter:
    twice = events + events
    rng.shuffle(twice)
    gate = asyncio.Semaphore(CONCURRENCY)
    outcomes: Counter = Counter()

    async def send(event: BeaconEvent) -> None:
        async with gate:
            outcomes[await store.record_event(event)] += 1

    await asyncio.gather(*(send(e) for e in twice))
    return outcomes


def test_ten_thousand_events_each_sent_twice_out_of_order_count_exactly_once(redis_url):
    rng = random.Random(20240601)
    truth, events = truth_and_events(rng)
    store = Store(Settings(redis_url=redis_url, secret="s" * 32, redis_timeout=5))

    async def run():
        try:
            started = time.monotonic()
            outcomes = await send_twice_shuffled(store, events, rng)
            elapsed = time.monotonic() - started
            counters = (await store.counters(["replay"]))["replay"]
            buckets = await store.buckets("replay")
            stream = len(await store.events("replay", count=3 * EVENTS))
            return outcomes, elapsed, counters, buckets, stream
        finally:
            await store.close()

    outcomes, elapsed, counters, buckets, stream = asyncio.run(run())
    assert outcomes == Counter({True: EVENTS, False: EVENTS}), outcomes  # each event counted once, its copy refused
    got = Counter({(variant, name): value for variant, c in counters.items() for name, value in c.items()})
    assert got == truth
    in_buckets: Counter = Counter()
    for per_variant in buckets.values():
        for variant, c in per_variant.items():
            for name, value in c.items():
                in_buckets[variant, name] += value
    assert in_buckets == Counter({k: v for k, v in truth.items() if not k[1].startswith("value2:")})
    assert stream == EVENTS  # one stream entry per counted event, none for the duplicates
    assert elapsed < 15, f"{2 * EVENTS} writes took {elapsed:.1f} s"
