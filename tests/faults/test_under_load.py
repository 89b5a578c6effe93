"""Faults under load, on real processes: a router killed, hung or drained, Redis killed.

Load comes from wrk (bounded by time, loopback only) as new visitors with a
browser user agent; each test reads wrk's own count of failed requests and
NGINX's fallback log (one line per visitor served control instead).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx

from croupier.scripts.processes import require_binary, start_redis
from croupier.scripts.simulate import BROWSER_UA
from tests.conftest import variant_stats

WRK_SCRIPT = f"""
request = function()
  return wrk.format("GET", "/", {{ ["User-Agent"] = "{BROWSER_UA}" }})
end
"""


def parse(out: str) -> dict:
    import re
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    return {"requests": total, "failed": (int(non2xx.group(1)) if non2xx else 0)
            + (sum(map(int, sock.groups())) if sock else 0),
            "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0}


class Load:
    """wrk in the background for ``seconds``, against the stack's NGINX."""

    def __init__(self, stack, tmp_path: Path, seconds: int = 5, connections: int = 8) -> None:
        script = tmp_path / "visitors.lua"
        script.write_text(WRK_SCRIPT)
        argv = [require_binary("wrk"), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                stack.config.base_url + "/"]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def result(self) -> dict:
        out, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, out
        return parse(out)


def fallbacks(stack) -> list[dict]:
    log = stack.nginx_conf.parent / "fallback.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_router_killed_under_load_visitors_get_control_without_errors(make_stack, tmp_path, figure):
    stack = make_stack()
    load = Load(stack, tmp_path, seconds=4)
    time.sleep(1.5)
    stack.routers[0].kill()
    result = load.result()
    assert result["requests"] > 100
    assert result["failed"] == 0, result
    # NGINX's connect timeout to a dead router is immediate (refused), so control is fast
    assert result["p99_ms"] < 1000, result
    assert len(fallbacks(stack)) > 0  # the visitors after the kill were served control
    figure(f"router killed under load: {result['requests']} requests, {result['failed']} failed, "
           f"{len(fallbacks(stack))} served control, p99 {result['p99_ms']:.1f} ms")


def test_router_hung_under_load_p99_is_bounded_by_the_decide_timeout(make_stack, tmp_path, figure):
    stack = make_stack(decide_timeout="200ms")
    load = Load(stack, tmp_path, seconds=4)
    time.sleep(1.0)
    router = stack.routers[0]
    router.signal(signal.SIGSTOP)  # the process stops answering but keeps its connections open
    try:
        time.sleep(2.0)
    finally:
        router.signal(signal.SIGCONT)
    result = load.result()
    assert result["failed"] == 0, result
    # a hung router costs a visitor at most the decide timeout (200 ms, tried on one router)
    assert result["p99_ms"] < 200 * 2 + 150, result
    assert fallbacks(stack), "visitors during the hang were served control"
    figure(f"router hung 2 s under load (decide timeout 200 ms): {result['requests']} requests, "
           f"{result['failed']} failed, {len(fallbacks(stack))} served control, p99 {result['p99_ms']:.1f} ms")


def test_one_of_two_routers_stopped_with_sigterm_under_load_fails_nothing(make_stack, tmp_path, figure):
    stack = make_stack(routers=2)
    load = Load(stack, tmp_path, seconds=5)
    time.sleep(1.5)
    stack.routers[1].stop()  # SIGTERM: uvicorn stops accepting, drains in-flight requests, exits
    result = load.result()
    assert result["failed"] == 0, result
    # the drain is graceful: NGINX retries a closed keepalive connection on the other router,
    # so (almost) nobody falls back to control
    assert len(fallbacks(stack)) <= 2, fallbacks(stack)[:5]
    assert result["requests"] > 200
    figure(f"one of two routers drained with SIGTERM under load: {result['requests']} requests, "
           f"{result['failed']} failed, {len(fallbacks(stack))} served control")


async def convert_visitors(base_url: str, seconds: float, stop: threading.Event) -> dict:
    """New visitors who load the page and convert at once; what each beacon answered."""
    acknowledged: dict[str, int] = {}
    answers: dict[int, int] = {}
    pages: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=5, headers={"User-Agent": BROWSER_UA}) as client:
        async def visitor() -> None:
            while time.monotonic() < deadline and not stop.is_set():
                client.cookies.clear()
                page = await client.get("/", headers={"Cookie": ""})
                pages[page.status_code] = pages.get(page.status_code, 0) + 1
                cookie = page.headers.get("set-cookie", "").split(";", 1)[0]
                if not cookie:
                    continue  # served control by the fallback: no assignment to convert on
                variant = cookie.split(".")[4]
                beacon = await client.post("/_croupier/beacon", json={"experiment": "demo", "type": "convert"},
                                           headers={"Cookie": cookie, "Origin": base_url})
                answers[beacon.status_code] = answers.get(beacon.status_code, 0) + 1
                if beacon.status_code == 204:
                    acknowledged[variant] = acknowledged.get(variant, 0) + 1

        await asyncio.gather(*(visitor() for _ in range(4)))
    return {"acknowledged": acknowledged, "answers": answers, "pages": pages}


def test_redis_killed_under_load_loses_no_acknowledged_conversion(make_stack, figure):
    stack = make_stack()  # Redis with appendonly yes, appendfsync everysec
    stop = threading.Event()
    outcome: dict = {}

    def run() -> None:
        outcome.update(asyncio.run(convert_visitors(stack.config.base_url, 6.0, stop)))

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.5)
    stack.redis.kill()  # SIGKILL: no shutdown, no final rewrite of the append-only file
    time.sleep(1.5)
    stack.redis = start_redis(stack.config.run_dir, stack.config.redis_port, appendonly=True)
    stack.processes.append(stack.redis)
    worker.join(30)
    assert not worker.is_alive()
    assert set(outcome["pages"]) == {200}, outcome["pages"]  # no visitor-facing error
    assert outcome["answers"].get(503, 0) > 0, outcome["answers"]  # the beacon said so while Redis was away
    assert set(outcome["answers"]) <= {204, 503}, outcome["answers"]
    # every conversion the beacon acknowledged is in Redis after the restart, exactly once
    stats = variant_stats(stack)
    for variant, count in outcome["acknowledged"].items():
        assert stats[variant]["conversions"] == count, (variant, stats[variant], outcome)
    assert sum(outcome["acknowledged"].values()) > 20
    figure(f"Redis SIGKILLed for 1.5 s under load: {sum(outcome['pages'].values())} pages all 200, "
           f"{outcome['answers'].get(204, 0)} conversions acknowledged and all counted after the restart, "
           f"{outcome['answers'].get(503, 0)} beacons answered 503 while Redis was away")
