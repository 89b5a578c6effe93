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
import re
import time
from dataclasses import dataclass

from croupier.router.assign import Assigner, by_device, fixed_variant
from croupier.router.context import Context, ContextReader, device_class
from croupier.router.experiments import Experiment
from croupier.router.passes import token_of, with_pass
from croupier.router.settings import Settings
from croupier.router.token import TokenError, new_visitor_id, verify

log = logging.getLogger("croupier.decide")

DECIDE_PATH = "/_croupier/decide"  # NGINX's auth_request target, on the app's port and the decide listener


@dataclass(frozen=True, slots=True)
class Decision:
    upstream: str
    experiment: str = ""
    variant: str = ""
    reason: str = "no_experiment"
    cookie: str = ""


class Decider:
    """The decide subrequest's adapter: reads NGINX's headers and the visitor's cookie, asks
    the assignment core (router/assign.py), and answers with headers and a cookie."""

    def __init__(self, settings: Settings, core: Assigner) -> None:
        self.settings = settings
        self.core = core
        self.metrics = core.metrics
        self._counters: dict[tuple[str, str, str], object] = {}
        self.is_bot = BotVerdicts(settings.bot_pattern)
        self.context_reader = ContextReader(settings.context_utc_offset, self.is_bot, self._holds_valid_cookie)
        self.geo_header = settings.geo_header.lower().encode()
        self.pass_key = settings.pass_key if settings.pass_seconds else ""
        self.cookie_attrs = f"; Path=/; Max-Age={settings.cookie_max_age}; HttpOnly; SameSite=Lax" + (
            "; Secure" if settings.cookie_secure else "")

    def decide(self, host: str, uri: str, user_agent: str, cookies: dict[str, str], now: float,
               headers: dict[bytes, bytes] | None = None) -> Decision:
        path = uri.split("?", 1)[0]
        experiment = self.core.snapshots.current.match(host.split(":", 1)[0].lower(), path)
        if experiment is None:
            return Decision(self.settings.default_upstream)
        fixed = fixed_variant(experiment, self.is_bot(user_agent))
        if fixed is not None:
            variant, reason = fixed
            return Decision(variant.upstream, experiment.id, variant.id, reason)

        core = self.core
        visitor = None
        reason = "new"
        cookie = cookies.get(self.settings.cookie_prefix + experiment.id)
        if cookie:
            token = token_of(cookie)
            try:
                held = core.verify(token, experiment, now)
            except TokenError:
                pass  # counted by the core; the visitor is assigned anew
            else:
                variant = experiment.variant(held.variant)
                if variant is not None and variant.active:  # the same assignment, with a fresh pass
                    return Decision(variant.upstream, experiment.id, variant.id, "returning",
                                    self.cookie(experiment, token, now) if self.pass_key else "")
                visitor, reason = held.visitor, "reassigned"

        if core.uses_context(experiment):  # plain experiments never pay for reading a context
            context = self.read_context(host, uri, user_agent, headers or {}, now, returning=visitor is not None)
            placement = core.place(experiment, context)
        else:  # only the device class, for the traffic-mix counts (cached per User-Agent)
            placement = by_device(device_class(user_agent, self.is_bot))
        drawn = core.draw(experiment, placement)
        if drawn is None:  # no active variant, or not refreshed yet: control, uncounted
            control = experiment.control_variant
            return Decision(control.upstream, experiment.id, control.id, "no_arms")
        if drawn.in_holdout:
            reason = "holdout"
        visitor = visitor or new_visitor_id()
        core.record(experiment, drawn, visitor, reason, now, placement)
        token = core.token(experiment, visitor, drawn.variant.id, int(now), placement)
        return Decision(drawn.variant.upstream, experiment.id, drawn.variant.id, reason,
                        self.cookie(experiment, token, now))

    def cookie(self, experiment: Experiment, token: str, now: float) -> str:
        """The Set-Cookie value for an assignment: the token and, when passes are on, a pass
        (holdout visitors get one too: their variant is as sticky as anyone's)."""
        value = with_pass(token, int(now) + self.settings.pass_seconds, self.pass_key) if self.pass_key else token
        return f"{self.settings.cookie_prefix}{experiment.id}={value}{self.cookie_attrs}"

    def read_context(self, host: str, uri: str, user_agent: str, headers: dict[bytes, bytes], now: float,
                     returning: bool | None = None) -> Context:
        """The visitor's context from the decide subrequest's headers; never raises."""
        get = headers.get
        return self.context_reader.read(
            host=host, uri=uri, user_agent=user_agent, referer=get(b"referer", b"").decode("latin-1"),
            accept_language=get(b"accept-language", b"").decode("latin-1"),
            geo_value=get(self.geo_header, b"").decode("latin-1"),
            cookie_header=get(b"cookie", b"").decode("latin-1"), now=now, returning=returning)

    def _holds_valid_cookie(self, cookie_header: str, now: float, limit: int = 4) -> bool:
        """Whether any Croupier assignment cookie in the header verifies (at most ``limit`` checked).
        Not an assignment check (any experiment's cookie will do), so a refusal is not counted."""
        prefix = self.settings.cookie_prefix
        experiments = self.core.snapshots.current.experiments
        tenant_keys = self.core.tenant_keys
        for part in cookie_header.split(";")[:64]:
            name, _, value = part.strip().partition("=")
            if name.startswith(prefix):
                known = experiments.get(name[len(prefix):])
                try:
                    verify(token_of(value), tenant_keys.keys(known.tenant if known is not None else ""),
                           now=int(now), max_age=self.settings.cookie_max_age)
                    return True
                except TokenError:
                    limit -= 1
                    if limit <= 0:
                        return False
        return False

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
