"""The batch API in-process (TestClient on create_app) against a real redis-server, with
the channels API's helpers."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
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
