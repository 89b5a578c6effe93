"""The monitor's guardrail and drift checks against a real redis-server: a breach is
recorded once, caps its variant in the next split, raises one alert and ends when a
marketer clears it; a step change in an arm's rate raises a drift alert and, with
``on_drift: "forget"``, sets the arm's evidence from before the change aside."""

from __future__ import annotations

import numpy as np

from croupier.router.engagement import Engagement
from croupier.router.experiments import parse_experiment
from croupier.router.store import BeaconEvent
from tests.router.alerts.conftest import experiment
from tests.router.alerts.test_monitor import Harness, scenario

BUCKET = 60


async def counters(h: Harness, exp_id: str, stats: dict, engagement: dict | None = None) -> None:
    await h.store.redis.hset(f"croupier:{{{exp_id}}}:stats", mapping=stats)
    if engagement:
        await h.store.redis.hset(f"croupier:{{{exp_id}}}:engagement", mapping=engagement)
    await h.store.redis.incr(f"croupier:{{{exp_id}}}:revision")


def test_a_breach_is_recorded_once_caps_the_variant_and_ends_when_cleared(redis_url):
    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment(
            "spring", min_share=0.05, guardrails=[{"metric": "bounce_rate", "threshold": 0.05}])))
        # b converts better but most of its visitors leave at once
        await counters(h, "spring", {"a:trials": 3000, "b:trials": 3000, "a:conv:signup": 100, "b:conv:signup": 300},
                       {"a:views": 2500, "a:engaged": 1500, "b:views": 2500, "b:engaged": 500})
        assert await h.look() == 1
        assert await h.kinds_raised() == [("guardrail", "spring", "b")]
        assert h.gauge("croupier_guardrail_breached", experiment="spring", variant="b") == 1
        breaches = (await h.store.breach_hashes(["spring"]))["spring"]
        assert '"state":"breached"' in breaches["b"] and '"metric":"bounce_rate"' in breaches["b"]
        snapshot = await h.snapshots.refresh()
        assert dict(snapshot.arms["spring"].labelled())["b"] == 0.05  # capped, whatever its conversions
        await counters(h, "spring", {"b:trials": 3100})
        assert await h.look() == 0  # the episode persists: not raised again
        assert await h.store.record_breach("spring", "b", {}, cleared=True)  # the marketer's call
        assert await h.look() == 0
        assert await h.outbox.open_episodes() == {}
        assert h.gauge("croupier_guardrail_breached", experiment="spring", variant="b") is None
        assert dict((await h.snapshots.refresh()).arms["spring"].labelled())["b"] > 0.5
        assert [f["state"] for _, f in await h.store.events("spring") if f["type"] == "guardrail"] == \
            ["breached", "cleared"]
    scenario(redis_url, work)


def test_a_step_change_raises_drift_and_forget_sets_the_old_evidence_aside(redis_url):
    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment("spring", on_drift="forget")))
        await h.store.create_experiment(parse_experiment(experiment("steady")))
        rng = np.random.default_rng(1)
        start = 1_700_000_000 // BUCKET * BUCKET
        for exp_id, rates in (("spring", [(0.10, 0.08), (0.04, 0.08)]), ("steady", [(0.08, 0.08), (0.08, 0.08)])):
            fields, totals = {}, {}
            for t in range(120):
                for k, v in enumerate("ab"):
                    rate = rates[t >= 60][k]
                    for device, n in (("mobile", 100), ("desktop", 200)):  # the drift check's strata
                        c = int(rng.binomial(n, rate))
                        fields[f"{start + t * BUCKET}:{device}|{v}:trials"] = n
                        fields[f"{start + t * BUCKET}:{device}|{v}:conv:signup"] = c
                        totals[f"{v}:trials"] = totals.get(f"{v}:trials", 0) + n
                        totals[f"{v}:conv:signup"] = totals.get(f"{v}:conv:signup", 0) + c
            await h.store.redis.hset(f"croupier:{{{exp_id}}}:devbuckets", mapping=fields)
            await counters(h, exp_id, totals)
        assert await h.look() == 1
        assert await h.kinds_raised() == [("drift", "spring", "a")]
        assert h.gauge("croupier_drift_detected", experiment="spring", kind="rate") == 1
        assert h.gauge("croupier_drift_detected", experiment="steady", kind="rate") is None
        stats = await h.store.redis.hgetall("croupier:{spring}:stats")
        kept = float(stats["a:trials"]) - float(stats["a:forgot:trials"])
        assert 55 * 300 <= kept <= 65 * 300  # about the 60 buckets since the change
        snapshot = await h.snapshots.refresh()
        assert snapshot.counters["spring"]["a"]["forgot:trials"] == float(stats["a:forgot:trials"])
    scenario(redis_url, work)


def test_engagement_reports_alone_bring_the_guardrail_check_back(redis_url):
    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment(
            "spring", guardrails=[{"metric": "bounce_rate", "threshold": 0.05}])))
        # as bouncy as control so far: no breach
        await counters(h, "spring", {"a:trials": 3000, "b:trials": 3000, "a:conv:signup": 100, "b:conv:signup": 100},
                       {"a:views": 2000, "a:engaged": 1200, "b:views": 2000, "b:engaged": 1200})
        assert await h.look() == 0
        revision = await h.store.redis.get("croupier:{spring}:revision")
        # then only page views of b that leave at once: no assignment, no conversion
        for i in range(800):
            report = Engagement(f"pv-{i:04d}", active_ms=1500, scroll=5, clicks=0, engaged=False)
            assert await h.store.record_engagement(BeaconEvent("spring", "b", f"v{i}", "engagement"), report) == 1
        assert await h.store.redis.get("croupier:{spring}:revision") != revision
        assert await h.look() == 1
        assert await h.kinds_raised() == [("guardrail", "spring", "b")]
        stats = await h.store.redis.hgetall("croupier:{spring}:stats")
        assert stats["b:engagement"] == "800" and "a:engagement" not in stats
        # a report that changes nothing moves nothing
        revision = await h.store.redis.get("croupier:{spring}:revision")
        report = Engagement("pv-0000", active_ms=1500, scroll=5, clicks=0, engaged=False)
        assert await h.store.record_engagement(BeaconEvent("spring", "b", "v0", "engagement"), report) == 0
        assert await h.store.redis.get("croupier:{spring}:revision") == revision
    scenario(redis_url, work)
