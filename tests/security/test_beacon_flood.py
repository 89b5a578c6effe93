"""A beacon flood from one address gets 429; other addresses are counted as before."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.settings import Settings
from croupier.router.token import Assignment, new_visitor_id, sign
from croupier.scripts.stack import LocalStack
from tests.conftest import Visitor, eventually, stack_config, variant_stats

SECRET = "s" * 32
TOKEN = "flood-admin-token"


def rate_limited_count(metrics_text: str) -> float:
    found = re.search(r'croupier_beacon_events_total\{reason="rate_limited",result="rejected"\} (\S+)', metrics_text)
    return float(found.group(1)) if found else 0.0


def test_router_limits_by_x_real_ip_before_touching_redis(redis_url):
    settings = Settings(redis_url=redis_url, secret=SECRET, admin_token=TOKEN, refresh_interval=0.05,
                        beacon_rate=1, beacon_burst=5)
    with TestClient(create_app(settings)) as client:
        client.post("/api/v1/experiments", headers={"Authorization": f"Bearer {TOKEN}"}, json={
            "id": "flood", "variants": [{"id": "a", "upstream": "127.0.0.1:9"}]}).raise_for_status()
        cookie = sign(Assignment(new_visitor_id(), "flood", "a", int(time.time())), "k1", SECRET.encode())

        def beacon(address: str, **headers) -> httpx.Response:
            return client.post("/_croupier/beacon", json={"experiment": "flood", "type": "view"},
                               headers={"X-Real-IP": address, "Cookie": f"croupier_flood={cookie}", **headers})

        eventually(lambda: beacon("192.0.2.200").status_code == 204)  # the snapshot knows the experiment
        flood = [beacon("192.0.2.1") for _ in range(50)]
        assert [r.status_code for r in flood[:5]] == [204] * 5
        refused = [r for r in flood if r.status_code == 429]
        assert len(refused) >= 44  # at most one token refilled while the flood ran
        assert refused[0].json()["reason"] == "rate_limited"
        assert refused[0].headers["retry-after"] == "1"
        # X-Forwarded-For is never read: only NGINX's X-Real-IP names the client
        assert beacon("192.0.2.1", **{"X-Forwarded-For": "192.0.2.77"}).status_code == 429
        assert [beacon(f"192.0.2.{i}").status_code for i in range(2, 12)] == [204] * 10
        # refused events were never counted
        stats = client.get("/api/v1/experiments/flood/stats", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert stats["variants"][0]["views"] == 1 + (len(flood) - len(refused)) + 10
        assert rate_limited_count(client.get("/metrics").text) == len(refused) + 1


class _FromAddress(Visitor):
    """A visitor whose connections leave from a given loopback address (NGINX's $remote_addr)."""

    def __init__(self, base_url: str, address: str) -> None:
        super().__init__(base_url)
        headers = self.client.headers
        self.client.close()
        self.client = httpx.Client(base_url=base_url, timeout=10, headers=headers,
                                   transport=httpx.HTTPTransport(local_address=address))


@pytest.fixture(scope="module")
def limited_stack(tmp_path_factory):
    config = stack_config(tmp_path_factory.mktemp("limited"))
    config.router_env.update({"CROUPIER_BEACON_RATE": "2", "CROUPIER_BEACON_BURST": "10"})
    stack = LocalStack(config).start()
    yield stack
    stack.stop()


def test_a_flood_through_nginx_gets_429_and_another_address_is_unaffected(limited_stack):
    base = limited_stack.config.base_url
    flooder, other = _FromAddress(base, "127.0.0.1"), _FromAddress(base, "127.0.0.2")
    flooder.variant(), other.variant()
    before = variant_stats(limited_stack)
    metrics_before = rate_limited_count(httpx.get(f"{limited_stack.config.admin_url}/metrics").text)
    # NGINX overwrites X-Real-IP with the connection's address: spoofing it changes nothing
    spoof = {"X-Real-IP": "198.51.100.9", "X-Forwarded-For": "198.51.100.9"}
    answers = [flooder.beacon({"experiment": "demo", "type": "view"}, **spoof) for _ in range(60)]
    codes = [r.status_code for r in answers]
    assert codes[:10] == [204] * 10
    assert codes.count(429) >= 45, codes
    assert set(codes) == {204, 429}
    limited = next(r for r in answers if r.status_code == 429)
    assert limited.headers["retry-after"] == "1" and limited.json()["reason"] == "rate_limited"

    assert [other.beacon({"experiment": "demo", "type": "view"}).status_code for _ in range(10)] == [204] * 10
    after = variant_stats(limited_stack)
    views = sum(after[v]["views"] - before[v]["views"] for v in after)
    assert views == codes.count(204) + 10  # every 429 left the counters alone
    metrics_after = rate_limited_count(httpx.get(f"{limited_stack.config.admin_url}/metrics").text)
    assert metrics_after - metrics_before == codes.count(429)
    # the flooder's bucket refills at the configured rate
    time.sleep(0.6)
    assert flooder.beacon({"experiment": "demo", "type": "view"}).status_code == 204
    for v in (flooder, other):
        v.close()
