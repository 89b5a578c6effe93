"""POST /api/v1/predict on a real redis-server (the app in-process): keys, tenants, context, no model."""

from __future__ import annotations

import asyncio

import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.experiments import parse_experiment
from croupier.router.predict_api import interval
from croupier.router.settings import Settings
from croupier.router.store import Store
from croupier.router.model_update import run_round
from tests.conftest import eventually
from tests.router.model.events import write

KEYS = {"": "d" * 24, "acme": "a" * 24}


def experiment(exp_id: str, tenant: str = "", **extra) -> dict:
    return {"id": exp_id, "tenant": tenant, "segment_keys": ["device"],
            "variants": [{"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}],
            **extra}


def prepare(redis_url: str) -> None:
    async def work():
        store = Store(Settings(redis_url=redis_url))
        try:
            await store.create_experiment(parse_experiment(experiment("demo")))
            await store.create_experiment(parse_experiment(experiment("untrained")))
            await store.create_experiment(parse_experiment(experiment("theirs", tenant="acme")))
            await write(store, "demo", 3000, seed=1)
            await run_round(store, "demo", trigger="manual")
        finally:
            await store.close()
    asyncio.run(work())


@pytest.fixture
def api(redis_url):
    prepare(redis_url)
    settings = Settings(redis_url=redis_url, secret="s" * 32, refresh_interval=0.05,
                        api_keys=",".join(f"{t or 'default'}:{k}" for t, k in KEYS.items()))
    with TestClient(create_app(settings), base_url="http://testserver/api/v1") as client:
        eventually(lambda: client.app.state.snapshots.current.experiments.get("demo"))
        yield client


def predict(api, body: dict, key: str = KEYS[""]):
    return api.post("/predict", json=body, headers={"Authorization": f"Bearer {key}"})


def test_predicts_every_variant_with_an_interval_the_version_and_the_time(api):
    answer = predict(api, {"experiment": "demo", "context": {"device": "Mobile"}})
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["experiment"] == "demo" and doc["model_version"] == 1 and doc["context"] == {"device": "mobile"}
    assert set(doc["variants"]) == {"a", "b"} and doc["inference_ms"] >= 0
    a, b = doc["variants"]["a"], doc["variants"]["b"]
    assert a["p"] > 0.15 > 0.1 > b["p"]  # mobile visitors convert on a (tests/router/model/events.py)
    for v in (a, b):
        assert 0 < v["low"] < v["p"] < v["high"] < 1 and v["seen"] is True
    desktop = predict(api, {"experiment": "demo", "context": {"device": "desktop"}}).json()["variants"]
    assert desktop["b"]["p"] > 0.15 > 0.1 > desktop["a"]["p"]
    # no context: the model's rate for a visitor without a known field, still an answer
    assert predict(api, {"experiment": "demo"}).status_code == 200


def test_refusals_name_the_problem(api):
    assert api.post("/predict", json={"experiment": "demo"}).status_code == 401
    assert predict(api, {"experiment": "demo"}, key="x" * 24).status_code == 401
    other = predict(api, {"experiment": "theirs"})
    assert other.status_code == 403 and other.json()["reason"] == "other_tenant"
    missing = predict(api, {"experiment": "nope"})
    assert missing.status_code == 404 and missing.json()["reason"] == "unknown_experiment"
    untrained = predict(api, {"experiment": "untrained"})
    assert untrained.status_code == 404 and untrained.json()["reason"] == "no_model"
    assert "croupier-model train --experiment untrained" in untrained.json()["error"]
    bad = predict(api, {"experiment": "demo", "context": {"shoe_size": "44"}})
    assert bad.status_code == 400 and bad.json()["error"].startswith("context: 'shoe_size' is not a context field")
    assert predict(api, {"experiment": "demo", "context": "mobile"}).status_code == 400
    unknown = predict(api, {"experiment": "demo", "customer_id": "c1"})
    assert unknown.status_code == 400 and "customer_id" in unknown.json()["error"]
    assert predict(api, {}).json()["error"] == "experiment: give either experiment or slot"


def test_interval_is_normal_on_the_logit_scale():
    low, high = interval(0.1, 0.01)
    assert 0.08 < low < 0.1 < high < 0.125
    assert high - 0.1 > 0.1 - low  # skewed away from 0, as a rate near 0 should be
    assert interval(0.5, 0.0) == pytest.approx((0.5, 0.5))
    low, high = interval(0.01, 0.5)  # however unsure, within [0, 1]
    assert 0 <= low < 0.01 < high <= 1
