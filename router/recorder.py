"""Assignments recorded off the hot path: queued in memory, written in pipelined batches.

The decide path only appends to a deque. A background task flushes it every
``flush_interval``; while Redis is away the queue keeps up to ``max_pending``
records (the oldest are dropped and counted) and is written once Redis returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from router.metrics import Metrics
from router.store import AssignmentRecord, Store, StoreUnavailable

log = logging.getLogger("croupier.recorder")

BATCH = 2000  # records per pipeline, so one flush never holds Redis for long


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
        failing = False
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
                failing = False
            except StoreUnavailable as exc:
                if not failing:
                    log.warning("writing assignments failed, keeping %d queued: %s", len(self.pending), exc)
                failing = True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-recorder")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and write what is queued, so a graceful shutdown loses nothing."""
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except (StoreUnavailable, asyncio.TimeoutError):
            log.error("shutdown: %d assignments could not be written", len(self.pending))
