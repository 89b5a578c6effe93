"""Simulated visitors through NGINX over several experiments, counting what they saw.

The counts are the visitors' side of the ledger, to compare with Redis: a page
served with a ``Set-Cookie`` is one new assignment, a convert beacon answered
204 is one conversion. Each visitor is new (no cookie jar), loads one page and
converts with probability ``rate``.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from croupier.scripts.simulate import get_page, _EXPERIMENT, _VARIANT, BROWSER_UA


@dataclass
class Seen:
    pages: Counter = field(default_factory=Counter)  # status → pages
    assigned: Counter = field(default_factory=Counter)  # (experiment, variant) → pages with a Set-Cookie
    converted: Counter = field(default_factory=Counter)  # (experiment, variant) → converts answered 204
    beacons: Counter = field(default_factory=Counter)  # (experiment, status) → convert beacons
    errors: Counter = field(default_factory=Counter)
    # (experiment, status) of convert beacons sent while ``flag`` was set (e.g. a node was down)
    flagged: Counter = field(default_factory=Counter)

    def assigned_to(self, experiment: str) -> dict[str, int]:
        return {v: n for (e, v), n in self.assigned.items() if e == experiment}

    def converted_in(self, experiment: str) -> dict[str, int]:
        return {v: n for (e, v), n in self.converted.items() if e == experiment}


async def _visit(client: httpx.AsyncClient, base_url: str, path: str, rate: float, seen: Seen,
                 rand: random.Random, flag: threading.Event | None) -> None:
    try:
        page = await get_page(client, f"{base_url}{path}", headers={"User-Agent": BROWSER_UA})
    except httpx.HTTPError as exc:
        seen.errors[f"page {type(exc).__name__}"] += 1
        return
    seen.pages[page.status_code] += 1
    variant, experiment = _VARIANT.search(page.content), _EXPERIMENT.search(page.content)
    if page.status_code != 200 or not variant or not experiment:
        seen.errors[f"page {page.status_code} without a variant"] += 1
        return
    exp_id, vid = experiment.group(1).decode(), variant.group(1).decode()
    cookie = page.headers.get("set-cookie", "").split(";", 1)[0]
    if not cookie:
        return  # decided without an assignment (control, uncounted): nothing to convert
    seen.assigned[(exp_id, vid)] += 1
    if rand.random() >= rate:
        return
    down = bool(flag and flag.is_set())
    try:
        answer = await client.post(f"{base_url}/_croupier/beacon", json={
            "experiment": exp_id, "type": "convert", "goal": "signup"}, headers={
            "User-Agent": BROWSER_UA, "Origin": base_url, "Cookie": cookie})
    except httpx.HTTPError as exc:
        seen.errors[f"beacon {type(exc).__name__}"] += 1
        return
    seen.beacons[(exp_id, answer.status_code)] += 1
    if down or (flag and flag.is_set()):
        seen.flagged[(exp_id, answer.status_code)] += 1
    if answer.status_code == 204:
        seen.converted[(exp_id, vid)] += 1


async def _drive(base_url: str, paths: list[str], *, visitors: int, seconds: float, rate: float,
                 concurrency: int, seed: int, flag: threading.Event | None) -> Seen:
    seen = Seen()
    rand = random.Random(seed)
    deadline = time.monotonic() + seconds
    queue = iter(range(visitors))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    no_jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))  # every visitor is new
    async with httpx.AsyncClient(timeout=10, limits=limits, cookies=no_jar) as client:
        async def worker() -> None:
            for i in queue:
                if time.monotonic() > deadline:
                    return
                await _visit(client, base_url, paths[i % len(paths)], rate, seen, rand, flag)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return seen


def run_traffic(base_url: str, paths: list[str], *, visitors: int = 10**9, seconds: float = 60.0,
                rate: float = 0.3, concurrency: int = 12, seed: int = 1,
                flag: threading.Event | None = None) -> Seen:
    """Send ``visitors`` visitors (or as many as fit in ``seconds``), round robin over ``paths``."""
    return asyncio.run(_drive(base_url, paths, visitors=visitors, seconds=seconds, rate=rate,
                              concurrency=concurrency, seed=seed, flag=flag))
