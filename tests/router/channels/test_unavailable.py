"""Redis away: both endpoints answer 503 with Retry-After, and work again once it is back."""

from __future__ import annotations

from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.scripts.processes import free_port, start_redis
from tests.router.channels.conftest import Api, experiment, settings_for


def test_redis_down_is_503_and_recovers(tmp_path):
    port = free_port()
    server = start_redis(tmp_path, port)
    try:
        with TestClient(create_app(settings_for(f"redis://127.0.0.1:{port}/0", redis_timeout=0.2))) as client:
            api = Api(client)
            api.create(experiment())
            token = api.decide(experiment="promo", customer_id="c1").json()["token"]
            server.stop()
            for answer in (api.decide(experiment="promo", customer_id="c2"),
                           api.convert(experiment="promo", customer_id="c1"),
                           api.convert(experiment="promo", token=token)):
                assert answer.status_code == 503, answer.text
                assert answer.headers["retry-after"] == "1" and "Redis" in answer.json()["error"]
            server = start_redis(tmp_path, port)  # an empty Redis: the registry is written again
            api.create(experiment())
            assert api.decide(experiment="promo", customer_id="c2").status_code == 200
    finally:
        server.stop()
