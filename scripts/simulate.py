"""Simulated visitors through NGINX, behaving like browsers on the demo page.

Each visitor loads the page (getting a variant and a cookie), reports a view,
sometimes clicks the call to action, and converts with the true rate of the
variant it was shown, all through the same-origin beacon. A live view shows the
traffic shares moving towards the best variant.

    python -m croupier.scripts.simulate --url http://127.0.0.1:8080 --visitors 5000 --rates a=0.04,b=0.09,c=0.05
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import sys
import threading
import time
from http.cookiejar import CookieJar, DefaultCookiePolicy
from collections import Counter, deque
from dataclasses import dataclass, field

import httpx

BROWSER_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/126.0 Safari/537.36")
_VARIANT = re.compile(rb'data-croupier-variant="([a-z0-9_-]+)"')
_EXPERIMENT = re.compile(rb'data-croupier-experiment="([a-z0-9_-]+)"')
CLICK_RATE = 0.3


def parse_rates(text: str) -> dict[str, float]:
    rates = {}
    for part in filter(None, text.split(",")):
        vid, sep, rate = part.partition("=")
        try:
            value = float(rate)
        except ValueError:
            value = -1.0
        if not sep or not 0 <= value <= 1:
            raise SystemExit(f"--rates: {part!r} is not variant=rate with a rate between 0 and 1")
        rates[vid.strip()] = value
    return rates


@dataclass
class Tally:
    assigned: Counter = field(default_factory=Counter)
    converted: Counter = field(default_factory=Counter)
    recent: deque = field(default_factory=lambda: deque(maxlen=1000))
    errors: Counter = field(default_factory=Counter)
    beacon_status: Counter = field(default_factory=Counter)
    done: int = 0

    def recent_shares(self) -> dict[str, float]:
        counts = Counter(self.recent)
        total = sum(counts.values()) or 1
        return {vid: n / total for vid, n in sorted(counts.items())}


async def get_page(client: httpx.AsyncClient, url: str, **kwargs) -> httpx.Response:
    """GET like a browser: a keep-alive connection the server closed just as the request
    went out (no response byte at all) is retried once on a fresh connection, as
    HTTP/1.1 allows for idempotent requests (RFC 9112, section 9.3.1)."""
    try:
        return await client.get(url, **kwargs)
    except httpx.RemoteProtocolError:
        return await client.get(url, **kwargs)


async def one_visitor(client: httpx.AsyncClient, base_url: str, rates: dict[str, float], tally: Tally,
                      rand: random.Random) -> None:
    try:
        page = await get_page(client, f"{base_url}/", headers={"User-Agent": BROWSER_UA})
    except httpx.HTTPError as exc:
        tally.errors[type(exc).__name__] += 1
        return
    if page.status_code != 200:
        tally.errors[f"page {page.status_code}"] += 1
        return
    found, exp = _VARIANT.search(page.content), _EXPERIMENT.search(page.content)
    if not found or not exp:
        tally.errors["page without variant"] += 1
        return
    variant, experiment = found.group(1).decode(), exp.group(1).decode()
    tally.assigned[variant] += 1
    tally.recent.append(variant)
    # the browser sends back the cookie the decision set, and an Origin on POST
    cookie = page.headers.get("set-cookie", "").split(";", 1)[0]
    headers = {"User-Agent": BROWSER_UA, "Origin": base_url, "Content-Type": "application/json",
               "Cookie": cookie}

    async def beacon(kind: str, **extra) -> None:
        body = {"experiment": experiment, "type": kind, "id": secrets.token_urlsafe(12), **extra}
        try:
            response = await client.post(f"{base_url}/_croupier/beacon", json=body, headers=headers)
            tally.beacon_status[response.status_code] += 1
        except httpx.HTTPError as exc:
            tally.errors[f"beacon {type(exc).__name__}"] += 1

    await beacon("view")
    if rand.random() < CLICK_RATE:
        await beacon("click")
    if rand.random() < rates.get(variant, 0.0):
        await beacon("convert", goal="signup")
        tally.converted[variant] += 1


async def simulate(base_url: str, rates: dict[str, float], visitors: int, *, concurrency: int = 16,
                   seed: int | None = None, stop: threading.Event | None = None,
                   on_progress=None, max_seconds: float = 3600) -> Tally:
    tally = Tally()
    rand = random.Random(seed)
    queue = iter(range(visitors))
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    # Cookies are carried by hand per visitor: a shared jar would mix visitors up.
    no_jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    async with httpx.AsyncClient(timeout=10, limits=limits, cookies=no_jar) as client:
        async def worker() -> None:
            for _ in queue:
                if (stop and stop.is_set()) or time.monotonic() > deadline:
                    return
                await one_visitor(client, base_url, rates, tally, rand)
                tally.done += 1

        async def reporter() -> None:
            while True:
                await asyncio.sleep(0.5)
                on_progress(tally)

        report = asyncio.create_task(reporter()) if on_progress else None
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if report:
            report.cancel()
    if on_progress:
        on_progress(tally)
    return tally


def progress_view(visitors: int, rates: dict[str, float], stats_url: str | None, admin_token: str):
    """A redrawing terminal view: shares of the last 1000 visitors and the router's current split."""
    last_draw = [0.0]
    lines_drawn = [0]
    tty = sys.stdout.isatty()

    def draw(tally: Tally) -> None:
        now = time.monotonic()
        if now - last_draw[0] < (0.5 if tty else 5.0) and tally.done < visitors:
            return
        last_draw[0] = now
        policy_share = {}
        if stats_url:
            try:
                stats = httpx.get(stats_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=1).json()
                policy_share = {v["id"]: v for v in stats["variants"]}
            except (httpx.HTTPError, ValueError, KeyError):
                pass
        recent = tally.recent_shares()
        out = [f"visitors {tally.done}/{visitors}  errors {sum(tally.errors.values())}"]
        for vid in sorted(set(rates) | set(recent)):
            share = recent.get(vid, 0.0)
            bar = "#" * int(share * 40)
            row = f"  {vid}  true {rates.get(vid, 0):.1%}  last 1000 {share:6.1%} {bar:<40}"
            if vid in policy_share:
                v = policy_share[vid]
                row += f"  policy {v['share']:.1%}  conv {v['conversions']}/{v['trials']}  P(best) {v['p_best']:.2f}"
            out.append(row)
        if tty and lines_drawn[0]:
            sys.stdout.write(f"\x1b[{lines_drawn[0]}F\x1b[J")
        sys.stdout.write("\n".join(out) + "\n")
        sys.stdout.flush()
        lines_drawn[0] = len(out)

    return draw


def run_simulation(base_url: str, rates: dict[str, float], *, visitors: int, stats_url: str | None = None,
                   admin_token: str = "", stop: threading.Event | None = None, live: bool = False,
                   concurrency: int = 16, seed: int | None = None) -> Tally:
    on_progress = progress_view(visitors, rates, stats_url, admin_token) if live else None
    return asyncio.run(simulate(base_url, rates, visitors, concurrency=concurrency, seed=seed, stop=stop,
                                on_progress=on_progress))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--visitors", type=int, default=5000)
    parser.add_argument("--rates", default="a=0.04,b=0.09,c=0.05")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    if args.visitors < 1 or args.concurrency < 1:
        parser.error("--visitors and --concurrency must be at least 1")
    tally = run_simulation(args.url, parse_rates(args.rates), visitors=args.visitors, live=True,
                           concurrency=args.concurrency)
    return 1 if tally.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
