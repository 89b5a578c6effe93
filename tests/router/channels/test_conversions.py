"""POST /api/v1/conversions: by token or customer id, once per customer and goal, through the beacon's script."""

from __future__ import annotations

import pytest

from tests.router.channels.conftest import experiment
from tests.conftest import eventually


@pytest.fixture
def promo(api):
    api.create(experiment())
    return api


def test_by_token_counts_once_however_often_it_is_sent(promo):
    d = promo.decide(experiment="promo", customer_id="buyer").json()
    answers = [promo.convert(experiment="promo", token=d["token"], value=12.5) for _ in range(5)]
    assert {a.status_code for a in answers} == {202}
    assert [a.json()["counted"] for a in answers] == [True, False, False, False, False]
    assert answers[0].json() == {"experiment": "promo", "variant": d["variant"], "goal": "signup", "counted": True}
    stats = promo.stats("promo")
    assert stats[d["variant"]]["conversions"] == 1 and stats[d["variant"]]["value"] == 12.5
    assert promo.total("promo", "conversions") == 1


def test_by_customer_id_counts_once_and_is_the_same_conversion_as_by_token(promo):
    d = promo.decide(experiment="promo", customer_id="buyer@example.com").json()
    by_id = [promo.convert(experiment="promo", customer_id="buyer@example.com").json()["counted"] for _ in range(5)]
    assert by_id == [True, False, False, False, False]
    assert promo.convert(experiment="promo", token=d["token"]).json()["counted"] is False
    # another goal is another conversion, once too
    assert [promo.convert(experiment="promo", customer_id="buyer@example.com", goal="purchase").json()["counted"]
            for _ in range(3)] == [True, False, False]
    assert promo.total("promo", "conversions") == 1  # the experiment's goal
    converts = [e for e in promo.events("promo") if e["type"] == "convert"]
    assert sorted(e["goal"] for e in converts) == ["purchase", "signup"]


def test_a_conversion_is_credited_to_the_assigned_variant(promo):
    decisions = {f"c{i}": promo.decide(experiment="promo", customer_id=f"c{i}").json()["variant"] for i in range(12)}
    for customer in decisions:
        assert promo.convert(experiment="promo", customer_id=customer).status_code == 202
    stats = promo.stats("promo")
    for variant in ("a", "b"):
        assert stats[variant]["conversions"] == sum(v == variant for v in decisions.values())


def test_a_web_visitors_cookie_works_as_a_token(promo):
    page = promo.client.get("/_croupier/decide", headers={"X-Original-URI": "/promo/", "User-Agent": "Mozilla/5.0"})
    token = page.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    answer = promo.convert(experiment="promo", token=token)
    assert answer.status_code == 202 and answer.json()["variant"] == page.headers["x-croupier-variant"]


@pytest.mark.parametrize("body, status, field", [
    ({"experiment": "nope", "customer_id": "c1"}, 404, "experiment"),
    ({"experiment": "promo", "customer_id": "never-decided"}, 404, "customer_id"),
    ({"experiment": "promo", "token": "v1.k1.forged"}, 403, "token"),
    ({"experiment": "promo"}, 400, "token"),
    ({"experiment": "promo", "customer_id": "c1", "token": "x"}, 400, "token"),
    ({"experiment": "promo", "customer_id": "c1", "value": -1}, 400, "value"),
    ({"experiment": "promo", "customer_id": "c1", "value": "12"}, 400, "value"),
    ({"experiment": "promo", "customer_id": "c1", "value": True}, 400, "value"),
    ({"experiment": "promo", "customer_id": "c1", "goal": "Not A Goal"}, 400, "goal"),
    ({"experiment": "promo", "customer_id": "c1", "id": "short"}, 400, "id"),
    ({"experiment": "promo", "customer_id": "c 1"}, 400, "customer_id"),
    ({"experiment": "promo", "customer_id": "c1", "visitor": "v"}, 400, "visitor"),
    ({"customer_id": "c1"}, 400, "experiment"),
])
def test_bad_conversions_are_refused_naming_the_field(promo, body, status, field):
    answer = promo.convert(**body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"].startswith(field)
    assert promo.total("promo", "conversions") == 0


def test_a_token_of_another_experiment_is_refused(promo):
    promo.create(experiment("other"))
    d = promo.decide(experiment="other", customer_id="c1").json()
    answer = promo.convert(experiment="promo", token=d["token"])
    assert answer.status_code == 403 and "wrong_experiment" in answer.json()["error"]
    eventually(lambda: promo.total("other", "trials") == 1)
    assert promo.total("promo", "conversions") == promo.total("other", "conversions") == 0
