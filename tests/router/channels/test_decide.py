"""POST /api/v1/decide: sticky per customer, logged propensities, reassignment, slots."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.router.channels.conftest import experiment, key
from tests.conftest import eventually


def visitor_of(token: str) -> str:
    return token.split(".")[2]


def test_a_customer_keeps_one_variant_for_many_calls(api):
    api.create(experiment())
    first = api.decide(experiment="promo", customer_id="cust-1", channel="email")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["variant"] in ("a", "b") and body["sticky"] is False and body["reason"] == "new"
    assert body["params"] == {"headline": f"Headline {body['variant']}"}
    assert body["channel"] == "email" and body["token"].startswith("v1.")
    for _ in range(30):
        again = api.decide(experiment="promo", customer_id="cust-1", channel="sms").json()
        assert (again["variant"], again["sticky"], again["token"]) == (body["variant"], True, body["token"])
        assert again["propensity"] == body["propensity"]
    # other customers are drawn afresh: with an even split both variants appear
    seen = {api.decide(experiment="promo", customer_id=f"c{i}").json()["variant"] for i in range(40)}
    assert seen == {"a", "b"}
    eventually(lambda: api.total("promo", "trials") == 41)  # one trial per customer, not per call


def test_concurrent_first_calls_for_one_customer_agree_and_count_once(api):
    api.create(experiment(variants="abcd"))

    async def race() -> list[dict]:
        # on the app's own event loop, so the calls interleave between their Redis round trips
        transport = httpx.ASGITransport(app=api.client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://router", headers=key("")) as client:
            calls = [client.post("/api/v1/decide", json={"experiment": "promo", "customer_id": "racer"})
                     for _ in range(32)]
            return [r.json() for r in await asyncio.gather(*calls)]

    answers = api.client.portal.call(race)
    assert len({a["variant"] for a in answers}) == 1
    assert len({a["token"] for a in answers}) == 1
    assert sum(not a["sticky"] for a in answers) == 1  # exactly one call drew the assignment
    eventually(lambda: api.total("promo", "trials") == 1)
    assert api.total("promo", "trials") == 1


def test_propensity_is_the_probability_logged_in_the_event_stream(api):
    api.create(experiment(variants="abc", holdout=0.2))
    decisions = [api.decide(experiment="promo", customer_id=f"p{i}").json() for i in range(10)]

    def logged():
        entries = {e["visitor"]: e for e in api.events("promo") if e["type"] == "assign"}
        assert len(entries) == 10
        return entries

    entries = eventually(logged)
    for d in decisions:
        entry = entries[visitor_of(d["token"])]
        probs = json.loads(entry["probs"])
        assert entry["variant"] == d["variant"]
        assert probs[d["variant"]] == d["propensity"]
        assert probs == d["probabilities"] and abs(sum(probs.values()) - 1) < 1e-9


def test_the_channel_is_logged_with_the_assignment(api):
    api.create(experiment())
    tokens = {channel: api.decide(experiment="promo", customer_id=f"ch-{channel or 'none'}",
                                  **({"channel": channel} if channel else {})).json()["token"]
              for channel in ("email", "sms", "")}

    def logged():
        entries = {e["visitor"]: e for e in api.events("promo") if e["type"] == "assign"}
        assert len(entries) == 3
        return entries

    entries = eventually(logged)
    assert entries[visitor_of(tokens["email"])]["channel"] == "email"
    assert entries[visitor_of(tokens["sms"])]["channel"] == "sms"
    assert "channel" not in entries[visitor_of(tokens[""])]  # like a page view's entry


def test_a_paused_variant_reassigns_its_customers_and_they_stay_on_the_new_one(api):
    api.create(experiment())
    held = api.decide(experiment="promo", customer_id="mover").json()
    api.admin("PATCH", f"/experiments/promo/variants/{held['variant']}", json={"status": "paused"})
    other = "b" if held["variant"] == "a" else "a"
    eventually(lambda: not api.snapshot.experiments["promo"].variant(held["variant"]).active)
    moved = api.decide(experiment="promo", customer_id="mover").json()
    assert (moved["variant"], moved["reason"], moved["sticky"]) == (other, "reassigned", False)
    assert visitor_of(moved["token"]) == visitor_of(held["token"])  # the same customer, reassigned
    assert moved["probabilities"] == {other: 1.0}
    again = api.decide(experiment="promo", customer_id="mover").json()
    assert (again["variant"], again["sticky"], again["token"]) == (other, True, moved["token"])


def test_a_removed_variant_reassigns_too(api):
    api.create(experiment(variants="abc"))
    held = api.decide(experiment="promo", customer_id="gone").json()
    if held["variant"] == "a":  # the control cannot be removed: make another variant the control
        api.admin("PATCH", "/experiments/promo", json={"control": "b"})
    api.admin("DELETE", f"/experiments/promo/variants/{held['variant']}")
    eventually(lambda: api.snapshot.experiments["promo"].variant(held["variant"]) is None)
    moved = api.decide(experiment="promo", customer_id="gone").json()
    assert moved["variant"] != held["variant"] and moved["reason"] == "reassigned"


def test_paused_and_ended_experiments_give_everyone_one_variant_uncounted(api):
    api.create(experiment())
    api.admin("PATCH", "/experiments/promo", json={"status": "paused"})
    eventually(lambda: api.snapshot.experiments["promo"].status == "paused")
    paused = api.decide(experiment="promo", customer_id="x1").json()
    assert (paused["variant"], paused["reason"], paused["token"], paused["propensity"]) == ("a", "paused", None, 1.0)
    api.admin("POST", "/experiments/promo/promote", json={"variant": "b"})
    eventually(lambda: api.snapshot.experiments["promo"].status == "ended")
    ended = api.decide(experiment="promo", customer_id="x1").json()
    assert (ended["variant"], ended["reason"], ended["params"]) == ("b", "ended", {"headline": "Headline b"})
    assert api.total("promo", "trials") == 0


def test_slots_name_a_tenants_experiment(api):
    api.create(experiment("hero-june", tenant="acme", slots=["welcome-hero"]))
    api.create(experiment("hero-globex", tenant="globex", slots=["welcome-hero"]))
    mine = api.decide("acme", slot="welcome-hero", customer_id="c1").json()
    theirs = api.decide("globex", slot="welcome-hero", customer_id="c1").json()
    assert (mine["experiment"], theirs["experiment"]) == ("hero-june", "hero-globex")
    assert api.decide("", slot="welcome-hero", customer_id="c1").status_code == 404
    # a second running experiment on the same slot makes the slot ambiguous
    api.create(experiment("hero-july", tenant="acme", slots=["welcome-hero"]))
    conflict = api.decide("acme", slot="welcome-hero", customer_id="c1")
    assert conflict.status_code == 409 and "hero-july" in conflict.json()["error"]
    # ending one hands the slot to the other
    api.admin("POST", "/experiments/hero-june/promote", json={"variant": "a"})
    eventually(lambda: api.decide("acme", slot="welcome-hero", customer_id="c1").json().get("experiment")
               == "hero-july")
