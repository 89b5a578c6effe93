"""The decision: which variant this visitor sees. NGINX's auth_request target.

Contract (DESIGN §1): always 200. ``X-Croupier-Upstream`` says where NGINX
proxies, ``X-Croupier-Variant`` and ``X-Croupier-Experiment`` what was chosen,
and ``Set-Cookie`` carries the signed assignment with a fresh routing pass
(router/passes.py), with which NGINX routes the visitor's next page views itself
until it expires. Reads only the in-memory snapshot: a returning visitor costs
one HMAC, a new one a uniform draw, and the assignment is queued for the
recorder, never written inline.
"""

from __future__ import annotations

import logging
import random
import re
import time
from dataclasses import dataclass

from router.context import Context, ContextReader, feature_indices
from router.experiments import Experiment, Variant
from router.metrics import Metrics
from router.passes import token_of, with_pass
from router.recorder import AssignmentRecorder
from router.settings import Settings
from router.segments import segment_id
from router.snapshot import Arms, SnapshotKeeper
from router.store import AssignmentRecord
from router.tenants import TenantKeys
from router.token import Assignment, TokenError, new_visitor_id, sign, verify

log = logging.getLogger("croupier.decide")

DECIDE_PATH = "/_croupier/decide"  # NGINX's auth_request target, on the app's port and the decide listener


@dataclass(frozen=True, slots=True)
class Decision:
    upstream: str
    experiment: str = ""
    variant: str = ""
    reason: str = "no_experiment"
    cookie: str = ""


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a visitor's context puts them in an experiment: the segment whose bandit assigns
    them ('' for the experiment-wide one), the hashed features a contextual policy used, and
    the split to draw from (None: the experiment-wide split)."""

    segment: str = ""
    features: tuple[int, ...] = ()
    arms: Arms | None = None


class Decider:
    def __init__(self, settings: Settings, snapshots: SnapshotKeeper, recorder: AssignmentRecorder,
                 metrics: Metrics, rand: random.Random | None = None) -> None:
        self.settings = settings
        self.snapshots = snapshots
        self.recorder = recorder
        self.metrics = metrics
        self.rand = rand or random.Random()
        self.keys = settings.signing_keys()
        self._counters: dict[tuple[str, str, str], object] = {}
        self.kid, self.key = settings.secret_id, self.keys[settings.secret_id]
        self.tenant_keys = TenantKeys(self.keys, settings.secret_id)  # a tenant's tokens bind the tenant
        self.is_bot = BotVerdicts(settings.bot_pattern)
        self.context_reader = ContextReader(settings.context_utc_offset, self.is_bot, self._holds_valid_cookie)
        self.geo_header = settings.geo_header.lower().encode()
        self.pass_key = settings.pass_key if settings.pass_seconds else ""
        self.cookie_attrs = f"; Path=/; Max-Age={settings.cookie_max_age}; HttpOnly; SameSite=Lax" + (
            "; Secure" if settings.cookie_secure else "")

    def decide(self, host: str, uri: str, user_agent: str, cookies: dict[str, str], now: float,
               headers: dict[bytes, bytes] | None = None) -> Decision:
        path = uri.split("?", 1)[0]
        experiment = self.snapshots.current.match(host.split(":", 1)[0].lower(), path)
        if experiment is None:
            return Decision(self.settings.default_upstream)
        if experiment.status == "ended":
            return self._fixed(experiment, experiment.variant(experiment.winner), "ended")
        if experiment.status == "paused":
            return self._fixed(experiment, experiment.control_variant, "paused")
        if self.is_bot(user_agent):
            return self._fixed(experiment, experiment.control_variant, "bot")

        visitor = None
        reason = "new"
        cookie = cookies.get(self.settings.cookie_prefix + experiment.id)
        if cookie:
            token = token_of(cookie)
            try:
                held = verify(token, self.tenant_keys.keys(experiment.tenant),
                              now=int(now), max_age=self.settings.cookie_max_age, experiment=experiment.id)
            except TokenError as exc:
                self.metrics.tokens_rejected.labels(exc.reason).inc()
            else:
                variant = experiment.variant(held.variant)
                if variant is not None and variant.active:  # the same assignment, with a fresh pass
                    return Decision(variant.upstream, experiment.id, variant.id, "returning",
                                    self.cookie(experiment, token, now) if self.pass_key else "")
                visitor, reason = held.visitor, "reassigned"

        placement = None
        if self.uses_context(experiment):  # plain experiments never pay for reading a context
            context = self.read_context(host, uri, user_agent, headers or {}, now, returning=visitor is not None)
            placement = self.place(experiment, context)
        drawn = self.draw(experiment, placement)
        if drawn is None:  # no active variant, or not refreshed yet: control, uncounted
            return self._fixed(experiment, experiment.control_variant, "no_arms")
        variant, in_holdout, arms = drawn
        if in_holdout:
            reason = "holdout"
        visitor = visitor or new_visitor_id()
        self.record(experiment, variant, visitor, reason, arms, now, placement)
        token = self.token(experiment, visitor, variant.id, int(now), placement)
        return Decision(variant.upstream, experiment.id, variant.id, reason, self.cookie(experiment, token, now))

    def cookie(self, experiment: Experiment, token: str, now: float) -> str:
        """The Set-Cookie value for an assignment: the token and, when passes are on, a pass
        (holdout visitors get one too: their variant is as sticky as anyone's)."""
        value = with_pass(token, int(now) + self.settings.pass_seconds, self.pass_key) if self.pass_key else token
        return f"{self.settings.cookie_prefix}{experiment.id}={value}{self.cookie_attrs}"

    def uses_context(self, experiment: Experiment) -> bool:
        """Whether assignments of ``experiment`` depend on the visitor's context (segments or a contextual policy)."""
        return bool(experiment.segment_keys) or experiment.id in self.snapshots.current.contextual

    def read_context(self, host: str, uri: str, user_agent: str, headers: dict[bytes, bytes], now: float,
                     returning: bool | None = None) -> Context:
        """The visitor's context from the decide subrequest's headers; never raises."""
        get = headers.get
        return self.context_reader.read(
            host=host, uri=uri, user_agent=user_agent, referer=get(b"referer", b"").decode("latin-1"),
            accept_language=get(b"accept-language", b"").decode("latin-1"),
            geo_value=get(self.geo_header, b"").decode("latin-1"),
            cookie_header=get(b"cookie", b"").decode("latin-1"), now=now, returning=returning)

    def place(self, experiment: Experiment, context: Context) -> Placement:
        """The visitor's segment and features, and the split that assigns them; from the snapshot only.

        A segment without a bandit of its own yet is assigned by the experiment-wide one but
        counted in its segment, so it gets one at the next refresh; once the experiment has
        its cap of segments, other segments are neither given one nor counted apart."""
        snapshot = self.snapshots.current
        segment, arms, features = "", None, ()
        if experiment.segment_keys:
            segment = segment_id(context, experiment.segment_keys)
            table = snapshot.segments.get(experiment.id)
            if table is not None:
                arms = table.arms.get(segment)
                if arms is None and table.full:
                    segment = ""
        contextual = snapshot.contextual.get(experiment.id)
        if contextual is not None:
            features = feature_indices(context, contextual.policy.dimensions)
            arms = contextual.arms_for(features)
        return Placement(segment, features, arms)

    def _holds_valid_cookie(self, cookie_header: str, now: float, limit: int = 4) -> bool:
        """Whether any Croupier assignment cookie in the header verifies (at most ``limit`` checked)."""
        prefix = self.settings.cookie_prefix
        experiments = self.snapshots.current.experiments
        for part in cookie_header.split(";")[:64]:
            name, _, value = part.strip().partition("=")
            if name.startswith(prefix):
                # a tenant's cookies are signed with that tenant's keys
                known = experiments.get(name[len(prefix):])
                keys = self.tenant_keys.keys(known.tenant) if known is not None else self.keys
                try:
                    verify(token_of(value), keys, now=int(now), max_age=self.settings.cookie_max_age)
                    return True
                except TokenError:
                    limit -= 1
                    if limit <= 0:
                        return False
        return False

    # The assignment core, shared with the channels API (router/channels.py). Drawing and
    # recording are separate steps because the API records only after its claim on the
    # customer won: concurrent first calls for one customer must count one trial.

    def draw(self, experiment: Experiment, placement: Placement | None = None) -> tuple[Variant, bool, Arms] | None:
        """An arm for a new or reassigned assignment, drawn from the snapshot's allocation (the
        placement's split when it has one); whether it came from the holdout; and the allocation
        (every arm's probability, for the log). None while the experiment has no arms."""
        arms = placement.arms if placement is not None and placement.arms is not None \
            else self.snapshots.current.arms.get(experiment.id)
        if arms is None:
            return None
        variant, in_holdout = arms.pick(self.rand.random())
        return variant, in_holdout, arms

    def record(self, experiment: Experiment, variant: Variant, visitor: str, reason: str, arms: Arms,
               now: float, placement: Placement | None = None, channel: str = "") -> None:
        """Queue the assignment (with every arm's probability, its segment, features and channel) for the recorder."""
        segment, features = (placement.segment, placement.features) if placement is not None else ("", ())
        self.recorder.add(AssignmentRecord(experiment.id, variant.id, visitor, reason, arms.labelled(), now,
                                           segment, features, channel))

    def token(self, experiment: Experiment, visitor: str, variant_id: str, issued: int,
              placement: Placement | None = None) -> str:
        """The signed assignment; a tenant's experiments sign with that tenant's key. A placement's
        segment and features ride in the token, so the beacon credits them without a lookup."""
        segment, features = (placement.segment, placement.features) if placement is not None else ("", ())
        assignment = Assignment(visitor, experiment.id, variant_id, issued, segment, features)
        if experiment.tenant:
            kid, key = self.tenant_keys.signing(experiment.tenant)
            return sign(assignment, kid, key)
        return sign(assignment, self.kid, self.key)

    @staticmethod
    def _fixed(experiment: Experiment, variant: Variant | None, reason: str) -> Decision:
        variant = variant or experiment.control_variant
        return Decision(variant.upstream, experiment.id, variant.id, reason)

    def answer(self, headers: dict[bytes, bytes]) -> list[tuple[bytes, bytes]]:
        """The decide subrequest's response headers, from its (lower-case) request headers."""
        started = time.perf_counter()
        decision = self.decide(
            host=(headers.get(b"x-original-host") or headers.get(b"host", b"")).decode("latin-1"),
            uri=headers.get(b"x-original-uri", b"/").decode("latin-1"),
            user_agent=headers.get(b"user-agent", b"").decode("latin-1"),
            cookies=CookieHeader(headers.get(b"cookie", b"").decode("latin-1")),
            now=time.time(),
            headers=headers,
        )
        out = [(b"x-croupier-upstream", decision.upstream.encode())]
        if decision.experiment:
            out.append((b"x-croupier-experiment", decision.experiment.encode()))
            out.append((b"x-croupier-variant", decision.variant.encode()))
        if decision.cookie:
            out.append((b"set-cookie", decision.cookie.encode()))
        out.append((b"content-length", b"0"))
        self._count(decision.experiment, decision.variant, decision.reason)
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        return out

    def _count(self, experiment: str, variant: str, reason: str) -> None:
        key = (experiment, variant, reason)
        child = self._counters.get(key)
        if child is None:  # labels() takes a lock and builds a tuple: resolve each series once
            child = self._counters[key] = self.metrics.decisions.labels(experiment or "-", variant or "-", reason)
        child.inc()

    def respond(self, headers: dict[bytes, bytes]) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The status and headers of the decide answer; a failure is a 500, and NGINX fails
        open to control on anything but a 2xx."""
        try:
            return 200, self.answer(headers)
        except Exception:
            log.exception("decide failed")
            return 500, [(b"content-length", b"0")]

    async def asgi(self, scope, receive, send) -> None:
        """The decide endpoint as a bare ASGI app, on the app's own port: it skips the
        framework's routing, middleware and request/response objects. NGINX's subrequests
        use the leaner decide listener (router/decide_listener.py) where it is on."""
        status, headers = self.respond(dict(scope["headers"]))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class BotVerdicts:
    """Whether a User-Agent matches the bot pattern, remembered per User-Agent.

    The case-insensitive pattern costs about 16 µs a search on a browser's User-Agent
    (a third of a new visitor's decision, profiled), while page views come from few
    distinct User-Agents; a verdict is the pattern's own answer, only not searched again.
    Bounded: cleared when full, and very long values (never a real browser's) are not kept."""

    __slots__ = ("search", "known")
    LIMIT = 4096
    LONGEST = 512

    def __init__(self, pattern: str) -> None:
        self.search = re.compile(pattern, re.IGNORECASE).search
        self.known: dict[str, bool] = {}

    def __call__(self, user_agent: str) -> bool:
        verdict = self.known.get(user_agent)
        if verdict is None:
            verdict = self.search(user_agent) is not None
            if len(user_agent) <= self.LONGEST:
                if len(self.known) >= self.LIMIT:
                    self.known.clear()
                self.known[user_agent] = verdict
        return verdict


class CookieHeader:
    """Looks up one cookie in a Cookie header without parsing all of them."""

    __slots__ = ("header",)

    def __init__(self, header: str) -> None:
        self.header = header

    def get(self, name: str) -> str | None:
        header = self.header
        start = 0
        prefix = name + "="
        while True:
            at = header.find(prefix, start)
            if at < 0:
                return None
            # a match must start the header or follow "; " (not be the tail of another name)
            if at == 0 or header[at - 1] in " ;":
                end = header.find(";", at)
                return header[at + len(prefix): end if end >= 0 else None].strip()
            start = at + 1
