"""The assignment ledger on a real redis-server: a batch whose write failed, before or
after Redis applied it, and which the recorder hands back, is applied exactly once."""

from __future__ import annotations

import asyncio

from redis.exceptions import ConnectionError

from croupier.router.experiments import parse_experiment
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, Store

SPLIT = (("a", 0.5), ("b", 0.5))


def records(experiment: str, n: int, first: int = 0) -> list[AssignmentRecord]:
    return [AssignmentRecord(experiment, "ab"[i % 2], f"visitor-{i}", "new", SPLIT, 1000.0 + i)
            for i in range(first, first + n)]


class LossyStore(Store):
    """A store whose writes fail as planned: ``lost`` experiments' first write is applied by
    Redis but its reply never arrives; ``refused`` experiments' first write never reaches Redis."""

    def __init__(self, settings: Settings, lost: set[str] = frozenset(), refused: set[str] = frozenset()) -> None:
        super().__init__(settings)
        self.lost, self.refused = set(lost), set(refused)
        self.applied: list[tuple[str, int, int]] = []  # (experiment, seq, script's answer)

    async def _write_assignments(self, experiment_id, writer, seq, group):
        if experiment_id in self.refused:
            self.refused.discard(experiment_id)
            raise ConnectionError(f"{experiment_id}: connection refused")
        answer = await super()._write_assignments(experiment_id, writer, seq, group)
        self.applied.append((experiment_id, seq, answer))
        if experiment_id in self.lost:
            self.lost.discard(experiment_id)
            raise ConnectionError(f"{experiment_id}: connection closed before the reply")
        return answer


def run(redis_url: str, scenario, **failures):
    async def main():
        store = LossyStore(Settings(redis_url=redis_url), **failures)
        try:
            for exp_id in ("left", "right"):
                await store.create_experiment(parse_experiment(
                    {"id": exp_id, "variants": [{"id": v, "upstream": "127.0.0.1:9101"} for v in "ab"]}))
            await scenario(store)
            counts = {}
            for exp_id in ("left", "right"):
                stats = (await store.counters([exp_id]))[exp_id]
                visitors = [f["visitor"] for _, f in await store.events(exp_id) if f["type"] == "assign"]
                counts[exp_id] = (sum(v.get("trials", 0) for v in stats.values()), visitors)
            return store.applied, counts
        finally:
            await store.close()
    return asyncio.run(main())


def assert_written_once(counts, expected: dict[str, list[AssignmentRecord]]) -> None:
    for exp_id, batch in expected.items():
        trials, visitors = counts[exp_id]
        assert trials == len(batch), exp_id
        assert sorted(visitors) == sorted(r.visitor for r in batch), exp_id


def test_a_group_sent_again_with_the_same_number_is_not_applied_again(redis_url):
    batch = records("left", 5)

    async def scenario(store):
        assert await store._write_assignments("left", "router-1", 7, batch) == 5
        assert await store._write_assignments("left", "router-1", 7, batch) == -1  # the same write again
        assert await store._write_assignments("left", "router-1", 6, batch) == -1  # an older one
        # another router's numbers are its own
        assert await store._write_assignments("left", "router-2", 1, records("left", 2, first=5)) == 2

    _, counts = run(redis_url, scenario)
    assert_written_once(counts, {"left": records("left", 7), "right": []})


def test_a_batch_whose_reply_was_lost_is_applied_once_when_it_comes_back(redis_url):
    batch = records("left", 10)

    async def scenario(store):
        try:
            await store.record_assignments(batch)
        except ConnectionError:
            pass
        else:
            raise AssertionError("the lost reply did not fail the write")
        await store.record_assignments(batch)  # the recorder hands the batch back as it was

    applied, counts = run(redis_url, scenario, lost={"left"})
    assert [(exp_id, answer) for exp_id, _, answer in applied] == [("left", 10), ("left", -1)]
    assert applied[0][1] == applied[1][1]  # sent again with its number: Redis saw it was a repeat
    assert_written_once(counts, {"left": batch, "right": []})


def test_a_batch_that_failed_part_way_comes_back_with_newer_records_and_each_is_applied_once(redis_url):
    # "left": applied, reply lost; "right": never reached Redis; then the batch comes back
    # behind newer records of both experiments, as the recorder's queue hands it back
    first = records("left", 4) + records("right", 3)
    newer = records("left", 2, first=4) + records("right", 2, first=3)

    async def scenario(store):
        try:
            await store.record_assignments(first)
        except ConnectionError:
            pass
        else:
            raise AssertionError("the failures did not fail the write")
        await store.record_assignments(first + newer)

    applied, counts = run(redis_url, scenario, lost={"left"}, refused={"right"})
    assert_written_once(counts, {"left": records("left", 6), "right": records("right", 5)})
    assert sorted(answer for exp_id, _, answer in applied if exp_id == "left") == [-1, 2, 4]
