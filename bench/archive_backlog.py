"""bench-archive-backlog: what a look at the archive's backlog costs the loop that answers decisions.

A redis-server of its own holds 500 event streams of 20 assignments (a third met by the
archive group, some of those with entries pending, the rest unmet). The monitor's backlog look
(router/archive_backlog.py) reads them, as it does every CROUPIER_MONITOR_INTERVAL on the
router holding the alerts lease, while a task beside it sleeps a millisecond at a time and
records how late it wakes: the wait a decision arriving then would have had. Side by side:
the streams in one round trip, and in the look's chunks of ARCHIVE_READ_CHUNK.

    python -m bench.archive_backlog [--streams 500] [--looks 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import croupier.router.archive_backlog as archive_backlog
from bench.goals import print_goals
from croupier.router.metrics import Metrics
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, Store
from croupier.scripts.processes import free_port, start_redis

ENTRIES = 20  # assignments a stream holds


async def fill(url: str, streams: int) -> list[str]:
    store = Store(Settings(redis_url=url, archive=True))
    try:
        ids = [f"bench-{i}" for i in range(streams)]
        split = (("a", 0.5), ("b", 0.5))
        for start in range(0, len(ids), 20):  # a script call per experiment, at once: a few at a time
            await store.record_assignments([AssignmentRecord(e, "a", f"v{n}", "new", split, time.time())
                                            for e in ids[start:start + 20] for n in range(ENTRIES)])
        for i, exp_id in enumerate(ids[::3]):
            await store.ensure_archive_group(exp_id)
            if i % 3 == 0:
                await store.read_for_archive(exp_id, "bench", 5)  # read, not acknowledged: pending
        return ids
    finally:
        await store.close()


async def measure(url: str, ids: list[str], looks: int, chunk: int) -> tuple[float, float, int]:
    """Medians over the looks of the longest stall and of the look's time (ms), and the backlog."""
    archive_backlog.ARCHIVE_READ_CHUNK = chunk
    store = Store(Settings(redis_url=url, archive=True))
    watch = archive_backlog.ArchiveBacklog(store, Metrics(), batch=len(ids))
    stalls: list[float] = []

    async def probe() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - start - 0.001)

    task = asyncio.create_task(probe())
    worst, took = [], []
    try:
        await watch.look(ids)  # connections made, code warm
        for _ in range(looks):
            await asyncio.sleep(0.02)
            stalls.clear()
            start = time.perf_counter()
            await watch.look(ids)
            took.append(time.perf_counter() - start)
            await asyncio.sleep(0.002)  # the stall the look's last reply caused is recorded
            worst.append(max(stalls))
        return statistics.median(worst) * 1000, statistics.median(took) * 1000, \
            sum(n for n, _ in watch.held.values())
    finally:
        task.cancel()
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=archive_backlog.ARCHIVE_LOOK_BATCH)
    parser.add_argument("--looks", type=int, default=20)
    args = parser.parse_args(argv)
    chunk = archive_backlog.ARCHIVE_READ_CHUNK
    with tempfile.TemporaryDirectory() as run_dir:
        port = free_port()
        redis = start_redis(Path(run_dir), port)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            ids = asyncio.run(fill(url, args.streams))
            whole = asyncio.run(measure(url, ids, args.looks, args.streams))
            chunked = asyncio.run(measure(url, ids, args.looks, chunk))
        finally:
            redis.stop()
    print(f"{args.streams} streams, {args.looks} looks; medians over the looks")
    print(f"{'round trips of':<16} {'longest stall ms':>17} {'look ms':>8} {'backlog':>8}")
    for label, (stall, took, backlog) in ((f"{args.streams}", whole), (f"{chunk}", chunked)):
        print(f"{label:<16} {stall:>17.1f} {took:>8.1f} {backlog:>8}")
    ratio = chunked[0] / whole[0]
    expected = args.streams * ENTRIES
    print_goals([
        ("archive-look-stall", f"longest stall in chunks / in one round trip = {ratio:.2f}", "below 0.5",
         ratio < 0.5),
        ("archive-look-backlog", f"backlog {chunked[2]} of {expected} entries", "every entry counted",
         chunked[2] == whole[2] == expected),
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
