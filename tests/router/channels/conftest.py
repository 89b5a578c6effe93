"""The channels API in-process (TestClient on create_app) against a real redis-server."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.settings import Settings
from tests.conftest import eventually

ADMIN = {"Authorization": "Bearer test-admin-token"}
KEYS = {"": "default-key-0123456789abcdef", "acme": "acme-key-0123456789abcdefgh", "globex": "globex-key-0123456789abcdef"}


def key(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


def settings_for(redis_url: str, **extra) -> Settings:
    return Settings(redis_url=redis_url, admin_token="test-admin-token", secret="s" * 32, refresh_interval=0.05,
                    flush_interval=0.05, api_keys=",".join(f"{t or 'default'}:{k}" for t, k in KEYS.items()),
                    **extra)


def experiment(exp_id: str = "promo", tenant: str = "", variants: str = "ab", **extra) -> dict:
    return {"id": exp_id, "tenant": tenant, "path_prefix": f"/{exp_id}/", "variants": [
        {"id": v, "upstream": f"127.0.0.1:{9100 + i}", "params": {"headline": f"Headline {v}"}}
        for i, v in enumerate(variants)], **extra}


class Api:
    """The app's client, with helpers that wait for the routers' snapshot to catch up."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def snapshot(self):
        return self.client.app.state.snapshots.current

    def create(self, body: dict) -> dict:
        response = self.client.post("/api/v1/experiments", json=body, headers=ADMIN)
        assert response.status_code == 201, response.text
        created = response.json()
        eventually(lambda: body["id"] in self.snapshot.arms
                   and self.snapshot.experiments[body["id"]].to_dict() == created)
        return created

    def remove(self, exp_id: str) -> None:
        self.admin("DELETE", f"/experiments/{exp_id}")
        eventually(lambda: exp_id not in self.snapshot.experiments)

    def admin(self, method: str, path: str, **kwargs):
        response = self.client.request(method, f"/api/v1{path}", headers=ADMIN, **kwargs)
        assert response.status_code < 300, response.text
        return response

    def decide(self, tenant: str = "", **body):
        return self.client.post("/api/v1/decide", json=body, headers=key(tenant))

    def convert(self, tenant: str = "", **body):
        return self.client.post("/api/v1/conversions", json=body, headers=key(tenant))

    def stats(self, exp_id: str) -> dict[str, dict]:
        return {v["id"]: v for v in self.admin("GET", f"/experiments/{exp_id}/stats").json()["variants"]}

    def total(self, exp_id: str, field: str) -> int:
        return sum(v[field] for v in self.stats(exp_id).values())

    def events(self, exp_id: str) -> list[dict]:
        store = self.client.app.state.store
        return [fields for _, fields in self.client.portal.call(store.events, exp_id)]


@pytest.fixture
def api(redis_url):
    with TestClient(create_app(settings_for(redis_url))) as client:
        yield Api(client)
