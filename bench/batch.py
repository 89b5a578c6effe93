"""Batch assignment of a customer list: one million customers through one router and one Redis.

    python -m bench.batch [--customers 1000000] [--request 20000]   (make bench-batch)

A redis-server and one router process on free loopback ports; the router pinned to one
core, Redis and this client to the other (bench/load.py's cores). An experiment with three
variants; the list (``{"customer_id": "cust-0000001"}`` a line, no context) goes to
``POST /api/v1/batches/assign`` in requests of ``--request`` customers, two requests in
flight so that the client's sending and the router's work overlap. Then the same list
again. Reported: assignments per second of the first pass, and the time until the
recorder had counted every trial; Redis's used_memory growth per assigned customer, and
the part of it that is the customer records (the ``custs:`` hash buckets) and the event
stream (one entry per assignment, with every arm's probability); the second pass's new
trials and reasons.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import httpx
import redis

from bench.goals import print_goals
from bench.experiments import cpu_seconds
from bench.load import LOAD_CORE, SERVER_CORE, pin
from croupier.scripts.processes import Process, free_port, start_redis, start_router, stop_all

ADMIN_TOKEN = "bench-admin-token"
API_KEY = "bench-api-key-0123456789abcdef"
EXPERIMENT = "campaign"
RATE_GOAL = 20_000  # assignments per second
RECORD_BYTES_GOAL = 100  # the customer record's bytes per customer


def customer_lines(start: int, count: int) -> bytes:
    return "".join(f'{{"customer_id":"cust-{i:07d}"}}\n' for i in range(start, start + count)).encode()


class Pass:
    """One pass over the list: requests sent from two threads, answers counted by reason."""

    def __init__(self, url: str, customers: int, per_request: int, in_flight: int = 2) -> None:
        self.url, self.customers, self.per_request, self.in_flight = url, customers, per_request, in_flight
        self.reasons = {"new": 0, "returning": 0, "holdout": 0, "errors": 0}
        self.lock = threading.Lock()
        self.next = 0
        self.seconds = 0.0

    def _worker(self, failures: list[BaseException]) -> None:
        try:
            with httpx.Client(timeout=300, headers={"Authorization": f"Bearer {API_KEY}"}) as client:
                while True:
                    with self.lock:
                        start = self.next
                        self.next += self.per_request
                    if start >= self.customers:
                        return
                    body = customer_lines(start, min(self.per_request, self.customers - start))
                    response = client.post(f"{self.url}/api/v1/batches/assign", params={"experiment": EXPERIMENT,
                                                                                         "channel": "email"},
                                           content=body)
                    response.raise_for_status()
                    text = response.text
                    counts = {reason: text.count(f'"reason":"{reason}"') for reason in ("new", "returning", "holdout")}
                    counts["errors"] = text.count('"error":')
                    with self.lock:
                        for reason, n in counts.items():
                            self.reasons[reason] += n
        except BaseException as exc:
            failures.append(exc)

    def run(self) -> Pass:
        failures: list[BaseException] = []
        threads = [threading.Thread(target=self._worker, args=(failures,)) for _ in range(self.in_flight)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.seconds = time.monotonic() - started
        if failures:
            raise failures[0]
        return self


def trials(rds: redis.Redis) -> int:
    stats = rds.hgetall(f"croupier:{{{EXPERIMENT}}}:stats")
    return sum(int(v) for k, v in stats.items() if k.endswith(":trials"))


def wait_for_trials(rds: redis.Redis, expected: int, timeout: float) -> float:
    started = time.monotonic()
    while trials(rds) < expected and time.monotonic() - started < timeout:
        time.sleep(0.05)
    return time.monotonic() - started


def redis_cpu(rds: redis.Redis) -> float:
    info = rds.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def key_bytes(rds: redis.Redis, pattern: str) -> int:
    total = 0
    keys = list(rds.scan_iter(match=pattern, count=5000))
    for start in range(0, len(keys), 5000):
        pipe = rds.pipeline(transaction=False)
        for key in keys[start:start + 5000]:
            pipe.memory_usage(key, samples=0)
        total += sum(n or 0 for n in pipe.execute())
    return total


def measure(args: argparse.Namespace) -> dict:
    for tool in ("taskset", "pgrep"):
        if not shutil.which(tool):
            raise SystemExit(f"bench.batch: {tool} is missing (util-linux, procps)")
    run_dir = Path(tempfile.mkdtemp(prefix="croupier-bench-batch-"))
    processes: list[Process] = []
    affinity = os.sched_getaffinity(0)
    try:
        redis_port, router_port = free_port(), free_port()
        redis_process = start_redis(run_dir, redis_port)
        processes.append(redis_process)
        env = {"CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_SECRET": "bench-secret-" + "x" * 20,
               "CROUPIER_ADMIN_TOKEN": ADMIN_TOKEN, "CROUPIER_API_KEYS": f"default:{API_KEY}",
               "CROUPIER_LOG_LEVEL": "warning", "CROUPIER_REFRESH_INTERVAL": "0.2",
               "CROUPIER_STREAM_MAXLEN": str(max(args.customers, 100))}
        router = start_router(run_dir, router_port, env)
        processes.append(router)
        pin([router], SERVER_CORE)
        pin([redis_process], LOAD_CORE)
        os.sched_setaffinity(0, {int(LOAD_CORE)})
        url = f"http://127.0.0.1:{router_port}"
        admin = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
        admin.post("/experiments", json={"id": EXPERIMENT, "path_prefix": f"/{EXPERIMENT}/", "variants": [
            {"id": v, "upstream": f"127.0.0.1:{9100 + i}", "params": {"offer": f"offer {v}"}}
            for i, v in enumerate("abc")]}).raise_for_status()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/readyz").json().get("experiments", 0) < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # its first split
        rds = redis.Redis(port=redis_port, decode_responses=True)
        before = rds.info("memory")["used_memory"]
        cpu_before = cpu_seconds(router), redis_cpu(rds)
        first = Pass(url, args.customers, args.request).run()
        cpu = cpu_seconds(router) - cpu_before[0], redis_cpu(rds) - cpu_before[1]
        recorded_s = first.seconds + wait_for_trials(rds, args.customers, timeout=120)
        counted = trials(rds)
        after = rds.info("memory")["used_memory"]
        records = key_bytes(rds, f"croupier:{{{EXPERIMENT}}}:custs:*")
        stream = rds.memory_usage(f"croupier:{{{EXPERIMENT}}}:events", samples=0) or 0
        second = Pass(url, args.customers, args.request).run()
        time.sleep(1.0)  # anything the second pass queued would be written by now
        counted_again = trials(rds)
        return {"customers": args.customers, "first": first, "second": second, "recorded_s": recorded_s,
                "trials": counted, "new_trials": counted_again - counted, "memory": after - before,
                "records": records, "stream": stream, "router_cpu": cpu[0], "redis_cpu": cpu[1]}
    finally:
        os.sched_setaffinity(0, affinity)  # the caller (a test session) keeps its cores
        stop_all(processes)
        shutil.rmtree(run_dir, ignore_errors=True)


def report(f: dict) -> list[tuple[str, str, str, bool]]:
    n, first, second = f["customers"], f["first"], f["second"]
    rate = n / first.seconds
    print(f"\nbatch benchmark: {n:,} customers, {os.cpu_count()} cores; the router on core {SERVER_CORE}, "
          f"Redis and the client on core {LOAD_CORE}")
    print(f"  first pass   {first.seconds:8.2f} s  {rate:10,.0f} assignments/s  reasons {first.reasons}")
    print(f"               CPU: the router {f['router_cpu']:.2f} s ({n / max(f['router_cpu'], 1e-9):,.0f} assignments "
          f"per CPU-second), Redis {f['redis_cpu']:.2f} s ({n / max(f['redis_cpu'], 1e-9):,.0f} per CPU-second)")
    print(f"               every trial counted after {f['recorded_s']:.2f} s ({f['trials']:,} trials)")
    print(f"  second pass  {second.seconds:8.2f} s  {n / second.seconds:10,.0f} customers/s  reasons {second.reasons}")
    print(f"  Redis used_memory +{f['memory'] / 2**20:.1f} MiB: {f['memory'] / n:.0f} bytes per customer, of which "
          f"customer records {f['records'] / n:.0f} and the event stream {f['stream'] / n:.0f}")
    all_returning = second.reasons["returning"] == n and second.reasons["errors"] == 0
    return [
        ("assign-rate", f"{rate:,.0f} assignments/s", f">= {RATE_GOAL:,}/s", rate >= RATE_GOAL),
        ("memory-per-customer", f"{f['records'] / n:.0f} bytes of customer record per customer "
                                f"({f['memory'] / n:.0f} with its stream entry)",
         f"record <= {RECORD_BYTES_GOAL} bytes", f["records"] / n <= RECORD_BYTES_GOAL),
        ("same-list-again", f"{f['new_trials']} new trials, {second.reasons['returning']:,} of {n:,} returning",
         "0 new trials, all returning", f["new_trials"] == 0 and all_returning),
        ("every-trial-counted", f"{f['trials']:,} trials for {n:,} customers", "one each", f["trials"] == n),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--request", type=int, default=20_000, help="customers per request")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.request < 1:
        parser.error("--customers and --request must be at least 1")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench.batch: needs 2 cores (the router on one, Redis and the client on the other)")
    print_goals(report(measure(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
