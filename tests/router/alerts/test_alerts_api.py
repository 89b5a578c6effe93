"""GET /api/v1/experiments/{id}/alerts against a real redis-server: an experiment's alerts are
read from its own index, so they stay listed however many alerts other experiments raise after
them; newest first, at most the route's limit; the index is capped; an unknown experiment is
a 404."""

from __future__ import annotations

from starlette.testclient import TestClient

from croupier.router import alerts_api
from croupier.router.alerts import Alert, Outbox
from croupier.router.app import create_app
from croupier.router.experiments import parse_experiment
from croupier.router.metrics import Metrics
from croupier.router.store import EXPERIMENT_ALERTS_KEEP
from tests.router.alerts.conftest import AUTH, experiment, settings, with_store


def raise_many(redis_url: str, exp_id: str, count: int, kind: str = "srm") -> list[str]:
    """``count`` alerts of ``exp_id``, oldest first (no episode: each one is raised)."""
    async def work(store) -> list[str]:
        outbox = Outbox(store, Metrics(), 100_000)
        raised = []
        for i in range(count):
            alert = Alert(kind, exp_id, f"{kind} {i} in {exp_id}", variant="b", details={"i": i}, time=1000.0 + i)
            assert await outbox.raise_alert(alert, once_per_episode=False)
            raised.append(alert.id)
        return raised
    return with_store(redis_url, work)


def listed(client: TestClient, exp_id: str) -> list[dict]:
    response = client.get(f"/api/v1/experiments/{exp_id}/alerts", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["experiment"] == exp_id
    return body["alerts"]


def test_an_experiments_alerts_stay_listed_behind_many_others(redis_url):
    async def create(store) -> None:
        for exp_id in ("spring", "busy", "quiet"):
            await store.create_experiment(parse_experiment(experiment(exp_id)))
    with_store(redis_url, create)
    spring = raise_many(redis_url, "spring", 3, kind="drift")
    raise_many(redis_url, "busy", 1500)  # more than the whole outbox a scan used to read
    with TestClient(create_app(settings(redis_url, alerts=False))) as client:
        found = listed(client, "spring")
        assert [a["id"] for a in found] == spring[::-1]  # newest first
        assert found[0] == {"id": spring[2], "kind": "drift", "variant": "b", "time": 1002.0,
                            "summary": "drift 2 in spring", "details": {"i": 2}}
        busy = listed(client, "busy")
        assert len(busy) == alerts_api.LIMIT and [a["details"]["i"] for a in busy] == list(range(1499, 1449, -1))
        assert listed(client, "quiet") == []
        assert client.get("/api/v1/experiments/nope/alerts", headers=AUTH).status_code == 404
        assert client.get("/api/v1/experiments/spring/alerts").status_code == 401

    async def index_length(store) -> int:
        return await store.redis.llen("{croupier:alerts}:experiment:busy")
    assert with_store(redis_url, index_length) == EXPERIMENT_ALERTS_KEEP


def test_an_alert_the_outbox_trimmed_is_left_out(redis_url):
    async def work(store) -> None:
        await store.create_experiment(parse_experiment(experiment("spring")))
        outbox = Outbox(store, Metrics(), 100)  # the outbox keeps about 100 entries
        old = Alert("srm", "spring", "the first")
        assert await outbox.raise_alert(old)
        for i in range(400):
            assert await outbox.raise_alert(Alert("srm", "busy", f"busy {i}"), once_per_episode=False)
        assert await outbox.raise_alert(Alert("drift", "spring", "the latest", variant="a"))
    with_store(redis_url, work)
    with TestClient(create_app(settings(redis_url, alerts=False))) as client:
        assert [a["summary"] for a in listed(client, "spring")] == ["the latest"]
