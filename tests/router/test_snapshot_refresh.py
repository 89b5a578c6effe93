"""The snapshot refresh against a real redis-server: it costs what changed, and runs off the loop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from croupier.router.experiments import parse_experiment
from croupier.router.loop_lag import LoopLagProbe
from croupier.router.metrics import Metrics
from croupier.router import refresh
from croupier.router import store as store_module
from croupier.router.refresh import SnapshotKeeper
from croupier.router.settings import Settings
from croupier.router.store import BATCH, REGISTRY_VERSION, BeaconEvent, Store, _k


class CountingStore(Store):
    """Counts round trips (pipeline executions and MGETs) and the registry entries read."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.round_trips = 0
        self.docs_read: list[str] = []
        pipeline, mget = self.redis.pipeline, self.redis.mget

        def counted_pipeline(*args, **kwargs):
            pipe = pipeline(*args, **kwargs)
            execute = pipe.execute

            async def counted_execute(*a, **kw):
                self.round_trips += 1
                return await execute(*a, **kw)
            pipe.execute = counted_execute
            return pipe

        async def counted_mget(*args, **kwargs):
            self.round_trips += 1
            return await mget(*args, **kwargs)

        self.redis.pipeline, self.redis.mget = counted_pipeline, counted_mget

    async def experiment_docs(self, experiment_ids):
        ids = list(experiment_ids)
        self.docs_read.extend(ids)
        return await super().experiment_docs(ids)


def experiment(exp_id: str, **extra):
    return parse_experiment({"id": exp_id, "path_prefix": f"/{exp_id}/", "min_share": 0.0,
                             "variants": [{"id": v, "upstream": f"{v}:80"} for v in "abc"], **extra})


async def create(store: Store, count: int, prefix: str = "e", **extra) -> list[str]:
    ids = [f"{prefix}{i}" for i in range(count)]
    for start in range(0, count, 100):
        await asyncio.gather(*(store.create_experiment(experiment(i, **extra)) for i in ids[start:start + 100]))
    return ids


async def convert(store: Store, exp_id: str, visitor: str = "v1") -> None:
    assert await store.record_event(BeaconEvent(exp_id, "b", visitor, "convert", goal="signup"))


def run(redis_url, work, store_class=CountingStore):
    async def main():
        store = store_class(Settings(redis_url=redis_url))
        try:
            return await work(store)
        finally:
            await store.close()
    return asyncio.run(main())


def test_an_unchanged_experiment_keeps_its_allocation_and_a_changed_one_alone_is_recomputed(redis_url):
    async def work(store: CountingStore):
        await create(store, 3)
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        first = await keeper.refresh()
        assert keeper.recomputed == 3
        await keeper.refresh()
        assert keeper.recomputed == 0 and keeper.current.arms == first.arms
        assert all(keeper.current.arms[e] is first.arms[e] for e in first.arms)  # the very same objects
        await convert(store, "e1")
        await keeper.refresh()
        assert keeper.recomputed == 1
        assert keeper.current.arms["e1"] is not first.arms["e1"]
        assert keeper.current.arms["e0"] is first.arms["e0"] and keeper.current.arms["e2"] is first.arms["e2"]
        assert keeper.current.counters["e1"]["b"]["conv:signup"] == 1.0
    run(redis_url, work)


def test_a_registry_change_reloads_only_the_experiment_that_changed(redis_url):
    async def work(store: CountingStore):
        await create(store, 5)
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        first = await keeper.refresh()
        assert sorted(store.docs_read) == [f"e{i}" for i in range(5)]  # the first refresh reads all
        store.docs_read.clear()
        await keeper.refresh()
        assert store.docs_read == []  # nothing changed: no entry read
        await store.update_experiment("e3", lambda e: parse_experiment({**e.to_dict(), "name": "renamed"}))
        await keeper.refresh()
        assert store.docs_read == ["e3"] and keeper.recomputed == 1
        snapshot = keeper.current
        assert snapshot.experiments["e3"].name == "renamed"
        assert all(snapshot.experiments[e] is first.experiments[e] for e in ("e0", "e1", "e2", "e4"))
        assert all(snapshot.arms[e] is first.arms[e] for e in ("e0", "e1", "e2", "e4"))
        store.docs_read.clear()
        await store.delete_experiment("e0")
        await store.create_experiment(experiment("new"))
        await keeper.refresh()
        assert sorted(store.docs_read) == ["e0", "new"]
        assert "e0" not in keeper.current.experiments and "e0" not in keeper.current.arms
        assert keeper.current.match("", "/new/x").id == "new" and keeper.current.match("", "/e0/") is None
    run(redis_url, work)


def test_a_log_that_cannot_cover_the_last_version_reloads_the_whole_registry(redis_url, monkeypatch):
    async def work(store: CountingStore):
        await create(store, 4)
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        first = await keeper.refresh()
        # a version bumped without the log (a router of an older release): everything read again,
        # yet unchanged entries keep their records and allocations
        await store.redis.incr(REGISTRY_VERSION)
        store.docs_read.clear()
        await keeper.refresh()
        assert sorted(store.docs_read) == [f"e{i}" for i in range(4)] and keeper.recomputed == 0
        assert all(keeper.current.arms[e] is first.arms[e] for e in first.arms)
        # a log trimmed past the router's version
        monkeypatch.setattr(store_module, "CHANGE_LOG_KEEP", 2)
        version, epoch = keeper.current.registry_version, (await store.registry_changes(-1)).epoch
        for i in range(3):
            await store.update_experiment(f"e{i}", lambda e: parse_experiment({**e.to_dict(), "name": "x"}))
        assert (await store.registry_changes(version, epoch)).changed is None
        assert (await store.registry_changes(version + 2, epoch)).changed == {"e2"}
        store.docs_read.clear()
        await keeper.refresh()
        assert len(store.docs_read) == 4 and keeper.recomputed == 3
        assert {e.name for e in keeper.current.experiments.values()} == {"x", ""}
    run(redis_url, work)


def test_round_trips_per_refresh_do_not_grow_with_the_experiments_in_a_batch(redis_url):
    async def trips(store: CountingStore, count: int, prefix: str) -> tuple[int, int, int]:
        await create(store, count, prefix, segment_keys=["device"])
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        store.round_trips = 0
        await keeper.refresh()
        full = store.round_trips
        store.round_trips = 0
        await keeper.refresh()
        idle = store.round_trips
        for i in range(0, count, 7):  # counters of a seventh of them change
            await convert(store, f"{prefix}{i}")
        store.round_trips = 0
        await keeper.refresh()
        return full, idle, store.round_trips

    async def work(store: CountingStore):
        few = await trips(store, 8, "f")
        await store.redis.flushall()
        many = await trips(store, BATCH - 10, "m")
        assert few == many, (few, many)
        assert many[1] <= 6  # registry check, revisions, the sweep's slice, the (empty) extra reads
    run(redis_url, work)


def test_the_computation_runs_off_the_loop_and_the_loop_stays_responsive(redis_url, monkeypatch):
    threads = set()
    compute_many = refresh.compute_many

    def recording(*args, **kwargs):
        threads.add(threading.current_thread().name)
        return compute_many(*args, **kwargs)
    monkeypatch.setattr(refresh, "compute_many", recording)

    async def work(store: CountingStore):
        await create(store, 2000)
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        lags = []
        done = False

        async def probe():
            loop = asyncio.get_running_loop()
            while not done:
                slept = loop.time()
                await asyncio.sleep(0.005)
                lags.append(loop.time() - slept - 0.005)
        task = asyncio.create_task(probe())
        started = time.perf_counter()
        await keeper.refresh()  # every experiment computed
        took = time.perf_counter() - started
        done = True
        await task
        assert len(keeper.current.arms) == 2000
        assert threads and threading.main_thread().name not in threads
        # the loop kept waking its other tasks: its longest stall is a part of the refresh, where
        # computing on the loop would stall it for all of it (half: a loaded 2-core machine has
        # shown a 0.31 s stall in a 1.04 s refresh, the worker holding the interpreter lock)
        assert len(lags) > 10 and max(lags) < max(0.5 * took, 0.05), (max(lags), took)
    run(redis_url, work)


def test_a_counters_write_that_did_not_bump_the_revision_is_found_by_the_sweep(redis_url, monkeypatch):
    monkeypatch.setattr(refresh, "SWEEP", 2)

    async def work(store: CountingStore):
        await create(store, 6)
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        await keeper.refresh()
        await store.redis.hset(_k("e4", "stats"), "b:trials", 7)  # not through the scripts
        for _ in range(3):  # six experiments, two a refresh
            await keeper.refresh()
        assert keeper.current.counters["e4"]["b"]["trials"] == 7.0
    run(redis_url, work)


def test_metrics_exist_and_move(redis_url):
    async def work(store: CountingStore):
        await create(store, 3)
        await store.update_experiment("e2", lambda e: parse_experiment({**e.to_dict(), "status": "paused"}))
        metrics = Metrics()
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0), metrics=metrics)
        sample = metrics.registry.get_sample_value
        assert sample("croupier_snapshot_age_seconds") == float("inf")  # nothing loaded yet
        await keeper.refresh()
        assert 0 <= sample("croupier_snapshot_age_seconds") < 5
        assert sample("croupier_snapshot_refresh_seconds_count") == 1
        assert sample("croupier_snapshot_recomputed_experiments") == 2
        assert sample("croupier_experiments", {"status": "running"}) == 2
        assert sample("croupier_experiments", {"status": "paused"}) == 1
        await asyncio.sleep(0.05)
        aged = sample("croupier_snapshot_age_seconds")
        await keeper.refresh()
        assert sample("croupier_snapshot_refresh_seconds_count") == 2
        assert sample("croupier_snapshot_recomputed_experiments") == 0
        assert sample("croupier_snapshot_age_seconds") < aged
        assert b"croupier_event_loop_lag_seconds_bucket" in metrics.render()

        probe = LoopLagProbe(metrics.event_loop_lag.observe, interval=0.01)
        probe.start()
        await asyncio.sleep(0.03)
        time.sleep(0.1)  # hold the loop, as a long computation on it would
        await asyncio.sleep(0.03)
        await probe.stop()
        assert sample("croupier_event_loop_lag_seconds_count") >= 2
        assert sample("croupier_event_loop_lag_seconds_sum") >= 0.08
    run(redis_url, work)


def test_a_registry_written_anew_with_the_same_version_is_reloaded(redis_url):
    """A Redis that lost its data, the registry created again: the version may be the one a
    router last saw, the epoch is not."""
    async def work(store: CountingStore):
        await store.create_experiment(experiment("e0"))
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        await keeper.refresh()
        await store.redis.flushall()
        await store.create_experiment(experiment("e0", name="again"))
        assert (await store.registry_changes(-1)).version == keeper.current.registry_version
        await keeper.refresh()
        assert keeper.current.experiments["e0"].name == "again"
    run(redis_url, work)


@pytest.mark.parametrize("policy, params", [("sliding_window_thompson", {"window": 3600}),
                                            ("linear_thompson", {"dimensions": 32})])
def test_policies_reading_more_than_the_counters_are_refreshed_too(redis_url, policy, params):
    async def work(store: CountingStore):
        await store.create_experiment(experiment("x", policy=policy, policy_params=params))
        await create(store, 2)
        keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
        first = await keeper.refresh()
        assert "x" in first.arms and (policy != "linear_thompson" or "x" in first.contextual)
        await keeper.refresh()
        assert keeper.recomputed == 0
        await convert(store, "x")
        await keeper.refresh()
        assert keeper.recomputed == 1 and keeper.current.arms["x"] is not first.arms["x"]
    run(redis_url, work)
