"""Dashboard sessions, CSRF tokens and redirect targets: pure functions, no servers."""

from __future__ import annotations

import pytest

from croupier.router.dashboard import safe_next
from croupier.router.session import SessionError, csrf_token, same_origin, sign_session, verify_session

TOKEN = "the-admin-token-0123"
KEY = b"k" * 32
KEYS = {"k1": KEY}
NOW = 1_800_000_000


def session(expires: int = NOW + 3600, token: str = TOKEN, kid: str = "k1", key: bytes = KEY) -> str:
    return sign_session(token, kid, key, expires=expires)


def test_a_signed_session_verifies_and_gives_its_expiry():
    assert verify_session(session(), TOKEN, KEYS, now=NOW) == NOW + 3600


def test_the_cookie_carries_neither_the_token_nor_the_key():
    value = session()
    assert TOKEN not in value and KEY.decode() not in value
    assert value.startswith("d1.k1.") and value.count(".") == 3


@pytest.mark.parametrize("now", [NOW + 3600, NOW + 7200])
def test_an_expired_session_is_refused(now):
    with pytest.raises(SessionError, match="expired"):
        verify_session(session(), TOKEN, KEYS, now=now)


def test_changing_the_admin_token_signs_everyone_out():
    with pytest.raises(SessionError, match="signature"):
        verify_session(session(), "a-new-admin-token", KEYS, now=NOW)


def test_a_longer_expiry_written_by_hand_is_refused():
    version, kid, expires, tag = session().split(".")
    forged = ".".join((version, kid, str(int(expires) + 10**6), tag))
    with pytest.raises(SessionError, match="signature"):
        verify_session(forged, TOKEN, KEYS, now=NOW)


def test_a_session_from_another_secret_is_refused():
    with pytest.raises(SessionError, match="signature"):
        verify_session(session(key=b"x" * 32), TOKEN, KEYS, now=NOW)


def test_rotated_keys_keep_sessions_and_unknown_keys_are_named():
    old = session(kid="k0", key=b"o" * 32)
    assert verify_session(old, TOKEN, {"k1": KEY, "k0": b"o" * 32}, now=NOW) == NOW + 3600
    with pytest.raises(SessionError, match="unknown key 'k0'"):
        verify_session(old, TOKEN, KEYS, now=NOW)


@pytest.mark.parametrize("value", ["", "d1", "d1.k1.123", "d2.k1.123.tag", "d1.k1.soon.tag", "d1.k1.123.tag.x"])
def test_malformed_sessions_are_refused(value):
    with pytest.raises(SessionError):
        verify_session(value, TOKEN, KEYS, now=NOW)


def test_no_sessions_without_an_admin_token_or_a_key():
    with pytest.raises(SessionError, match="CROUPIER_ADMIN_TOKEN"):
        sign_session("", "k1", KEY, expires=NOW + 60)
    with pytest.raises(SessionError, match="CROUPIER_ADMIN_TOKEN"):
        verify_session(session(), "", KEYS, now=NOW)
    with pytest.raises(SessionError, match="CROUPIER_SECRET"):
        sign_session(TOKEN, "k1", b"", expires=NOW + 60)


def test_the_csrf_token_is_bound_to_its_session():
    first, second = session(), session(expires=NOW + 7200)
    assert csrf_token(first, KEYS) == csrf_token(first, KEYS)
    assert csrf_token(first, KEYS) != csrf_token(second, KEYS)
    assert csrf_token(first, KEYS) not in first  # not readable from the cookie's own tag
    with pytest.raises(SessionError, match="unknown key"):
        csrf_token(first, {"k9": KEY})


@pytest.mark.parametrize("origin, host, ok", [
    (None, "127.0.0.1:8000", True),  # same-origin GETs and older browsers send no Origin
    ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
    ("https://Dash.Example.com", "dash.example.com", True),
    ("http://127.0.0.1:8001", "127.0.0.1:8000", False),
    ("http://evil.example", "127.0.0.1:8000", False),
    ("null", "127.0.0.1:8000", False),  # sandboxed frames and some redirects
    ("file://127.0.0.1:8000", "127.0.0.1:8000", False),
    ("http://127.0.0.1:8000", None, False),
])
def test_same_origin(origin, host, ok):
    assert same_origin(origin, host) is ok


@pytest.mark.parametrize("value, expected", [
    ("/dashboard/experiments/demo", "/dashboard/experiments/demo"),
    (None, "/dashboard/"),
    ("", "/dashboard/"),
    ("https://evil.example/", "/dashboard/"),
    ("//evil.example/dashboard/", "/dashboard/"),
    ("/dashboard//evil.example", "/dashboard/"),
    ("/dashboard/\\evil.example", "/dashboard/"),
    ("/api/v1/experiments", "/dashboard/"),
])
def test_after_signing_in_only_dashboard_paths(value, expected):
    assert safe_next(value, "/dashboard") == expected
