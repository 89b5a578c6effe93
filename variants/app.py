"""The variant page server: the landing page, the thank-you page and a health check.

Every GET path serves the landing page, because NGINX passes the visitor's path
(``/spring-sale/``) through unchanged; a path whose last segment is ``thanks``
serves the thank-you page. The sign-up form posts there and is answered with a
redirect (POST-redirect-GET), so the address never appears in a URL or access log.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from croupier.router.rules import ID
from croupier.variants.colors import readable_on
from croupier.variants.illustrations import ILLUSTRATIONS
from croupier.variants.params import VariantParams, parse_params

EXPERIMENT_HEADER = "x-croupier-experiment"
VARIANT_HEADER = "x-croupier-variant"

# Self-contained by construction: the browser refuses anything not inline or
# same-origin, so a template edit cannot quietly add a CDN or tracker.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    # One URL shows different variants to different visitors: no shared cache may keep it.
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("croupier.variants", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _favicon(color: str) -> str:
    """A data: URI icon, so the browser's automatic /favicon.ico request never happens."""
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
           f'<circle cx="16" cy="16" r="14" fill="{color}"/></svg>')
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def identity(request: Request, params: VariantParams) -> tuple[str, str]:
    """(experiment, variant) for this page: NGINX's headers when well formed, else the params file's."""
    experiment = request.headers.get(EXPERIMENT_HEADER, "")
    variant = request.headers.get(VARIANT_HEADER, "")
    return (experiment if ID.ok(experiment) else params.experiment,
            variant if ID.ok(variant) else params.id)


def is_thanks_path(path: str) -> bool:
    return path.rstrip("/").rsplit("/", 1)[-1] == "thanks"


def thanks_action(path: str) -> str:
    """The form's action, relative to the page, so it stays under the experiment's
    path prefix (``/spring-sale`` -> ``./spring-sale/thanks``) even behind a rewriting proxy."""
    if path.endswith("/"):
        return "thanks"
    # Quoted and "./"-prefixed: a segment like "x:y" must not read as a URL scheme.
    return "./" + quote(path.rsplit("/", 1)[-1], safe="") + "/thanks"


def create_app(params: dict[str, Any] | VariantParams) -> Starlette:
    """The ASGI app serving one variant; raises ``InvalidParams`` for bad params."""
    p = params if isinstance(params, VariantParams) else parse_params(params)
    shared = {
        "p": p,
        "on_primary": readable_on(p.colors.primary),
        "on_accent": readable_on(p.colors.accent),
        "favicon": _favicon(p.colors.primary),
        "illustration": ILLUSTRATIONS.get(p.illustration),
    }

    def render(name: str, request: Request, **extra: Any) -> HTMLResponse:
        experiment, variant = identity(request, p)
        html = _templates.get_template(name).render(
            **shared, **extra, experiment=experiment, variant=variant,
            year=datetime.date.today().year)
        return HTMLResponse(html, headers=PAGE_HEADERS)

    async def page(request: Request) -> Response:
        path = request.url.path
        if request.method == "POST":
            if not is_thanks_path(path):
                return Response("Method Not Allowed", 405, headers={"Allow": "GET, HEAD"})
            # The demo has no mailing list behind it: the address is not read or kept.
            return RedirectResponse("./" if path.endswith("/") else "thanks", status_code=303,
                                    headers={"Cache-Control": "no-store"})
        if is_thanks_path(path):
            return render("thanks.html", request)
        return render("landing.html", request, thanks_action=thanks_action(path))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "variant": p.id}, headers={"Cache-Control": "no-store"})

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{path:path}", page, methods=["GET", "POST"]),
    ])
