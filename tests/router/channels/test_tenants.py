"""API keys and tenants: a key acts only for its tenant, and one tenant's tokens never count for another."""

from __future__ import annotations

import pytest

from croupier.router.settings import Settings, SettingsError
from croupier.router.tenants import ApiKeys, TenantKeys
from tests.router.channels.conftest import KEYS, experiment, key


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-0123456789abcdef"},
                                     {"Authorization": f"Basic {KEYS['acme']}"},
                                     {"Authorization": "Bearer test-admin-token"}])
def test_a_missing_or_wrong_key_is_401(api, headers):
    api.create(experiment())
    for path, body in (("/api/v1/decide", {"experiment": "promo", "customer_id": "c1"}),
                       ("/api/v1/conversions", {"experiment": "promo", "customer_id": "c1"})):
        answer = api.client.post(path, json=body, headers=headers)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert api.convert(experiment="promo", customer_id="c1").status_code == 404  # nothing was assigned


def test_without_keys_the_channels_api_is_disabled(redis_url):
    from starlette.testclient import TestClient

    from croupier.router.app import create_app
    with TestClient(create_app(Settings(redis_url=redis_url, secret="s" * 32))) as client:
        answer = client.post("/api/v1/decide", json={}, headers=key("acme"))
        assert answer.status_code == 401 and "CROUPIER_API_KEYS" in answer.json()["error"]


def test_another_tenants_key_is_403_and_nothing_changes(api):
    api.create(experiment("acme-promo", tenant="acme"))
    mine = api.decide("acme", experiment="acme-promo", customer_id="c1").json()
    for tenant in ("globex", ""):
        answer = api.decide(tenant, experiment="acme-promo", customer_id="c2")
        assert answer.status_code == 403 and answer.json()["error"].startswith("experiment")
        for body in ({"customer_id": "c1"}, {"token": mine["token"]}):
            assert api.convert(tenant, experiment="acme-promo", **body).status_code == 403
    assert api.convert("acme", experiment="acme-promo", customer_id="c2").status_code == 404  # c2 never assigned
    assert api.total("acme-promo", "conversions") == 0
    assert api.convert("acme", experiment="acme-promo", token=mine["token"]).json()["counted"] is True


def test_a_token_of_one_tenant_never_counts_for_another_even_under_the_same_experiment_id(api):
    # ids are global in the registry, but an id can be reused once its experiment is removed
    api.create(experiment("promo", tenant="acme"))
    acme = api.decide("acme", experiment="promo", customer_id="c1").json()
    api.remove("promo")
    api.create(experiment("promo", tenant="globex"))
    stolen = api.convert("globex", experiment="promo", token=acme["token"])
    assert stolen.status_code == 403 and "bad_signature" in stolen.json()["error"]
    assert api.total("promo", "conversions") == 0
    # and the default tenant's tokens (web cookies included) do not verify for a tenant either
    api.remove("promo")
    api.create(experiment("promo"))
    default = api.decide("", experiment="promo", customer_id="c1").json()
    assert default["token"] != acme["token"]
    api.remove("promo")
    api.create(experiment("promo", tenant="acme"))
    assert api.convert("acme", experiment="promo", token=default["token"]).status_code == 403


def test_web_cookies_of_one_host_are_not_accepted_for_an_experiment_on_another(api):
    api.create(experiment("shop", tenant="acme", host="shop.acme.example"))
    api.create(experiment("news", tenant="globex", host="news.globex.example"))
    page = api.client.get("/_croupier/decide", headers={"X-Original-Host": "shop.acme.example",
                                                        "X-Original-URI": "/shop/", "User-Agent": "Mozilla/5.0"})
    assert page.headers["x-croupier-experiment"] == "shop"
    cookie = page.headers["set-cookie"].split(";", 1)[0]

    def beacon(host: str):
        return api.client.post("/_croupier/beacon", json={"experiment": "shop", "type": "convert"},
                               headers={"Host": host, "Origin": f"http://{host}", "Cookie": cookie})

    assert beacon("news.globex.example").status_code == 403  # another tenant's site reporting for shop
    assert api.total("shop", "conversions") == 0
    assert beacon("shop.acme.example").status_code == 204  # the tenant's web cookie verifies on its own site
    assert api.total("shop", "conversions") == 1
    # the cookie, signed for tenant acme, is the same assignment the channels API accepts
    token = cookie.split("=", 1)[1]
    assert api.convert("acme", experiment="shop", token=token).json()["counted"] is False
    assert api.convert("globex", experiment="news", token=token).status_code == 403


def test_api_keys_match_in_constant_time_and_only_exactly():
    keys = ApiKeys((("k" * 24, "acme"), ("j" * 24, "")))
    assert keys.tenant("k" * 24) == "acme" and keys.tenant("j" * 24) == ""
    assert keys.tenant("k" * 23) is None and keys.tenant("") is None and keys.tenant("k" * 25) is None


def test_tenant_keys_differ_per_tenant_and_the_default_tenant_keeps_the_site_key():
    base = {"k1": b"s" * 32, "old": b"o" * 32}
    keys = TenantKeys(base, "k1")
    assert keys.keys("") is base and keys.signing("") == ("k1", b"s" * 32)
    assert keys.keys("acme") != keys.keys("globex") and set(keys.keys("acme")) == {"k1", "old"}
    assert keys.keys("acme")["k1"] not in base.values()


@pytest.mark.parametrize("value, message", [
    ("acme", "CROUPIER_API_KEYS must be 'tenant:key"),
    ("ACME:" + "k" * 24, "CROUPIER_API_KEYS must be 'tenant:key"),
    ("acme:short", "CROUPIER_API_KEYS: the key of tenant 'acme'"),
    ("acme:" + "k" * 24 + ",globex:" + "k" * 24, "CROUPIER_API_KEYS: tenant 'globex' reuses a key"),
    ("acme:" + "k" * 23 + " x", "CROUPIER_API_KEYS: the key of tenant 'acme'"),
])
def test_bad_api_keys_stop_start_up_naming_the_variable(value, message):
    with pytest.raises(SettingsError, match="^" + message.replace("(", r"\(")):
        Settings.from_env({"CROUPIER_API_KEYS": value, "CROUPIER_SECRET": "s" * 32})


def test_api_keys_setting_parses_tenants():
    settings = Settings.from_env({"CROUPIER_API_KEYS": f" default:{'d' * 24} , acme:{'a' * 24}",
                                  "CROUPIER_SECRET": "s" * 32})
    assert settings.api_key_tenants() == (("d" * 24, ""), ("a" * 24, "acme"))
