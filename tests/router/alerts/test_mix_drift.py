"""The monitor's traffic-mix check against a real redis-server: a shift in the device classes
of the assignments raises one "mix" alert, apart from the rate-drift check, which raises
nothing while the arms' rates hold; a stable mix raises nothing."""

from __future__ import annotations

import numpy as np

from croupier.router.experiments import parse_experiment
from croupier.router.monitor_checks import MixDriftCheck
from croupier.router.store import AssignmentRecord
from tests.router.alerts.conftest import experiment
from tests.router.alerts.test_guardrail_and_drift_checks import BUCKET, counters
from tests.router.alerts.test_monitor import Harness, scenario

START = 1_700_000_000 // BUCKET * BUCKET
SPLIT = (("a", .5), ("b", .5))


async def traffic(h: Harness, exp_id: str, mobile_share: tuple[float, float], rng: np.random.Generator,
                  per_bucket: int = 200, rate: float = 0.08) -> None:
    """120 buckets of assignments, mobile's share the first value for the first 60 buckets and the
    second after; every arm converts at ``rate`` throughout, whoever visits."""
    fields, mix, totals = {}, {}, {}
    for t in range(120):
        at = START + t * BUCKET
        for v in "ab":
            n, c = per_bucket // 2, int(rng.binomial(per_bucket // 2, rate))
            fields |= {f"{at}:{v}:trials": n, f"{at}:{v}:conv:signup": c, f"{at}:{v}:expected": n}
            totals[f"{v}:trials"] = totals.get(f"{v}:trials", 0) + n
            totals[f"{v}:conv:signup"] = totals.get(f"{v}:conv:signup", 0) + c
        mobile = int(rng.binomial(per_bucket, mobile_share[t >= 60]))
        mix |= {f"{at}:device=mobile": mobile, f"{at}:device=desktop": per_bucket - mobile}
    await h.store.redis.hset(f"croupier:{{{exp_id}}}:buckets", mapping=fields)
    await h.store.redis.hset(f"croupier:{{{exp_id}}}:mixbuckets", mapping=mix)
    await counters(h, exp_id, totals)


def test_a_shift_in_who_visits_is_a_mix_alert_and_not_a_rate_change(redis_url):
    async def work(h: Harness) -> None:
        for exp_id in ("spring", "steady"):
            await h.store.create_experiment(parse_experiment(experiment(exp_id)))
        rng = np.random.default_rng(7)
        await traffic(h, "spring", (0.3, 0.7), rng)
        await traffic(h, "steady", (0.3, 0.3), rng)
        assert await h.look() == 1
        assert await h.kinds_raised() == [("mix", "spring", "")]
        (alert,) = await h.store.recent_alerts()
        assert alert["summary"].startswith("Traffic mix of experiment spring shifted: mobile 30% -> 70% (PSI 0.")
        details = alert["details"]
        assert details["kind"] == "mix" and details["field"] == "device" and 0.5 < details["psi"] < 0.9
        assert abs(details["reference"]["mobile"] - 0.3) < 0.02 and abs(details["recent"]["mobile"] - 0.7) < 0.02
        assert details["windows"]["reference"] == {"first": START, "last": START + 59 * BUCKET, "buckets": 60,
                                                   "views": 12_000}
        assert details["windows"]["recent"]["buckets"] == 60
        assert h.gauge("croupier_drift_detected", experiment="spring", kind="mix") == 1
        assert h.gauge("croupier_drift_detected", experiment="steady", kind="mix") is None
        for exp_id in ("spring", "steady"):  # the arms' rates held: no rate drift
            assert h.gauge("croupier_drift_detected", experiment=exp_id, kind="rate") is None
        await counters(h, "spring", {"a:trials": 12_001})
        assert await h.look() == 0  # the episode persists: not raised again
        assert list(await h.outbox.open_episodes()) == ["mix|spring|"]
    scenario(redis_url, work)


def test_the_devices_recorded_with_the_assignments_feed_the_check(redis_url):
    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment("spring")))
        for t, mobile in ((0, 40), (1, 40), (2, 160)):  # two desktop-heavy buckets, then a mobile-heavy one
            await h.store.record_assignments([
                AssignmentRecord("spring", "ab"[i % 2], f"v{t}-{i}", "new", SPLIT, START + t * BUCKET + 1,
                                 device="mobile" if i < mobile else "desktop") for i in range(200)])
        assert await h.look() == 1
        (alert,) = await h.store.recent_alerts()
        assert alert["kind"] == "mix" and alert["details"]["reference"] == {"desktop": 0.8, "mobile": 0.2}
        assert alert["details"]["recent"] == {"desktop": 0.2, "mobile": 0.8}
    scenario(redis_url, work, checks=[MixDriftCheck(recent=1, reference=2)])


def test_too_few_views_or_a_single_device_class_raise_nothing(redis_url):
    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment("small")))
        await h.store.create_experiment(parse_experiment(experiment("plain")))
        for t, mobile in ((0, 10), (1, 40)):  # a shift, but 50 views a window
            await h.store.record_assignments([
                AssignmentRecord("small", "ab"[i % 2], f"v{t}-{i}", "new", SPLIT, START + t * BUCKET,
                                 device="mobile" if i < mobile else "desktop") for i in range(50)])
        for t in range(2):  # no device known at all (all "unknown")
            await h.store.record_assignments([AssignmentRecord("plain", "ab"[i % 2], f"v{t}-{i}", "new", SPLIT,
                                                               START + t * BUCKET) for i in range(500)])
        assert await h.look() == 0
    scenario(redis_url, work, checks=[MixDriftCheck(recent=1, reference=1)])
