"""The batch API in-process (TestClient on create_app) against a real redis-server, with
the channels API's helpers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.scripts.processes import Process, free_port, start_redis, start_router
from tests.router.channels.conftest import KEYS, Api, experiment, key, settings_for  # noqa: F401


def lines(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def customers(n: int, prefix: str = "c", start: int = 0) -> bytes:
    return lines([{"customer_id": f"{prefix}{i}"} for i in range(start, start + n)])


class BatchApi(Api):
    def assign(self, body: bytes, tenant: str = "", **params) -> list[dict]:
        response = self.client.post("/api/v1/batches/assign", params=params or {"experiment": "promo"},
                                    content=body, headers=key(tenant))
        assert response.status_code == 200, response.text
        return [json.loads(line) for line in response.text.splitlines()]


@pytest.fixture
def api(redis_url):
    with TestClient(create_app(settings_for(redis_url))) as client:
        yield BatchApi(client)


@contextlib.contextmanager
def two_routers(tmp_path: Path) -> Iterator[tuple[int, list[Process], list[str]]]:
    """A redis-server and two router processes on it (fast refresh and flush, the default
    tenant's API key): Redis's port, the routers and their URLs; all stopped after."""
    redis_port = free_port()
    redis = start_redis(tmp_path, redis_port)
    env = {"CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_SECRET": "s" * 32,
           "CROUPIER_ADMIN_TOKEN": "test-admin-token", "CROUPIER_REFRESH_INTERVAL": "0.1",
           "CROUPIER_FLUSH_INTERVAL": "0.05", "CROUPIER_API_KEYS": f"default:{KEYS['']}"}
    routers = []
    try:
        ports = [free_port(), free_port()]
        routers = [start_router(tmp_path, port, env, name=f"router-{i}") for i, port in enumerate(ports)]
        yield redis_port, routers, [f"http://127.0.0.1:{p}" for p in ports]
    finally:
        for router in routers:
            router.stop()
        redis.stop()
