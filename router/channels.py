"""The channels API: decisions and conversions for what is not a web page.

``POST /api/v1/decide`` tells an email, SMS, app or banner system which variant a
customer gets (with the variant's content parameters and the propensity to log);
``POST /api/v1/conversions`` reports a conversion server to server, by the signed
token the decision returned (or a web assignment cookie) or by customer id.

Behind API keys (``CROUPIER_API_KEYS``), each acting for one tenant only. A
customer keeps one assignment for the life of the experiment: it is stored in
Redis under the experiment's hash tag (the same record the batch assignment of
customer lists reads and writes, ``router/batch.py``) and claimed with
compare-and-set, so concurrent first calls agree, and it is drawn by the same assignment core as
the web decision (``router/assign.py``), so the bandit sees one population.
Conversions go through the beacon's Lua script: counted once per visitor and goal.

Slots: an experiment may list ``slots``, names a tenant's systems use instead of
its id ("welcome-email-hero"), so a new experiment can take over a slot without
changing the caller. A slot is unique within a tenant among running experiments.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from croupier.router import rules
from croupier.router.assign import NOWHERE, Assigner, Placement, by_device, fixed_variant
from croupier.router.context import FIELDS as CONTEXT_FIELDS, Context, token as context_token
from croupier.router.experiments import Experiment, Variant
from croupier.router.request_body import Rejected, conversion_value, json_fields, read_limited
from croupier.router.settings import Settings
from croupier.router.snapshot import Snapshot
from croupier.router.store import BeaconEvent, CustomerAssignment, Store, StoreUnavailable
from croupier.router.tenants import ApiKeys
from croupier.router.token import TokenError, new_visitor_id

MAX_BODY = 16384
DECIDE_FIELDS = {"experiment", "slot", "customer_id", "context", "channel"}
CONVERSION_FIELDS = {"experiment", "slot", "token", "customer_id", "goal", "value", "id"}

Handler = Callable[[Request, str], Awaitable[Response]]


def bad(field: str, why: str) -> Rejected:
    return Rejected(400, f"bad_{field}", f"{field}: {why}")


def checked(body: dict, field: str, rule: rules.Rule, required: bool = False) -> str | None:
    """``body[field]`` when it follows ``rule``; None when absent and optional; 400 naming the field otherwise."""
    value = body.get(field)
    if value is None and not required:
        return None
    if not rule.ok(value):
        raise bad(field, rule.message + (" (required)" if required else ""))
    return value


async def json_object(request: Request, allowed: set[str]) -> dict:
    return json_fields(await read_limited(request, MAX_BODY), allowed)


def parse_context(value: object) -> Context | None:
    """The caller's context, as the web path would have read it: known fields, short lowercase tokens."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad("context", "must be a JSON object")
    values = {}
    for name, raw in value.items():
        if name not in CONTEXT_FIELDS:
            raise bad("context", f"{name!r} is not a context field (one of {', '.join(CONTEXT_FIELDS)})")
        if not isinstance(raw, (str, int)) or isinstance(raw, bool) or len(str(raw)) > 64:
            raise bad("context", f"{name}: must be a string of at most 64 characters")
        values[name] = context_token(str(raw))
    return Context(**values)


class ChannelsAPI:
    def __init__(self, settings: Settings, store: Store, core: Assigner) -> None:
        self.store = store
        self.core = core
        self.api_keys = ApiKeys(settings.api_key_tenants())
        self._slots: tuple[Snapshot | None, dict[tuple[str, str], list[Experiment]]] = (None, {})

    def routes(self) -> list[Route]:
        return [Route("/decide", self.guarded(self.decide), methods=["POST"]),
                Route("/conversions", self.guarded(self.convert), methods=["POST"])]

    def guarded(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """API key check (the key's tenant goes to the handler) and the mapping of errors to answers."""
        @wraps(handler)
        async def wrapper(request: Request) -> Response:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            tenant = self.api_keys.tenant(given.strip()) if scheme.lower() == "bearer" else None
            if tenant is None:
                why = "missing or unknown API key (Authorization: Bearer <key>)" if self.api_keys else \
                    "the channels API is disabled: set CROUPIER_API_KEYS"
                return JSONResponse({"error": why, "reason": "unauthorized"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            try:
                return await handler(request, tenant)
            except Rejected as exc:
                return JSONResponse({"error": exc.message, "reason": exc.reason}, status_code=exc.status)
            except StoreUnavailable:
                return JSONResponse({"error": "Redis is unavailable, try again", "reason": "unavailable"},
                                    status_code=503, headers={"Retry-After": "1"})
        return wrapper

    # -- which experiment ---------------------------------------------------

    def experiment(self, body: dict, tenant: str) -> Experiment:
        """The experiment named by ``experiment`` or ``slot``, if the tenant may use it."""
        exp_id, slot = checked(body, "experiment", rules.ID), checked(body, "slot", rules.ID)
        if (exp_id is None) == (slot is None):
            raise bad("experiment", "give either experiment or slot")
        snapshot = self.core.snapshots.current
        if exp_id is not None:
            experiment = snapshot.experiments.get(exp_id)
            if experiment is None:
                raise Rejected(404, "unknown_experiment", f"experiment: {exp_id!r} is not known")
            if experiment.tenant != tenant:
                raise Rejected(403, "other_tenant", f"experiment: {exp_id!r} belongs to another tenant")
            return experiment
        found = self.slot_index(snapshot).get((tenant, slot), [])
        if len(found) > 1:  # more than one running experiment claims the slot
            raise Rejected(409, "slot_conflict", f"slot: {slot!r} is claimed by experiments "
                                                 f"{', '.join(sorted(e.id for e in found))}")
        if not found:
            raise Rejected(404, "unknown_slot", f"slot: {slot!r} is not a slot of any of your experiments")
        return found[0]

    def slot_index(self, snapshot: Snapshot) -> dict[tuple[str, str], list[Experiment]]:
        """(tenant, slot) → experiments, rebuilt once per snapshot; a running experiment hides the others."""
        cached, index = self._slots
        if cached is snapshot:
            return index
        index = {}
        for e in snapshot.experiments.values():
            for slot in e.slots:
                index.setdefault((e.tenant, slot), []).append(e)
        for key, found in index.items():
            running = [e for e in found if e.status == "running"]
            index[key] = running or found[:1]
        self._slots = (snapshot, index)
        return index

    # -- POST /decide -------------------------------------------------------

    async def decide(self, request: Request, tenant: str) -> Response:
        body = await json_object(request, DECIDE_FIELDS)
        experiment = self.experiment(body, tenant)
        customer = checked(body, "customer_id", rules.CUSTOMER, required=True)
        context = parse_context(body.get("context"))
        channel = checked(body, "channel", rules.CHANNEL) or ""
        fixed = fixed_variant(experiment)
        if fixed is not None:
            return self.fixed(experiment, *fixed, channel)

        core = self.core
        now = time.time()
        stored = await self.store.customer_assignment(experiment.id, customer)
        if stored is not None:
            variant = experiment.variant(stored.variant)
            if variant is not None and variant.active:
                return self.answer(experiment, variant, stored, "returning", channel)
        if core.uses_context(experiment):  # no context given: placed like a web visitor without one
            placement = core.place(experiment, context or Context())
        else:  # only the device class, for the traffic-mix counts
            placement = by_device(context.device) if context else NOWHERE
        drawn = core.draw(experiment, placement)
        if drawn is None:  # no active variant, or not refreshed yet: control, uncounted
            return self.fixed(experiment, experiment.control_variant, "no_arms", channel)
        reason = "holdout" if drawn.in_holdout else "reassigned" if stored else "new"
        visitor = stored.visitor if stored else new_visitor_id()
        labelled = drawn.arms.labelled()
        mine = CustomerAssignment(drawn.variant.id, visitor, int(now), dict(labelled)[drawn.variant.id], labelled,
                                  placement.segment, placement.features)
        try:
            held, won = await self.store.claim_customer_assignment(experiment.id, customer, mine, stored)
        except StoreUnavailable:
            core.undraw(experiment, drawn)
            raise
        if not won:  # a concurrent call claimed the customer first: its assignment holds, counted by it
            core.undraw(experiment, drawn)
            return self.answer(experiment, experiment.variant(held.variant) or drawn.variant, held, "returning",
                               channel)
        core.record(experiment, drawn, visitor, reason, now, placement, channel)
        return self.answer(experiment, drawn.variant, held, reason, channel)

    def answer(self, experiment: Experiment, variant: Variant, held: CustomerAssignment, reason: str,
               channel: str) -> Response:
        token = self.core.token(experiment, held.visitor, variant.id, held.issued,
                                Placement(held.segment, held.features))
        return JSONResponse({
            "experiment": experiment.id, "variant": variant.id, "params": variant.params,
            # every arm's probability when drawn now; a stored assignment keeps its own only (the
            # others are in its stream entry)
            "propensity": held.propensity, "probabilities": dict(held.probabilities) or None,
            "token": token, "sticky": reason == "returning", "reason": reason, "channel": channel or None,
        })

    @staticmethod
    def fixed(experiment: Experiment, variant: Variant, reason: str, channel: str) -> Response:
        """Everyone gets one variant (paused or ended experiment): no assignment, nothing counted."""
        return JSONResponse({
            "experiment": experiment.id, "variant": variant.id, "params": variant.params,
            "propensity": 1.0, "probabilities": {variant.id: 1.0}, "token": None, "sticky": False,
            "reason": reason, "channel": channel or None,
        })

    # -- POST /conversions --------------------------------------------------

    async def convert(self, request: Request, tenant: str) -> Response:
        body = await json_object(request, CONVERSION_FIELDS)
        experiment = self.experiment(body, tenant)
        token, customer = body.get("token"), checked(body, "customer_id", rules.CUSTOMER)
        if (token is None) == (customer is None):
            raise bad("token", "give either token or customer_id")
        goal = checked(body, "goal", rules.GOAL) or experiment.goal
        value = conversion_value(body)
        event_id = checked(body, "id", rules.EVENT_ID) or ""

        now = time.time()
        if token is not None:
            if not isinstance(token, str) or len(token) > 512:
                raise bad("token", "must be the token a decision returned")
            try:
                held = self.core.verify(token, experiment, now)
            except TokenError as exc:
                raise Rejected(403, "bad_token", f"token: refused ({exc.reason})") from None
            variant, visitor, segment, features = held.variant, held.visitor, held.segment, held.features
        else:
            stored = await self.store.customer_assignment(experiment.id, customer)
            if stored is None:
                raise Rejected(404, "no_assignment",
                               f"customer_id: no assignment for this customer in experiment {experiment.id!r}")
            variant, visitor, segment, features = stored.variant, stored.visitor, stored.segment, stored.features
        event = BeaconEvent(experiment.id, variant, visitor, "convert", goal, value, event_id, now, segment,
                            features if goal == experiment.goal else ())
        counted = await self.store.record_event(event)
        return JSONResponse({"experiment": experiment.id, "variant": variant, "goal": goal, "counted": counted},
                            status_code=202)
