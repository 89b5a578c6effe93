"""The archiver in-process on a real redis-server: a crash between writing and acknowledging,
the lease, trimming, the files' layout and the status command."""

from __future__ import annotations

import asyncio
import io
import json
import os

import pytest

from croupier.router.archive import Archiver, LeaseLost, archive_status
from croupier.router.archive_files import (archived_files, archived_mark, entry_day, entry_key, read_entries,
                                           remove_temporary, write_entries)
from croupier.router.history_source import iter_history
from croupier.router.settings import Settings
from croupier.router.store import Store
from croupier.scripts.archive import main
from tests.scripts.archive_traffic import write_traffic

DAY = 86_400_000


class Crash(Exception):
    pass


class CrashingStore(Store):
    """Dies after the first file is written, before acknowledging it: as a SIGKILL there would."""

    async def ack_archived(self, experiment_id, entry_ids):
        raise Crash


def ids_in_files(root, experiment) -> list[str]:
    """Every id in the experiment's files, duplicates included."""
    import pyarrow.parquet as pq
    return [entry_id for _, _, path in archived_files(root, experiment)
            for entry_id in pq.read_table(path, columns=["entry_id"]).column("entry_id").to_pylist()]


def run(coro):
    return asyncio.run(coro)


def test_written_but_not_acknowledged_is_not_written_again(redis_url, tmp_path):
    settings = Settings(redis_url=redis_url, archive=True, archive_keep_seconds=3600)

    async def work():
        store = Store(settings)
        crashing = CrashingStore(settings)
        try:
            total = await write_traffic(store, "alpha", 1500, seed=1)
            first = Archiver(crashing, tmp_path, batch=400, flush_seconds=0, lease_seconds=1)
            assert await first.take_lease()
            with pytest.raises(Crash):
                await first.run_pass(final=True)
            assert len(archived_files(tmp_path, "alpha")) == 1  # written, never acknowledged
            unread, pending, _ = await store.archive_backlog("alpha")
            assert pending == 400 and unread == total - 400
            second = Archiver(store, tmp_path, batch=400, flush_seconds=0, lease_seconds=1)
            assert not await second.take_lease()  # the first still holds it
            await first.release()
            assert await second.take_lease()
            report = await second.run_pass(final=True)
            assert report.claimed == 400 and report.skipped == 400 and report.written == total - 400
            assert await store.archive_backlog("alpha") == (0, 0, (await store.events("alpha", 1))[0][0])
            history = [entry_id async for entry_id, _ in iter_history(store, "alpha", tmp_path)]
            stream = [entry_id async for entry_id, _ in store.iter_events("alpha")]
            return total, ids_in_files(tmp_path, "alpha"), history, stream
        finally:
            await crashing.close()
            await store.close()

    total, archived, history, stream = run(work())
    assert len(archived) == len(set(archived)) == total
    assert archived == stream  # nothing trimmed yet: the hour's window is kept
    assert history == stream


def test_trimming_stops_at_the_archive_and_needs_the_archive_on(redis_url, tmp_path):
    async def work(archive: bool, experiment: str):
        store = Store(Settings(redis_url=redis_url, archive=archive, archive_keep_seconds=0))
        try:
            total = await write_traffic(store, experiment, 2000, seed=2)
            archiver = Archiver(store, tmp_path, batch=600, flush_seconds=3600)
            assert await archiver.take_lease()
            await archiver.run_pass(final=False)  # three full files; the rest waits for a fourth
            left = [entry_id async for entry_id, _ in store.iter_events(experiment)]
            mark = archived_mark(tmp_path, experiment)
            await archiver.release()
            return total, left, mark, archiver.buffers[experiment].entries
        finally:
            await store.close()

    total, left, mark, buffered = run(work(True, "trimmed"))
    assert buffered and len(buffered) == total - 1800
    assert len(left) < total - 1000  # trimmed ...
    assert entry_key(left[0]) <= entry_key(mark) and {e for e, _ in buffered} <= set(left)  # ... never past the archive
    total, left, _, _ = run(work(False, "untrimmed"))
    assert len(left) == total


def test_files_by_day_read_back_in_order_once(tmp_path):
    base = 1_700_000_000_000 - 1_700_000_000_000 % DAY + DAY - 2
    entries = [(f"{base + i}-{j}", {"type": "assign", "visitor": f"v{i}{j}", **({"goal": "x"} if j else {})})
               for i in range(4) for j in range(2)]
    written = write_entries(tmp_path, "demo", entries)
    assert [p.parent.name for p in written] == [f"day={entry_day(entries[0][0])}", f"day={entry_day(entries[-1][0])}"]
    assert written[0].name == f"part-{entries[0][0]}_{entries[3][0]}.parquet"
    assert archived_mark(tmp_path, "demo") == entries[-1][0]
    assert list(read_entries(tmp_path, "demo")) == entries
    assert list(read_entries(tmp_path, "demo", after=entries[4][0])) == entries[5:]
    write_entries(tmp_path, "demo", entries[5:])  # a copied file: its ids come once
    assert [e for e, _ in read_entries(tmp_path, "demo")] == [e for e, _ in entries]
    stray = written[0].parent / f".{written[0].name}.tmp"
    stray.write_bytes(b"half")
    assert remove_temporary(tmp_path) == 1 and not stray.exists()


def test_status_and_run_once_commands(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CROUPIER_ARCHIVE", "on")

    async def traffic():
        store = Store(Settings(redis_url=redis_url))
        try:
            return await write_traffic(store, "beta", 700, seed=3)
        finally:
            await store.close()

    total = run(traffic())
    out = io.StringIO()
    assert main(["status", "--dir", str(tmp_path), "--redis-url", redis_url, "--json"], out=out) == 0
    [row] = json.loads(out.getvalue())["experiments"]
    assert row["experiment"] == "beta" and row["backlog"] == total and row["files"] == 0
    assert main(["run", "--once", "--quiet", "--dir", str(tmp_path), "--redis-url", redis_url]) == 0
    out = io.StringIO()
    assert main(["status", "--dir", str(tmp_path), "--redis-url", redis_url], out=out) == 0
    line = next(line for line in out.getvalue().splitlines() if line.startswith("beta"))
    assert line.split()[2:4] == ["1", "0"]  # one file, no backlog
    with pytest.raises(SystemExit):
        main(["run", "--batch", "0"])


def test_status_lists_each_registry_experiment(redis_url, tmp_path):
    async def work():
        store = Store(Settings(redis_url=redis_url))
        try:
            await write_traffic(store, "one", 10, seed=4)
            await write_traffic(store, "two", 10, seed=5)
            return [s.experiment for s in await archive_status(store, tmp_path)]
        finally:
            await store.close()

    assert run(work()) == ["one", "two"]


def test_an_archiver_that_lost_the_lease_writes_nothing_more(redis_url, tmp_path):
    async def work():
        store = Store(Settings(redis_url=redis_url, archive=True))
        try:
            await write_traffic(store, "delta", 500, seed=6)
            first = Archiver(store, tmp_path, batch=100, flush_seconds=0)
            assert await first.take_lease()
            await store.release_archive_lease(first.token)  # as if it lapsed while the first was stalled ...
            second = Archiver(store, tmp_path, batch=100, flush_seconds=0)
            assert await second.take_lease()  # ... and a standby took it
            with pytest.raises(LeaseLost):
                await first.run_pass(final=True)
            assert archived_files(tmp_path, "delta") == []
            report = await second.run_pass(final=True)  # the holder archives everything
            return report.written, len(await store.events("delta", 10_000))
        finally:
            await store.close()

    written, total = run(work())
    assert written == total


def test_the_heartbeat_says_whether_the_archiver_is_alive(redis_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CROUPIER_ARCHIVE", "on")
    heartbeat = tmp_path / "alive"
    probe = ["alive", "--heartbeat", str(heartbeat), "--max-age", "60"]
    assert main(probe, out=io.StringIO()) == 1  # never touched: not alive
    assert main(["run", "--once", "--quiet", "--dir", str(tmp_path / "archive"), "--redis-url", redis_url,
                 "--heartbeat", str(heartbeat)]) == 0
    out = io.StringIO()
    assert main(probe, out=out) == 0 and "heartbeat" in out.getvalue()
    stale = heartbeat.stat().st_mtime - 120
    os.utime(heartbeat, (stale, stale))  # a stuck archiver stops touching it
    assert main(probe, out=io.StringIO()) == 1
    with pytest.raises(SystemExit):
        main(["alive", "--heartbeat", str(heartbeat), "--max-age", "0"])
