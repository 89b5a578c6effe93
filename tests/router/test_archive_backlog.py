"""The archive's backlog: the batch rotation and the figures (pure), the store's read of the
archive group on a real redis-server, and the router's gauges around a real archiver run."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from croupier.router.archive import Archiver
from croupier.router.archive_backlog import backlog_figures, next_batch
from croupier.router.archive_files import entry_key
from croupier.router.settings import Settings
from croupier.router.store import Store
from tests.conftest import eventually, redis_and_router
from tests.scripts.archive_traffic import create, write_traffic

ROOT = Path(__file__).resolve().parents[2]


def test_batches_go_round_the_registry():
    ids = ["a", "b", "c", "d", "e"]
    chosen, start = next_batch(ids, 0, 2)
    assert (chosen, start) == (["a", "b"], 2)
    chosen, start = next_batch(ids, 4, 2)
    assert (chosen, start) == (["e", "a"], 1)
    assert next_batch(ids, 3, 10) == (ids, 0)
    assert next_batch(["a", "b"], 7, 2) == (["a", "b"], 0)  # the registry shrank under the cursor


def test_figures_sum_the_entries_and_age_the_oldest():
    held = {"a": (10, 1000.0), "b": (0, None), "c": (5, 990.0)}
    assert backlog_figures(held, now=1100.0) == (15, 110.0)
    assert backlog_figures({"b": (0, None)}, now=1100.0) == (0, 0.0)
    assert backlog_figures({}, now=1.0) == (0, 0.0)


def test_the_store_reads_unread_pending_and_unmet_streams(redis_url, tmp_path):
    async def work():
        store = Store(Settings(redis_url=redis_url, archive=True))
        try:
            await create(store, "quiet")  # in the registry, nothing logged
            total = await write_traffic(store, "alpha", 300, seed=1)
            first = (await store.events("alpha", 1))[0][0]
            unmet = await store.archive_lags(["alpha", "quiet"])  # the archiver has not met them
            archiver = Archiver(store, tmp_path, batch=100_000, flush_seconds=3600)
            assert await archiver.take_lease()
            await archiver.run_pass()  # read, held in its buffer: pending
            pending = await store.archive_lags(["alpha"])
            more = await write_traffic(store, "alpha", 50, seed=2)
            both = await store.archive_lags(["alpha"])
            await archiver.run_pass(final=True)
            done = await store.archive_lags(["alpha", "quiet"])
            return total, first, unmet, pending, both, done, total + more
        finally:
            await store.close()

    total, first, unmet, pending, both, done, length = asyncio.run(work())
    assert unmet == {"alpha": (total, first), "quiet": (0, "")}
    assert pending == {"alpha": (total, first)}
    assert both["alpha"][0] == length and both["alpha"][1] == first
    assert done == {"alpha": (0, ""), "quiet": (0, "")}


def gauges(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    figures = dict(re.findall(r"^(croupier_archive_\w+) (\S+)$", text, re.M))
    return (float(figures["croupier_archive_backlog_entries"]),
            float(figures["croupier_archive_oldest_unarchived_seconds"]))


def test_the_router_shows_the_backlog_until_the_archiver_runs(tmp_path):
    env = {"CROUPIER_ARCHIVE": "on", "CROUPIER_MONITOR_INTERVAL": "0.2"}
    with redis_and_router(tmp_path, env) as (url, redis_url):
        async def traffic() -> tuple[int, str]:
            store = Store(Settings(redis_url=redis_url))
            try:
                written = await write_traffic(store, "gamma", 400, seed=4)
                return written, (await store.events("gamma", 1))[0][0]
            finally:
                await store.close()

        total, first = asyncio.run(traffic())
        backlog, age = eventually(lambda: (g := gauges(url))[0] == total and g, timeout=20)
        assert 0 <= age <= time.time() - entry_key(first)[0] / 1000 + 1
        time.sleep(1.5)
        assert gauges(url)[1] >= age + 1  # the oldest entry ages while nobody archives it

        archived = subprocess.run(
            [sys.executable, "-m", "croupier.scripts.archive", "run", "--once", "--quiet", "--dir",
             str(tmp_path / "archive"), "--redis-url", redis_url], cwd=ROOT, capture_output=True, text=True,
            timeout=120, env={"PATH": "/usr/bin:/bin", "CROUPIER_ARCHIVE": "on"})
        assert archived.returncode == 0, archived.stdout + archived.stderr
        assert eventually(lambda: gauges(url) == (0.0, 0.0), timeout=20)
