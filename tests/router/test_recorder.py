"""The assignment writer on a real redis-server: it outlives any failure of a write, and
every queued assignment is written exactly once when writing works again."""

from __future__ import annotations

import asyncio
import logging

import pytest

from croupier.router.experiments import parse_experiment
from croupier.router.metrics import Metrics
from croupier.router.recorder import BACKOFF_CAP, AssignmentRecorder, retry_delay
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, Store

EXPERIMENTS = ("left", "right")
SPLIT = (("a", 0.5), ("b", 0.5))


class FailingStore(Store):
    """A store whose first ``failures`` group writes raise RuntimeError (no Redis failure),
    before reaching Redis or after Redis applied them (``when``)."""

    def __init__(self, settings: Settings, failures: int, when: str) -> None:
        super().__init__(settings)
        self.failures, self.when = failures, when

    async def _write_assignments(self, experiment_id, writer, seq, group):
        if self.failures and self.when == "before":
            self.failures -= 1
            raise RuntimeError("a bug before the write")
        answer = await super()._write_assignments(experiment_id, writer, seq, group)
        if self.failures and self.when == "after":
            self.failures -= 1
            raise RuntimeError("a bug after the write")
        return answer


def record(i: int) -> AssignmentRecord:
    return AssignmentRecord(EXPERIMENTS[i % 2], "ab"[i // 2 % 2], f"visitor-{i}", "new", SPLIT, 1000.0 + i)


async def trials(store: Store) -> float:
    return sum(c.get("trials", 0) for stats in (await store.counters(EXPERIMENTS)).values() for c in stats.values())


def failures_counted(metrics: Metrics, error: str) -> float:
    return metrics.registry.get_sample_value("croupier_assignment_write_failures_total", {"error": error}) or 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_writer_outlives_failures_and_writes_every_assignment_once(redis_url, when, caplog):
    metrics = Metrics()

    async def main():
        store = FailingStore(Settings(redis_url=redis_url), failures=3, when=when)
        recorder = AssignmentRecorder(store, metrics, flush_interval=0.01, max_pending=10_000)
        try:
            for exp_id in EXPERIMENTS:
                await store.create_experiment(parse_experiment(
                    {"id": exp_id, "variants": [{"id": v, "upstream": "127.0.0.1:9101"} for v in "ab"]}))
            recorder.start()
            for i in range(60):  # queued while the writes fail, and after
                recorder.add(record(i))
                await asyncio.sleep(0.002)
            for _ in range(500):  # until Redis holds as many trials as were queued
                if await trials(store) >= 60:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)  # a few flushes more: nothing is written twice
            assert not recorder._task.done(), "the writer task stopped"
            assert not recorder.pending
            return {exp_id: ((await store.counters([exp_id]))[exp_id],
                             [f["visitor"] for _, f in await store.events(exp_id) if f["type"] == "assign"])
                    for exp_id in EXPERIMENTS}
        finally:
            await recorder.stop()
            await store.close()

    with caplog.at_level(logging.WARNING, logger="croupier.recorder"):
        written = asyncio.run(main())

    for exp_id, (counters, visitors) in written.items():
        mine = [record(i) for i in range(60) if record(i).experiment == exp_id]
        assert sorted(visitors) == sorted(r.visitor for r in mine), exp_id  # each once, none lost
        assert {v: c["trials"] for v, c in counters.items()} == {"a": 15, "b": 15}, exp_id
    failed = [r for r in caplog.records if "writing assignments failed" in r.getMessage()]
    assert failures_counted(metrics, "RuntimeError") == len(failed) >= 1  # each failed flush counted and logged
    assert failed and failed[0].exc_info and failed[0].exc_info[0] is RuntimeError  # logged with its traceback


def test_the_wait_doubles_with_each_failure_up_to_the_cap():
    assert [retry_delay(0.1, n) for n in range(3)] == [0.1, 0.2, 0.4]
    assert retry_delay(0.1, 10) == retry_delay(0.1, 1000) == BACKOFF_CAP
    assert retry_delay(5.0, 3) == 5.0  # an interval above the cap is never shortened
