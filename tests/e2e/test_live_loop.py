"""The live loop end to end: NGINX → router → variant → beacon → Redis, real processes."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import redis

from croupier.router.passes import with_pass
from croupier.scripts.simulate import run_simulation
from tests.conftest import BROWSER_UA, Visitor, eventually, page_variant, settled_totals, variant_stats

VARIANTS = {"a", "b", "c"}


def test_visitor_gets_a_variant_page_and_a_cookie(visitor: Visitor):
    response = visitor.get("/")
    assert response.status_code == 200
    assert page_variant(response) in VARIANTS
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("croupier_demo=v1.")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie


def test_the_same_visitor_keeps_the_same_variant(stack, visitor: Visitor):
    first = visitor.variant()
    trials_before = settled_totals(stack, "trials")
    seen = {visitor.variant() for _ in range(10)}
    assert seen == {first}
    # a returning visitor is not a new trial
    assert settled_totals(stack, "trials") == trials_before


def test_assignments_are_recorded_with_their_propensities(stack, visitor: Visitor):
    variant = visitor.variant()
    client = redis.Redis(port=stack.config.redis_port, decode_responses=True)

    def assignment_logged():
        entries = client.xrevrange("croupier:{demo}:events", count=50)
        return [f for _, f in entries if f["type"] == "assign" and f["variant"] == variant]

    entry = eventually(assignment_logged)[0]
    probs = json.loads(entry["probs"])
    assert set(probs) == VARIANTS
    assert abs(sum(probs.values()) - 1.0) < 1e-9
    assert all(p >= 0.01 - 1e-12 for p in probs.values())  # the default 1% floor


def test_a_conversion_counts_once_even_when_sent_five_times(stack, visitor: Visitor):
    variant = visitor.variant()
    before = variant_stats(stack)[variant]["conversions"]
    answers = [visitor.beacon({"experiment": "demo", "type": "convert", "goal": "signup"}).status_code
               for _ in range(5)]
    assert answers == [204] * 5
    assert variant_stats(stack)[variant]["conversions"] == before + 1


def test_views_and_clicks_are_counted(stack, visitor: Visitor):
    variant = visitor.variant()
    before = variant_stats(stack)[variant]
    assert visitor.beacon({"experiment": "demo", "type": "view", "id": "view-event-0001"}).status_code == 204
    assert visitor.beacon({"experiment": "demo", "type": "view", "id": "view-event-0001"}).status_code == 204
    assert visitor.beacon({"experiment": "demo", "type": "click"}).status_code == 204
    after = variant_stats(stack)[variant]
    assert after["views"] == before["views"] + 1  # the repeated event id counted once
    assert after["clicks"] == before["clicks"] + 1


def tamper(cookie_value: str) -> str:
    parts = cookie_value.split(".")
    parts[4] = "b" if parts[4] != "b" else "c"  # claim another variant, keep the old signature
    return ".".join(parts)


def test_a_tampered_cookie_counts_nothing(stack, visitor: Visitor):
    visitor.variant()
    token = visitor.client.cookies["croupier_demo"]
    before = variant_stats(stack)
    forged = Visitor(stack.config.base_url)
    forged.client.cookies.set("croupier_demo", tamper(token))
    response = forged.beacon({"experiment": "demo", "type": "convert"})
    assert response.status_code == 403
    assert response.json()["reason"] == "bad_token"
    no_cookie = Visitor(stack.config.base_url)
    assert no_cookie.beacon({"experiment": "demo", "type": "convert"}).status_code == 403
    after = variant_stats(stack)
    assert all(after[v]["conversions"] == before[v]["conversions"] for v in VARIANTS)


@pytest.mark.parametrize("body, headers, status, reason", [
    ({"experiment": "nope", "type": "convert"}, {}, 404, "unknown_experiment"),
    ({"experiment": "demo", "type": "purchase"}, {}, 400, "bad_type"),
    ({"experiment": "demo", "type": "convert", "variant": "b"}, {}, 400, "unknown_field"),
    ({"experiment": "demo", "type": "convert", "value": -1}, {}, 400, "bad_value"),
    ({"experiment": "demo", "type": "convert"}, {"Origin": "https://evil.example"}, 403, "cross_site"),
    ({"experiment": "demo", "type": "convert"}, {"Sec-Fetch-Site": "cross-site"}, 403, "cross_site"),
])
def test_bad_beacon_input_is_refused_and_changes_nothing(stack, visitor, body, headers, status, reason):
    visitor.variant()
    before = variant_stats(stack)
    response = visitor.beacon(body, **headers)
    assert response.status_code == status
    assert response.json()["reason"] == reason
    assert all(variant_stats(stack)[v]["conversions"] == before[v]["conversions"] for v in VARIANTS)


def test_oversized_and_non_json_beacons_are_refused(stack, visitor: Visitor):
    visitor.variant()
    big = visitor.client.post("/_croupier/beacon", content=b'{"experiment":"demo","type":"view","x":"'
                              + b"x" * 5000 + b'"}', headers={"Content-Type": "application/json"})
    assert big.status_code == 413
    form = visitor.client.post("/_croupier/beacon", content=b"experiment=demo&type=convert",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415


def test_a_bot_gets_control_and_is_not_counted(stack):
    before = settled_totals(stack, "trials")
    bot = Visitor(stack.config.base_url, user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)")
    for _ in range(5):
        response = bot.get("/")
        assert response.status_code == 200
        assert page_variant(response) == "a"
        assert "set-cookie" not in response.headers
    metrics = httpx.get(f"{stack.config.admin_url}/metrics").text
    assert 'reason="bot"' in metrics
    assert settled_totals(stack, "trials") == before


def test_beacon_js_is_served_on_the_same_origin(visitor: Visitor):
    response = visitor.get("/_croupier/beacon.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "/_croupier/beacon" in response.text


def test_router_internals_are_not_reachable_through_nginx(visitor: Visitor):
    for path in ("/_croupier/decide", "/_croupier/anything", "/_croupier/../_croupier/decide"):
        assert visitor.get(path).status_code == 404


class Canary:
    """A TCP listener standing in for something NGINX must never be pointed at."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def test_a_request_cannot_steer_nginx_outside_the_allowlist(stack):
    canary = Canary()
    targets = [f"127.0.0.1:{canary.port}", f"127.0.0.1:{stack.config.redis_port}", "169.254.169.254:80",
               f"127.0.0.1:{stack.config.router_port}"]
    try:
        for target in targets:
            visitor = Visitor(stack.config.base_url)
            visitor.client.cookies.set("croupier_demo", f"v1.k1.AAAAAAAAAAAAAAAAAAAAAA.demo.x.1.{target}")
            attempts = [
                visitor.get("/", headers={"X-Croupier-Upstream": target, "X-Croupier-Variant": "x"}),
                visitor.get(f"/?upstream={target}&X-Croupier-Upstream={target}"),
                visitor.get(f"/%2e%2e/{target}", headers={"X-Original-URI": f"http://{target}/"}),
                visitor.get("/", headers={"Host": target, "X-Forwarded-Host": target}),
            ]
            # routing passes NGINX checks itself: a guessed tag, a far expiry, a token naming the target
            variant = target.replace(".", "_").replace(":", "_")
            for token in (f"v1.k1.{'A' * 22}.demo.{variant}.1.mac", f"v1.k1.{'A' * 22}.demo.b.1.mac"):
                for value in (f"{token}~9999999999.{'A' * 22}", f"{token}~{int(time.time()) + 60}.{'A' * 22}",
                              with_pass(token, int(time.time()) + 60, "g" * 32)):  # a key of their own
                    attempts.append(httpx.get(stack.config.base_url + "/", headers={
                        "User-Agent": BROWSER_UA, "Cookie": f"croupier_demo={value}"}))
            for response in attempts:
                assert response.status_code in (200, 400), response.status_code
                if response.status_code == 200:
                    assert page_variant(response) in VARIANTS
        assert canary.connections == 0
    finally:
        canary.close()


def test_simulated_traffic_puts_most_visitors_on_the_best_variant(stack):
    tally = run_simulation(stack.config.base_url, {"a": 0.02, "b": 0.15, "c": 0.03}, visitors=2500,
                           concurrency=8, seed=7)
    assert not tally.errors, tally.errors
    assert set(tally.beacon_status) == {204}
    recent = tally.recent_shares()
    assert recent.get("b", 0) > 0.6, recent
    shares = {v: s["share"] for v, s in variant_stats(stack).items()}
    assert shares["b"] == max(shares.values()) and shares["b"] > 0.6, shares


def test_stats_show_period_checks_and_timeseries_after_traffic(stack):
    run_simulation(stack.config.base_url, {"a": 0.05, "b": 0.1, "c": 0.05}, visitors=300, concurrency=4, seed=3)
    settled_totals(stack, "trials")
    with stack.admin() as admin:
        stats = admin.get("/experiments/demo/stats").json()
        series = admin.get("/experiments/demo/timeseries").json()
    srm = stats["sample_ratio"]
    # the observed split matches what the policy gave, period by period: no alert
    assert srm["alert"] is False and srm["p_value"] > 0.001, srm
    assert abs(sum(srm["observed"]) - sum(srm["expected"])) < 1e-6 * sum(srm["observed"]) + 1e-6
    assert len(stats["lift"]["stratified_rate"]) == 3
    assert series["buckets"] and set(series["variants"]) == VARIANTS
    assert sum(sum(v["trials"]) for v in series["variants"].values()) == sum(
        v["trials"] for v in stats["variants"])


