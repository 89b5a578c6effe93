"""The beacon: where a page's views, clicks and conversions are counted.

Same-origin only. The assignment (visitor, variant) comes from the signed
cookie, never from the body; the body only says which experiment and what
happened. Every event is written synchronously through one Lua script, and the
beacon answers 204 only after Redis took it (503 when it could not). A client
address sending faster than CROUPIER_BEACON_RATE gets 429 before any Redis work.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router.experiments import GOAL
from router.metrics import Metrics
from router.passes import token_of
from router.ratelimit import TokenBuckets, client_key, retry_after
from router.settings import Settings
from router.snapshot import SnapshotKeeper
from router.store import BeaconEvent, Store, StoreUnavailable
from router.tenants import TenantKeys
from router.token import TokenError, is_valid_id, verify

EVENT_TYPES = ("view", "click", "convert")
BODY_FIELDS = {"experiment", "type", "goal", "value", "id"}
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_VALUE = 1e9
BEACON_JS = Path(__file__).with_name("static") / "beacon.js"


class Rejected(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


def check_origin(headers, request_host: str) -> None:
    """Refuse cross-site posts: the Origin (when sent) must be this site."""
    if headers.get("sec-fetch-site") == "cross-site":
        raise Rejected(403, "cross_site", "cross-site beacon refused")
    origin = headers.get("origin")
    if origin is None:
        return  # not a browser, or a same-origin GET-style request; the cookie is still required
    if origin == "null" or urlsplit(origin).netloc.lower() != request_host.lower():
        raise Rejected(403, "cross_site", "Origin does not match this site")


def json_fields(raw: bytes, allowed: set[str]) -> dict:
    """A JSON object with no field outside ``allowed``; ``Rejected`` (400) otherwise.
    Shared by every endpoint that takes events or decisions from outside."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Rejected(400, "bad_json", "body: is not valid JSON") from None
    if not isinstance(body, dict):
        raise Rejected(400, "bad_json", "body: must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Rejected(400, "unknown_field", f"{unknown[0]}: unknown field")
    return body


def conversion_value(body: dict) -> float | None:
    """A conversion's optional ``value``: a finite number in [0, MAX_VALUE]."""
    value = body.get("value")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_VALUE:
        raise Rejected(400, "bad_value", f"value: must be a number between 0 and {MAX_VALUE:g}")
    return float(value)


def parse_body(raw: bytes) -> dict:
    """The event fields, validated; ``Rejected`` names what is wrong."""
    body = json_fields(raw, BODY_FIELDS)
    experiment = body.get("experiment")
    if not isinstance(experiment, str) or not is_valid_id(experiment):
        raise Rejected(400, "bad_experiment", "experiment: must be an experiment id")
    kind = body.get("type")
    if kind not in EVENT_TYPES:
        raise Rejected(400, "bad_type", f"type: must be one of {', '.join(EVENT_TYPES)}")
    goal = body.get("goal")
    if goal is not None and (not isinstance(goal, str) or not GOAL.fullmatch(goal)):
        raise Rejected(400, "bad_goal", "goal: must be 1-32 lowercase letters, digits, '_' or '-'")
    value = body.get("value")
    if value is not None:
        if kind != "convert":
            raise Rejected(400, "bad_value", "value: only a convert event carries a value")
        value = conversion_value(body)
    event_id = body.get("id")
    if event_id is not None and (not isinstance(event_id, str) or not EVENT_ID.fullmatch(event_id)):
        raise Rejected(400, "bad_id", "id: must be 8-64 letters, digits, '_' or '-'")
    return {"experiment": experiment, "type": kind, "goal": goal, "value": value, "id": event_id or ""}


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise Rejected(413, "too_large", f"body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "too_large", f"body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class Beacon:
    def __init__(self, settings: Settings, store: Store, snapshots: SnapshotKeeper, metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.snapshots = snapshots
        self.metrics = metrics
        self.keys = settings.signing_keys()
        self.tenant_keys = TenantKeys(self.keys, settings.secret_id)
        self.script = BEACON_JS.read_bytes() if BEACON_JS.exists() else b""
        self.limiter = TokenBuckets(settings.beacon_rate, settings.beacon_burst) if settings.beacon_rate else None

    async def event(self, request: Request) -> Response:
        if self.limiter is not None:
            peer = request.client.host if request.client else None
            wait = self.limiter.take(client_key(request.headers.get("x-real-ip"), peer), time.monotonic())
            if wait:
                self.metrics.beacon_events.labels("rejected", "rate_limited").inc()
                return JSONResponse({"error": "too many beacon events from this address, slow down",
                                     "reason": "rate_limited"},
                                    status_code=429, headers={"Retry-After": retry_after(wait)})
        try:
            event = await self._accept(request)
            counted = await self.store.record_event(event)
        except Rejected as exc:
            self.metrics.beacon_events.labels("rejected", exc.reason).inc()
            return JSONResponse({"error": exc.message, "reason": exc.reason}, status_code=exc.status)
        except StoreUnavailable:
            self.metrics.beacon_events.labels("rejected", "store_unavailable").inc()
            return JSONResponse({"error": "the event store is unavailable, try again", "reason": "unavailable"},
                                status_code=503, headers={"Retry-After": "1"})
        self.metrics.beacon_events.labels("accepted" if counted else "duplicate", event.type).inc()
        return Response(status_code=204)

    async def _accept(self, request: Request) -> BeaconEvent:
        headers = request.headers
        site = headers.get("x-forwarded-host") or headers.get("host", "")
        check_origin(headers, site)
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            raise Rejected(415, "bad_content_type", "Content-Type must be application/json")
        fields = parse_body(await read_limited(request, self.settings.beacon_max_bytes))
        experiment = self.snapshots.current.experiments.get(fields["experiment"])
        if experiment is None:
            raise Rejected(404, "unknown_experiment", f"experiment {fields['experiment']!r} is not known")
        if experiment.host and experiment.host != site.rsplit(":", 1)[0].lower():
            # its cookies are another site's: one tenant's site cannot report for another's experiment
            raise Rejected(403, "wrong_host", f"experiment {experiment.id!r} is not served on this host")
        token = token_of(request.cookies.get(self.settings.cookie_prefix + experiment.id) or "")
        if not token:
            raise Rejected(403, "no_assignment", "no assignment cookie for this experiment")
        try:
            held = verify(token, self.tenant_keys.keys(experiment.tenant), now=int(time.time()),
                          max_age=self.settings.cookie_max_age, experiment=experiment.id)
        except TokenError as exc:
            self.metrics.tokens_rejected.labels(exc.reason).inc()
            raise Rejected(403, "bad_token", f"assignment cookie refused: {exc.reason}") from None
        goal = fields["goal"] or (experiment.goal if fields["type"] == "convert" else "")
        # the segment and features the visitor was assigned with (from the signed token): a
        # contextual policy learns only from its experiment's own goal
        features = held.features if goal == experiment.goal else ()
        return BeaconEvent(experiment.id, held.variant, held.visitor, fields["type"], goal,
                           fields["value"], fields["id"], time.time(), held.segment, features)

    async def script_endpoint(self, request: Request) -> Response:
        return Response(self.script, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})
