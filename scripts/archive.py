"""croupier-archive: write every experiment's event stream to Parquet files, and say how far it got.

    croupier-archive run                      keep archiving (stop with Ctrl-C or SIGTERM)
    croupier-archive run --once               archive what the streams hold now, then exit (cron, tests)
    croupier-archive status [--json]          per experiment: archived up to which id, backlog, files
    croupier-archive alive --heartbeat FILE   exit 0 when a running archiver touched FILE lately (probes)

The archive is DIR/experiment=<id>/day=<YYYY-MM-DD>/part-<first id>_<last id>.parquet
(``--dir``, default CROUPIER_ARCHIVE_DIR, else the local stack's run/archive). Every
entry is written once, at least once: see docs/archive.md for what happens when the
archiver is killed or away, and DuckDB queries over the files. Set CROUPIER_ARCHIVE=on
here and on the routers so the streams are trimmed only past what was archived.

Exit codes: 0 done, 1 Redis unavailable, another archiver took the lease, pyarrow
missing, or (alive) the heartbeat is stale; 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from croupier.router.settings import Settings, SettingsError
from croupier.scripts.ope import default_archive_dir, default_redis_url
from croupier.scripts.progress import Progress


def settings_for(redis_url: str | None) -> Settings:
    """The CROUPIER_* settings, with the Redis of ``--redis-url`` or the local stack's."""
    env = dict(os.environ)
    env["CROUPIER_REDIS_URL"] = redis_url or default_redis_url()
    if not env.get("CROUPIER_SECRET"):
        env["CROUPIER_SECRET"] = secrets.token_urlsafe(32)  # the archiver signs nothing: no warning about it
    return Settings.from_env(env)


def beat(heartbeat: Path | None) -> None:
    """Touch the heartbeat file: this archiver is making progress (``alive`` reads its time)."""
    if heartbeat is not None:
        heartbeat.touch()


def alive(heartbeat: Path, max_age: float) -> tuple[bool, str]:
    """Did a running archiver touch ``heartbeat`` within ``max_age`` seconds? And what to say."""
    try:
        age = time.time() - heartbeat.stat().st_mtime
    except OSError as exc:
        return False, f"no heartbeat: {exc}"
    if age > max_age:
        return False, f"heartbeat {heartbeat} is {age:.0f} s old (more than --max-age {max_age:g} s): stuck?"
    return True, f"heartbeat {age:.0f} s old"


async def run(settings: Settings, root: Path, progress: Progress, *, once: bool, interval: float, batch: int,
              flush_seconds: float, lease_seconds: float, consumer: str, heartbeat: Path | None = None) -> int:
    from croupier.router.archive import Archiver, LeaseLost
    from croupier.router.store import Store

    store = Store(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def on_file(experiment: str, entries: int, path: Path) -> None:
        progress.note(f"{experiment}: {path.relative_to(root)}")
        beat(heartbeat)  # a long first pass over a large backlog writes files all along

    archiver = Archiver(store, root, batch=batch, flush_seconds=flush_seconds, lease_seconds=lease_seconds,
                        consumer=consumer, on_file=on_file)
    try:
        if not settings.archive:
            progress.note("CROUPIER_ARCHIVE is off: the routers cap the streams at CROUPIER_STREAM_MAXLEN "
                          "whatever was archived, and this archiver trims nothing (docs/archive.md)")
        progress.step(f"archiving to {root} as consumer {archiver.consumer}")
        waited = False
        beat(heartbeat)
        while not await archiver.take_lease():
            beat(heartbeat)  # a standby is alive too
            if not waited:
                progress.note("another archiver holds the lease: waiting for it to lapse")
                waited = True
            if await _sleep(stop, lease_seconds / 3):
                return 0
        total = 0
        while True:
            report = await archiver.run_pass(final=once)
            beat(heartbeat)
            total += report.written
            if report.read or report.trimmed:
                progress.note(f"pass: {report.experiments} experiments, read {report.read} "
                              f"(re-claimed {report.claimed}, already archived {report.skipped}), wrote "
                              f"{report.written} in {len(report.files)} files, trimmed {report.trimmed}")
            if report.lost:
                progress.note(f"{report.lost} pending entries were trimmed from their streams before they "
                              "were archived (the archiver was away past CROUPIER_ARCHIVE_MAXLEN)")
            if once or stop.is_set() or await _sleep(stop, interval):
                break
        total += (await archiver.flush_all()).written  # asked to stop: what it holds is written first
        progress.step(f"archived {total} entries")
        await archiver.release()
        return 0
    except LeaseLost as exc:
        print(f"croupier-archive: {exc}; stopping (its entries stay pending for the lease holder)", file=sys.stderr)
        return 1
    finally:
        await store.close()


async def _sleep(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless asked to stop; True when asked."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


async def status(settings: Settings, root: Path) -> list[dict]:
    from croupier.router.archive import archive_status
    from croupier.router.store import Store

    store = Store(settings)
    try:
        return [s.to_dict() for s in await archive_status(store, root)]
    finally:
        await store.close()


def print_status(rows: list[dict], root: Path, out: TextIO) -> None:
    print(f"archive {root}", file=out)
    print(f"{'experiment':<24} {'archived up to':<22} {'files':>6} {'backlog':>9} {'pending':>8}", file=out)
    for row in rows:
        print(f"{row['experiment']:<24} {row['archived_to'] or '-':<22} {row['files']:>6} {row['backlog']:>9} "
              f"{row['pending']:>8}", file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="croupier-archive", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_cmd = commands.add_parser("run", help="archive the event streams")
    status_cmd = commands.add_parser("status", help="how far the archive goes, and the backlog")
    alive_cmd = commands.add_parser("alive", help="exit 0 when the archiver touched its heartbeat file lately")
    alive_cmd.add_argument("--heartbeat", type=Path, required=True, help="the file run --heartbeat touches")
    alive_cmd.add_argument("--max-age", type=float, default=300.0,
                           help="seconds since its last touch that still count as alive (default 300)")
    for sub in (run_cmd, status_cmd):
        sub.add_argument("--dir", type=Path, default=None,
                         help="the archive's directory (default: CROUPIER_ARCHIVE_DIR, else run/archive)")
        sub.add_argument("--redis-url", default=None, help="default: CROUPIER_REDIS_URL, else the local stack's")
    run_cmd.add_argument("--once", action="store_true", help="archive what is there now, then exit")
    run_cmd.add_argument("--interval", type=float, default=5.0, help="seconds between passes (default 5)")
    run_cmd.add_argument("--batch", type=int, default=50_000, help="entries per file at most (default 50000)")
    run_cmd.add_argument("--flush-seconds", type=float, default=300.0,
                         help="seconds entries may wait for a full file before a smaller one is written (default 300)")
    run_cmd.add_argument("--lease-seconds", type=float, default=15.0,
                         help="the lease's length: how long a standby waits after the archiver died (default 15)")
    run_cmd.add_argument("--consumer", default="", help="consumer name in the group (default: host-pid)")
    run_cmd.add_argument("--quiet", action="store_true", help="no progress on standard error")
    run_cmd.add_argument("--heartbeat", type=Path, default=None,
                         help="a file touched after every pass, file and lease attempt (for a liveness probe)")
    status_cmd.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "alive" and not args.max_age > 0:
        parser.error(f"--max-age must be positive, got {args.max_age}")
    if args.command == "run":
        if not args.interval > 0:
            parser.error(f"--interval must be positive, got {args.interval}")
        if args.batch < 1:
            parser.error(f"--batch must be at least 1, got {args.batch}")
        if args.flush_seconds < 0:
            parser.error(f"--flush-seconds must be at least 0, got {args.flush_seconds}")
        if not 1 <= args.lease_seconds <= 600:
            parser.error(f"--lease-seconds must be in [1, 600], got {args.lease_seconds}")
    return args


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    if args.command == "alive":
        ok, message = alive(args.heartbeat, args.max_age)
        print(f"croupier-archive: {message}", file=out if ok else sys.stderr)
        return 0 if ok else 1
    try:
        settings = settings_for(args.redis_url)
        root = args.dir or default_archive_dir(settings)
        if args.command == "run":
            if importlib.util.find_spec("pyarrow") is None:
                print("croupier-archive: needs pyarrow: pip install 'croupier[archive]'", file=sys.stderr)
                return 1
            root.mkdir(parents=True, exist_ok=True)
            return asyncio.run(run(settings, root, Progress(quiet=args.quiet), once=args.once,
                                   interval=args.interval, batch=args.batch, flush_seconds=args.flush_seconds,
                                   lease_seconds=args.lease_seconds, consumer=args.consumer,
                                   heartbeat=args.heartbeat))
        rows = asyncio.run(status(settings, root))
    except (SettingsError, OSError) as exc:
        print(f"croupier-archive: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from croupier.router.store import StoreUnavailable
        if isinstance(exc, StoreUnavailable):
            print(f"croupier-archive: Redis is unavailable: {exc}", file=sys.stderr)
            return 1
        raise
    if args.json:
        json.dump({"archive": str(root), "experiments": rows}, out, indent=2)
        out.write("\n")
    else:
        print_status(rows, root, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
