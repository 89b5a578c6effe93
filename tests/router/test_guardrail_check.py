"""Guardrails on an experiment: the metric of each arm from the router's counters, the
breaches that follow, the split a breach leaves; and, against a real redis-server, a
recorded breach capping the variant in every router's snapshot until a marketer clears it."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from croupier.router.experiments import parse_experiment
from croupier.router.guardrail_check import CAP, PAUSE, capped, check, metric_stats
from croupier.router.guardrails import parse_guardrails
from croupier.router.refresh import SnapshotKeeper
from croupier.router.settings import Settings
from croupier.router.snapshot import Job, compute_many
from croupier.router.store import Store


def experiment(guardrails, **extra):
    return parse_experiment({"id": "g", "variants": [{"id": v, "upstream": f"h:{i + 1}"} for i, v in enumerate("abc")],
                             "guardrails": guardrails, **extra})


def test_each_metric_reads_its_counters():
    counters = {"trials": 1000, "value:signup": 500.0, "value2:signup": 9000.0, "fallback": 7}
    engagement = {"views": 800, "engaged": 300, "active_ms": 40_000_000, "active_sq": 3_000_000}
    expected = {"bounce_rate": (800, 500), "engaged_rate": (800, 300), "active_time": (800, 40_000, 3_000_000),
                "conversion_value": (1000, 500.0, 9000.0), "error_rate": (1000, 7)}
    for metric, stats in expected.items():
        (g,) = parse_guardrails([{"metric": metric}])
        assert metric_stats(g, "signup", counters, engagement) == stats


def test_a_variant_that_drives_visitors_away_is_breached_and_capped():
    e = experiment([{"metric": "bounce_rate", "threshold": 0.05}], min_share=0.02)
    counters = {v: {"trials": 3000, "conv:signup": 150 if v != "b" else 300} for v in "abc"}
    engagement = {"a": {"views": 2500, "engaged": 1500}, "b": {"views": 2500, "engaged": 600},
                  "c": {"views": 2500, "engaged": 1480}}
    (breach,) = check(e, counters, engagement, held={})
    assert breach.variant == "b" and breach.doc["metric"] == "bounce_rate" and breach.doc["low"] > 0.05
    assert "breached" in breach.doc["reason"]
    assert check(e, counters, engagement, held={"b": {"state": "cleared"}}) == []  # the marketer's call stands
    # b converts twice as well: the bandit alone gives it nearly everything, the breach 2%
    job = Job(e, counters)
    free = dict(compute_many([job], np.random.default_rng(0))["g"].arms.labelled())
    assert free["b"] > 0.9

    def shares(code: int) -> dict[str, float]:  # the variant's guardrail counter, as Store.record_breach sets it
        held = {**counters, "b": {**counters["b"], "guardrail": code}}
        return dict(compute_many([Job(e, held)], np.random.default_rng(0))["g"].arms.labelled())
    assert shares(CAP)["b"] == pytest.approx(0.02) and sum(shares(CAP).values()) == pytest.approx(1.0)
    assert shares(PAUSE)["b"] == 0
    assert shares(-1)["b"] > 0.9  # cleared


def test_too_little_evidence_is_no_breach():
    e = experiment([{"metric": "bounce_rate", "threshold": 0.05, "min_sample": 500}])
    counters = {v: {"trials": 400} for v in "abc"}
    engagement = {"a": {"views": 400, "engaged": 300}, "b": {"views": 400, "engaged": 0}, "c": {"views": 400}}
    assert check(e, counters, engagement, held={}) == []  # below min_sample, however bad


def test_capping_never_shuts_every_arm():
    e = experiment([{"metric": "bounce_rate"}])
    held = {v: {"guardrail": PAUSE} for v in "abc"}
    probs = np.array([0.2, 0.5, 0.3])
    assert list(capped(e, e.variants, probs, held)) == list(probs)


def test_guardrails_hold_a_uniform_split_until_both_arms_can_be_compared():
    e = experiment([{"metric": "bounce_rate", "min_sample": 300}])
    counters = {"a": {"trials": 100}, "b": {"trials": 100, "conv:signup": 50}, "c": {"trials": 100}}
    shares = dict(compute_many([Job(e, counters)], np.random.default_rng(0))["g"].arms.labelled())
    assert shares == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})


def test_a_recorded_breach_caps_the_variant_in_the_snapshot_until_cleared(redis_url):
    async def run():
        store = Store(Settings(redis_url=redis_url))
        keeper = SnapshotKeeper(store, refresh_interval=1, rng=np.random.default_rng(0))
        e = experiment([{"metric": "bounce_rate", "threshold": 0.05}], min_share=0.05)
        await store.create_experiment(e)
        await store.redis.hset("croupier:{g}:stats", mapping={"a:trials": 3000, "b:trials": 3000, "c:trials": 3000,
                                                             "a:conv:signup": 100, "b:conv:signup": 400,
                                                             "c:conv:signup": 100})
        await store.redis.incr("croupier:{g}:revision")
        snapshot = await keeper.refresh()
        assert dict(snapshot.arms["g"].labelled())["b"] > 0.8
        assert await store.record_breach("g", "b", {"metric": "bounce_rate", "action": "cap"})
        assert not await store.record_breach("g", "b", {"metric": "bounce_rate", "action": "cap"})  # once
        snapshot = await keeper.refresh()
        assert dict(snapshot.arms["g"].labelled())["b"] == pytest.approx(0.05)
        assert await store.record_breach("g", "b", {"metric": "bounce_rate"}, cleared=True)
        assert not await store.record_breach("g", "b", {"metric": "bounce_rate"}, cleared=True)
        snapshot = await keeper.refresh()
        assert dict(snapshot.arms["g"].labelled())["b"] > 0.8
        kinds = [(f["type"], f.get("state")) for _, f in await store.events("g")]
        assert kinds == [("guardrail", "breached"), ("guardrail", "cleared")]
        await store.close()
    asyncio.run(run())
