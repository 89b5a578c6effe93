"""The marketer's dashboard under /dashboard: server-rendered pages, live numbers by fetch.

Signing in trades the admin token for a session cookie (router/session.py).
The pages' script calls the admin API with that cookie; writes also carry a
CSRF token derived from the session (the page gets it in a <meta> tag) and must
come from the same origin.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from croupier.router.ratelimit import TokenBuckets, retry_after
from croupier.router.session import (CSRF_HEADER, SESSION_COOKIE, SESSION_SECONDS, csrf_token, same_origin, sign_session,
                            valid_session)
from croupier.router.settings import Settings
from croupier.router.store import Store, StoreUnavailable

API_PREFIX = "/api/v1"
MAX_LOGIN_BYTES = 4096
# Sign-in attempts per client address: ten at once, then one every six seconds. The admin
# token is long enough that guessing is hopeless anyway; this keeps a script from trying.
SIGN_IN_BURST, SIGN_IN_RATE = 10, 1 / 6
PAGE_SIZE = 50  # experiments per page of the list

HERE = Path(__file__).resolve().parent
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "dashboard.svg": "image/svg+xml"}
# Everything the pages load comes from the router itself; the browser enforces it too.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def safe_next(value: str | None, base: str) -> str:
    """Where to go after signing in: a path under the dashboard's ``base``, never another site."""
    if value and value.startswith(base + "/") and "//" not in value and "\\" not in value:
        return value
    return base + "/"


# -- pages ------------------------------------------------------------------

Page = Callable[[Request, str], Awaitable[Response]]


class Dashboard:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.sign_ins = TokenBuckets(SIGN_IN_RATE, SIGN_IN_BURST, max_clients=10_000)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.signed_in(self.experiments), methods=["GET"], name="experiments"),
            Route("/experiments/{id}", self.signed_in(self.experiment), methods=["GET"], name="experiment"),
            Route("/login", self.login_page, methods=["GET"], name="login"),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"], name="logout"),
            Route("/static/{name}", self.static, methods=["GET"], name="static"),
        ]

    def base(self, request: Request) -> str:
        """Where the dashboard is mounted (its Mount sets root_path), so links follow the mount."""
        return request.scope.get("root_path", "")

    def render(self, request: Request, name: str, status: int = 200, **context) -> Response:
        context.setdefault("signed_in", False)
        response = self.templates.TemplateResponse(
            request, name, {"base": self.base(request), "api": request.scope.get("app_root_path", "") + API_PREFIX,
                            **context}, status_code=status)
        response.headers.update(PAGE_HEADERS)
        return response

    def signed_in(self, page: Page) -> Callable[[Request], Awaitable[Response]]:
        """Pages without a valid session send the browser to the login page, and back after."""
        async def endpoint(request: Request) -> Response:
            session = valid_session(request, self.settings)
            if session is None:
                target = f"{self.base(request)}/login?next={quote(request.url.path)}"
                return RedirectResponse(target, status_code=303)
            try:
                return await page(request, session)
            except StoreUnavailable:
                return self.render(request, "error.html", 503, signed_in=True,
                                   message="Redis is unavailable, so there is nothing to show; try again shortly.")
        return endpoint

    async def login_page(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"), self.base(request))
        if valid_session(request, self.settings):
            return RedirectResponse(target, status_code=303)
        return self.render(request, "login.html", next=target, disabled=not self.settings.admin_token)

    async def login(self, request: Request) -> Response:
        if not same_origin(request.headers.get("origin"), request.headers.get("host")):
            return self.render(request, "error.html", 403, message="Sign-in refused: the form was posted "
                               "from another site.")
        body = await request.body()
        form = parse_qs(body[:MAX_LOGIN_BYTES].decode("utf-8", "replace"))
        target = safe_next((form.get("next") or [""])[0], self.base(request))
        if not self.settings.admin_token:
            return self.render(request, "login.html", 503, next=target, disabled=True)
        # the socket's peer, not X-Real-IP: the dashboard is reached on the router's own
        # port, never through NGINX, so that header would be the client's own choice
        wait = self.sign_ins.take(request.client.host if request.client else "", time.monotonic())
        if wait:
            response = self.render(request, "login.html", 429, next=target,
                                   error=f"Too many sign-in attempts from your address: try again in "
                                         f"{retry_after(wait)} s.")
            response.headers["Retry-After"] = retry_after(wait)
            return response
        given = (form.get("token") or [""])[0].strip()
        if not hmac.compare_digest(given.encode(), self.settings.admin_token.encode()):
            return self.render(request, "login.html", 401, next=target,
                               error="That is not the admin token (CROUPIER_ADMIN_TOKEN).")
        expires = int(time.time()) + SESSION_SECONDS
        session = sign_session(self.settings.admin_token, self.settings.secret_id,
                               self.settings.secret.encode(), expires=expires)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, session, max_age=SESSION_SECONDS, path="/", httponly=True,
                            samesite="strict", secure=self.settings.cookie_secure)
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse(self.base(request) + "/login", status_code=303)
        if same_origin(request.headers.get("origin"), request.headers.get("host")):
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                                   secure=self.settings.cookie_secure)
        return response

    async def experiments(self, request: Request, session: str) -> Response:
        """The list's frame: its script asks the admin API for one page at a time, so the page
        costs the same with 10,000 experiments as with ten."""
        return self.render(request, "experiments.html", signed_in=True, page_size=PAGE_SIZE)

    async def experiment(self, request: Request, session: str) -> Response:
        experiment = await self.store.get_experiment(request.path_params["id"])
        if experiment is None:
            return self.render(request, "error.html", 404, signed_in=True,
                               message=f"There is no experiment {request.path_params['id']!r}.")
        return self.render(request, "experiment.html", signed_in=True, experiment=experiment,
                           csrf=csrf_token(session, self.settings.signing_keys()), csrf_header=CSRF_HEADER)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:  # only the dashboard's own files; the directory holds others' too
            return Response(f"no static file {name!r}", status_code=404, media_type="text/plain")
        return FileResponse(HERE / "static" / name, media_type=STATIC[name],
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})
