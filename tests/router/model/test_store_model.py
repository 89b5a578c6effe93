"""Saving and loading models on a real redis-server, and the snapshot reading them only when they change."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from croupier.router.experiments import parse_experiment
from croupier.router.hybrid import decode, encode
from croupier.router.settings import Settings
from croupier.router.snapshot import SnapshotKeeper
from croupier.router.store import MODEL_MAX_BYTES, Store
from tests.router.model.test_hybrid import plain_model


def run(coro):
    return asyncio.run(coro)


async def with_store(redis_url, work):
    store = Store(Settings(redis_url=redis_url))
    try:
        return await work(store)
    finally:
        await store.close()


def doc():
    return encode(plain_model(3000), goal="signup", trained_at=12.0)


def test_save_load_version_and_delete(redis_url):
    async def work(store: Store):
        assert await store.load_model("demo") is None
        assert await store.model_versions(["demo", "other"]) == {"demo": 0, "other": 0}
        first = await store.save_model("demo", doc())
        second = await store.save_model("demo", doc())
        assert (first, second) == (1, 2)
        version, loaded = await store.load_model("demo")
        assert version == 2 and decode(loaded, version).model.arms == ("a", "b", "c")
        assert await store.model_versions(["demo", "other"]) == {"demo": 2, "other": 0}
        assert await store.delete_model("demo")
        assert await store.load_model("demo") is None
        assert await store.save_model("demo", doc()) == 3  # a version is never handed out twice
        keys = await store.redis.keys("*")
        # the current model, and every version's record and (for rollback) document
        assert sorted(keys) == ["croupier:{demo}:model", "croupier:{demo}:modeldocs", "croupier:{demo}:modelversions"]
        with pytest.raises(ValueError, match="^model: .* bytes"):
            await store.save_model("demo", {"pad": "x" * MODEL_MAX_BYTES})
    run(with_store(redis_url, work))


class CountingStore(Store):
    loads = 0

    async def load_model(self, experiment_id):
        self.loads += 1
        return await super().load_model(experiment_id)


def test_the_snapshot_reads_a_model_only_when_its_version_changes(redis_url):
    async def work():
        store = CountingStore(Settings(redis_url=redis_url))
        try:
            exp = {"id": "demo", "variants": [{"id": v, "upstream": f"v{v}:80"} for v in "abcd"],
                   "min_share": 0.0}
            await store.create_experiment(parse_experiment(exp))
            keeper = SnapshotKeeper(store, 0.1, np.random.default_rng(0))
            await store.save_model("demo", doc())
            await keeper.refresh()
            assert keeper.models == {} and store.loads == 0  # model_weight 0: never read
            await store.update_experiment("demo", lambda e: parse_experiment({**e.to_dict(), "model_weight": 0.5}))
            flat = keeper.current.arms["demo"].probabilities[3]
            for _ in range(3):
                await keeper.refresh()
            assert store.loads == 1 and keeper.models["demo"].version == 1
            assert abs(keeper.current.arms["demo"].probabilities[3] - flat) > 0.1  # the model moved the split
            await store.save_model("demo", doc())
            await keeper.refresh()
            assert store.loads == 2 and keeper.models["demo"].version == 2
            await store.redis.hset("croupier:{demo}:model", mapping={"doc": "{\"format\": 9}", "version": 9})
            await keeper.refresh()
            await keeper.refresh()
            # an unreadable model: the bandit alone, and it is not read again until a new version
            assert store.loads == 3 and "demo" not in keeper.models and "demo" in keeper.current.arms
        finally:
            await store.close()
    run(work())
