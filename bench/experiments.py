"""Many experiments: does one router (and its NGINX) cost the same with 10,000 running experiments as with one?

    python -m bench.experiments [--sizes 1,1000,10000] [--duration 4]   (make bench-experiments)

One run, one stack per size (its own Redis, router and Croupier NGINX; the variant page is
served by an NGINX they share), all built first and all running during the measurement.
The same new-visitor traffic (no cookie, through NGINX, wrk on its own core as in
bench/load.py) then goes to one experiment at "/", the broadest prefix (every other
experiment is tried before it, in NGINX's route lookup and in the router's), in rounds that
alternate between the sizes: a shared machine's drift falls on every size alike. Meanwhile
a trickle of visitors and conversions (``--trickle`` per second per stack, loopback) goes
to 10% of each stack's other experiments, so their counters keep changing. Each of those
has three variants and a path prefix of its own, and is written straight into the
registry through the router's store (the admin API would take minutes for 10,000).

Per size: req/s, p50 and p99 under load, fallbacks to control during the load (NGINX's
fallback log), the router's snapshot refresh time (p50/p99 of its histogram), snapshot age
p99 (its gauge sampled under load) and event-loop lag p99, the router's CPU with only the
trickle running, Redis's used_memory, and the NGINX configuration (size, ``nginx -t``,
reload until new workers answer; bench/nginx_scale.py). Metrics the router does not
export yet print "n/a". Then Redis memory per idle experiment and per experiment with
traffic, and one ``goal`` line per goal, the largest size against the smallest.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.load import (LOAD_CORE, SERVER_CORE, median_result, pin, render_baselines, run_wrk, settle,
                        wrk_script, Result)
from bench.nginx_scale import experiment, reload_seconds, write_rendered
from croupier.nginx.render import Options, pass_key_path, write_pass_key
from croupier.router.experiments import parse_experiment
from croupier.router.settings import Settings
from croupier.router.store import Store
from croupier.scripts.processes import Process, free_port, proc_stat, start_nginx, start_redis, start_router, stop_all
from croupier.scripts.simulate import BROWSER_UA

MEASURED = "bench"  # the experiment under load, at "/"
TRICKLED_SHARE = 0.10
CREATE_CONCURRENCY = 64
ADMIN_TOKEN = "bench-admin-token"


@dataclass
class SizeFigures:
    experiments: int
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    fallbacks: int = 0  # pages served control during the load
    trickle_fallbacks: int = 0  # trickle visitors without the bandit's cookie, over the whole size
    refresh_p50_s: float | None = None
    refresh_p99_s: float | None = None
    age_p99_s: float | None = None
    loop_lag_p99_s: float | None = None
    idle_cpu: float = 0.0  # share of one core, trickle only
    redis_bytes: int = 0
    config_bytes: int = 0
    nginx_check_s: float = 0.0
    reload_s: float = 0.0
    create_s: float = 0.0
    pickup_s: float = 0.0  # from the registry write to the router deciding for the newest experiment


@dataclass
class Memory:
    idle_per_experiment: float = 0.0  # used_memory growth per experiment created
    idle_keys: float = 0.0  # MEMORY USAGE of an idle experiment's keys
    traffic_keys: float = 0.0  # ... of an experiment that had trickle traffic
    traffic_visitors: float = 0.0  # the trickle's visitors per such experiment
    measured_keys: int = 0  # the experiment under load: its keys
    measured_trials: int = 0  # ... and the assignments recorded for it


# -- the router's metrics ----------------------------------------------------

def scrape(router_port: int) -> dict[str, list]:
    """The router's /metrics: metric name → samples ``(name, labels, value)``."""
    text = httpx.get(f"http://127.0.0.1:{router_port}/metrics", timeout=5).text
    return {f.name: [(s.name, s.labels, s.value) for s in f.samples] for f in text_string_to_metric_families(text)}


def buckets(metrics: dict, name: str) -> dict[float, float] | None:
    """A histogram's cumulative bucket counts by upper bound; None when the router has no such metric."""
    if name not in metrics:
        return None
    return {float(labels["le"]): value for sample, labels, value in metrics[name] if sample.endswith("_bucket")}


def quantile(before: dict | None, after: dict | None, q: float) -> float | None:
    """The ``q`` quantile (a bucket's upper bound) of what a histogram observed between two scrapes."""
    if after is None:
        return None
    delta = {le: after[le] - (before or {}).get(le, 0.0) for le in sorted(after)}
    total = delta.get(float("inf"), 0.0)
    if total <= 0:
        return None
    return next(le for le, count in delta.items() if count >= q * total)


def gauge(metrics: dict, name: str) -> float | None:
    samples = metrics.get(name)
    return samples[0][2] if samples else None


class AgeSampler:
    """Samples the snapshot-age gauge while a load runs; p99 of the samples."""

    def __init__(self, router_port: int, every: float = 0.2) -> None:
        self.router_port, self.every = router_port, every
        self.samples: list[float] = []
        self.missing = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                age = gauge(scrape(self.router_port), "croupier_snapshot_age_seconds")
            except httpx.HTTPError:
                continue
            if age is None:
                self.missing = True
            else:
                self.samples.append(age)

    def __enter__(self) -> AgeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def p99(self) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


# -- the stack's processes ---------------------------------------------------

def cpu_seconds(process: Process) -> float:
    """User and system CPU time of every process in ``process``'s group (/proc/<pid>/stat)."""
    pids = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    ticks = 0
    for pid in pids or [str(process.pid)]:
        stat = proc_stat(pid)
        if len(stat) > 12:
            ticks += int(stat[11]) + int(stat[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def idle_cpu(router: Process, seconds: float) -> float:
    """The router's CPU over ``seconds`` with no foreground traffic, as a share of one core."""
    before, started = cpu_seconds(router), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(router) - before) / (time.monotonic() - started)


def fallback_lines(log: Path) -> int:
    try:
        with log.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


# -- the registry --------------------------------------------------------------

async def create_experiments(settings: Settings, experiments: list[dict]) -> None:
    """Write experiments into the registry, many at a time, through the store's own commands."""
    store = Store(settings)
    gate = asyncio.Semaphore(CREATE_CONCURRENCY)

    async def create(doc: dict) -> None:
        async with gate:
            await store.create_experiment(parse_experiment(doc))
    try:
        await asyncio.gather(*(create(doc) for doc in experiments))
    finally:
        await store.close()


def wait_for_pickup(base_url: str, exp_id: str, path: str, timeout: float = 180.0) -> float:
    """Seconds until a new visitor of ``path`` gets the bandit's answer for ``exp_id``
    (the router's snapshot holds it); these polls are not counted as fallbacks."""
    started = time.monotonic()
    with httpx.Client(headers={"User-Agent": BROWSER_UA}, timeout=5) as client:
        while time.monotonic() - started < timeout:
            response = client.get(f"{base_url}{path}")
            client.cookies.clear()
            if f"croupier_{exp_id}=" in response.headers.get("set-cookie", ""):
                return time.monotonic() - started
            time.sleep(0.2)
    raise RuntimeError(f"the router did not decide for {exp_id} within {timeout:.0f} s")


class Trickle:
    """Visitors (a decide through NGINX) and their conversions (a beacon), ``rate`` visitors
    per second spread over ``experiments``: the counters of those experiments keep changing."""

    def __init__(self, base_url: str, experiments: list[dict], rate: float, seed: int = 1) -> None:
        self.base_url, self.experiments, self.rate = base_url, experiments, rate
        self.visitors: dict[str, int] = {}
        self.fallbacks = 0
        self._rand = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def visit(self, client: httpx.Client, exp: dict) -> None:
        page = client.get(f"{self.base_url}{exp['path_prefix']}")
        cookie = page.headers.get("set-cookie", "").split(";", 1)[0]
        self.visitors[exp["id"]] = self.visitors.get(exp["id"], 0) + 1
        if not cookie.startswith(f"croupier_{exp['id']}="):
            self.fallbacks += 1
            return
        if self._rand.random() < 0.5:
            client.post(f"{self.base_url}/_croupier/beacon", headers={
                "Origin": self.base_url, "Content-Type": "application/json", "Cookie": cookie},
                json={"experiment": exp["id"], "type": "convert", "goal": "signup", "id": secrets.token_hex(8)})

    def _run(self) -> None:
        with httpx.Client(headers={"User-Agent": BROWSER_UA}, timeout=5) as client:
            while not self._stop.wait(self._rand.expovariate(self.rate)):
                try:
                    self.visit(client, self._rand.choice(self.experiments))
                except httpx.HTTPError:
                    self.fallbacks += 1
                client.cookies.clear()

    def __enter__(self) -> Trickle:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def key_bytes(client: redis.Redis, exp_id: str) -> int:
    """MEMORY USAGE of every key of one experiment (they share its hash tag, router/store.py)."""
    return sum(client.memory_usage(key, samples=0) or 0
               for key in client.scan_iter(match=f"croupier:{{{exp_id}}}:*", count=1000))


# -- the run -------------------------------------------------------------------

@dataclass
class Stack:
    """One size's own Redis, router and Croupier NGINX (the variant page's NGINX is shared)."""

    figure: SizeFigures
    router: Process
    router_port: int
    base_url: str
    fallback_log: Path
    rds: redis.Redis
    registry: list[dict]
    trickled: list[dict]
    trickle: Trickle | None = None


def build_stack(size: int, run_dir: Path, variant: str, processes: list[Process], memory: Memory) -> Stack:
    """A stack holding ``size`` running experiments, answering for the newest of them."""
    run_dir.mkdir()
    secret, pass_key = "bench-secret-" + "x" * 20, "bench-pass-key-" + "y" * 24
    redis_port, router_port, decide_port, croupier_port = free_port(), free_port(), free_port(), free_port()
    processes.append(start_redis(run_dir, redis_port))
    env = {"CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_SECRET": secret,
           "CROUPIER_ADMIN_TOKEN": ADMIN_TOKEN, "CROUPIER_LOG_LEVEL": "warning",
           "CROUPIER_PASS_KEY": pass_key, "CROUPIER_DECIDE_PORT": str(decide_port),
           # the trickle is one loopback address: keep it under the beacon limit
           "CROUPIER_BEACON_RATE": "100000", "CROUPIER_BEACON_BURST": "100000"}
    settings = Settings.from_env(env)
    router = start_router(run_dir, router_port, env)
    processes.append(router)
    prefix = run_dir / "croupier"
    (prefix / "tmp").mkdir(parents=True)
    options = Options(listen=f"127.0.0.1:{croupier_port}", routers=[f"127.0.0.1:{router_port}"],
                      decide_routers=[f"127.0.0.1:{decide_port}"], prefix=str(prefix),
                      user="root" if os.geteuid() == 0 else "")
    write_pass_key(Path(pass_key_path(options)), pass_key)
    measured = {"id": MEASURED, "path_prefix": "/", "control": "a",
                "variants": [{"id": v, "upstream": variant} for v in "abc"]}
    asyncio.run(create_experiments(settings, [measured]))
    figure = SizeFigures(size)
    rds = redis.Redis(port=redis_port, decode_responses=True)
    added = [experiment(i, [variant]) for i in range(size - 1)]
    used_before, started = rds.info("memory")["used_memory"], time.monotonic()
    asyncio.run(create_experiments(settings, added))
    figure.create_s = time.monotonic() - started
    if added:  # stacks are built smallest first: the largest one's figure is kept
        memory.idle_per_experiment = (rds.info("memory")["used_memory"] - used_before) / len(added)
        memory.idle_keys = key_bytes(rds, added[-1]["id"])
    registry = [measured, *added]
    config = write_rendered(registry, options, prefix / "nginx.conf")
    figure.config_bytes, figure.nginx_check_s = config.bytes, config.check_s
    nginx = start_nginx(prefix / "nginx.conf", prefix, croupier_port, name="nginx-croupier")
    processes.append(nginx)
    figure.reload_s = reload_seconds(nginx, croupier_port)
    base_url = f"http://127.0.0.1:{croupier_port}"
    newest = registry[-1]
    figure.pickup_s = wait_for_pickup(base_url, newest["id"], newest["path_prefix"])
    trickled = added[:max(1, int(TRICKLED_SHARE * len(added)))] if added else [measured]
    return Stack(figure, router, router_port, base_url, prefix / "fallback.log", rds, registry, trickled)


def measure(args: argparse.Namespace) -> tuple[list[SizeFigures], Memory]:
    """One stack per size, built side by side; the load rounds then alternate between the
    sizes, so whatever else the shared machine does at a given minute falls on every size
    alike instead of on whichever size was measured then (the ratios are the goals)."""
    run_dir = Path(tempfile.mkdtemp(prefix="croupier-bench-experiments-"))
    processes: list[Process] = []
    memory = Memory()
    try:
        variant_port = free_port()
        variant = f"127.0.0.1:{variant_port}"
        static_root = run_dir / "static"
        static_root.mkdir()
        (static_root / "page.html").write_text("<!doctype html><title>landing</title><h1>Hello</h1>\n")
        page_server = render_baselines(run_dir / "variant", {}, variant, "", "", static_root, variant_only=True)
        processes.append(start_nginx(page_server, page_server.parent, variant_port, name="nginx-variant"))
        stacks = []
        for size in args.sizes:
            stacks.append(build_stack(size, run_dir / f"size-{size}", variant, processes, memory))
            print(f"  {size} experiments ready", flush=True)
        pin(processes, SERVER_CORE)  # NGINX's reloaded workers included
        script = run_dir / "fresh.lua"
        wrk_script(script, [])
        with contextlib.ExitStack() as trickles:
            for stack in stacks:
                stack.trickle = trickles.enter_context(Trickle(stack.base_url, stack.trickled, args.trickle))
            time.sleep(1.0)
            for stack in stacks:
                stack.figure.idle_cpu = idle_cpu(stack.router, args.idle_seconds)
            run_load(args, stacks, script)
        for stack in stacks:
            stack.figure.trickle_fallbacks = stack.trickle.fallbacks
            stack.figure.redis_bytes = stack.rds.info("memory")["used_memory"]
        largest = stacks[-1]
        visited = [e for e in largest.trickled if largest.trickle.visitors.get(e["id"])][:50]
        if visited and len(largest.registry) > 1:
            memory.traffic_keys = sum(key_bytes(largest.rds, e["id"]) for e in visited) / len(visited)
            memory.traffic_visitors = sum(largest.trickle.visitors[e["id"]] for e in visited) / len(visited)
        memory.measured_keys = key_bytes(largest.rds, MEASURED)
        stats = httpx.get(f"http://127.0.0.1:{largest.router_port}/api/v1/experiments/{MEASURED}/stats",
                          timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).raise_for_status().json()
        memory.measured_trials = sum(v["trials"] for v in stats["variants"])
        return [stack.figure for stack in stacks], memory
    finally:
        stop_all(processes)
        shutil.rmtree(run_dir, ignore_errors=True)


def run_load(args: argparse.Namespace, stacks: list[Stack], script: Path) -> None:
    """``--rounds`` rounds, each a wrk run of new visitors at "/" on every size in turn, with
    the refresh histograms read around them, the snapshot ages sampled throughout and the
    fallback logs counted."""
    before = {id(s): (scrape(s.router_port), fallback_lines(s.fallback_log)) for s in stacks}
    rounds: dict[int, list[Result]] = {id(s): [] for s in stacks}
    with contextlib.ExitStack() as samplers:
        ages = {id(s): samplers.enter_context(AgeSampler(s.router_port)) for s in stacks}
        for _ in range(args.rounds):
            for stack in stacks:
                loaded = run_wrk(f"{stack.base_url}/", script, connections=args.connections, duration=args.duration)
                rounds[id(stack)].append(Result("new", loaded["rps"], loaded["p50_ms"], loaded["p99_ms"],
                                                requests=loaded["requests"], errors=loaded["errors"]))
                settle(stack.router_port)
    for stack in stacks:
        metrics_before, fallbacks_before = before[id(stack)]
        metrics_after = scrape(stack.router_port)
        figure, result = stack.figure, median_result(rounds[id(stack)])
        figure.rps, figure.p50_ms, figure.p99_ms, figure.errors = result.rps, result.p50_ms, result.p99_ms, result.errors
        figure.fallbacks = fallback_lines(stack.fallback_log) - fallbacks_before
        refresh = "croupier_snapshot_refresh_seconds"
        figure.refresh_p50_s = quantile(buckets(metrics_before, refresh), buckets(metrics_after, refresh), 0.5)
        figure.refresh_p99_s = quantile(buckets(metrics_before, refresh), buckets(metrics_after, refresh), 0.99)
        lag = "croupier_event_loop_lag_seconds"
        figure.loop_lag_p99_s = quantile(buckets(metrics_before, lag), buckets(metrics_after, lag), 0.99)
        figure.age_p99_s = ages[id(stack)].p99()


# -- the report ----------------------------------------------------------------

def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report(figures: list[SizeFigures], memory: Memory, args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    print(f"\nmany-experiments benchmark: {os.cpu_count()} cores; wrk on core {LOAD_CORE}, every stack's NGINX, "
          f"router, Redis and the variant page on core {SERVER_CORE}; {args.connections} connections, "
          f"{args.rounds} x {args.duration} s per size, sizes alternating; trickle {args.trickle}/s per stack over {TRICKLED_SHARE:.0%} of its "
          f"experiments")
    print(f"{'experiments':>11} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'fallbacks':>9} "
          f"{'refresh p50 s':>13} {'refresh p99 s':>13} {'age p99 s':>9} {'lag p99 s':>9} {'idle CPU':>8} "
          f"{'Redis MB':>8}")
    for f in figures:
        print(f"{f.experiments:>11} {f.rps:>8.0f} {f.p50_ms:>7.2f} {f.p99_ms:>7.2f} {f.errors:>6} "
              f"{f.fallbacks:>9} {seconds(f.refresh_p50_s):>13} {seconds(f.refresh_p99_s):>13} "
              f"{seconds(f.age_p99_s):>9} {seconds(f.loop_lag_p99_s):>9} {f.idle_cpu:>8.1%} "
              f"{f.redis_bytes / 2**20:>8.1f}")
    print(f"\n{'experiments':>11} {'create s':>8} {'pickup s':>8} {'config KB':>9} {'nginx -t s':>10} "
          f"{'reload s':>8} {'trickle fallbacks':>17}")
    for f in figures:
        print(f"{f.experiments:>11} {f.create_s:>8.1f} {f.pickup_s:>8.1f} {f.config_bytes / 1024:>9.0f} "
              f"{f.nginx_check_s:>10.3f} {f.reload_s:>8.3f} {f.trickle_fallbacks:>17}")
    per_trial = memory.measured_keys / memory.measured_trials if memory.measured_trials else 0.0
    print(f"\nRedis memory: {memory.idle_per_experiment:.0f} B per idle experiment (used_memory growth), "
          f"{memory.idle_keys:.0f} B in its keys; {memory.traffic_keys:.0f} B in the keys of an experiment with "
          f"traffic ({memory.traffic_visitors:.1f} trickle visitors each); the experiment under load: "
          f"{memory.measured_keys / 2**20:.1f} MB for {memory.measured_trials} assignments ({per_trial:.0f} B each)")
    first, last = figures[0], figures[-1]
    n1, n2 = first.experiments, last.experiments
    goals = [
        ("throughput", f"{last.rps / first.rps:.2f} x at {n2} vs {n1} (>= 0.9)" if first.rps else "no traffic",
         bool(first.rps) and last.rps >= 0.9 * first.rps),
        ("p99", f"{last.p99_ms / first.p99_ms:.2f} x at {n2} vs {n1} (<= 1.5)" if first.p99_ms else "no traffic",
         bool(first.p99_ms) and last.p99_ms <= 1.5 * first.p99_ms),
        ("no-fallback", "fallbacks " + ", ".join(f"{f.fallbacks} at {f.experiments}" for f in figures),
         all(f.fallbacks == 0 and f.trickle_fallbacks == 0 for f in figures)),
        ("snapshot-age", f"p99 {seconds(last.age_p99_s)} s at {n2} (<= 1.5)",
         last.age_p99_s is not None and last.age_p99_s <= 1.5),
        ("idle-cpu", f"{last.idle_cpu:.1%} of one core at {n2} with only the trickle (<= 20%)", last.idle_cpu <= 0.2),
    ]
    for name, figure, ok in goals:
        print(f"goal {name}: {figure} {'met' if ok else 'not met'}")
    return goals


def parse_sizes(text: str) -> list[int]:
    sizes = [int(s) for s in text.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or sizes != sorted(set(sizes)):
        raise argparse.ArgumentTypeError("sizes: increasing counts of experiments, each at least 1 (a stack each)")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=[1, 1000, 10000], help="e.g. 1,100 for a quick run")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of each wrk round")
    parser.add_argument("--rounds", type=int, default=4,
                        help="rounds, each a wrk run per size in turn; figures are medians")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--trickle", type=float, default=5.0, help="background visitors per second")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="router CPU measured over this")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench.experiments: needs two cores (one for wrk, one for what it measures)")
    figures, memory = measure(args)
    goals = report(figures, memory, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"sizes": [asdict(f) for f in figures], "memory": asdict(memory),
                                         "goals": goals}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
