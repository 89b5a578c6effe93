"""Engagement reports folded in by ``Store.record_engagement`` against a real redis-server:
each page view counts once, at its latest figures, whatever the order and repeats."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from croupier.router.engagement import ACTIVE_CAP_SECONDS, Engagement, scroll_bucket
from croupier.router.settings import Settings
from croupier.router.store import PAGE_VIEW_TTL, BeaconEvent, Store

NOW = time.time()
BUCKET = int(NOW // 60) * 60


@pytest.fixture
def settings(redis_url) -> Settings:
    return Settings(redis_url=redis_url, secret="s" * 32, bucket_seconds=60)


def using(settings: Settings, work: Callable[[Store], Awaitable]):
    """Run ``work`` with a store of its own (a client belongs to one event loop)."""
    async def go():
        store = Store(settings)
        try:
            return await work(store)
        finally:
            await store.close()
    return asyncio.run(go())


def event(variant: str = "a", visitor: str = "visitor-1", segment: str = "", ts: float = NOW) -> BeaconEvent:
    return BeaconEvent("eng", variant, visitor, "engagement", ts=ts, segment=segment)


def fold(settings: Settings, *reports: tuple[BeaconEvent, Engagement]) -> list[int]:
    async def work(store):
        return [await store.record_engagement(e, r) for e, r in reports]
    return using(settings, work)


def nonzero(counters: dict[str, float]) -> dict[str, float]:
    """A scroll bucket a view left stays in the hash at 0."""
    return {k: v for k, v in counters.items() if v}


def test_a_repeat_counts_once_and_an_update_adds_only_what_grew(settings):
    first = Engagement("pv-0000001", 3000, 40, 1, False)
    later = Engagement("pv-0000001", 12_000, 85, 2, True)
    stale = Engagement("pv-0000001", 6000, 50, 1, False)  # sent before `later`, arrived after it
    assert fold(settings, (event(), first), (event(), first)) == [1, 0]
    by_variant, _ = using(settings, lambda store: store.engagement_counters("eng"))
    assert nonzero(by_variant["a"]) == {"views": 1, "active_ms": 3000, "active_sq": 9.0, "clicks": 1,
                                        "scroll:4": 1}  # not engaged yet: a bounce
    assert fold(settings, (event(), later), (event(), later), (event(), stale)) == [2, 0, 0]
    by_variant, _ = using(settings, lambda store: store.engagement_counters("eng"))
    assert nonzero(by_variant["a"]) == {"views": 1, "engaged": 1, "active_ms": 12_000, "active_sq": 144.0,
                                        "clicks": 2, "scroll:8": 1}


def test_later_reports_stay_with_the_first_reports_variant_segment_and_bucket(settings):
    fold(settings, (event("a", segment="device=mobile"), Engagement("pv-0000002", 1000, 10, 0, False)),
         (event("b", segment="device=desktop", ts=NOW + 600), Engagement("pv-0000002", 5000, 30, 1, False)))
    by_variant, by_segment = using(settings, lambda store: store.engagement_counters("eng"))
    assert set(by_variant) == {"a"} and by_variant["a"]["active_ms"] == 5000
    assert set(by_segment) == {"device=mobile"} and by_segment["device=mobile"]["a"]["clicks"] == 1
    buckets = using(settings, lambda store: store.engagement_buckets("eng"))
    assert {b: {v: nonzero(c) for v, c in row.items()} for b, row in buckets.items()} == {
        BUCKET: {"a": {"views": 1, "active_ms": 5000, "clicks": 1}}}


def test_the_page_views_state_expires_and_the_report_reaches_the_stream(settings):
    async def work(store):
        await store.record_engagement(event(visitor="visitor-9"), Engagement("pv-0000003", 2000, 20, 0, False))
        return await store.redis.ttl("croupier:{eng}:pv:visitor-9:pv-0000003"), await store.events("eng")

    ttl, entries = using(settings, work)
    assert PAGE_VIEW_TTL - 5 <= ttl <= PAGE_VIEW_TTL
    [(_, fields)] = entries
    assert fields == {"type": "engagement", "variant": "a", "visitor": "visitor-9", "id": "pv-0000003",
                      "ts": str(int(NOW * 1000)), "segment": "", "active_ms": "2000", "scroll": "20", "clicks": "0",
                      "engaged": "0"}


def test_a_thousand_page_views_reported_out_of_order_with_repeats_count_their_latest_figures(settings):
    """Each view sends a growing series of cumulative reports; every report is sent once or twice,
    all shuffled and concurrent. The counters must equal each view's largest figures, once."""
    rng = random.Random(11)
    reports: list[tuple[BeaconEvent, Engagement]] = []
    truth: Counter = Counter()
    for i in range(1000):
        variant, segment = rng.choice("ab"), rng.choice(("device=mobile", "device=desktop"))
        active, scroll, clicks, engaged = 0, 0, 0, False
        for _ in range(rng.randint(1, 5)):
            active += rng.randint(0, 400_000)
            scroll = min(100, scroll + rng.randint(0, 40))
            clicks += rng.randint(0, 2)
            engaged = engaged or rng.random() < 0.2
            capped = min(active, ACTIVE_CAP_SECONDS * 1000)
            report = (event(variant, f"visitor-{i}", segment), Engagement(f"pv-{i:07d}", capped, scroll, clicks,
                                                                             engaged or capped >= 10_000))
            reports.extend([report] * rng.randint(1, 2))
        capped = min(active, ACTIVE_CAP_SECONDS * 1000)
        final_engaged = engaged or capped >= 10_000
        for key in (variant, (segment, variant)):
            truth[key, "views"] += 1
            truth[key, "engaged"] += final_engaged
            truth[key, "active_ms"] += capped
            truth[key, "active_sq"] += (capped / 1000) ** 2
            truth[key, "clicks"] += clicks
            truth[key, f"scroll:{scroll_bucket(scroll)}"] += 1
    rng.shuffle(reports)

    async def work(store):
        gate = asyncio.Semaphore(32)

        async def send(report):
            async with gate:
                return await store.record_engagement(*report)
        answers = Counter(await asyncio.gather(*(send(r) for r in reports)))
        return answers, await store.engagement_counters("eng")

    answers, (by_variant, by_segment) = using(settings, work)
    assert answers[1] == 1000  # one new view per page view, whichever report came first
    for (key, counter), expected in truth.items():
        found = by_variant[key][counter] if isinstance(key, str) else by_segment[key[0]][key[1]][counter]
        if counter == "active_sq":
            assert found == pytest.approx(expected, rel=1e-9), (key, counter)
        else:
            assert found == expected, (key, counter)
