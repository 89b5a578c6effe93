"""The beacon: where a page's views, clicks, conversions and engagement are counted.

Same-origin only. The assignment (visitor, variant) comes from the signed
cookie, never from the body; the body only says which experiment and what
happened. Every event is written synchronously through one Lua script, and the
beacon answers 204 only after Redis took it (503 when it could not). A client
address sending faster than CROUPIER_BEACON_RATE gets 429 before any Redis work.
An engagement event carries a page view's cumulative figures (``router/engagement.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from croupier.router import rules
from croupier.router.assign import Assigner
from croupier.router.context import device_class
from croupier.router.engagement import FIELDS as ENGAGEMENT_FIELDS, Engagement, parse_engagement
from croupier.router.passes import token_of
from croupier.router.ratelimit import TokenBuckets, client_key, retry_after
from croupier.router.request_body import Rejected, conversion_value, json_fields, read_limited
from croupier.router.settings import Settings
from croupier.router.store import BeaconEvent, Store, StoreUnavailable
from croupier.router.token import TokenError

EVENT_TYPES = ("view", "click", "convert", "engagement")
BODY_FIELDS = {"experiment", "type", "goal", "value", "id"} | ENGAGEMENT_FIELDS
BEACON_JS = Path(__file__).with_name("static") / "beacon.js"


def check_origin(headers, request_host: str) -> None:
    """Refuse cross-site posts: the Origin (when sent) must be this site."""
    if headers.get("sec-fetch-site") == "cross-site":
        raise Rejected(403, "cross_site", "cross-site beacon refused")
    origin = headers.get("origin")
    if origin is None:
        return  # not a browser, or a same-origin GET-style request; the cookie is still required
    if origin == "null" or urlsplit(origin).netloc.lower() != request_host.lower():
        raise Rejected(403, "cross_site", "Origin does not match this site")


def parse_body(raw: bytes) -> dict:
    """The event fields, validated; ``Rejected`` names what is wrong."""
    body = json_fields(raw, BODY_FIELDS)
    experiment = body.get("experiment")
    if not rules.ID.ok(experiment):
        raise Rejected(400, "bad_experiment", rules.ID.error("experiment"))
    kind = body.get("type")
    if kind not in EVENT_TYPES:
        raise Rejected(400, "bad_type", f"type: must be one of {', '.join(EVENT_TYPES)}")
    goal = body.get("goal")
    if goal is not None and not rules.GOAL.ok(goal):
        raise Rejected(400, "bad_goal", rules.GOAL.error("goal"))
    if goal is not None and kind == "engagement":
        raise Rejected(400, "bad_goal", "goal: an engagement event has no goal")
    value = body.get("value")
    if value is not None:
        if kind != "convert":
            raise Rejected(400, "bad_value", "value: only a convert event carries a value")
        value = conversion_value(body)
    event_id = body.get("id")
    if event_id is not None and not rules.EVENT_ID.ok(event_id):
        raise Rejected(400, "bad_id", rules.EVENT_ID.error("id"))
    engagement = None
    if kind == "engagement":
        engagement = parse_engagement(body, event_id or "")
    elif extra := sorted(ENGAGEMENT_FIELDS & body.keys()):
        raise Rejected(400, "unknown_field", f"{extra[0]}: only an engagement event carries it")
    return {"experiment": experiment, "type": kind, "goal": goal, "value": value, "id": event_id or "",
            "engagement": engagement}


class Beacon:
    def __init__(self, settings: Settings, store: Store, core: Assigner) -> None:
        self.settings = settings
        self.store = store
        self.core = core
        self.snapshots = core.snapshots
        self.metrics = core.metrics
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
            event, engagement = await self._accept(request)
            if engagement is None:
                counted = await self.store.record_event(event)
            else:
                counted = await self.store.record_engagement(event, engagement) > 0
        except Rejected as exc:
            self.metrics.beacon_events.labels("rejected", exc.reason).inc()
            return JSONResponse({"error": exc.message, "reason": exc.reason}, status_code=exc.status)
        except StoreUnavailable:
            self.metrics.beacon_events.labels("rejected", "store_unavailable").inc()
            return JSONResponse({"error": "the event store is unavailable, try again", "reason": "unavailable"},
                                status_code=503, headers={"Retry-After": "1"})
        self.metrics.beacon_events.labels("accepted" if counted else "duplicate", event.type).inc()
        return Response(status_code=204)

    async def _accept(self, request: Request) -> tuple[BeaconEvent, Engagement | None]:
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
            held = self.core.verify(token, experiment, time.time())
        except TokenError as exc:
            raise Rejected(403, "bad_token", f"assignment cookie refused: {exc.reason}") from None
        goal = fields["goal"] or (experiment.goal if fields["type"] == "convert" else "")
        # the segment and features the visitor was assigned with (from the signed token): a
        # contextual policy learns only from its experiment's own goal
        features = held.features if goal == experiment.goal else ()
        # the device class the assignment was counted under, from the same browser's User-Agent
        # (no bot test: a bot never got an assignment cookie), so a conversion lands in its stratum
        device = device_class(headers.get("user-agent", ""))
        return BeaconEvent(experiment.id, held.variant, held.visitor, fields["type"], goal,
                           fields["value"], fields["id"], time.time(), held.segment, features,
                           device), fields["engagement"]

    async def script_endpoint(self, request: Request) -> Response:
        return Response(self.script, media_type="application/javascript",
                        headers={"Cache-Control": "public, max-age=300"})
