"""Assignments recorded off the hot path: queued in memory, written in pipelined batches.

The decide path only appends to a deque. A background task flushes it every
``flush_interval``; while Redis is away the queue keeps up to ``max_pending``
records (the oldest are dropped and counted) and is written once Redis returns.
The task never stops on a failed write, whatever the error: a failed batch goes
back to the queue and is tried again with backoff; the store's ledger applies a
batch sent again only once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from croupier.router.metrics import Metrics
from croupier.router.store import AssignmentRecord, Store

log = logging.getLogger("croupier.recorder")

BATCH = 2000  # records per pipeline, so one flush never holds Redis for long
BACKOFF_CAP = 2.0  # seconds between tries at most: assignments land soon after Redis returns


class AssignmentRecorder:
    def __init__(self, store: Store, metrics: Metrics, flush_interval: float, max_pending: int) -> None:
        self.store = store
        self.metrics = metrics
        self.flush_interval = flush_interval
        self.pending: deque[AssignmentRecord] = deque()
        self.max_pending = max_pending
        self._task: asyncio.Task | None = None

    def add(self, record: AssignmentRecord) -> None:
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.metrics.assignments_dropped.inc()
        self.pending.append(record)

    async def flush(self) -> int:
        """Write everything queued; on failure the batch goes back to the front of the queue."""
        written = 0
        while self.pending:
            batch = [self.pending.popleft() for _ in range(min(BATCH, len(self.pending)))]
            try:
                await self.store.record_assignments(batch)
            except BaseException:
                self.pending.extendleft(reversed(batch))
                raise
            written += len(batch)
        return written

    async def _run(self) -> None:
        failures = 0  # in a row
        last: type[BaseException] | None = None
        while True:
            await asyncio.sleep(retry_delay(self.flush_interval, failures))
            try:
                await self.flush()
            except Exception as exc:
                failures += 1
                self.metrics.assignment_write_failures.labels(type(exc).__name__).inc()
                # the whole traceback once a streak (and when the error changes), not every try
                log.warning("writing assignments failed (%d in a row), keeping %d queued, next try in %.2f s: %r",
                            failures, len(self.pending), retry_delay(self.flush_interval, failures), exc,
                            exc_info=exc if type(exc) is not last else None)
                last = type(exc)
            else:
                if failures:
                    log.info("writing assignments resumed after %d failed tries", failures)
                failures, last = 0, None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-recorder")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and write what is queued, so a graceful shutdown loses nothing."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except Exception:
            log.exception("shutdown: %d assignments could not be written", len(self.pending))


def retry_delay(flush_interval: float, failures: int) -> float:
    """The wait before the next flush: the interval, doubled for each failure in a row, capped."""
    return min(max(flush_interval, BACKOFF_CAP), flush_interval * 2 ** min(failures, 30))
