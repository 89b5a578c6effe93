"""POST /api/v1/batches/assign: JSON lines in and out, the same records as /decide."""

from __future__ import annotations

import json
from collections import Counter

from tests.conftest import eventually
from tests.router.batch.conftest import customers, experiment, key, lines


def test_every_customer_is_answered_in_order_and_logged_with_propensity_and_channel(api):
    api.create(experiment(variants="abc", holdout=0.1))
    out = api.assign(customers(500), experiment="promo", channel="email")
    assert [r["customer_id"] for r in out] == [f"c{i}" for i in range(500)]
    assert {r["reason"] for r in out} <= {"new", "holdout"}
    assert {r["variant"] for r in out} == {"a", "b", "c"}
    assert all(r["params"] == {"headline": f"Headline {r['variant']}"} and r["token"] for r in out)

    def logged():
        entries = [e for e in api.events("promo") if e["type"] == "assign"]
        assert len(entries) == 500
        return entries

    entries = eventually(logged)
    by_variant = Counter(r["variant"] for r in out)
    assert Counter(e["variant"] for e in entries) == by_variant
    assert {e["channel"] for e in entries} == {"email"}
    for e in entries:
        probs = json.loads(e["probs"])
        assert set(probs) == {"a", "b", "c"} and abs(sum(probs.values()) - 1) < 1e-9
    propensities = {r["variant"]: r["propensity"] for r in out}
    for e in entries:
        assert json.loads(e["probs"])[e["variant"]] == propensities[e["variant"]]
    eventually(lambda: api.total("promo", "trials") == 500)


def test_the_same_list_again_assigns_nobody_twice(api):
    api.create(experiment())
    first = api.assign(customers(300))
    again = api.assign(customers(300))
    assert [(r["customer_id"], r["variant"]) for r in again] == [(r["customer_id"], r["variant"]) for r in first]
    assert {r["reason"] for r in again} == {"returning"}
    eventually(lambda: api.total("promo", "trials") == 300)
    assert len([e for e in api.events("promo") if e["type"] == "assign"]) == 300


def test_decide_and_batch_share_one_record_per_customer(api):
    api.create(experiment(variants="abcd"))
    decided = {f"c{i}": api.decide(experiment="promo", customer_id=f"c{i}").json()["variant"] for i in range(20)}
    out = api.assign(customers(40))
    for r in out[:20]:
        assert (r["variant"], r["reason"]) == (decided[r["customer_id"]], "returning")
    assert {r["reason"] for r in out[20:]} == {"new"}
    for r in out[20:]:
        again = api.decide(experiment="promo", customer_id=r["customer_id"]).json()
        assert (again["variant"], again["reason"]) == (r["variant"], "returning")
    eventually(lambda: api.total("promo", "trials") == 40)


def test_bad_lines_are_answered_in_place_naming_line_and_field(api):
    api.create(experiment())
    body = lines([{"customer_id": "ok1"}, {"customer_id": "has space"}, {"customer": "x"},
                  {"customer_id": "ok2", "context": {"planet": "mars"}}]) + b"not json\n\n" + \
        lines([{"customer_id": "ok3", "context": {"country": "fr"}}])
    out = api.assign(body)
    assert [r.get("customer_id") for r in out] == ["ok1", None, None, None, None, "ok3"]
    assert out[1] == {"line": 2, "field": "customer_id", "error": out[1]["error"]}
    assert out[1]["error"].startswith("customer_id: must be")
    assert (out[2]["line"], out[2]["field"]) == (3, "customer")
    assert (out[3]["line"], out[3]["field"]) == (4, "context") and "'planet'" in out[3]["error"]
    assert (out[4]["line"], out[4]["field"], out[4]["error"]) == (5, None, "line 5: not valid JSON")
    assert out[5]["reason"] == "new"


def test_other_tenants_and_unknown_parameters_are_refused(api):
    api.create(experiment("acme-promo", tenant="acme"))
    response = api.client.post("/api/v1/batches/assign", params={"experiment": "acme-promo"},
                               content=customers(1), headers=key("globex"))
    assert response.status_code == 403 and "another tenant" in response.json()["error"]
    response = api.client.post("/api/v1/batches/assign", params={"experiment": "acme-promo", "colour": "red"},
                               content=customers(1), headers=key("acme"))
    assert response.status_code == 400 and response.json()["error"].startswith("colour: unknown")
    response = api.client.post("/api/v1/batches/assign", params={"experiment": "acme-promo"}, content=customers(1))
    assert response.status_code == 401


def test_conversions_come_back_by_customer_id_and_by_token(api):
    api.create(experiment())
    out = api.assign(customers(10))
    by_id = api.convert(experiment="promo", customer_id="c1")
    by_token = api.convert(experiment="promo", token=out[2]["token"])
    assert by_id.status_code == by_token.status_code == 202
    assert by_id.json()["variant"] == out[1]["variant"] and by_token.json()["variant"] == out[2]["variant"]
    assert api.convert(experiment="promo", customer_id="c1").json()["counted"] is False  # once per customer
    eventually(lambda: api.total("promo", "conversions") == 2)


def test_a_paused_experiment_gives_control_and_counts_nothing(api):
    api.create(experiment())
    api.admin("PATCH", "/experiments/promo", json={"status": "paused"})
    eventually(lambda: api.snapshot.experiments["promo"].status == "paused")
    out = api.assign(customers(5))
    assert {(r["variant"], r["reason"], r["token"]) for r in out} == {("a", "paused", None)}
    assert api.total("promo", "trials") == 0
