"""nginx/seed.py against a real router and redis-server: creates the committed
experiments once, leaves them alone after, and fails clearly."""

from __future__ import annotations

import json

import httpx
import pytest

from croupier.nginx.deploy import COMPOSE, K8S
from croupier.nginx.seed import SeedError, main, seed
from croupier.scripts.processes import free_port, start_redis, start_router, stop_all

TOKEN = "seed-test-token-0123456789"


@pytest.fixture
def router_url(tmp_path):
    redis_port, router_port = free_port(), free_port()
    started = []
    try:
        started.append(start_redis(tmp_path, redis_port))
        started.append(start_router(tmp_path, router_port, {
            "CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_ADMIN_TOKEN": TOKEN,
            "CROUPIER_SECRET": "seed-test-secret-0123456789"}))
        yield f"http://127.0.0.1:{router_port}"
    finally:
        stop_all(started)


def test_seeds_the_committed_experiments_once(router_url, monkeypatch, capsys):
    monkeypatch.setenv("CROUPIER_ADMIN_TOKEN", TOKEN)
    for target in (COMPOSE, K8S):  # both files are accepted by the admin API as they are
        assert main(["--admin-url", router_url, "--experiments", str(target.experiments_path), "--wait", "5"]) == 0
    assert capsys.readouterr().out.splitlines() == ["experiment demo: created", "experiment demo: exists, left as it is"]
    stored = httpx.get(f"{router_url}/api/v1/experiments/demo", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    committed = json.loads(COMPOSE.experiments_path.read_text())[0]
    assert [v["upstream"] for v in stored["variants"]] == [v["upstream"] for v in committed["variants"]]


def test_refusals_and_silence_are_errors(router_url, tmp_path):
    with pytest.raises(SeedError, match="HTTP 401"):
        seed(router_url, "wrong-token", [{"id": "x"}], wait=2)
    with pytest.raises(SeedError, match="HTTP 422"):
        seed(router_url, TOKEN, [{"id": "x", "variants": []}], wait=2)
    with pytest.raises(SeedError, match="did not answer"):
        seed(f"http://127.0.0.1:{free_port()}", TOKEN, [{"id": "x"}], wait=0.5)


def test_token_is_required(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("CROUPIER_ADMIN_TOKEN", raising=False)
    assert main(["--admin-url", "http://127.0.0.1:1", "--experiments", str(tmp_path / "e.json")]) == 2
    assert "CROUPIER_ADMIN_TOKEN" in capsys.readouterr().err
