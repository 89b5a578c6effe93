"""Scale-out benchmark: decisions per second with 1, 2 and 4 router processes.

    python -m bench.scale [--duration 4] [--rounds 3] [--connections 32] [--routers 1,2,4]   (make bench-scale)

Four routers and one redis-server start once; each point drives the first N
routers' ``/_croupier/decide`` directly with wrk (one wrk per router, the
connections split evenly), as new visitors with a browser User-Agent: a full
decision each, with its assignment queued and written to Redis in batches.
Between points the routers write what they queued, so no point pays for the
one before it. The points are measured in interleaved rounds (1, 2, 4, 1, 2, 4,
...) and each figure is the median of its rounds, so that a burst of other work
on a shared machine moves one round, not the ratios.

Cores (``taskset``): the load generator (every wrk) and redis-server run on
core 0; router i runs on core 1 for even i and core 0 for odd i. One router
therefore has a core to itself, and from two routers on they share the machine
with the load generator, which is what scaling out on one two-core host means.
Prints a table and one ratio line per point (decisions per second relative to
one router).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.load import parse_wrk, pin, settle
from croupier.scripts.processes import Process, free_port_block, require_binary, start_redis, start_router, stop_all
from croupier.scripts.simulate import BROWSER_UA

LOAD_CORE = "0"
TOKEN = "bench-admin-token"


def router_core(index: int) -> str:
    return "1" if index % 2 == 0 else "0"


def decide_script(path: Path) -> Path:
    """wrk Lua: the headers NGINX's auth_request sends, for a new visitor on the experiment's page."""
    path.write_text(f"""
wrk.method = "GET"
wrk.path = "/_croupier/decide"
wrk.headers["X-Original-URI"] = "/"
wrk.headers["X-Original-Host"] = "127.0.0.1"
wrk.headers["User-Agent"] = {json.dumps(BROWSER_UA)}
""")
    return path


def run_point(ports: list[int], script: Path, *, connections: int, duration: float) -> dict:
    """One wrk per router, all at once, all on the load core; their totals."""
    results: list[dict] = [{} for _ in ports]
    per_router = max(1, connections // len(ports))

    def drive(i: int, port: int) -> None:
        argv = ["taskset", "-c", LOAD_CORE, require_binary("wrk"), "-t1", f"-c{per_router}",
                f"-d{max(1, round(duration))}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        if out.returncode != 0:
            raise SystemExit(f"bench.scale: wrk failed: {out.stderr or out.stdout}")
        results[i] = parse_wrk(out.stdout)

    threads = [threading.Thread(target=drive, args=(i, port)) for i, port in enumerate(ports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"rps": sum(r["rps"] for r in results), "requests": sum(r["requests"] for r in results),
            "errors": sum(r["errors"] for r in results), "p99_ms": max(r["p99_ms"] for r in results)}


def median_run(runs: list[dict]) -> dict:
    """The round with the median rate; requests and errors summed over all rounds."""
    middle = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]
    return {**middle, "requests": sum(r["requests"] for r in runs), "errors": sum(r["errors"] for r in runs),
            "all_rps": [r["rps"] for r in runs]}


def wait_for_experiment(ports: list[int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    headers = {"X-Original-URI": "/", "User-Agent": BROWSER_UA}
    for port in ports:
        while httpx.get(f"http://127.0.0.1:{port}/_croupier/decide", headers=headers).headers.get(
                "x-croupier-experiment") != "bench":
            if time.monotonic() > deadline:
                raise SystemExit(f"bench.scale: the router on port {port} did not load the experiment")
            time.sleep(0.1)


def measure(counts: list[int], duration: float, connections: int, rounds: int) -> dict[int, dict]:
    run_dir = Path(tempfile.mkdtemp(prefix="croupier-bench-scale-"))
    processes: list[Process] = []
    try:
        base = free_port_block(1 + 2 * max(counts))
        redis_port, router_ports = base, [base + 1 + i for i in range(max(counts))]
        # decisions go where NGINX sends them: each router's decide listener
        decide_ports = [base + 1 + max(counts) + i for i in range(max(counts))]
        processes.append(start_redis(run_dir, redis_port))
        pin(processes[-1:], LOAD_CORE)
        env = {"CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_SECRET": "bench-" + "s" * 24,
               "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_LOG_LEVEL": "warning"}
        routers = [start_router(run_dir, port, {**env, "CROUPIER_DECIDE_PORT": str(decide)}, name=f"router-{i}")
                   for i, (port, decide) in enumerate(zip(router_ports, decide_ports))]
        processes += routers
        for i, router in enumerate(routers):
            pin([router], router_core(i))
        experiment = {"id": "bench", "path_prefix": "/", "control": "a",
                      "variants": [{"id": v, "upstream": f"127.0.0.1:{9000 + i}"} for i, v in enumerate("abc")]}
        httpx.post(f"http://127.0.0.1:{router_ports[0]}/api/v1/experiments", json=experiment,
                   headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
        wait_for_experiment(router_ports)
        script = decide_script(run_dir / "decide.lua")
        run_point(decide_ports[:1], script, connections=connections, duration=1)  # warm-up
        for port in router_ports:
            settle(port)
        runs: dict[int, list[dict]] = {n: [] for n in counts}
        for _ in range(rounds):
            for n in counts:
                runs[n].append(run_point(decide_ports[:n], script, connections=connections, duration=duration))
                for port in router_ports[:n]:
                    settle(port, timeout=10)
        return {n: median_run(r) for n, r in runs.items()}
    finally:
        stop_all(processes)
        shutil.rmtree(run_dir, ignore_errors=True)


def report(results: dict[int, dict], duration: float, connections: int, rounds: int) -> None:
    print(f"decide throughput, {os.cpu_count()} cores; wrk + redis on core {LOAD_CORE}, "
          f"router i on core {router_core(0)} (even i) or {router_core(1)} (odd i); "
          f"{connections} connections, {duration:g} s per point, median of {rounds} rounds")
    print(f"{'routers':>8} {'decisions/s':>12} {'p99 ms':>8} {'requests':>9} {'errors':>7}  rounds")
    for n, r in results.items():
        print(f"{n:>8} {r['rps']:>12.0f} {r['p99_ms']:>8.1f} {r['requests']:>9} {r['errors']:>7}  "
              + " ".join(f"{x:.0f}" for x in r["all_rps"]))
    one = results.get(1, next(iter(results.values())))["rps"] or 1.0
    for n, r in results.items():
        print(f"ratio {n} router{'s' if n > 1 else ''} / 1 router: {r['rps'] / one:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per point (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, medians reported (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="total wrk connections (default 32)")
    parser.add_argument("--routers", default="1,2,4", help="router counts to measure (default 1,2,4)")
    args = parser.parse_args(argv)
    try:
        counts = sorted({int(n) for n in args.routers.split(",")})
    except ValueError:
        parser.error(f"--routers {args.routers!r} must be numbers separated by commas")
    if counts[0] < 1 or args.duration < 1 or args.rounds < 1 or args.connections < max(counts):
        parser.error("--routers and --rounds must be at least 1, --duration at least 1 s, "
                     "and --connections at least the largest router count")
    if not shutil.which("taskset"):
        print("bench.scale: taskset is missing (util-linux)", file=sys.stderr)
        return 1
    results = measure(counts, args.duration, args.connections, args.rounds)
    report(results, args.duration, args.connections, args.rounds)
    return 1 if any(r["errors"] for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
