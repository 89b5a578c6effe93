"""Webhooks: where alerts go, and what is sent to them.

- the admin API's ``/api/v1/webhooks`` routes (behind the admin token, like the rest of the
  admin API): create, list, get and delete; a secret is write-only, never returned;
- the webhook record and its checks, with errors that name the field;
- what a receiver gets (``request``): the alert as generic JSON or as a Slack message,
  signed with HMAC-SHA256 over ``<timestamp>.<body>`` (``X-Croupier-Signature:
  t=<ts>,v1=<hex>``), with the alert's id in ``X-Croupier-Delivery`` for deduplication;
- ``post``: one blocking HTTP POST, run on the delivering router's worker threads
  (``router/alerts.py``); the standard library's client, so the router's image needs
  nothing more.

An alert is the generic JSON document ``{"id", "kind", "experiment", "tenant", "variant",
"time", "summary", "details"}`` (``router/alerts.py``); docs/alerts.md describes both
bodies and how a receiver checks the signature.
"""

from __future__ import annotations

import hashlib
import logging
import hmac
import http.client
import json
import re
import ssl
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from croupier.router.records import InvalidExperiment
from croupier.router.rules import ID, Rule
from croupier.router.store import Store, WebhookLimit

log = logging.getLogger("croupier.alerts")
FORMATS = ("json", "slack")
MAX_WEBHOOKS = 100  # every delivery round matches each alert against all of them
MAX_URL = 2048
MAX_KINDS = 16
SECRET = Rule(re.compile(r"[\x21-\x7e]{16,256}"), "must be 16-256 printable characters without spaces")
KIND = Rule(re.compile(r"[a-z][a-z0-9_-]{0,31}"),
            "must be 1-32 lowercase letters, digits, '_' or '-', starting with a letter")
ALL_TENANTS = "*"
WEBHOOK_FIELDS = {"id", "url", "format", "secret", "tenant", "experiment", "kinds"}
USER_AGENT = "Croupier-Alerts/1"
MAX_SLACK_FIELDS = 10  # Slack refuses a section with more


class InvalidWebhook(InvalidExperiment):
    """A webhook the admin API refuses (422); the message starts with the field. An
    InvalidExperiment, so the admin API's guard answers it like every other refused body."""


@dataclass(frozen=True)
class Webhook:
    id: str
    url: str
    format: str = "json"
    secret: str = ""  # '' sends no signature (Slack's incoming webhooks check none)
    tenant: str = ""  # '' the default tenant's experiments, '*' every tenant's
    experiment: str = ""  # '' every experiment of the tenant
    kinds: tuple[str, ...] = ()  # () every kind

    def matches(self, alert: dict) -> bool:
        """Whether ``alert`` (the generic document) goes to this webhook."""
        return ((self.tenant == ALL_TENANTS or self.tenant == alert.get("tenant", ""))
                and (not self.experiment or self.experiment == alert.get("experiment"))
                and (not self.kinds or alert.get("kind") in self.kinds))

    def to_dict(self) -> dict[str, Any]:
        """As stored, secret included."""
        return {"id": self.id, "url": self.url, "format": self.format, "secret": self.secret,
                "tenant": self.tenant, "experiment": self.experiment, "kinds": list(self.kinds)}

    def public(self) -> dict[str, Any]:
        """As the API shows it: the secret is write-only."""
        shown = self.to_dict()
        del shown["secret"]
        return {**shown, "has_secret": bool(self.secret)}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidWebhook(message)


def _url(value: Any) -> str:
    _check(isinstance(value, str) and 0 < len(value) <= MAX_URL,
           f"url: must be an http:// or https:// URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises on a port out of range
    except ValueError as exc:
        raise InvalidWebhook(f"url: is not a valid URL ({exc})") from None
    _check(parts.scheme in ("http", "https"), "url: must start with http:// or https://")
    _check(bool(parts.hostname), "url: must name a host")
    _check(port != 0, "url: must not have port 0")
    # credentials in the URL would be shown by GET; a receiver authenticates us by the signature
    _check(parts.username is None and parts.password is None,
           "url: must not carry credentials (user:password@); give a secret instead")
    _check(not parts.fragment, "url: must not have a fragment")
    _check(not any(c.isspace() or ord(c) < 32 for c in value), "url: must not contain spaces or control characters")
    return value


def parse_webhook(data: Any) -> Webhook:
    """A webhook from the admin API's JSON body (or the store's), checked field by field."""
    _check(isinstance(data, dict), "body: must be a JSON object")
    unknown = sorted(set(data) - WEBHOOK_FIELDS)
    _check(not unknown, f"{unknown[0] if unknown else ''}: unknown field")
    _check(ID.ok(data.get("id")), ID.error("id"))
    fmt = data.get("format", "json")
    _check(fmt in FORMATS, f"format: must be one of {', '.join(FORMATS)}")
    secret = data.get("secret", "")
    _check(secret == "" or SECRET.ok(secret), SECRET.error("secret") + " (or empty: unsigned)")
    tenant = data.get("tenant", "")
    _check(tenant in ("", ALL_TENANTS) or ID.ok(tenant),
           ID.error("tenant") + " (or empty: the default tenant; '*': every tenant)")
    experiment = data.get("experiment", "")
    _check(experiment == "" or ID.ok(experiment), ID.error("experiment") + " (or empty: every experiment)")
    kinds = data.get("kinds", [])
    _check(isinstance(kinds, list) and len(kinds) <= MAX_KINDS,
           f"kinds: must be a list of at most {MAX_KINDS} alert kinds (empty: every kind)")
    for i, kind in enumerate(kinds):
        _check(KIND.ok(kind), KIND.error(f"kinds[{i}]"))
    _check(len(set(kinds)) == len(kinds), "kinds: must not repeat a kind")
    return Webhook(data["id"], _url(data.get("url")), fmt, secret, "" if tenant == "default" else tenant,
                   experiment, tuple(kinds))


def load_webhooks(stored: dict[str, str]) -> list[Webhook]:
    """The store's webhooks (id → JSON), sorted by id; one that no longer parses is left out
    and logged, so it cannot stop the others."""
    webhooks = []
    for webhook_id, doc in sorted(stored.items()):
        try:
            webhooks.append(parse_webhook(json.loads(doc)))
        except (ValueError, InvalidWebhook) as exc:
            log.warning("webhook %s: its stored entry cannot be read, leaving it out: %s", webhook_id, exc)
    return webhooks


# -- what a receiver gets ---------------------------------------------------


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def generic_body(alert: dict) -> dict:
    return {"id": alert["id"], "kind": alert["kind"], "experiment": alert.get("experiment", ""),
            "tenant": alert.get("tenant", ""), "variant": alert.get("variant", ""),
            "time": _iso(float(alert["time"])), "summary": alert.get("summary", ""),
            "details": alert.get("details", {})}


def _slack_escape(text: str) -> str:
    # the three characters Slack's mrkdwn wants escaped
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(alert: dict) -> dict:
    """A Slack incoming-webhook message: ``text`` (notifications and clients without blocks)
    and blocks with the alert's fields and details."""
    doc = generic_body(alert)
    text = f":rotating_light: [{doc['kind']}] {doc['summary']}"
    where = [f"experiment `{doc['experiment']}`"] if doc["experiment"] else []
    where += [f"variant `{doc['variant']}`"] if doc["variant"] else []
    where += [f"tenant `{doc['tenant']}`"] if doc["tenant"] else []
    where += [doc["time"], f"alert {doc['id']}"]
    blocks: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(text)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(" · ".join(where))}]},
    ]
    fields = [{"type": "mrkdwn", "text": _slack_escape(f"*{key}*\n{_short(value)}")}
              for key, value in list(doc["details"].items())[:MAX_SLACK_FIELDS]]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    return {"text": _slack_escape(text), "blocks": blocks}


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 300 else text[:297] + "..."


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``<timestamp>.<body>`` under the webhook's secret."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def request(alert: dict, webhook: Webhook, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery of ``alert`` to ``webhook``. The timestamp is
    the attempt's, so a receiver can refuse old replays; the delivery id is the alert's, the
    same on every attempt."""
    doc = slack_body(alert) if webhook.format == "slack" else generic_body(alert)
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Croupier-Delivery": alert["id"], "X-Croupier-Alert-Kind": alert["kind"]}
    if webhook.secret:
        ts = int(time.time() if now is None else now)
        headers["X-Croupier-Signature"] = f"t={ts},v1={signature(webhook.secret, ts, body)}"
    return body, headers


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` and return the status; raises OSError or HTTPException when no answer came.
    Redirects are not followed: a receiver that moved must be configured again."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(65_536)  # what a receiver says is not used; only so much of it is read
        return response.status
    finally:
        connection.close()


# -- the admin API's routes ---------------------------------------------------


class WebhooksAPI:
    """``/api/v1/webhooks``: mounted beside the admin API, behind its token check (``guarded``)."""

    def __init__(self, store: Store, guarded) -> None:
        self.store = store
        self.guarded = guarded

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/webhooks", g(self.list), methods=["GET"]),
            Route("/webhooks", g(self.create), methods=["POST"]),
            Route("/webhooks/{id}", g(self.get), methods=["GET"]),
            Route("/webhooks/{id}", g(self.delete), methods=["DELETE"]),
        ]

    async def stored(self) -> list[Webhook]:
        return load_webhooks(await self.store.webhooks())

    async def list(self, request: Request) -> Response:
        return JSONResponse({"webhooks": [w.public() for w in await self.stored()]})

    async def create(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body())
        except ValueError:
            raise InvalidWebhook("body: is not valid JSON") from None
        webhook = parse_webhook(data)
        try:
            added = await self.store.add_webhook(webhook.id, json.dumps(webhook.to_dict()), MAX_WEBHOOKS)
        except WebhookLimit:
            return JSONResponse({"error": f"webhooks: at most {MAX_WEBHOOKS}; delete one first"}, status_code=409)
        if not added:
            return JSONResponse({"error": f"webhook {webhook.id!r} already exists; delete it to change it"},
                                status_code=409)
        return JSONResponse(webhook.public(), status_code=201)

    async def get(self, request: Request) -> Response:
        found = next((w for w in await self.stored() if w.id == request.path_params["id"]), None)
        if found is None:
            return JSONResponse({"error": f"webhook {request.path_params['id']!r} not found"}, status_code=404)
        return JSONResponse(found.public())

    async def delete(self, request: Request) -> Response:
        if not await self.store.delete_webhook(request.path_params["id"]):
            return JSONResponse({"error": f"webhook {request.path_params['id']!r} not found"}, status_code=404)
        return Response(status_code=204)
