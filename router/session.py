"""The dashboard's session: a signed cookie that stands for the admin token, and the CSRF
proofs a write with it needs.

Signing in trades the admin token for a session cookie,
``d1.<kid>.<expires>.<tag>``, the tag being an HMAC under ``CROUPIER_SECRET``
over the expiry *and the admin token*: the cookie never holds the token, and
changing the token signs everyone out. Writes also carry a CSRF token derived
from the session and must come from the same origin. The dashboard's pages issue
sessions (router/dashboard.py); the admin API accepts them (``session_authorizes``,
called by ``AdminAPI.authorized``), so both import from here.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import urlsplit

from starlette.requests import Request

from croupier.router.settings import Settings
from croupier.router.token import hmac_tag

SESSION_VERSION = "d1"
# A dot cannot occur in an assignment cookie's name (prefix and experiment ids forbid it),
# so no experiment can ever shadow the session.
SESSION_COOKIE = "croupier.dashboard"
SESSION_SECONDS = 12 * 3600
CSRF_HEADER = "X-Croupier-CSRF"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class SessionError(ValueError):
    """Why a session cookie was refused."""


class CsrfRefused(PermissionError):
    """A write with a valid session cookie but without the page's proofs (CSRF header, same origin)."""


# -- pure session helpers -------------------------------------------------

def _session_payload(kid: str, expires: int, admin_token: str) -> str:
    # the newline-separated label keeps these tags apart from assignment-token tags under the same key
    return f"dashboard-session\n{SESSION_VERSION}.{kid}.{expires}\n{admin_token}"


def sign_session(admin_token: str, kid: str, key: bytes, *, expires: int) -> str:
    if not admin_token:
        raise SessionError("the dashboard is disabled: CROUPIER_ADMIN_TOKEN is unset")
    if not key:
        raise SessionError("cannot sign a session with an empty key: set CROUPIER_SECRET")
    return f"{SESSION_VERSION}.{kid}.{expires}.{hmac_tag(key, _session_payload(kid, expires, admin_token))}"


def verify_session(value: str, admin_token: str, keys: dict[str, bytes], *, now: int) -> int:
    """The session's expiry time, or ``SessionError`` saying why it is not valid."""
    if not admin_token:
        raise SessionError("the dashboard is disabled: CROUPIER_ADMIN_TOKEN is unset")
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != SESSION_VERSION or not parts[2].isdigit():
        raise SessionError("malformed session")
    _, kid, expires_s, tag = parts
    key = keys.get(kid)
    if not key:
        raise SessionError(f"session signed with unknown key {kid!r}")
    if not hmac.compare_digest(hmac_tag(key, _session_payload(kid, int(expires_s), admin_token)), tag):
        raise SessionError("bad session signature (or the admin token changed)")
    if int(expires_s) <= now:
        raise SessionError("session expired")
    return int(expires_s)


def csrf_token(session: str, keys: dict[str, bytes]) -> str:
    """The token a page must echo in ``X-Croupier-CSRF``: bound to its session, so it dies with it."""
    kid = session.split(".")[1] if session.count(".") == 3 else ""
    key = keys.get(kid)
    if not key:
        raise SessionError(f"session signed with unknown key {kid!r}")
    return hmac_tag(key, f"dashboard-csrf\n{session}")


def same_origin(origin: str | None, host: str | None) -> bool:
    """True when there is no Origin header (same-origin GETs omit it) or it names ``host``."""
    if origin is None:
        return True
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


# -- request-level checks -------------------------------------------------

def valid_session(request: Request, settings: Settings) -> str | None:
    """The request's session cookie when it is valid, else None."""
    value = request.cookies.get(SESSION_COOKIE)
    if not value:
        return None
    try:
        verify_session(value, settings.admin_token, settings.signing_keys(), now=int(time.time()))
    except SessionError:
        return None
    return value


def session_authorizes(request: Request, settings: Settings) -> bool:
    """Whether the dashboard session authorizes this admin API call.

    False without a valid session. Reads need only the session. Writes also need the
    CSRF header and, when the browser sends Origin, the same origin; without them
    ``CsrfRefused``. SameSite=Strict already keeps the cookie off cross-site requests;
    these checks also hold against sibling subdomains (same site) and old browsers.
    """
    session = valid_session(request, settings)
    if session is None:
        return False
    if request.method not in UNSAFE_METHODS:
        return True
    if not same_origin(request.headers.get("origin"), request.headers.get("host")):
        raise CsrfRefused("cross-origin request refused: Origin does not match Host")
    given = request.headers.get(CSRF_HEADER, "")
    if not given or not hmac.compare_digest(given.encode(), csrf_token(session, settings.signing_keys()).encode()):
        raise CsrfRefused(f"missing or wrong {CSRF_HEADER} header: writes with the dashboard session need it")
    return True
