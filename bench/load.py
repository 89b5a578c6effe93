"""Load benchmark: what Croupier costs in front of every page view, side by side.

    python -m bench.load [--duration 6] [--variant static|python]   (make bench-load)

Seven ways to serve the same page, measured with wrk in one run on this machine
(null_listener and returning_router are shown for comparison and carry no goal):
  plain          NGINX proxying straight to the variant (the baseline)
  null           NGINX + auth_request to a scorer that decides nothing (the ceiling): a
                 Starlette endpoint on the router's server settings
  null_listener  the same, answered by the router's own decide listener, which NGINX's
                 decide subrequests use (shown for comparison, no goal: new against it is
                 what the decision itself costs)
  new            NGINX + Croupier, visitors without a cookie (full decision, assignment recorded)
  returning      NGINX + Croupier, visitors with a valid assignment cookie and routing pass
                 (a visitor's next page views within CROUPIER_PASS_SECONDS of the last answer)
  returning_router  the same visitors once their pass expired: the router verifies the
                 cookie and renews the pass (shown for comparison, no goal)
  split_clients  NGINX's own static A/B split
For each: requests per second and p50/p99 latency under load (``--connections``),
p50 at a moderate load (one connection), and the connections NGINX opened to the
scorer (keepalive must hold: they must not grow with requests). The load
generator runs on one core and everything it measures on the other, so the
ratios hold on a shared, noisy machine even when absolute figures drift.
The variant is, by default, the demo page pre-rendered and served by NGINX
(``--variant static``), so the figures are about the decision layer and not
about rendering a template; ``--variant python`` uses the variant server.
Ends with one line per goal: ``goal <name>: <figure> met|not met``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from croupier.nginx.render import Options, pass_key_path, render, write_config, write_pass_key
from croupier.router.passes import token_of
from croupier.scripts.processes import (ROOT, Process, free_port, free_port_block, http_ok, port_open, require_binary,
                               start_nginx, start_redis, start_router, start_variant, stop_all)
from croupier.scripts.simulate import BROWSER_UA

CONFIGS = ("plain", "null", "null_listener", "new", "returning", "returning_router", "split_clients")
LOAD_CORE, SERVER_CORE = "0", "1"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Result:
    name: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    idle_p50_ms: float = 0.0
    requests: int = 0
    errors: int = 0
    scorer_connections: int | None = None  # distinct connections NGINX opened to the scorer
    scorer_time_wait: int | None = None
    extra: dict = field(default_factory=dict)


def parse_wrk(text: str) -> dict:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return {"rps": float(rps.group(1)) if rps else 0.0, "requests": int(total.group(1)) if total else 0,
            "p50_ms": latency("50"), "p99_ms": latency("99"), "errors": errors}


def wrk_script(path: Path, cookies: list[str]) -> None:
    """A wrk Lua script: a browser user agent, and (for returning visitors) a pool of real cookies."""
    pool = ",\n".join(json.dumps(c) for c in cookies)
    path.write_text(f"""
local cookies = {{ {pool} }}
local n = 0
request = function()
  n = n + 1
  local headers = {{ ["User-Agent"] = {json.dumps(BROWSER_UA)} }}
  if #cookies > 0 then headers["Cookie"] = cookies[(n % #cookies) + 1] end
  return wrk.format("GET", "/", headers)
end
""")


def first_visits(port: int, n: int) -> list[str]:
    """The assignment cookies (``name=value``, the value carrying a routing pass) of ``n`` new visitors."""
    cookies = []
    with httpx.Client(headers={"User-Agent": BROWSER_UA}) as client:
        for _ in range(n):
            response = client.get(f"http://127.0.0.1:{port}/")
            cookies.append(response.headers["set-cookie"].split(";", 1)[0])
            client.cookies.clear()
    return cookies


def run_wrk(url: str, script: Path, *, connections: int, duration: float) -> dict:
    argv = ["taskset", "-c", LOAD_CORE, require_binary("wrk"), "-t1", f"-c{connections}",
            f"-d{max(1, round(duration))}s", "--latency", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr or out.stdout}")
    return parse_wrk(out.stdout)


class ConnectionWatch:
    """Distinct TCP connections to a port seen while a run lasts (sampled with ss)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self, state: str) -> list[str]:
        out = subprocess.run(["ss", "-Htn", "state", state, "dport", "=", f":{self.port}"],
                             capture_output=True, text=True).stdout
        return [line.split()[-2] for line in out.splitlines() if line.strip()]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.seen.update(self._sample("established"))
            time.sleep(0.2)

    def __enter__(self) -> ConnectionWatch:
        self._closed_before = set(self._sample("time-wait"))
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        # connections NGINX closed during the run (each leaves a TIME-WAIT on its side)
        self.time_wait = len(set(self._sample("time-wait")) - self._closed_before)


def settle(router_port: int, timeout: float = 30.0) -> None:
    """Wait until the router has written every queued assignment, so the next
    configuration is not measured while the previous one's writes still run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"http://127.0.0.1:{router_port}/readyz").json().get("pending_assignments", 0) == 0:
            break
        time.sleep(0.1)
    time.sleep(0.5)


def median_result(results: list[Result]) -> Result:
    """Medians of the rates and latencies; totals of requests, errors and connections."""
    def med(values):
        values = sorted(values)
        return values[len(values) // 2]

    conns = [r.scorer_connections for r in results if r.scorer_connections is not None]
    waits = [r.scorer_time_wait for r in results if r.scorer_time_wait is not None]
    return Result(results[0].name, med([r.rps for r in results]), med([r.p50_ms for r in results]),
                  med([r.p99_ms for r in results]), med([r.idle_p50_ms for r in results]),
                  sum(r.requests for r in results), sum(r.errors for r in results),
                  max(conns) if conns else None, sum(waits) if conns else None)


def pin(processes: list[Process], core: str) -> None:
    """Pin every process of each group (NGINX workers, uvicorn) and all their threads to ``core``."""
    for process in processes:
        pids = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
        for pid in pids or [str(process.pid)]:
            subprocess.run(["taskset", "-a", "-p", "-c", core, pid], capture_output=True)


def render_baselines(prefix: Path, ports: dict, variant: str, null_scorer: str, null_listener: str,
                     static_root: Path | None, *, variant_only: bool = False) -> Path:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent), undefined=StrictUndefined)
    text = env.get_template("baselines.conf.j2").render(
        prefix=prefix, ports=ports, variant=variant, null_scorer=null_scorer, null_listener=null_listener,
        variant_only=variant_only,
        static_root=static_root, user="root" if os.geteuid() == 0 else "")
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "tmp").mkdir(exist_ok=True)
    conf = prefix / "nginx.conf"
    write_config(text, conf)
    return conf


def measure(args: argparse.Namespace) -> tuple[dict[str, Result], dict]:
    for tool in ("taskset", "ss", "pgrep"):
        if not shutil.which(tool):
            raise SystemExit(f"bench.load: {tool} is missing (util-linux, iproute2, procps)")
    run_dir = Path(tempfile.mkdtemp(prefix="croupier-bench-"))
    processes: list[Process] = []
    token, secret, pass_key = "bench-admin-token", "bench-secret-" + "x" * 20, "bench-pass-key-" + "y" * 24
    try:
        redis_port, router_port, null_port, decide_port = free_port(), free_port(), free_port(), free_port()
        null_listener_port = free_port()
        croupier_port, python_variant_port = free_port(), free_port()
        base = free_port_block(5)
        ports = {"plain": base, "null": base + 1, "split_clients": base + 2, "null_listener": base + 4}
        static_variant = f"127.0.0.1:{base + 3}"
        processes.append(start_redis(run_dir, redis_port))
        env = {"CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_SECRET": secret,
               "CROUPIER_ADMIN_TOKEN": token, "CROUPIER_LOG_LEVEL": "warning", "CROUPIER_PASS_KEY": pass_key,
               "CROUPIER_DECIDE_PORT": str(decide_port)}
        processes.append(start_router(run_dir, router_port, env))
        processes.append(start_variant(run_dir, ROOT / "variants/examples/demo/a.json", python_variant_port,
                                       name="variant"))
        static_root = None
        variant = f"127.0.0.1:{python_variant_port}"
        if args.variant == "static":
            static_root = run_dir / "static"
            static_root.mkdir()
            page = httpx.get(f"http://{variant}/", headers={"X-Croupier-Experiment": "bench",
                                                             "X-Croupier-Variant": "a"})
            (static_root / "page.html").write_bytes(page.content)
            variant = static_variant
        null = Process("null-scorer", [sys.executable, "-m", "bench.null_scorer", "--port", str(null_port),
                                       "--upstream", variant], run_dir / "null-scorer.log").start()
        processes.append(null.wait_until(lambda: http_ok(f"http://127.0.0.1:{null_port}/livez")))
        null_listener = Process("null-listener", [sys.executable, "-m", "bench.null_scorer", "--listener", "--port",
                                                  str(null_listener_port), "--upstream", variant],
                                run_dir / "null-listener.log").start()
        processes.append(null_listener.wait_until(lambda: port_open("127.0.0.1", null_listener_port)))
        experiment = {"id": "bench", "path_prefix": "/", "control": "a",
                      "variants": [{"id": v, "upstream": variant} for v in "abc"]}
        admin = httpx.Client(base_url=f"http://127.0.0.1:{router_port}/api/v1",
                             headers={"Authorization": f"Bearer {token}"})
        admin.post("/experiments", json=experiment).raise_for_status()
        (run_dir / "croupier" / "tmp").mkdir(parents=True)
        conf = run_dir / "croupier" / "nginx.conf"
        options = Options(listen=f"127.0.0.1:{croupier_port}", routers=[f"127.0.0.1:{router_port}"],
                          decide_routers=[f"127.0.0.1:{decide_port}"],
                          prefix=str(conf.parent), user="root" if os.geteuid() == 0 else "")
        write_pass_key(Path(pass_key_path(options)), pass_key)
        write_config(render([experiment], options), conf)
        if static_root:
            page_server = render_baselines(run_dir / "variant", ports, variant, "", "", static_root,
                                           variant_only=True)
            processes.append(start_nginx(page_server, page_server.parent, base + 3, name="nginx-variant"))
        baselines = render_baselines(run_dir / "baselines", ports, variant, f"127.0.0.1:{null_port}",
                                     f"127.0.0.1:{null_listener_port}", static_root)
        processes.append(start_nginx(baselines, baselines.parent, ports["plain"], name="nginx-baselines"))
        processes.append(start_nginx(conf, conf.parent, croupier_port, name="nginx-croupier"))
        time.sleep(args.refresh_wait)  # the router's snapshot picks the experiment up
        pin(processes, SERVER_CORE)

        scripts = {"fresh": run_dir / "fresh.lua", "returning": run_dir / "returning.lua",
                   "returning_router": run_dir / "returning_router.lua"}
        wrk_script(scripts["fresh"], [])

        def returning_visitors() -> None:
            """Real cookies from real first visits, taken just before a returning run, as a
            browser holds them: the assignment with a pass still valid for the whole run; and
            the same assignments with the pass cut off, as after it expired."""
            cookies = first_visits(croupier_port, args.returning_pool)
            wrk_script(scripts["returning"], cookies)
            wrk_script(scripts["returning_router"], [token_of(c) for c in cookies])

        targets = {
            "plain": (ports["plain"], "fresh", None),
            "null": (ports["null"], "fresh", null_port),
            "null_listener": (ports["null_listener"], "fresh", null_listener_port),
            "new": (croupier_port, "fresh", decide_port),
            "returning": (croupier_port, "returning", decide_port),
            "returning_router": (croupier_port, "returning_router", decide_port),
            "split_clients": (ports["split_clients"], "fresh", None),
        }
        for name in CONFIGS:  # warm up every path once
            port, script, _ = targets[name]
            if name == "returning":
                returning_visitors()
            run_wrk(f"http://127.0.0.1:{port}/", scripts[script], connections=args.connections, duration=1)
            settle(router_port)
        # rounds interleave the configurations, so a slow spell of this shared machine
        # hits all of them alike; each figure is the median over the rounds
        rounds: dict[str, list[Result]] = {name: [] for name in CONFIGS}
        for round_no in range(args.rounds):
            for name in CONFIGS:
                port, script, scorer = targets[name]
                url = f"http://127.0.0.1:{port}/"
                if name == "returning":
                    returning_visitors()
                    settle(router_port)
                print(f"  round {round_no + 1}/{args.rounds}: {name} ...", file=sys.stderr, flush=True)
                watch = ConnectionWatch(scorer) if scorer else None
                if watch:
                    with watch:
                        loaded = run_wrk(url, scripts[script], connections=args.connections,
                                         duration=args.duration)
                else:
                    loaded = run_wrk(url, scripts[script], connections=args.connections, duration=args.duration)
                idle = run_wrk(url, scripts[script], connections=1, duration=args.latency_duration)
                settle(router_port)
                rounds[name].append(Result(
                    name, loaded["rps"], loaded["p50_ms"], loaded["p99_ms"], idle["p50_ms"],
                    loaded["requests"] + idle["requests"], loaded["errors"] + idle["errors"],
                    len(watch.seen) if watch else None, watch.time_wait if watch else None))
        results = {name: median_result(rs) for name, rs in rounds.items()}
        stats = admin.get("/experiments/bench/stats").json()
        meta = {"trials_recorded": sum(v["trials"] for v in stats["variants"]), "variant": args.variant,
                "connections": args.connections, "duration_s": args.duration, "rounds": args.rounds,
                "cpu": _cpu_model(), "cores": os.cpu_count()}
        return results, meta
    finally:
        stop_all(processes)
        shutil.rmtree(run_dir, ignore_errors=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def report(results: dict[str, Result], meta: dict) -> list[tuple[str, str, bool]]:
    plain, null, new, returning = (results[n] for n in ("plain", "null", "new", "returning"))
    null_listener = results["null_listener"]
    scored = (null, null_listener, new, returning, results["returning_router"])
    print(f"\nload benchmark: {meta['cores']} cores ({meta['cpu']}); wrk on core {LOAD_CORE}, NGINX, router, "
          f"Redis and variant on core {SERVER_CORE}; {meta['connections']} connections, {meta['duration_s']} s "
          f"per configuration; variant: {meta['variant']}")
    print(f"{'config':<17} {'req/s':>9} {'x plain':>8} {'p50 ms':>8} {'p99 ms':>8} {'p50@1 ms':>9} "
          f"{'errors':>7} {'scorer conns':>13} {'time-wait':>10}")
    for r in results.values():
        conns = "-" if r.scorer_connections is None else str(r.scorer_connections)
        tw = "-" if r.scorer_time_wait is None else str(r.scorer_time_wait)
        print(f"{r.name:<17} {r.rps:>9.0f} {r.rps / plain.rps:>8.2f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.idle_p50_ms:>9.3f} {r.errors:>7} {conns:>13} {tw:>10}")
    print(f"assignments recorded during the run: {meta['trials_recorded']}")
    print(f"(no goal) new = {new.rps / null_listener.rps:.2f} x null_listener: what the decision itself costs "
          f"over a do-nothing answer on the same decide listener")
    added_new = new.idle_p50_ms - plain.idle_p50_ms
    added_returning = returning.idle_p50_ms - plain.idle_p50_ms
    keepalive_ok = all(r.scorer_connections is not None and r.scorer_connections <= 2 * meta["connections"]
                       and (r.scorer_time_wait or 0) <= 2 * meta["connections"] for r in scored)
    goals = [
        ("new-vs-null", f"new = {new.rps / null.rps:.2f} x null (>= 0.85)", new.rps >= 0.85 * null.rps),
        ("returning-vs-plain", f"returning = {returning.rps / plain.rps:.2f} x plain (>= 0.8)",
         returning.rps >= 0.8 * plain.rps),
        ("added-p50-returning", f"{added_returning:+.3f} ms over plain at one connection (<= 0.5)",
         added_returning <= 0.5),
        ("added-p50-new", f"{added_new:+.3f} ms over plain at one connection (<= 0.5)", added_new <= 0.5),
        ("keepalive", "scorer connections " + ", ".join(
            f"{r.name} {r.scorer_connections} opened / {r.scorer_time_wait} closed for {r.requests} requests"
            for r in scored), keepalive_ok),
        ("no-errors", f"{sum(r.errors for r in results.values())} failed requests",
         all(r.errors == 0 for r in results.values())),
    ]
    for name, figure, ok in goals:
        print(f"goal {name}: {figure} {'met' if ok else 'not met'}")
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of load per configuration and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are medians")
    parser.add_argument("--latency-duration", type=float, default=3.0, help="seconds at one connection")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--variant", choices=("static", "python"), default="static")
    parser.add_argument("--returning-pool", type=int, default=300, help="distinct returning visitors")
    parser.add_argument("--refresh-wait", type=float, default=1.5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if (os.cpu_count() or 1) < 2:
        print("bench.load: needs two cores (one for wrk, one for what it measures)", file=sys.stderr)
        return 2
    results, meta = measure(args)
    goals = report(results, meta)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"meta": meta, "results": {k: vars(v) for k, v in results.items()},
                                         "goals": goals}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
