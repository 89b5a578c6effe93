"""The admin API against a real redis-server (the app run in-process)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from croupier.router.admin import AdminAPI
from croupier.router.app import create_app
from croupier.router.experiments import parse_experiment
from croupier.router.rules import GOAL, ID, UPSTREAM
from croupier.router.settings import Settings
from croupier.router.snapshot import Snapshot
from croupier.router.store import AssignmentRecord, Store
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
    assert api.get("/experiments").json() == {"experiments": [], "next_cursor": None, "total": 0}


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
    assert api.get("/experiments").json()["experiments"] == []


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
    assert set(doc["paths"]) == {"/decide", "/conversions", "/predict", "/batches/assign", "/batches", "/batches/{id}",
                                 "/batches/{id}/results",
                                 "/experiments", "/experiments/{id}", "/experiments/{id}/promote",
                                 "/experiments/{id}/stats", "/experiments/{id}/timeseries", "/experiments/{id}/variants",
                                 "/experiments/{id}/variants/{vid}", "/experiments/{id}/model",
                                 "/experiments/{id}/model/prior", "/experiments/{id}/guardrails",
                                 "/experiments/{id}/guardrails/{variant}", "/experiments/{id}/alerts",
                                 "/experiments/{id}/strategies",
                                 "/webhooks", "/webhooks/{id}"}


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


# -- updated_at and the experiments list -------------------------------------------------

def test_updated_at_is_set_by_the_server_on_every_change(api):
    before = time.time()
    created = api.post("/experiments", json=experiment()).json()
    assert before <= created["updated_at"] <= time.time()
    time.sleep(0.01)
    patched = api.patch("/experiments/spring", json={"name": "Renamed"}).json()
    assert patched["updated_at"] > created["updated_at"]
    time.sleep(0.01)
    added = api.post("/experiments/spring/variants", json={"id": "c", "upstream": "127.0.0.1:9103"}).json()
    assert added["updated_at"] > patched["updated_at"]
    for response in (api.post("/experiments", json=experiment("other", updated_at=1.0)),
                     api.patch("/experiments/spring", json={"updated_at": 1.0})):
        assert response.status_code == 422
        assert response.json()["error"].startswith("updated_at: is set by the server")
    assert api.get("/experiments/spring").json()["updated_at"] == added["updated_at"]
    assert api.get("/experiments/other").status_code == 404


def test_records_stored_before_updated_at_still_load(api):
    old = parse_experiment(experiment("old"))  # the store's read of a document without the field
    assert old.updated_at == 0.0
    api.portal.call(api.app.state.store.create_experiment, old)
    api.post("/experiments", json=experiment("new"))
    listed = api.get("/experiments", params={"sort": "updated"}).json()["experiments"]
    assert [(e["id"], e["updated_at"] > 0) for e in listed] == [("new", True), ("old", False)]


def create_many(api, count: int) -> list[str]:
    ids = [f"exp-{i:03d}" for i in range(count)]
    for i, exp_id in enumerate(ids):
        body = experiment(exp_id, name=f"{('Spring', 'Summer')[i % 2]} sale {i}", tenant=("", "acme")[i % 3 == 0])
        assert api.post("/experiments", json=body).status_code == 201
    return ids


def test_paging_serves_every_experiment_once_while_one_is_created(api):
    ids = create_many(api, 30)
    pages, params, created = [], {"limit": 7}, False
    while True:
        body = api.get("/experiments", params=params).json()
        assert body["total"] == 30 + created and len(body["experiments"]) <= 7
        pages.append([e["id"] for e in body["experiments"]])
        if body["next_cursor"] is None:
            break
        if not created:  # one before the position and one after it; only the later one is still ahead
            api.post("/experiments", json=experiment("exp-000a"))
            api.post("/experiments", json=experiment("exp-020a"))
            created = 2
        params = {"limit": 7, "cursor": body["next_cursor"]}
    served = [exp_id for page in pages for exp_id in page]
    assert served == sorted(ids + ["exp-020a"])
    assert [len(p) for p in pages] == [7, 7, 7, 7, 3]


def test_the_list_filters_searches_and_sorts_by_live_numbers(api):
    create_many(api, 12)
    for exp_id in ("exp-004", "exp-007"):
        assert api.patch(f"/experiments/{exp_id}", json={"status": "paused"}).status_code == 200

    def ids(**params) -> list[str]:
        return [e["id"] for e in api.get("/experiments", params=params).json()["experiments"]]

    assert ids(status="paused") == ["exp-004", "exp-007"]
    assert ids(tenant="acme") == ["exp-000", "exp-003", "exp-006", "exp-009"]
    assert ids(tenant="default", status="paused") == ["exp-004", "exp-007"]
    assert ids(q="SPRING SALE 1") == ["exp-010"]  # the name, case-insensitively, by prefix
    assert ids(q="exp-01") == ["exp-010", "exp-011"]
    assert ids(q="sale") == []
    assert ids(sort="updated", limit=2) == ["exp-007", "exp-004"]
    assert ids(sort="id", order="desc", limit=2) == ["exp-011", "exp-010"]

    shares = (("a", 0.5), ("b", 0.5))
    plan = {"exp-002": 5, "exp-009": 9, "exp-005": 2}
    for exp_id, count in plan.items():
        for i in range(count):
            api.app.state.recorder.add(AssignmentRecord(exp_id, "a", f"v{i}", "new", shares, time.time()))
    eventually(lambda: ids(sort="trials", limit=3) == ["exp-009", "exp-002", "exp-005"])
    row = api.get("/experiments", params={"q": "exp-009"}).json()["experiments"][0]
    assert (row["trials"], row["conversions"], row["rate"]) == (9, 0, 0.0)
    assert ids(sort="trials", order="asc", limit=2) == ["exp-000", "exp-001"]


@pytest.mark.parametrize("query, name", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=many", "limit"), ("sort=name", "sort"),
    ("order=up", "order"), ("status=live", "status"), ("tenant=Acme", "tenant"), ("cursor=abc", "cursor"),
    ("colour=red", "colour"), ("status=running&status=paused", "status"),
])
def test_bad_list_parameters_are_refused_by_name(api, query, name):
    response = api.get(f"/experiments?{query}")
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{name}: ")


def test_pages_read_the_registry_once_per_change(api):
    """Reading the whole registry takes seconds at 10,000 experiments: pages reuse it until it
    changes, and take the refresh task's records instead once its snapshot has the new version."""
    create_many(api, 3)
    store = Store(api.app.state.settings)
    reads = []
    list_experiments = store.list_experiments

    async def counted():
        reads.append(1)
        return await list_experiments()

    store.list_experiments = counted
    held = SimpleNamespace(current=Snapshot())  # a refresh that has not caught up yet
    admin = AdminAPI(api.app.state.settings, store, held)
    try:
        for _ in range(3):
            assert len(api.portal.call(admin.registry)) == 3
        assert len(reads) == 1
        api.post("/experiments", json=experiment("exp-new"))
        assert [e.id for e in api.portal.call(admin.registry)][-1] == "exp-new"
        assert len(reads) == 2
        api.post("/experiments", json=experiment("exp-newer"))
        version = api.portal.call(store.registry_version)
        held.current = Snapshot.build(api.portal.call(list_experiments), {}, {}, version)
        assert [e.id for e in api.portal.call(admin.registry)][-2:] == ["exp-new", "exp-newer"]
        assert len(reads) == 2  # served from the snapshot's records
    finally:
        api.portal.call(store.close)
