"""croupier-model and the admin API's model endpoints, on a real redis-server (the app in-process)."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.experiments import parse_experiment
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, BeaconEvent, Store
from croupier.scripts.model import main
from croupier.scripts.processes import free_port

TOKEN = "test-admin-token"
RATES = {"a": 0.04, "b": 0.15, "c": 0.07}
EXPERIMENT = {"id": "demo", "variants": [{"id": v, "upstream": f"127.0.0.1:{9101 + i}"} for i, v in enumerate(RATES)]}


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def fill(redis_url: str, visitors: int = 3000, seed: int = 0) -> dict[str, int]:
    """The experiment, and a log as the router writes it: assignments with an even split, then conversions."""
    async def work() -> dict[str, int]:
        store = Store(Settings(redis_url=redis_url))
        rng = np.random.default_rng(seed)
        split = tuple((v, 1 / 3) for v in RATES)
        converted = dict.fromkeys(RATES, 0)
        try:
            await store.create_experiment(parse_experiment(EXPERIMENT))
            arms = rng.choice(list(RATES), visitors)
            await store.record_assignments([AssignmentRecord("demo", str(v), f"v{i}", "new", split, 1000.0 + i)
                                            for i, v in enumerate(arms)])
            for i, v in enumerate(arms):
                if rng.random() < RATES[v]:
                    await store.record_event(BeaconEvent("demo", str(v), f"v{i}", "convert", "signup",
                                                         ts=1000.5 + i))
                    converted[str(v)] += 1
        finally:
            await store.close()
        return converted
    return asyncio.run(work())


@pytest.fixture
def api(redis_url):
    settings = Settings(redis_url=redis_url, admin_token=TOKEN, secret="s" * 32, refresh_interval=0.05)
    with TestClient(create_app(settings), base_url="http://testserver/api/v1") as client:
        client.headers.update({"Authorization": f"Bearer {TOKEN}"})
        yield client


def test_train_prints_a_summary_and_stores_the_model(redis_url):
    fill(redis_url)
    code, text = run("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet", "--json")
    assert code == 0, text
    doc = json.loads(text)
    assert doc["version"] == 1 and doc["current"] is True and doc["status"] == "accepted"
    assert doc["trigger"] == "manual" and doc["rows"] == {**doc["rows"], "train": 2400, "holdout": 600}
    assert doc["model"]["version"] == 1 and doc["model"]["rows"] == 2400
    for arm, rate in RATES.items():
        predicted = doc["model"]["arms"][arm]
        assert abs(predicted["rate"] - rate) < 4 * predicted["sd"] + 0.005, (arm, predicted)
    # the same data again: no better than the current model on the same window, stored as rejected
    code, text = run("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet")
    assert code == 0 and "version 2 rejected: the current model stays" in text and "candidate" in text, text
    code, text = run("show", "--experiment", "demo", "--redis-url", redis_url)
    assert code == 0 and "model version 1" in text and "\n  b " in text
    code, text = run("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet", "--force")
    assert code == 0 and "version 3 accepted" in text and "forced past the gate" in text, text

    code, text = run("versions", "--experiment", "demo", "--redis-url", redis_url)
    assert code == 0, text
    lines = [line for line in text.splitlines() if "manual" in line]
    assert [line.split()[1 if line.startswith("*") else 0] for line in lines] == ["1", "2", "3"]
    assert "rejected" in lines[1] and lines[2].startswith("*")
    code, text = run("versions", "--experiment", "demo", "--redis-url", redis_url, "--json")
    listed = json.loads(text)["versions"]
    assert [(v["version"], v["status"], v["current"], v["rollback"]) for v in listed] == [
        (1, "accepted", False, True), (2, "rejected", False, False), (3, "accepted", True, True)]
    assert all(v["validation"]["candidate"]["log_loss"] > 0 for v in listed)

    code, text = run("rollback", "--experiment", "demo", "--to", "1", "--redis-url", redis_url)
    assert code == 0 and "version 1 is the current model again" in text
    code, text = run("show", "--experiment", "demo", "--redis-url", redis_url, "--json")
    assert json.loads(text)["model"]["version"] == 1


def test_rollback_and_gate_refusals(redis_url, capsys):
    fill(redis_url)
    assert run("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet")[0] == 0
    code, text = run("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet", "--shuffle-labels",
                     "--json")
    assert code == 0 and json.loads(text)["status"] == "rejected" and json.loads(text)["shuffled_labels"]
    assert run("rollback", "--experiment", "demo", "--to", "2", "--redis-url", redis_url)[0] == 1
    assert "version 2 was rejected by the validation gate" in capsys.readouterr().err
    assert run("rollback", "--experiment", "demo", "--to", "9", "--redis-url", redis_url)[0] == 1
    assert "has no version 9 (versions: 1, 2)" in capsys.readouterr().err
    assert run("versions", "--experiment", "nope", "--redis-url", redis_url)[0] == 1
    assert "experiment 'nope' not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        run("rollback", "--experiment", "demo")
    assert usage.value.code == 2
    with pytest.raises(SystemExit) as usage:
        run("train", "--holdout", "1.5")
    assert usage.value.code == 2


def test_train_errors_exit_1_with_a_message(redis_url, capsys):
    assert run("train", "--experiment", "nope", "--redis-url", redis_url, "--quiet")[0] == 1
    assert "experiment 'nope' not found" in capsys.readouterr().err
    assert run("show", "--experiment", "nope", "--redis-url", redis_url)[0] == 1
    assert "has no stored model" in capsys.readouterr().err
    asyncio.run(_create(redis_url))
    assert run("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet")[0] == 1
    assert "has no events to train on" in capsys.readouterr().err
    down = f"redis://127.0.0.1:{free_port()}/0"
    assert run("train", "--experiment", "demo", "--redis-url", down, "--quiet")[0] == 1
    err = capsys.readouterr().err
    assert f"Redis at {down} is unavailable" in err
    with pytest.raises(SystemExit) as usage:
        run("train", "--l2", "0")
    assert usage.value.code == 2


async def _create(redis_url: str) -> None:
    store = Store(Settings(redis_url=redis_url))
    try:
        await store.create_experiment(parse_experiment(EXPERIMENT))
    finally:
        await store.close()


def test_model_endpoints_and_the_stats_field(redis_url, api):
    fill(redis_url)
    assert api.get("/experiments/nope/model").status_code == 404
    missing = api.get("/experiments/demo/model")
    assert missing.status_code == 404 and "croupier-model train --experiment demo" in missing.json()["error"]
    assert api.get("/experiments/demo/model/prior").status_code == 404
    assert run("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet")[0] == 0
    api.post("/experiments/demo/variants", json={"id": "d", "upstream": "127.0.0.1:9104"}).raise_for_status()

    model = api.get("/experiments/demo/model").json()
    assert model["version"] == 1 and model["in_use"] is False and model["model_weight"] == 0.0
    assert set(model["arms"]) == {"a", "b", "c", "d"} and model["arms"]["d"]["seen"] is False
    assert "model" not in api.get("/experiments/demo/stats").json()  # not in use at weight 0

    prior = api.get("/experiments/demo/model/prior", params={"strength": 300}).json()
    known = [model["arms"][v]["rate"] for v in RATES]
    assert prior["weight"] == pytest.approx(300, rel=0.01)
    assert prior["rate"] == pytest.approx(np.mean(known), abs=1e-6)
    assert prior["prior_alpha"] + prior["prior_beta"] == pytest.approx(prior["weight"])
    for bad in ("0", "-1", "abc", "1e9"):
        refused = api.get("/experiments/demo/model/prior", params={"strength": bad})
        assert refused.status_code == 422 and refused.json()["error"].startswith("strength: ")

    bad = api.patch("/experiments/demo", json={"model_weight": 2})
    assert bad.status_code == 422 and bad.json()["error"].startswith("model_weight: ")
    assert api.patch("/experiments/demo", json={"model_weight": 0.5}).json()["model_weight"] == 0.5
    stats = api.get("/experiments/demo/stats").json()
    assert stats["model"]["version"] == 1 and stats["model"]["weight"] == 0.5 and stats["model"]["trained_at"] > 0
    assert stats["model"]["arms"]["b"]["rate"] == pytest.approx(model["arms"]["b"]["rate"])

    paths = api.get("/openapi.json").json()["paths"]
    assert "strength" in json.dumps(paths["/experiments/{id}/model/prior"])
