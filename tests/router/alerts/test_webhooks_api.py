"""/api/v1/webhooks against a real redis-server (the app run in-process): create, list, get,
delete; the secret is write-only; refused bodies name the field."""

from __future__ import annotations

import pytest

from croupier.router.webhooks import MAX_WEBHOOKS
from tests.router.alerts.conftest import SECRET, Router


@pytest.fixture
def api(redis_url):
    with Router(redis_url, alerts=False) as router:
        yield router.client


def test_create_list_get_delete(api):
    created = api.post("/webhooks", json={"id": "ops", "url": "https://hooks.example.com/croupier", "secret": SECRET,
                                          "tenant": "acme", "experiment": "spring", "kinds": ["srm", "guardrail"]})
    assert created.status_code == 201
    shown = {"id": "ops", "url": "https://hooks.example.com/croupier", "format": "json", "tenant": "acme",
             "experiment": "spring", "kinds": ["srm", "guardrail"], "has_secret": True}
    assert created.json() == shown
    assert api.post("/webhooks", json={"id": "chat", "url": "http://127.0.0.1:9/x", "format": "slack"}).status_code == 201
    listed = api.get("/webhooks").json()["webhooks"]
    assert [w["id"] for w in listed] == ["chat", "ops"] and listed[1] == shown
    assert listed[0] == {"id": "chat", "url": "http://127.0.0.1:9/x", "format": "slack", "tenant": "",
                         "experiment": "", "kinds": [], "has_secret": False}
    assert api.get("/webhooks/ops").json() == shown
    assert SECRET not in api.get("/webhooks").text + api.get("/webhooks/ops").text + created.text
    assert api.post("/webhooks", json={"id": "ops", "url": "http://127.0.0.1:9/"}).status_code == 409
    assert api.delete("/webhooks/ops").status_code == 204
    assert api.get("/webhooks/ops").status_code == 404
    assert api.delete("/webhooks/ops").status_code == 404
    assert [w["id"] for w in api.get("/webhooks").json()["webhooks"]] == ["chat"]


def test_the_admin_token_guards_the_webhooks(api):
    for call in (lambda h: api.get("/webhooks", headers=h), lambda h: api.get("/webhooks/x", headers=h),
                 lambda h: api.delete("/webhooks/x", headers=h),
                 lambda h: api.post("/webhooks", json={"id": "x", "url": "http://127.0.0.1:9/"}, headers=h)):
        assert call({"Authorization": "Bearer wrong"}).status_code == 401
        assert call({"Authorization": ""}).status_code == 401
    assert api.get("/webhooks").json() == {"webhooks": []}


@pytest.mark.parametrize("body, field", [
    ({"url": "http://127.0.0.1:9/"}, "id"),
    ({"id": "Bad Id", "url": "http://127.0.0.1:9/"}, "id"),
    ({"id": "x"}, "url"),
    ({"id": "x", "url": "ftp://files.example.com/"}, "url"),
    ({"id": "x", "url": "http:///no-host"}, "url"),
    ({"id": "x", "url": "http://h:99999/"}, "url"),
    ({"id": "x", "url": "https://user:pass@h/"}, "url"),
    ({"id": "x", "url": "http://h/a b"}, "url"),
    ({"id": "x", "url": "http://h/" + "p" * 2100}, "url"),
    ({"id": "x", "url": "http://h/", "format": "xml"}, "format"),
    ({"id": "x", "url": "http://h/", "secret": "short"}, "secret"),
    ({"id": "x", "url": "http://h/", "secret": 12345678901234567}, "secret"),
    ({"id": "x", "url": "http://h/", "tenant": "Acme Corp"}, "tenant"),
    ({"id": "x", "url": "http://h/", "experiment": "no/slash"}, "experiment"),
    ({"id": "x", "url": "http://h/", "kinds": "srm"}, "kinds"),
    ({"id": "x", "url": "http://h/", "kinds": ["SRM"]}, "kinds[0]"),
    ({"id": "x", "url": "http://h/", "kinds": ["srm", "srm"]}, "kinds"),
    ({"id": "x", "url": "http://h/", "colour": "red"}, "colour"),
    (["not", "an", "object"], "body"),
])
def test_invalid_webhooks_are_refused_with_the_field_named(api, body, field):
    response = api.post("/webhooks", json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith(f"{field}: ")
    assert api.get("/webhooks").json() == {"webhooks": []}


def test_not_json_is_refused(api):
    response = api.post("/webhooks", content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"].startswith("body: ")


def test_webhooks_are_limited(api):
    for i in range(MAX_WEBHOOKS):
        assert api.post("/webhooks", json={"id": f"w{i}", "url": "http://127.0.0.1:9/"}).status_code == 201
    refused = api.post("/webhooks", json={"id": "one-more", "url": "http://127.0.0.1:9/"})
    assert refused.status_code == 409 and refused.json()["error"].startswith("webhooks: ")
