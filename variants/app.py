"""The variant page server: the landing page, the thank-you page and a health check.

Every GET path serves the landing page, because NGINX passes the visitor's path
(``/spring-sale/``) through unchanged; a path whose last segment is ``thanks``
serves the thank-you page. The sign-up form posts there and is answered with a
redirect (POST-redirect-GET), so the address never appears in a URL or access log.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from croupier.router.rules import ARM, ID
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


@dataclass(frozen=True)
class Page:
    """One variant's page, ready to render: its params and what the templates derive from them."""

    params: VariantParams
    context: dict[str, Any]


def page_of(params: VariantParams) -> Page:
    return Page(params, {
        "p": params,
        "on_primary": readable_on(params.colors.primary),
        "on_accent": readable_on(params.colors.accent),
        "favicon": _favicon(params.colors.primary),
        "illustration": ILLUSTRATIONS.get(params.illustration),
    })


@dataclass(frozen=True)
class Chosen:
    """The page a request gets, and the experiment and variant the page names for the beacon."""

    page: Page
    experiment: str
    variant: str


class Pages(Protocol):
    """What a server renders: one variant, or any arm of a factorial experiment
    (``croupier.variants.factorial``)."""

    def choose(self, headers: Mapping[str, str]) -> Chosen: ...

    def health(self) -> dict[str, Any]: ...


class OnePage:
    """One variant from its params. NGINX's headers name the experiment and variant when they
    are well formed; otherwise the params do."""

    def __init__(self, params: dict[str, Any] | VariantParams) -> None:
        self.page = page_of(params if isinstance(params, VariantParams) else parse_params(params))

    def choose(self, headers: Mapping[str, str]) -> Chosen:
        p = self.page.params
        experiment = headers.get(EXPERIMENT_HEADER, "")
        variant = headers.get(VARIANT_HEADER, "")
        return Chosen(self.page, experiment if ID.ok(experiment) else p.experiment,
                      variant if ARM.ok(variant) else p.id)

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "variant": self.page.params.id}


def is_thanks_path(path: str) -> bool:
    return path.rstrip("/").rsplit("/", 1)[-1] == "thanks"


def thanks_action(path: str) -> str:
    """The form's action, relative to the page, so it stays under the experiment's
    path prefix (``/spring-sale`` -> ``./spring-sale/thanks``) even behind a rewriting proxy."""
    if path.endswith("/"):
        return "thanks"
    # Quoted and "./"-prefixed: a segment like "x:y" must not read as a URL scheme.
    return "./" + quote(path.rsplit("/", 1)[-1], safe="") + "/thanks"


def create_app(source: dict[str, Any] | VariantParams | Pages) -> Starlette:
    """The ASGI app serving one variant (its params) or every arm of a factorial experiment
    (``croupier.variants.factorial.FactorialPages``); raises ``InvalidParams`` for bad params."""
    pages: Pages = OnePage(source) if isinstance(source, (dict, VariantParams)) else source

    def render(name: str, request: Request, **extra: Any) -> HTMLResponse:
        chosen = pages.choose(request.headers)
        html = _templates.get_template(name).render(
            **chosen.page.context, **extra, experiment=chosen.experiment, variant=chosen.variant,
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
        return JSONResponse(pages.health(), headers={"Cache-Control": "no-store"})

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/{path:path}", page, methods=["GET", "POST"]),
    ])
