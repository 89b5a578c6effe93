"""The model keeps itself current, on real processes: redis-server and router processes, the
retrainer on a short interval, events written as the router writes them, the predictions read
through POST /api/v1/predict."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import httpx

from croupier.router.alerts import Alert
from croupier.router.experiments import parse_experiment
from croupier.router.store import Store
from croupier.scripts.model import main as model_main
from croupier.scripts.processes import free_port, start_router
from tests.conftest import FAST, eventually, redis_and_router, with_store
from tests.router.model.events import write

KEY = "k" * 24
TOKEN = "admin-token-for-tests"
EXPERIMENT = {"id": "demo", "segment_keys": ["device"], "model_weight": 0.5,
              "variants": [{"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}]}


def env(interval: str, **more: str) -> dict[str, str]:
    return {**FAST, "CROUPIER_RETRAIN_INTERVAL": interval, "CROUPIER_MONITOR_INTERVAL": "1",
            "CROUPIER_SECRET": "s" * 32, "CROUPIER_API_KEYS": f"default:{KEY}", "CROUPIER_ADMIN_TOKEN": TOKEN, **more}


def records(redis_url: str) -> list[dict]:
    return with_store(redis_url, lambda store: store.model_records("demo"))


def predict(url: str, device: str) -> dict:
    answer = httpx.post(f"{url}/api/v1/predict", json={"experiment": "demo", "context": {"device": device}},
                        headers={"Authorization": f"Bearer {KEY}"}, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return model_main(list(argv), out=out), out.getvalue()


def test_retrains_by_itself_keeps_the_better_model_and_rolls_back(tmp_path: Path):
    with redis_and_router(tmp_path, env("1")) as (url, redis_url):
        async def first(store: Store):
            await store.create_experiment(parse_experiment(EXPERIMENT))
            await write(store, "demo", 3000, seed=1)
        with_store(redis_url, first)
        # version 1, trained by the router on a schedule, answers the predictions
        v1 = eventually(lambda: [r for r in records(redis_url) if r["status"] == "accepted"], timeout=30)[0]
        assert v1["version"] == 1 and v1["trigger"] == "schedule" and v1["rows"]["train"] == 2400
        assert v1["validation"]["current"] is None and v1["validation"]["base_rate"]["log_loss"] > \
            v1["validation"]["candidate"]["log_loss"]
        mobile = eventually(lambda: (p := predict(url, "mobile"))["model_version"] == 1 and p, timeout=10)
        assert mobile["variants"]["a"]["p"] > mobile["variants"]["b"]["p"]

        # the relationship flips: a later version is accepted against version 1 and predicts the new one
        with_store(redis_url, lambda store: write(store, "demo", 6000, seed=2, flipped=True,
                                                  start=1_700_001_000.0))

        def flipped():
            p = predict(url, "mobile")
            return p["model_version"] > 1 and p["variants"]["b"]["p"] > p["variants"]["a"]["p"] and p
        now = eventually(flipped, timeout=40)
        held = {r["version"]: r for r in records(redis_url)}
        v2 = held[now["model_version"]]
        # the schedule, or the monitor's DriftCheck seeing the rates change in the time buckets first
        assert v2["status"] == "accepted" and v2["trigger"] in ("schedule", "drift") and v2["current"]
        assert v2["validation"]["current_version"] >= 1
        assert v2["validation"]["candidate"]["log_loss"] < v2["validation"]["current"]["log_loss"]
        # version 1's live figures: on the events after its data, much worse than at its validation
        live = held[1]["live"]
        assert live is not None and live["rows"] > 0
        assert live["log_loss"] > v1["validation"]["candidate"]["log_loss"]

        # a deliberately worse candidate is rejected; the current model stays
        code, text = cli("train", "--experiment", "demo", "--redis-url", redis_url, "--quiet", "--shuffle-labels",
                         "--json")
        rejected = json.loads(text)
        assert code == 0 and rejected["status"] == "rejected" and not rejected["current"], text
        assert "not below the current model's" in rejected["reason"]
        assert predict(url, "mobile")["model_version"] == now["model_version"]

        # rollback: the pointer moves, and the router's predictions follow
        code, text = cli("rollback", "--experiment", "demo", "--to", "1", "--redis-url", redis_url)
        assert code == 0, text
        back = eventually(lambda: (p := predict(url, "mobile"))["model_version"] == 1 and p, timeout=10)
        assert back["variants"]["a"]["p"] > back["variants"]["b"]["p"]
        code, text = cli("versions", "--experiment", "demo", "--redis-url", redis_url)
        assert re.search(r"^\*\s+1 accepted", text, re.M), text

        # the stats show the versions' figures and the live accuracy; the metrics the rounds
        stats = httpx.get(f"{url}/api/v1/experiments/demo/stats", headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=10).json()
        accuracy = stats["model"]["accuracy"]
        assert [a["version"] for a in accuracy][:2] == [1, 2] and accuracy[0]["live_log_loss"] == live["log_loss"]
        assert accuracy[0]["current"] and accuracy[0]["validation_log_loss"] == \
            v1["validation"]["candidate"]["log_loss"]
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        accepted = re.findall(r'^croupier_model_rounds_total\{outcome="accepted",trigger="\w+"\} (\S+)', metrics, re.M)
        assert sum(map(float, accepted)) >= 2, metrics
        assert 'croupier_model_version{experiment="demo"}' in metrics


def test_an_open_drift_alert_starts_a_round(tmp_path: Path):
    # no monitor: the one drift alert is the test's (the monitor's DriftCheck raises the same kind)
    with redis_and_router(tmp_path, env("3600", CROUPIER_ALERTS="0")) as (url, redis_url):
        async def first(store: Store):
            await store.create_experiment(parse_experiment(EXPERIMENT))
            await write(store, "demo", 3000, seed=1)
        with_store(redis_url, first)
        eventually(lambda: records(redis_url), timeout=30)  # the first round: the experiment never had one
        with_store(redis_url, lambda store: write(store, "demo", 4000, seed=3, flipped=True, start=1_700_001_000.0))
        assert len(records(redis_url)) == 1  # new events, but the next scheduled round is an hour away

        # the monitor's DriftCheck raises this alert (its episode stays open while the drift holds)
        alert = Alert("drift", "demo", "Conversion rate of variant a changed", variant="a",
                      details={"kind": "rate", "changed_at": 1_700_001_000})
        raised = with_store(redis_url, lambda store: store.raise_alert(alert.id, json.dumps(alert.to_dict()),
                                                                       alert.episode, 1000))
        assert raised
        second = eventually(lambda: len(rs := records(redis_url)) == 2 and rs[1], timeout=30)
        assert second["trigger"] == "drift" and second["status"] == "accepted"
        # it learnt from the assignments since the change the alert dates: the 4,000 flipped ones
        assert second["data"]["since_ms"] == 1_700_001_000_000 and second["rows"]["train"] == 3200
        heads = with_store(redis_url, lambda store: store.model_heads(["demo"]))
        assert heads["demo"].drift == alert.id
        # the same open alert starts no second round, even with new events
        with_store(redis_url, lambda store: write(store, "demo", 500, seed=4, flipped=True, start=1_700_002_000.0))
        import time
        time.sleep(3)
        assert len(records(redis_url)) == 2


def test_two_routers_train_once_per_period(tmp_path: Path, redis_url: str):
    interval = 2.0
    routers = []
    try:
        for name in ("one", "two"):
            port = free_port()
            routers.append((start_router(tmp_path, port, {"CROUPIER_REDIS_URL": redis_url, **env(str(interval))},
                                         name=f"router-{name}"), f"http://127.0.0.1:{port}"))

        async def first(store: Store):
            await store.create_experiment(parse_experiment(EXPERIMENT))
            await write(store, "demo", 2000, seed=1)
        with_store(redis_url, first)
        eventually(lambda: records(redis_url), timeout=30)
        import time
        for batch in range(4):  # new events in every period, so every period has a round
            with_store(redis_url, lambda store: write(store, "demo", 300, seed=10 + batch,
                                                      start=1_700_001_000.0 + 100 * batch))
            time.sleep(interval)
        rounds = records(redis_url)
        times = [r["trained_at"] for r in rounds]
        assert len(rounds) >= 3
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert min(gaps) >= interval * 0.9, gaps  # never two rounds in one period
        counted = []
        for _, url in routers:
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
            counted.append(sum(float(n) for n in re.findall(r'^croupier_model_rounds_total\{[^}]*\} (\S+)',
                                                            metrics, re.M)))
        assert sorted(counted)[0] == 0 and sorted(counted)[1] == len(rounds), counted  # one router ran them all
    finally:
        for process, _ in routers:
            process.stop()
