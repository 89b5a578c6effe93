"""POST /api/v1/decide: bad input is refused with the field named, and nothing is assigned."""

from __future__ import annotations

import pytest

from tests.router.channels.conftest import experiment


@pytest.mark.parametrize("body, status, field", [
    ({"experiment": "promo"}, 400, "customer_id"),
    ({"experiment": "promo", "customer_id": ""}, 400, "customer_id"),
    ({"experiment": "promo", "customer_id": "x" * 129}, 400, "customer_id"),
    ({"experiment": "promo", "customer_id": 42}, 400, "customer_id"),
    ({"customer_id": "c1"}, 400, "experiment"),
    ({"experiment": "promo", "slot": "hero", "customer_id": "c1"}, 400, "experiment"),
    ({"experiment": "Promo!", "customer_id": "c1"}, 400, "experiment"),
    ({"slot": "Bad Slot", "customer_id": "c1"}, 400, "slot"),
    ({"experiment": "nope", "customer_id": "c1"}, 404, "experiment"),
    ({"slot": "nowhere", "customer_id": "c1"}, 404, "slot"),
    ({"experiment": "promo", "customer_id": "c1", "channel": "E-Mail"}, 400, "channel"),
    ({"experiment": "promo", "customer_id": "c1", "context": ["mobile"]}, 400, "context"),
    ({"experiment": "promo", "customer_id": "c1", "context": {"shoe_size": "42"}}, 400, "context"),
    ({"experiment": "promo", "customer_id": "c1", "context": {"device": {"x": 1}}}, 400, "context"),
    ({"experiment": "promo", "customer_id": "c1", "colour": "red"}, 400, "colour"),
])
def test_bad_decide_requests_are_refused_naming_the_field(api, body, status, field):
    api.create(experiment())
    answer = api.decide(**body)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"].startswith(field)
    assert api.convert(experiment="promo", customer_id="c1").status_code == 404  # nothing was assigned


def test_not_json_is_refused(api):
    answer = api.client.post("/api/v1/decide", content=b"{nope", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 401  # the key is checked first
    from tests.router.channels.conftest import key
    answer = api.client.post("/api/v1/decide", content=b"{nope", headers=key(""))
    assert answer.status_code == 400 and answer.json()["error"].startswith("body")


def test_context_places_customers_of_a_segmented_experiment(api):
    api.create(experiment(segment_keys=["device"]))
    answer = api.decide(experiment="promo", customer_id="c1", context={"device": "Mobile"}, channel="app")
    assert answer.status_code == 200, answer.text
    assert answer.json()["token"].startswith("v2.")  # the segment rides in the token, as on the web
    assert api.convert(experiment="promo", customer_id="c1").json()["counted"] is True
