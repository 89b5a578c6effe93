"""The archiver: every experiment's event stream to Parquet, through a consumer group.

One archiver at a time holds a lease in Redis (others wait for it to lapse: a
standby). For each experiment in the registry (new ones are found at the next
pass) it reads the stream through the consumer group ``archive``, buffers the
entries, writes them to the archive (``router/archive_files.py``) and only then
acknowledges them: at least once. Entries read and never acknowledged (the
archiver died between reading and writing, or between writing and
acknowledging) are claimed back with XAUTOCLAIM when the next archiver first
meets the experiment. Before writing, entries at or below the highest id the
files already hold are dropped: an entry re-read after a crash is never written
twice. The lease makes that mark safe: nobody else writes the experiment's files.

With ``CROUPIER_ARCHIVE`` on, the archiver also trims each stream, with XTRIM
MINID, below the lower of the highest archived id and the start of the window
kept for stream readers (``CROUPIER_ARCHIVE_KEEP_SECONDS``): nothing is trimmed
before it is archived, unless the archiver stays away so long that the routers'
safety cap (``CROUPIER_ARCHIVE_MAXLEN``) cuts in.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from croupier.router.archive_files import (archived_files, archived_mark, entry_key, remove_temporary,
                                           write_entries)
from croupier.router.store import Store

Entries = list[tuple[str, dict[str, str]]]


class LeaseLost(RuntimeError):
    """Another archiver holds the lease now; this one must stop writing."""


def default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class PassReport:
    """What one pass did."""

    experiments: int = 0
    read: int = 0  # entries taken from the streams, re-claimed ones included
    claimed: int = 0  # of which re-claimed from a consumer that never acknowledged them
    skipped: int = 0  # already in the archive (re-read after a crash): acknowledged, not written again
    written: int = 0
    files: list[Path] = field(default_factory=list)
    trimmed: int = 0
    lost: int = 0  # pending entries the stream dropped before they were archived


@dataclass
class _Buffer:
    entries: Entries = field(default_factory=list)
    since: float = 0.0  # when its first entry was read


class Archiver:
    def __init__(self, store: Store, root: Path, *, batch: int = 50_000, read_count: int = 5000,
                 flush_seconds: float = 300.0, lease_seconds: float = 15.0, consumer: str = "",
                 on_file: Callable[[str, int, Path], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.root = Path(root)
        self.batch = batch
        self.read_count = read_count
        self.flush_seconds = flush_seconds
        self.lease_ms = int(lease_seconds * 1000)
        self.consumer = consumer or default_consumer()
        self.token = secrets.token_hex(8)
        self.on_file = on_file
        self.clock = clock
        self.marks: dict[str, str] = {}  # experiment → highest id archived
        self.trimmed_below: dict[str, str] = {}
        self.buffers: dict[str, _Buffer] = {}
        self._renewed = 0.0

    # -- the lease ---------------------------------------------------------

    async def take_lease(self) -> bool:
        self._renewed = self.clock()
        return await self.store.hold_archive_lease(self.token, self.lease_ms)

    async def _renew(self, *, now: bool = False) -> None:
        """Renew the lease when a third of it has passed (``now``: whatever has), or stop."""
        if not now and self.clock() - self._renewed < self.lease_ms / 3000:
            return
        self._renewed = self.clock()
        if not await self.store.hold_archive_lease(self.token, self.lease_ms):
            self.buffers.clear()  # unacknowledged: the archiver that holds the lease claims them
            raise LeaseLost("another archiver took the archive lease")

    async def release(self) -> None:
        await self.store.release_archive_lease(self.token)

    # -- a pass --------------------------------------------------------------

    async def run_pass(self, *, final: bool = False) -> PassReport:
        """Read every experiment's new entries; write what is due (everything when ``final``)."""
        report = PassReport()
        if not self.marks:
            remove_temporary(self.root)
        for experiment in await self.store.experiment_ids():
            await self._renew()
            report.experiments += 1
            await self._archive(experiment, report, final)
        return report

    async def flush_all(self) -> PassReport:
        """Write every buffered entry now (before a graceful stop)."""
        report = PassReport()
        for experiment in list(self.buffers):
            await self._flush(experiment, report)
        return report

    async def _archive(self, experiment: str, report: PassReport, final: bool) -> None:
        if experiment not in self.marks:
            await self.store.ensure_archive_group(experiment)
            self.marks[experiment] = archived_mark(self.root, experiment)
            await self._claim(experiment, report)
        buffer = self.buffers.setdefault(experiment, _Buffer())
        while True:
            want = min(self.read_count, self.batch - len(buffer.entries))
            got = await self.store.read_for_archive(experiment, self.consumer, want) if want > 0 else []
            await self._take(experiment, got, report)
            if len(buffer.entries) >= self.batch:
                await self._flush(experiment, report)
            elif len(got) < want:
                break
        if buffer.entries and (final or self.clock() - buffer.since >= self.flush_seconds):
            await self._flush(experiment, report)
        await self._trim(experiment, report)

    async def _claim(self, experiment: str, report: PassReport) -> None:
        """Make every entry read but not acknowledged by an earlier archiver ours, oldest first."""
        buffer = self.buffers.setdefault(experiment, _Buffer())
        start = "0-0"
        while True:
            start, entries, deleted = await self.store.claim_for_archive(experiment, self.consumer, start,
                                                                         self.read_count)
            report.claimed += len(entries)
            report.lost += len(deleted)
            await self._take(experiment, entries, report)
            if len(buffer.entries) >= self.batch:
                await self._flush(experiment, report)
            if start == "0-0":
                break
        await self.store.prune_archive_consumers(experiment, self.consumer)

    async def _take(self, experiment: str, entries: Entries, report: PassReport) -> None:
        if not entries:
            return
        report.read += len(entries)
        mark = self.marks.get(experiment, "")
        fresh = entries
        if mark:
            cut = entry_key(mark)
            fresh = [e for e in entries if entry_key(e[0]) > cut]
            skipped = [entry_id for entry_id, _ in entries if entry_key(entry_id) <= cut]
            if skipped:  # written before a crash, never acknowledged: acknowledged now, not written again
                report.skipped += len(skipped)
                await self.store.ack_archived(experiment, skipped)
        buffer = self.buffers.setdefault(experiment, _Buffer())
        if fresh and not buffer.entries:
            buffer.since = self.clock()
        buffer.entries.extend(fresh)

    async def _flush(self, experiment: str, report: PassReport) -> None:
        buffer = self.buffers.get(experiment)
        if buffer is None or not buffer.entries:
            return
        await self._renew(now=True)  # the files are what the lease protects
        entries = sorted(buffer.entries, key=lambda e: entry_key(e[0]))
        files = write_entries(self.root, experiment, entries)
        self.marks[experiment] = entries[-1][0]
        for path in files:
            if self.on_file:
                self.on_file(experiment, len(entries), path)
        report.files.extend(files)
        report.written += len(entries)
        ids = [entry_id for entry_id, _ in entries]
        for start in range(0, len(ids), 10_000):  # bounded commands: one XACK of 50,000 ids is a 1 MB request
            await self.store.ack_archived(experiment, ids[start:start + 10_000])
        buffer.entries = []

    async def _trim(self, experiment: str, report: PassReport) -> None:
        if not self.store.settings.archive:
            return  # the routers cap the streams themselves (CROUPIER_STREAM_MAXLEN)
        mark = self.marks.get(experiment, "")
        if not mark:
            return
        window = f"{int((self.clock() - self.store.settings.archive_keep_seconds) * 1000)}-0"
        below = min(mark, window, key=entry_key)
        if below == self.trimmed_below.get(experiment):
            return
        while True:  # approximate trimming removes at most 100 nodes a call, keeping Redis responsive
            trimmed = await self.store.trim_archived(experiment, below)
            report.trimmed += trimmed
            if not trimmed:
                break
        self.trimmed_below[experiment] = below


@dataclass(frozen=True)
class ExperimentStatus:
    experiment: str
    archived_to: str  # highest id in the files ('' none)
    files: int
    unread: int  # stream entries the archive group has not read
    pending: int  # read, not acknowledged
    stream_first: str  # the stream's oldest entry ('' empty)

    @property
    def backlog(self) -> int:
        return self.unread + self.pending

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "archived_to": self.archived_to, "files": self.files,
                "unread": self.unread, "pending": self.pending, "backlog": self.backlog,
                "stream_first": self.stream_first}


async def archive_status(store: Store, root: Path) -> list[ExperimentStatus]:
    """Per experiment of the registry: how far the archive goes and what waits in the stream."""
    out = []
    for experiment in await store.experiment_ids():
        unread, pending, first = await store.archive_backlog(experiment)
        files = archived_files(root, experiment)
        mark = max((last for _, last, _ in files), key=entry_key, default="")
        out.append(ExperimentStatus(experiment, mark, len(files), unread, pending, first))
    return out
