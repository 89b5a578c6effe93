"""The router through Sentinel: a master, a replica and one sentinel on loopback.
Decide, beacon and admin work, and keep working after a failover (the new master
has never seen the Lua scripts: they are loaded again on NOSCRIPT)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.settings import Settings
from croupier.scripts.processes import Process, free_port_block, port_open, redis_cli, require_binary, start_redis, stop_all
from tests.conftest import BROWSER_UA, eventually

TOKEN = "sentinel-admin-token"
SERVICE = "croupier"


def start_sentinel(run_dir: Path, port: int, master_port: int, service: str, *, name: str = "sentinel") -> Process:
    """A sentinel watching the master on ``master_port`` (quorum 1: one sentinel decides alone,
    fine for a loopback test, never for production)."""
    conf = run_dir / f"{name}.conf"  # a sentinel rewrites its configuration file, so each gets its own
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {run_dir}\n"
                    f"sentinel monitor {service} 127.0.0.1 {master_port} 1\n"
                    f"sentinel down-after-milliseconds {service} 1000\n"
                    f"sentinel failover-timeout {service} 5000\n")
    argv = [require_binary("redis-server"), str(conf), "--sentinel"]
    return Process(name, argv, run_dir / f"{name}.log").start().wait_until(
        lambda: port_open("127.0.0.1", port), what="accepting connections")


@pytest.fixture
def sentinel(tmp_path) -> Iterator[dict[str, int]]:
    base = free_port_block(3)
    ports = {"master": base, "replica": base + 1, "sentinel": base + 2}
    processes = []
    try:
        processes.append(start_redis(tmp_path, ports["master"], name="master"))
        processes.append(start_redis(tmp_path, ports["replica"], name="replica",
                                     extra=["--replicaof", "127.0.0.1", str(ports["master"])]))
        processes.append(start_sentinel(tmp_path, ports["sentinel"], ports["master"], SERVICE))
        eventually(lambda: "master_link_status:up" in redis_cli(ports["replica"], "info", "replication"),
                   timeout=10)
        yield ports
    finally:
        stop_all(processes)


def master_port(ports: dict[str, int]) -> int:
    return int(redis_cli(ports["sentinel"], "sentinel", "get-master-addr-by-name", SERVICE).split()[1])


def new_visitor_converts(client: TestClient) -> str:
    """A new visitor gets a decision and converts; the variant it converted on."""
    decision = client.get("/_croupier/decide", headers={"X-Original-URI": "/spring/", "User-Agent": BROWSER_UA})
    assert decision.headers["x-croupier-experiment"] == "spring"
    cookie = decision.headers["set-cookie"].split(";", 1)[0]
    client.cookies.clear()

    def converted() -> bool:
        answer = client.post("/_croupier/beacon", json={"experiment": "spring", "type": "convert"},
                             headers={"Cookie": cookie, "User-Agent": BROWSER_UA})
        assert answer.status_code in (204, 503), answer.text
        return answer.status_code == 204

    eventually(converted, timeout=10, interval=0.2)  # 503 while the failover settles, then counted
    return decision.headers["x-croupier-variant"]


def test_decide_beacon_and_admin_through_sentinel_and_after_a_failover(sentinel):
    settings = Settings(redis_url=f"redis+sentinel://127.0.0.1:{sentinel['sentinel']}/{SERVICE}",
                        admin_token=TOKEN, secret="s" * 32, refresh_interval=0.05, flush_interval=0.05)
    with TestClient(create_app(settings)) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        client.post("/api/v1/experiments", headers=auth, json={
            "id": "spring", "path_prefix": "/spring/", "goal": "signup",
            "variants": [{"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}],
        }).raise_for_status()
        eventually(lambda: client.get("/_croupier/decide", headers={
            "X-Original-URI": "/spring/", "User-Agent": BROWSER_UA}).headers.get("x-croupier-experiment"))
        client.cookies.clear()

        def totals() -> tuple[int, int]:
            rows = client.get("/api/v1/experiments/spring/stats", headers=auth).json()["variants"]
            return sum(r["trials"] for r in rows), sum(r["conversions"] for r in rows)

        new_visitor_converts(client)
        eventually(lambda: totals() == (2, 1))  # trials: the visitor of the check above, and this one

        assert master_port(sentinel) == sentinel["master"]
        redis_cli(sentinel["sentinel"], "sentinel", "failover", SERVICE)
        eventually(lambda: master_port(sentinel) == sentinel["replica"], timeout=15, interval=0.1)
        # Until the old master is a replica it still takes writes that its resync then drops
        # (Redis replicates asynchronously): a failover's known window, not the router's.
        eventually(lambda: redis_cli(sentinel["master"], "role").split()[0] == "slave", timeout=15, interval=0.1)
        new_visitor_converts(client)
        eventually(lambda: totals() == (3, 2), timeout=10)
        response = client.patch("/api/v1/experiments/spring", headers=auth, json={"name": "after failover"})
        assert response.status_code == 200
        assert client.get("/api/v1/experiments/spring", headers=auth).json()["name"] == "after failover"
