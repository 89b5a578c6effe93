"""Fixtures that run the real servers: redis-server, routers, variants and NGINX on
free loopback ports, started and stopped by process id (scripts/processes.py)."""

from __future__ import annotations

import asyncio
import contextlib

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from croupier.scripts.processes import free_port, free_port_block, start_redis, start_router
from croupier.scripts.simulate import BROWSER_UA  # noqa: F401  (tests import it from here)
from croupier.scripts.stack import LocalStack, StackConfig

# fast refresh and flush, so tests see changes within a fraction of a second
FAST = {"CROUPIER_REFRESH_INTERVAL": "0.1", "CROUPIER_FLUSH_INTERVAL": "0.05",
        # every test client is 127.0.0.1: simulated traffic must not hit the beacon limit
        "CROUPIER_BEACON_RATE": "100000", "CROUPIER_BEACON_BURST": "100000",
        # routing passes of a few seconds: a test's next page views ride on them, and a
        # paused variant reaches its returning visitors within seconds
        "CROUPIER_PASS_SECONDS": "3"}


def stack_config(run_dir: Path, **overrides) -> StackConfig:
    routers = overrides.pop("routers", 1)
    router_env = {**FAST, **overrides.pop("router_env", {})}
    return StackConfig(
        run_dir=run_dir, http_port=free_port(), router_port=free_port_block(routers), routers=routers,
        decide_port=free_port_block(routers),
        redis_port=free_port(), variant_base_port=free_port_block(3), router_env=router_env,
        **overrides)


@pytest.fixture
def make_stack(tmp_path: Path):
    """Factory: a whole stack of its own (for tests that kill or stop parts of it)."""
    started: list[LocalStack] = []

    def make(**overrides) -> LocalStack:
        stack = LocalStack(stack_config(tmp_path / f"stack{len(started)}", **overrides)).start()
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    """One stack shared by a module's tests that leave it running."""
    stack = LocalStack(stack_config(tmp_path_factory.mktemp("stack"))).start()
    yield stack
    stack.stop()


@contextlib.contextmanager
def redis_and_router(run_dir: Path, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A redis-server and a router process of their own, on free ports: ``(router URL, Redis
    URL)``; both stopped at the end. ``env``: the router's settings beyond its Redis URL."""
    redis_port, port = free_port(), free_port()
    redis = start_redis(run_dir, redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    server = None
    try:
        server = start_router(run_dir, port, {"CROUPIER_REDIS_URL": redis_url, **env})
        yield f"http://127.0.0.1:{port}", redis_url
    finally:
        if server is not None:
            server.stop()
        redis.stop()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = start_redis(tmp_path, port)
    yield f"redis://127.0.0.1:{port}/0"
    server.stop()


class Visitor:
    """A browser-like visitor: keeps its cookies, sends Origin on beacon posts."""

    def __init__(self, base_url: str, user_agent: str = BROWSER_UA) -> None:
        self.base_url = base_url
        self.client = httpx.Client(base_url=base_url, timeout=10, headers={"User-Agent": user_agent})

    def get(self, path: str = "/", **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def variant(self, path: str = "/") -> str:
        response = self.get(path)
        assert response.status_code == 200, response.text[:300]
        return page_variant(response)

    def beacon(self, body: dict, **headers) -> httpx.Response:
        return self.client.post("/_croupier/beacon", json=body,
                                headers={"Origin": self.base_url, **headers})

    def close(self) -> None:
        self.client.close()


def page_variant(response: httpx.Response) -> str:
    import re
    found = re.search(r'data-croupier-variant="([a-z0-9_-]+)"', response.text)
    assert found, "the page does not say which variant it is"
    return found.group(1)


@pytest.fixture
def visitor(stack: LocalStack) -> Iterator[Visitor]:
    v = Visitor(stack.config.base_url)
    yield v
    v.close()


def eventually(check, timeout: float = 5.0, interval: float = 0.05):
    """Call ``check`` until it returns something truthy without raising; its last error otherwise."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            error: Exception = AssertionError(f"{check} stayed falsy for {timeout} s")
        except (AssertionError, httpx.HTTPError) as exc:
            error = exc
        if time.monotonic() > deadline:
            raise error
        time.sleep(interval)


def with_store(redis_url: str, work):
    """``await work(store)`` with a Store of its own on ``redis_url``, closed after; its result."""
    async def scenario():
        from croupier.router.settings import Settings
        from croupier.router.store import Store

        store = Store(Settings(redis_url=redis_url))
        try:
            return await work(store)
        finally:
            await store.close()
    return asyncio.run(scenario())


def variant_stats(stack: LocalStack, experiment: str = "demo") -> dict[str, dict]:
    with stack.admin() as admin:
        response = admin.get(f"/experiments/{experiment}/stats")
        response.raise_for_status()
        return {v["id"]: v for v in response.json()["variants"]}


def totals(stack: LocalStack, field: str, experiment: str = "demo") -> int:
    return sum(v[field] for v in variant_stats(stack, experiment).values())


def settled_totals(stack: LocalStack, field: str, experiment: str = "demo") -> int:
    """The total once queued assignments have been written (two reads a flush apart agree)."""
    import time
    previous = totals(stack, field, experiment)
    while True:
        time.sleep(0.3)
        current = totals(stack, field, experiment)
        if current == previous:
            return current
        previous = current


_FIGURES: list[str] = []


@pytest.fixture
def figure(request):
    """Record a measured figure; the suite prints them all at the end of the run."""
    def record(text: str) -> None:
        _FIGURES.append(f"{request.node.nodeid.split('::')[-1]}: {text}")
    return record


def pytest_terminal_summary(terminalreporter):
    if _FIGURES:
        terminalreporter.section("figures measured by the suite")
        for line in _FIGURES:
            terminalreporter.write_line(line)
