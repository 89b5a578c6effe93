"""Dashboard sign-in and the admin API's session path, the app in-process against a real redis-server."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from croupier.router.app import create_app
from croupier.router.dashboard import SIGN_IN_BURST
from croupier.router.session import CSRF_HEADER, SESSION_COOKIE, csrf_token
from croupier.router.settings import Settings

TOKEN = "dashboard-admin-token"
SECRET = "s" * 32
ORIGIN = "http://testserver"
EXPERIMENT = {"id": "spring", "path_prefix": "/spring/", "variants": [
    {"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}]}


def app(redis_url: str, admin_token: str = TOKEN):
    return create_app(Settings(redis_url=redis_url, admin_token=admin_token, secret=SECRET, refresh_interval=0.05))


@pytest.fixture
def client(redis_url):
    with TestClient(app(redis_url), follow_redirects=False) as client:
        response = client.post("/api/v1/experiments", json=EXPERIMENT, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 201
        yield client


def sign_in(client: TestClient) -> str:
    response = client.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard/experiments/spring"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/dashboard/experiments/spring"
    return client.cookies[SESSION_COOKIE]


def variant_status(client: TestClient, vid: str = "b") -> str:
    doc = client.get("/api/v1/experiments/spring", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    return next(v["status"] for v in doc["variants"] if v["id"] == vid)


def test_pages_without_a_session_go_to_the_login_page(client):
    for path in ("/dashboard/", "/dashboard/experiments/spring"):
        response = client.get(path)
        assert response.status_code == 303
        assert response.headers["location"] == f"/dashboard/login?next={path}"
    assert client.get("/dashboard").headers["location"].endswith("/dashboard/")


def test_a_wrong_token_gets_no_session(client):
    response = client.post("/dashboard/login", data={"token": "guess"})
    assert response.status_code == 401
    assert "not the admin token" in response.text
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/dashboard/").status_code == 303


def test_sign_in_attempts_are_limited_per_address(client):
    for _ in range(SIGN_IN_BURST):
        assert client.post("/dashboard/login", data={"token": "guess"}).status_code == 401
    refused = client.post("/dashboard/login", data={"token": TOKEN})  # even the right one, for now
    assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 6
    assert "Too many sign-in attempts" in refused.text and SESSION_COOKIE not in refused.headers.get("set-cookie", "")
    # a client-sent X-Real-IP does not make another address: the dashboard is not behind NGINX
    assert client.post("/dashboard/login", data={"token": TOKEN},
                       headers={"X-Real-IP": "203.0.113.9"}).status_code == 429


def test_signing_in_sets_a_strict_httponly_cookie_without_the_token(client):
    response = client.post("/dashboard/login", data={"token": TOKEN})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=d1.")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie
    page = client.get("/dashboard/")
    assert page.status_code == 200 and 'id="experiments"' in page.text
    assert [e["id"] for e in client.get("/api/v1/experiments?limit=50").json()["experiments"]] == ["spring"]
    assert "default-src 'none'" in page.headers["content-security-policy"]


def test_a_login_form_posted_from_another_site_is_refused(client):
    response = client.post("/dashboard/login", data={"token": TOKEN}, headers={"Origin": "http://evil.example"})
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")


def test_the_experiment_page_embeds_the_sessions_csrf_token(client):
    session = sign_in(client)
    page = client.get("/dashboard/experiments/spring")
    assert page.status_code == 200
    found = re.search(r'<meta name="croupier-csrf" content="([^"]+)">', page.text)
    assert found and found.group(1) == csrf_token(session, {"k1": SECRET.encode()})
    assert client.get("/dashboard/experiments/nope").status_code == 404


def test_the_session_reads_the_api_but_writes_need_csrf_and_same_origin(client):
    session = sign_in(client)
    csrf = csrf_token(session, {"k1": SECRET.encode()})
    assert client.get("/api/v1/experiments/spring/stats").status_code == 200

    refused = [
        {},  # no CSRF header
        {CSRF_HEADER: "wrong"},
        {CSRF_HEADER: csrf, "Origin": "http://evil.example"},
        {CSRF_HEADER: csrf, "Origin": "null"},
    ]
    for headers in refused:
        response = client.patch("/api/v1/experiments/spring/variants/b", json={"status": "paused"}, headers=headers)
        assert response.status_code == 403, headers
        assert response.json()["error"]
    assert client.post("/api/v1/experiments/spring/promote", json={"variant": "b"}).status_code == 403
    assert client.delete("/api/v1/experiments/spring").status_code == 403
    assert variant_status(client) == "active"

    response = client.patch("/api/v1/experiments/spring/variants/b", json={"status": "paused"},
                            headers={CSRF_HEADER: csrf, "Origin": ORIGIN})
    assert response.status_code == 200
    assert variant_status(client) == "paused"


def test_without_a_session_the_api_still_answers_401(client):
    client.cookies.set(SESSION_COOKIE, "d1.k1.9999999999.forged")
    response = client.patch("/api/v1/experiments/spring/variants/b", json={"status": "paused"})
    assert response.status_code == 401
    assert variant_status(client) == "active"


def test_a_new_admin_token_ends_old_sessions(client, redis_url):
    session = sign_in(client)
    with TestClient(app(redis_url, admin_token="another-admin-token"), follow_redirects=False) as other:
        other.cookies.set(SESSION_COOKIE, session)
        assert other.get("/dashboard/").status_code == 303
        assert other.get("/api/v1/experiments").status_code == 401


def test_signing_out_clears_the_cookie(client):
    sign_in(client)
    response = client.post("/dashboard/logout")
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/dashboard/").status_code == 303


def test_only_the_dashboards_own_static_files_are_served(client):
    script = client.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert client.get("/dashboard/static/dashboard.css").headers["content-type"].startswith("text/css")
    assert client.get("/dashboard/static/beacon.js").status_code == 404
    assert client.get("/dashboard/static/..%2Fapp.py").status_code == 404


def test_without_an_admin_token_the_dashboard_is_disabled(redis_url):
    with TestClient(app(redis_url, admin_token=""), follow_redirects=False) as client:
        assert "CROUPIER_ADMIN_TOKEN" in client.get("/dashboard/login").text
        assert client.post("/dashboard/login", data={"token": ""}).status_code == 503
