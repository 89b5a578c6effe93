"""The archive's backlog as metrics: what the event streams hold that the archiver has not archived.

With ``CROUPIER_ARCHIVE`` on, the monitor (``router/monitor.py``) calls ``look`` at each of
its looks on the router holding the alerts lease. A look reads the archive group's figures
of at most ``batch`` streams (``Store.archive_lags``: two pipelined round trips), the ones
read longest ago first, and keeps each experiment's last figures: the gauges are their sum
(``croupier_archive_backlog_entries``) and the age of the oldest entry among them
(``croupier_archive_oldest_unarchived_seconds``). An experiment's age keeps growing between
its reads (its oldest entry's time is kept, not its age), so a stalled archiver shows even
while a large registry is read a batch at a time. Another router's gauges are 0, so a
``max`` over the routers is the figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from croupier.router.archive_files import entry_key
from croupier.router.metrics import Metrics
from croupier.router.store import Store

# Streams a look reads at most. At 10,000 experiments and the default 10 s between looks, each
# stream is read every 200 s: a held figure is at most that old, so an archive that caught up
# stops showing well within CroupierArchiveFallingBehind's 30 minutes.
ARCHIVE_LOOK_BATCH = 500
# Streams a round trip reads: the replies are parsed on the loop that answers decisions, and 500
# at once held it for about 30 ms; 100 keep each stretch to a few milliseconds.
ARCHIVE_READ_CHUNK = 100


def next_batch(ids: Sequence[str], start: int, batch: int) -> tuple[list[str], int]:
    """The ``batch`` ids from ``start`` on, wrapping around, and where the next batch starts."""
    if len(ids) <= batch:
        return list(ids), 0
    start %= len(ids)
    chosen = list(ids[start:start + batch])
    chosen += ids[:batch - len(chosen)]
    return chosen, (start + batch) % len(ids)


def backlog_figures(held: dict[str, tuple[int, float | None]], now: float) -> tuple[int, float]:
    """The entries not archived, over every experiment, and the oldest one's age (0: none)."""
    total = sum(entries for entries, _ in held.values())
    oldest = min((since for _, since in held.values() if since is not None), default=None)
    return total, (max(0.0, now - oldest) if oldest is not None else 0.0)


class ArchiveBacklog:
    def __init__(self, store: Store, metrics: Metrics, batch: int = ARCHIVE_LOOK_BATCH,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.metrics = metrics
        self.batch = batch
        self.clock = clock
        self.held: dict[str, tuple[int, float | None]] = {}  # experiment → (entries, oldest entry's time)
        self._start = 0

    async def look(self, experiment_ids: Sequence[str]) -> None:
        """Read the next batch of the registry's streams and set the gauges."""
        if self._start == 0:  # once a round of the registry: experiments removed since are dropped
            known = set(experiment_ids)
            self.held = {e: figures for e, figures in self.held.items() if e in known}
        chosen, self._start = next_batch(experiment_ids, self._start, self.batch)
        for start in range(0, len(chosen), ARCHIVE_READ_CHUNK):
            found = await self.store.archive_lags(chosen[start:start + ARCHIVE_READ_CHUNK])
            for exp_id, (entries, oldest) in found.items():
                self.held[exp_id] = (entries, entry_key(oldest)[0] / 1000 if oldest else None)
        total, age = backlog_figures(self.held, self.clock())
        self.metrics.archive_backlog.set(total)
        self.metrics.archive_oldest.set(age)

    def forget(self) -> None:
        """This router gave the lease up: another one reports the backlog now."""
        self.held.clear()
        self.metrics.archive_backlog.set(0)
        self.metrics.archive_oldest.set(0)
