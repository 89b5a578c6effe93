"""A guardrail on the real stack: a variant that converts better but drives most visitors
away is breached by the monitor, capped at the floor in every split NGINX's visitors get,
and the alert reaches a webhook receiver, signed; a marketer clears the breach and the
variant competes again."""

from __future__ import annotations

import json
import random
import secrets

import httpx

from bench.experiments import wait_for_pickup
from tests.conftest import BROWSER_UA, eventually, page_variant
from tests.router.alerts.conftest import Receiver, verify

SECRET = "guardrail-webhook-secret"


def test_a_breach_caps_the_variant_alerts_and_is_cleared(make_stack):
    stack = make_stack(router_env={"CROUPIER_MONITOR_INTERVAL": "0.5", "CROUPIER_ALERT_POLL_INTERVAL": "0.2"})
    receiver = Receiver().up()
    base = stack.config.variant_base_port
    try:
        with stack.admin() as admin:
            admin.post("/webhooks", json={"id": "ops", "url": receiver.url, "secret": SECRET}).raise_for_status()
            admin.post("/experiments", json={
                "id": "gr", "path_prefix": "/gr/", "min_share": 0.05, "control": "a",
                "variants": [{"id": "a", "upstream": f"127.0.0.1:{base}"},
                             {"id": "b", "upstream": f"127.0.0.1:{base + 1}"}],
                "guardrails": [{"metric": "bounce_rate", "threshold": 0.05, "min_sample": 60}]}).raise_for_status()
        stack.reload_nginx()
        # until the reloaded NGINX and the router both know the experiment (an old worker
        # closes its keep-alive connections as it goes)
        wait_for_pickup(stack.config.base_url, "gr", "/gr/", timeout=30)
        rand = random.Random(5)
        # b converts twice as often as a, but 85% of its visitors leave at once (a: 35%)
        truth = {"a": (0.10, 0.65), "b": (0.20, 0.15)}
        shown = visit(stack, 300, truth, rand)
        with stack.admin() as admin:
            def breached():
                found = admin.get("/experiments/gr/guardrails").json()
                (b,) = found["variants"]
                return b if b["breach"] and b["breach"]["state"] == "breached" else None
            b = eventually(breached, timeout=20)
            assert b["breach"]["metric"] == "bounce_rate" and b["breach"]["low"] > 0.05
            eventually(lambda: admin.get("/experiments/gr/stats").json()["variants"][1]["share"] == 0.05, timeout=10)
        late = visit(stack, 200, truth, rand)
        assert late.count("b") < 0.15 * len(late), (shown.count("b"), late.count("b"))
        alert = eventually(lambda: next((r for r in receiver.got() if json.loads(r.body)["kind"] == "guardrail"),
                                        None), timeout=20)
        assert verify(SECRET, alert.headers["X-Croupier-Signature"], alert.body)
        doc = json.loads(alert.body)
        assert (doc["experiment"], doc["variant"]) == ("gr", "b") and "capped at 5%" in doc["summary"]

        with stack.admin() as admin:
            assert admin.delete("/experiments/gr/guardrails/b").status_code == 204
            assert admin.delete("/experiments/gr/guardrails/b").status_code == 404  # nothing held any more
            eventually(lambda: admin.get("/experiments/gr/stats").json()["variants"][1]["share"] > 0.05, timeout=10)
    finally:
        receiver.down()


def visit(stack, n: int, truth: dict, rand: random.Random) -> list[str]:
    """``n`` new visitors of /gr/: each page's engagement report, and a conversion at the variant's rate."""
    base_url = stack.config.base_url
    shown = []
    with httpx.Client(headers={"User-Agent": BROWSER_UA}, timeout=10) as client:
        for _ in range(n):
            client.cookies.clear()
            page = client.get(f"{base_url}/gr/")
            assert page.status_code == 200
            variant = page_variant(page)
            shown.append(variant)
            convert, engaged = truth[variant]
            engaged = rand.random() < engaged
            post = {"headers": {"Origin": base_url}}
            client.post(f"{base_url}/_croupier/beacon", **post, json={
                "experiment": "gr", "type": "engagement", "id": secrets.token_hex(8),
                "active_ms": 15_000 if engaged else 2_000, "scroll": 60 if engaged else 5, "clicks": int(engaged),
                "engaged": engaged}).raise_for_status()
            if rand.random() < convert:
                client.post(f"{base_url}/_croupier/beacon", **post, json={
                    "experiment": "gr", "type": "convert", "goal": "signup",
                    "id": secrets.token_hex(8)}).raise_for_status()
    return shown
