"""The monitor against a real redis-server: it looks only at experiments whose counters
changed, raises an episode once, clears it when the condition goes, and takes new checks
without a change to its loop."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np

from croupier.router.alerts import Alert, Lease, Outbox
from croupier.router.experiments import parse_experiment
from croupier.router.metrics import Metrics
from croupier.router.monitor import Check, Monitor, Observation, SampleRatioCheck
from croupier.router.refresh import SnapshotKeeper
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, Store
from tests.router.alerts.conftest import experiment


class CountingStore(Store):
    """Records which experiments' time buckets were read (the refresh asks too, for none
    here: the experiments' policy reads no history)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bucket_reads: list[list[str]] = []

    async def bucket_hashes(self, experiment_ids):
        ids = list(experiment_ids)
        if ids:
            self.bucket_reads.append(ids)
        return await super().bucket_hashes(ids)


class Harness:
    def __init__(self, redis_url: str, checks=None) -> None:
        self.store = CountingStore(Settings(redis_url=redis_url))
        self.metrics = Metrics()
        self.snapshots = SnapshotKeeper(self.store, 0.05, np.random.default_rng(0))
        self.outbox = Outbox(self.store, self.metrics, 1000)
        self.lease = Lease(self.store, 30)
        self.monitor = Monitor(1.0, self.store, self.snapshots, self.outbox, self.lease, self.metrics, checks)

    async def look(self) -> int:
        """A refresh, then one look of the monitor; the alerts it raised."""
        await self.snapshots.refresh()
        return await self.monitor.run_once()

    async def assign(self, exp_id: str, counts: dict[str, int]) -> None:
        await self.store.record_assignments([AssignmentRecord(exp_id, v, f"{v}{i}", "new", (("a", .5), ("b", .5)),
                                                              1_700_000_000.0)
                                             for v, n in counts.items() for i in range(n)])

    def gauge(self, name: str, **labels) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    async def kinds_raised(self) -> list[str]:
        return [(doc["kind"], doc["experiment"], doc["variant"]) for doc in reversed(await self.store.recent_alerts())]


def scenario(redis_url: str, work, checks=None):
    async def run():
        harness = Harness(redis_url, checks)
        try:
            await harness.lease.hold()
            return await work(harness)
        finally:
            await harness.monitor.stop()
            await harness.store.close()
    return asyncio.run(run())


def test_srm_is_raised_once_per_episode_and_again_when_it_returns(redis_url):
    async def work(h: Harness) -> None:
        for exp_id in ("spring", "quiet"):
            await h.store.create_experiment(parse_experiment(experiment(exp_id)))
        await h.assign("spring", {"a": 300, "b": 100})
        await h.assign("quiet", {"a": 100, "b": 100})
        assert await h.look() == 1
        assert h.gauge("croupier_srm_mismatch", experiment="spring") == 1
        assert h.gauge("croupier_srm_mismatch", experiment="quiet") is None  # series only while it holds
        assert h.gauge("croupier_srm_p_value", experiment="spring") < 0.001
        assert sorted(h.store.bucket_reads[-1]) == ["quiet", "spring"]  # the first look: everyone

        await h.assign("spring", {"a": 30, "b": 10})  # persists
        assert await h.look() == 0
        assert h.store.bucket_reads[-1] == ["spring"]  # only the experiment whose counters moved
        reads = len(h.store.bucket_reads)
        assert await h.look() == 0 and len(h.store.bucket_reads) == reads  # nothing moved: nothing read

        await h.assign("spring", {"b": 220})  # 330 / 330: the mismatch clears
        assert await h.look() == 0
        assert h.gauge("croupier_srm_mismatch", experiment="spring") is None
        assert await h.outbox.open_episodes() == {}
        await h.assign("spring", {"a": 400})  # and returns: a new alert
        assert await h.look() == 1
        assert await h.kinds_raised() == [("srm", "spring", ""), ("srm", "spring", "")]
        assert list(await h.outbox.open_episodes()) == ["srm|spring|"]

        # an experiment that stops running: its episode closes and its gauges go
        await h.store.update_experiment("spring", lambda e: replace(e, status="paused"))
        assert await h.look() == 0
        assert await h.outbox.open_episodes() == {}
        assert h.gauge("croupier_srm_mismatch", experiment="spring") is None
    scenario(redis_url, work)


def test_a_router_without_the_lease_does_not_look(redis_url):
    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment()))
        await h.assign("spring", {"a": 300, "b": 100})
        assert await h.look() == 1
        await h.lease.release()
        await h.assign("spring", {"a": 1})
        assert await h.look() == 0
        assert h.gauge("croupier_srm_mismatch", experiment="spring") is None  # the lease holder reports it
    scenario(redis_url, work)


class BreachCheck(Check):
    """A stand-in for a guardrail check: a variant past 50 trials is breached."""

    name = "breach"
    kinds = ("guardrail",)

    def run(self, seen: Observation) -> list[Alert]:
        e = seen.experiment
        return [Alert("guardrail", e.id, f"variant {vid} breached", variant=vid, tenant=e.tenant)
                for vid, counters in sorted(seen.counters.items()) if counters.get("trials", 0) > 50]


class BrokenCheck(Check):
    name = "broken"
    kinds = ("drift",)

    def run(self, seen: Observation) -> list[Alert]:
        raise RuntimeError("a bug in a check")


def test_checks_plug_in_and_a_failing_one_does_not_stop_the_others(redis_url):
    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment()))
        await h.assign("spring", {"a": 120, "b": 80})  # both past 50 trials: both breached
        assert await h.look() == 2
        assert sorted(await h.outbox.open_episodes()) == ["guardrail|spring|a", "guardrail|spring|b"]
        assert h.gauge("croupier_alert_failures_total", task="check", error="RuntimeError") == 1
        await h.assign("spring", {"a": 1})
        assert await h.look() == 0  # both persist
        assert h.gauge("croupier_alert_failures_total", task="check", error="RuntimeError") == 2
        assert await h.kinds_raised() == [("guardrail", "spring", "a"), ("guardrail", "spring", "b")]
    scenario(redis_url, work, checks=[BrokenCheck(), BreachCheck(), SampleRatioCheck(alert_p=1e-300)])


class ActOnceLater(BreachCheck):
    """Its action fails the first time (Redis answered, the action did not work out)."""

    name = "act-later"
    tries = 0

    async def act(self, store, alerts) -> None:
        self.tries += 1
        if self.tries == 1:
            raise ValueError("not this time")


def test_alerts_a_check_could_not_act_on_are_tried_again_at_the_next_look(redis_url):
    check = ActOnceLater()

    async def work(h: Harness) -> None:
        await h.store.create_experiment(parse_experiment(experiment()))
        await h.assign("spring", {"a": 60})
        assert await h.look() == 0  # not raised: its action failed
        assert await h.look() == 1  # nothing changed, and still it is looked at again
        assert h.gauge("croupier_alert_failures_total", task="act", error="ValueError") == 1
    scenario(redis_url, work, checks=[check])


def test_a_look_checks_at_most_a_batch_the_longest_unlooked_first(redis_url):
    """Thousands of experiments changed at once (a router's first look) are checked a batch
    per look, so no look parses every experiment's buckets on the decision loop."""
    seen: list[str] = []

    class Recording(Check):
        name, kinds = "recording", ("recording",)

        def run(self, observation: Observation) -> list[Alert]:
            seen.append(observation.experiment.id)
            return []

    async def work(h: Harness) -> None:
        h.monitor.batch = 2
        for exp_id in ("e1", "e2", "e3", "e4", "e5", "idle"):
            await h.store.create_experiment(parse_experiment(experiment(exp_id)))
            if exp_id != "idle":  # without a visitor there is nothing to check
                await h.assign(exp_id, {"a": 10, "b": 10})
        looks = []
        for _ in range(3):
            seen.clear()
            await h.look()
            looks.append(sorted(seen))
        assert [len(look) for look in looks] == [2, 2, 1]
        assert sorted(sum(looks, [])) == ["e1", "e2", "e3", "e4", "e5"]  # each once
        seen.clear()
        await h.look()
        assert seen == []  # nothing changed since
    scenario(redis_url, work, checks=[Recording()])
