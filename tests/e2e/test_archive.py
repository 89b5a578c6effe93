"""The archiver as a process: killed with SIGKILL mid-run and started again, it loses and
duplicates no event, and the streams are trimmed only past what it archived; croupier-ope
reads what the streams no longer hold from the archive."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from croupier.router.archive_files import archived_files, entry_key
from croupier.router.history_source import iter_history
from croupier.router.settings import Settings
from croupier.router.store import Store
from croupier.scripts.ope import main as ope_main
from tests.conftest import eventually
from tests.scripts.archive_traffic import write_traffic

ROOT = Path(__file__).resolve().parents[2]


def archiver(redis_url: str, root: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "CROUPIER_ARCHIVE": "on", "CROUPIER_ARCHIVE_KEEP_SECONDS": "0"}
    argv = [sys.executable, "-m", "croupier.scripts.archive", "run", "--dir", str(root), "--redis-url", redis_url,
            "--batch", "200", "--flush-seconds", "0", "--interval", "0.1", "--lease-seconds", "1", *extra]
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def ids_in_files(root: Path, experiment: str) -> list[str]:
    return [entry_id for _, _, path in archived_files(root, experiment)
            for entry_id in pq.read_table(path, columns=["entry_id"]).column("entry_id").to_pylist()]


async def stream_ids(store: Store, experiment: str) -> list[str]:
    return [entry_id async for entry_id, _ in store.iter_events(experiment, batch=5000)]


def test_killed_mid_run_and_restarted_loses_and_duplicates_nothing(redis_url, tmp_path):
    settings = Settings(redis_url=redis_url, archive=True)
    root = tmp_path / "archive"

    async def before() -> dict[str, list[str]]:
        store = Store(settings)
        try:
            for seed, experiment in enumerate(("alpha", "beta")):
                await write_traffic(store, experiment, 20_000, seed=seed)
            return {e: await stream_ids(store, e) for e in ("alpha", "beta")}
        finally:
            await store.close()

    written = asyncio.run(before())
    process = archiver(redis_url, root)
    try:
        eventually(lambda: len(archived_files(root, "alpha")) + len(archived_files(root, "beta")) >= 6, timeout=60,
                   interval=0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    async def between() -> None:
        store = Store(settings)
        try:
            for experiment, ids in written.items():
                archived = set(ids_in_files(root, experiment))
                left = set(await stream_ids(store, experiment))
                assert archived | left >= set(ids), "an entry was trimmed before it was archived"
                assert not set(ids) <= archived, "the archiver finished before it was killed: not mid-run"
            # more traffic, and an experiment the restarted archiver has not seen
            await write_traffic(store, "alpha", 1000, seed=10)
            await write_traffic(store, "gamma", 1000, seed=11)
            for experiment in ("alpha", "gamma"):
                written[experiment] = sorted(set(written.get(experiment, [])) | set(await stream_ids(store, experiment)),
                                             key=entry_key)
        finally:
            await store.close()

    asyncio.run(between())
    again = archiver(redis_url, root, "--once")
    output, _ = again.communicate(timeout=120)
    assert again.returncode == 0, output
    assert "re-claimed" in output

    async def after() -> dict[str, tuple[list[str], list[str]]]:
        store = Store(settings)
        try:
            return {e: (await stream_ids(store, e), [i async for i, _ in iter_history(store, e, root)])
                    for e in written}
        finally:
            await store.close()

    for experiment, (left, history) in asyncio.run(after()).items():
        archived = ids_in_files(root, experiment)
        assert len(archived) == len(set(archived)), f"{experiment}: an entry archived twice"
        assert archived == written[experiment], f"{experiment}: archive differs from what was written"
        assert history == written[experiment]
        assert len(left) < len(written[experiment]) // 10  # trimmed, all of it archived
        assert set(left) <= set(archived)


def test_ope_reads_what_the_stream_no_longer_holds(redis_url, tmp_path):
    root = tmp_path / "archive"
    settings = Settings(redis_url=redis_url, archive=True, archive_keep_seconds=0)

    async def traffic() -> int:
        store = Store(settings)
        try:
            await write_traffic(store, "demo", 3000, seed=5)
            return len(await stream_ids(store, "demo"))
        finally:
            await store.close()

    total = asyncio.run(traffic())
    process = archiver(redis_url, root, "--once", "--batch", "1000")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output

    async def left() -> int:
        store = Store(settings)
        try:
            return await store.event_count("demo")
        finally:
            await store.close()

    assert asyncio.run(left()) < total // 10

    def ope(*argv: str) -> dict:
        out = io.StringIO()
        code = ope_main(["--quiet", "--experiment", "demo", "--redis-url", redis_url, "--json", "--seed", "0",
                         "--policy", "fixed:*", *argv], out=out)
        assert code in (0, 1), out.getvalue()
        return json.loads(out.getvalue()) if code == 0 else {}

    doc = ope("--archive", str(root))
    assert doc["join"]["assignments"] == 3000 and doc["join"]["unattributed"] == 0
    for arm, rate in {"a": 0.05, "b": 0.15, "c": 0.08}.items():
        est = doc["policies"][f"fixed:{arm}"]["dr"]
        assert est["ci_low"] - 0.02 <= rate <= est["ci_high"] + 0.02
    stream_only = ope("--no-archive")
    assert not stream_only or stream_only["join"]["assignments"] < 300


def test_sigterm_writes_what_it_holds_and_gives_the_lease_up(redis_url, tmp_path):
    root = tmp_path / "archive"
    settings = Settings(redis_url=redis_url, archive=True)

    async def call(method: str, *args):
        store = Store(settings)
        try:
            if method == "traffic":
                await write_traffic(store, "demo", 1000, seed=8)
                return await stream_ids(store, "demo")
            return await getattr(store, method)(*args)
        finally:
            await store.close()

    written = asyncio.run(call("traffic"))
    process = archiver(redis_url, root, "--flush-seconds", "3600", "--batch", "100000")  # reads all, writes none yet
    try:
        eventually(lambda: asyncio.run(call("archive_backlog", "demo"))[:2] == (0, len(written)), timeout=30)
        assert archived_files(root, "demo") == []
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, output
    assert ids_in_files(root, "demo") == written
    assert asyncio.run(call("archive_backlog", "demo"))[:2] == (0, 0)
    assert asyncio.run(call("hold_archive_lease", "another", 1000))  # given up, not left to lapse
