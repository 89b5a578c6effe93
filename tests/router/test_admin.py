"""The admin API against a real redis-server (the app run in-process)."""

from __future__ import annotations

import time

import pytest
from starlette.testclient import TestClient

from router.app import create_app
from router.rules import GOAL, ID, UPSTREAM
from router.settings import Settings
from router.store import AssignmentRecord
from tests.conftest import eventually

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def experiment(exp_id: str = "spring", **extra) -> dict:
    return {"id": exp_id, "path_prefix": f"/{exp_id}/", "variants": [
        {"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}], **extra}


@pytest.fixture
def api(redis_url):
    settings = Settings(redis_url=redis_url, admin_token=TOKEN, secret="s" * 32, refresh_interval=0.05)
    with TestClient(create_app(settings), base_url="http://testserver/api/v1") as client:
        client.headers.update(AUTH)
        yield client


def test_without_or_with_a_wrong_token_nothing_changes(api):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        assert api.post("/experiments", json=experiment(), headers=headers).status_code == 401
        assert api.get("/experiments", headers=headers).status_code == 401
    assert api.get("/experiments").json() == {"experiments": []}


def test_admin_api_disabled_without_a_token(redis_url):
    settings = Settings(redis_url=redis_url, secret="s" * 32)
    with TestClient(create_app(settings)) as client:
        response = client.get("/api/v1/experiments", headers={"Authorization": "Bearer "})
        assert response.status_code == 401
        assert "CROUPIER_ADMIN_TOKEN" in response.json()["error"]


def test_create_list_get_update_experiment(api):
    created = api.post("/experiments", json=experiment(name="Spring sale"))
    assert created.status_code == 201
    assert created.json()["control"] == "a"
    assert api.post("/experiments", json=experiment()).status_code == 409
    assert [e["id"] for e in api.get("/experiments").json()["experiments"]] == ["spring"]
    assert api.get("/experiments/spring").json()["name"] == "Spring sale"
    assert api.get("/experiments/nope").status_code == 404
    updated = api.patch("/experiments/spring", json={"min_share": 0.05, "status": "paused"})
    assert updated.status_code == 200
    assert updated.json()["min_share"] == 0.05 and updated.json()["status"] == "paused"


@pytest.mark.parametrize("body, field", [
    ({"id": "Bad Id", "variants": [{"id": "a", "upstream": "h:1"}]}, "id"),
    ({"id": "x", "variants": []}, "variants"),
    ({"id": "x", "variants": [{"id": "a", "upstream": "no port"}]}, "variants[0].upstream"),
    ({"id": "x", "variants": [{"id": "a", "upstream": "h:1"}], "control": "z"}, "control"),
    ({"id": "x", "variants": [{"id": "a", "upstream": "h:1"}], "policy": "magic"}, "policy"),
    ({"id": "x", "variants": [{"id": "a", "upstream": "h:1"}], "min_share": 2}, "min_share"),
    ({"id": "x", "variants": [{"id": "a", "upstream": "h:1"}], "colour": "red"}, "colour"),
    ({"id": "x", "variants": [{"id": "a", "upstream": "h:1"}, {"id": "a", "upstream": "h:2"}]}, "variants"),
])
def test_invalid_experiments_are_refused_with_the_field_named(api, body, field):
    response = api.post("/experiments", json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith(field)
    assert api.get("/experiments").json() == {"experiments": []}


@pytest.mark.parametrize("changes, message", [
    ({"id": "Spring Sale"}, ID.error("id")),
    ({"variants": [{"id": "a", "upstream": "h:1"}, {"id": "B!", "upstream": "h:2"}]}, ID.error("variants[1].id")),
    ({"variants": [{"id": "a", "upstream": "http://h/"}]}, UPSTREAM.error("variants[0].upstream")),
    ({"goal": "Sign Up"}, GOAL.error("goal")),
    ({"tenant": "Acme"}, ID.error("tenant")),
    ({"slots": ["hero", "Hero!"]}, ID.error("slots[1]")),
])
def test_ids_upstreams_and_goals_are_refused_with_the_shared_rules(api, changes, message):
    response = api.post("/experiments", json=experiment(**changes))
    assert response.status_code == 422
    assert response.json()["error"].startswith(message)


def test_not_json_is_refused(api):
    response = api.post("/experiments", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["error"].startswith("body")


def test_add_update_pause_and_remove_variants(api):
    api.post("/experiments", json=experiment())
    added = api.post("/experiments/spring/variants", json={"id": "c", "upstream": "127.0.0.1:9103",
                                                           "prior_alpha": 3, "prior_beta": 97})
    assert added.status_code == 201
    assert [v["id"] for v in added.json()["variants"]] == ["a", "b", "c"]
    assert api.post("/experiments/spring/variants", json={"id": "c", "upstream": "h:1"}).status_code == 422
    paused = api.patch("/experiments/spring/variants/c", json={"status": "paused"})
    assert paused.status_code == 200
    assert {v["id"]: v["status"] for v in paused.json()["variants"]}["c"] == "paused"
    assert api.patch("/experiments/spring/variants/c", json={"status": "sleeping"}).status_code == 422
    assert api.patch("/experiments/spring/variants/zz", json={"status": "paused"}).status_code == 404
    assert api.delete("/experiments/spring/variants/a").status_code == 422  # the control stays
    assert api.delete("/experiments/spring/variants/c").status_code == 204
    assert [v["id"] for v in api.get("/experiments/spring").json()["variants"]] == ["a", "b"]


def test_promote_ends_the_experiment(api):
    api.post("/experiments", json=experiment())
    assert api.post("/experiments/spring/promote", json={"variant": "zz"}).status_code == 422
    promoted = api.post("/experiments/spring/promote", json={"variant": "b"}).json()
    assert promoted["status"] == "ended" and promoted["winner"] == "b"
    stats = api.get("/experiments/spring/stats").json()
    assert {v["id"]: v["share"] for v in stats["variants"]} == {"a": 0.0, "b": 1.0}


def test_stats_report_every_variant(api):
    api.post("/experiments", json=experiment())
    stats = api.get("/experiments/spring/stats").json()
    assert stats["policy"] == "thompson"
    rows = stats["variants"]
    assert [r["id"] for r in rows] == ["a", "b"]
    for row in rows:
        assert {"trials", "conversions", "rate", "ci95", "p_best", "expected_loss", "share"} <= set(row)
        assert 0 <= row["ci95"][0] <= row["ci95"][1] <= 1
    assert abs(sum(r["p_best"] for r in rows) - 1) < 1e-9


def test_openapi_document_lists_every_route(api):
    doc = api.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {"/decide", "/conversions",
                                 "/experiments", "/experiments/{id}", "/experiments/{id}/promote",
                                 "/experiments/{id}/stats", "/experiments/{id}/timeseries", "/experiments/{id}/variants",
                                 "/experiments/{id}/variants/{vid}", "/experiments/{id}/model",
                                 "/experiments/{id}/model/prior"}


def test_health_endpoints(redis_url):
    settings = Settings(redis_url=redis_url, secret="s" * 32)
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").text == "ok"
        assert client.get("/readyz").json()["redis"] == "ok"
        metrics = client.get("/metrics").text
        assert "croupier_decision_seconds" in metrics and "croupier_beacon_events" in metrics


def test_readyz_reports_redis_down_while_livez_stays_up():
    settings = Settings(redis_url="redis://127.0.0.1:1/0", secret="s" * 32, redis_timeout=0.2)
    with TestClient(create_app(settings)) as client:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503


def test_stats_list_exactly_the_segments_the_bandit_runs(redis_url):
    """The busiest segments are ranked by the active variants' trials in the snapshot and in
    the stats alike: a segment busy only on a paused variant is neither run nor listed."""
    settings = Settings(redis_url=redis_url, admin_token=TOKEN, secret="s" * 32, refresh_interval=0.05,
                        max_segments=2)
    with TestClient(create_app(settings), base_url="http://testserver/api/v1") as api:
        api.headers.update(AUTH)
        body = experiment("seg", segment_keys=["device"])
        body["variants"].append({"id": "c", "upstream": "127.0.0.1:9103"})
        assert api.post("/experiments", json=body).status_code == 201
        # tablet has the most trials of all, every one of them on c, which is paused below
        plan = {"device=tablet": {"c": 30}, "device=desktop": {"a": 6, "b": 6}, "device=mobile": {"a": 3, "b": 4}}
        shares = (("a", 1 / 3), ("b", 1 / 3), ("c", 1 / 3))
        recorder = api.app.state.recorder
        for segment, by_variant in plan.items():
            for variant, count in by_variant.items():
                for i in range(count):
                    recorder.add(AssignmentRecord("seg", variant, f"{segment}-{variant}-{i}", "new", shares,
                                                  time.time(), segment))
        eventually(lambda: sum(v["trials"] for v in api.get("/experiments/seg/stats").json()["variants"]) == 49)
        assert api.patch("/experiments/seg/variants/c", json={"status": "paused"}).status_code == 200
        snapshots = api.app.state.snapshots

        def bandit_segments() -> set[str]:
            table = snapshots.current.segments.get("seg")
            live = snapshots.current.experiments.get("seg")
            paused = live is not None and not live.variant("c").active
            return set(table.arms) if table is not None and paused else set()

        eventually(lambda: bandit_segments() == {"device=desktop", "device=mobile"})
        assert set(api.get("/experiments/seg/stats").json()["segments"]) == bandit_segments()
