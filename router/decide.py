"""The decision: which variant this visitor sees. NGINX's auth_request target.

Contract (DESIGN §1): always 200. ``X-Croupier-Upstream`` says where NGINX
proxies, ``X-Croupier-Variant`` and ``X-Croupier-Experiment`` what was chosen,
and ``Set-Cookie`` carries a new signed assignment. Reads only the in-memory
snapshot: a returning visitor costs one HMAC, a new one a uniform draw, and the
assignment is queued for the recorder, never written inline.
"""

from __future__ import annotations

import random
import re
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from router.experiments import Experiment, Variant
from router.metrics import Metrics
from router.recorder import AssignmentRecorder
from router.settings import Settings
from router.snapshot import SnapshotKeeper
from router.store import AssignmentRecord
from router.token import Assignment, TokenError, new_visitor_id, sign, verify


@dataclass(frozen=True, slots=True)
class Decision:
    upstream: str
    experiment: str = ""
    variant: str = ""
    reason: str = "no_experiment"
    cookie: str = ""


class Decider:
    def __init__(self, settings: Settings, snapshots: SnapshotKeeper, recorder: AssignmentRecorder,
                 metrics: Metrics, rand: random.Random | None = None) -> None:
        self.settings = settings
        self.snapshots = snapshots
        self.recorder = recorder
        self.metrics = metrics
        self.rand = rand or random.Random()
        self.keys = settings.signing_keys()
        self.kid, self.key = settings.secret_id, self.keys[settings.secret_id]
        self.is_bot = re.compile(settings.bot_pattern, re.IGNORECASE).search
        # only a returning visitor's answer may be cached by NGINX (keyed by their token)
        self.returning_cache = {"X-Accel-Expires": str(settings.decision_cache_seconds)} \
            if settings.decision_cache_seconds else {}
        self.cookie_attrs = f"; Path=/; Max-Age={settings.cookie_max_age}; HttpOnly; SameSite=Lax" + (
            "; Secure" if settings.cookie_secure else "")

    def decide(self, host: str, uri: str, user_agent: str, cookies: dict[str, str], now: float) -> Decision:
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
        token = cookies.get(self.settings.cookie_prefix + experiment.id)
        if token:
            try:
                held = verify(token, self.keys, now=int(now), max_age=self.settings.cookie_max_age,
                              experiment=experiment.id)
            except TokenError as exc:
                self.metrics.tokens_rejected.labels(exc.reason).inc()
            else:
                variant = experiment.variant(held.variant)
                if variant is not None and variant.active:
                    return Decision(variant.upstream, experiment.id, variant.id, "returning")
                visitor, reason = held.visitor, "reassigned"

        arms = self.snapshots.current.arms.get(experiment.id)
        if arms is None:  # no active variant, or not refreshed yet: control, uncounted
            return self._fixed(experiment, experiment.control_variant, "no_arms")
        variant = arms.pick(self.rand.random())
        visitor = visitor or new_visitor_id()
        issued = int(now)
        self.recorder.add(AssignmentRecord(experiment.id, variant.id, visitor, reason, arms.labelled(), now))
        cookie = (f"{self.settings.cookie_prefix}{experiment.id}="
                  f"{sign(Assignment(visitor, experiment.id, variant.id, issued), self.kid, self.key)}"
                  f"{self.cookie_attrs}")
        return Decision(variant.upstream, experiment.id, variant.id, reason, cookie)

    @staticmethod
    def _fixed(experiment: Experiment, variant: Variant | None, reason: str) -> Decision:
        variant = variant or experiment.control_variant
        return Decision(variant.upstream, experiment.id, variant.id, reason)

    async def endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        headers = request.headers
        decision = self.decide(
            host=headers.get("x-original-host") or headers.get("host", ""),
            uri=headers.get("x-original-uri", "/"),
            user_agent=headers.get("user-agent", ""),
            cookies=request.cookies,
            now=time.time(),
        )
        # NGINX lets an earlier Cache-Control: no-store win over X-Accel-Expires, so a
        # cacheable answer carries only the latter
        cacheable = decision.reason == "returning" and self.returning_cache
        out = dict(self.returning_cache) if cacheable else {"Cache-Control": "no-store"}
        out["X-Croupier-Upstream"] = decision.upstream
        if decision.experiment:
            out["X-Croupier-Experiment"] = decision.experiment
            out["X-Croupier-Variant"] = decision.variant
        if decision.cookie:
            out["Set-Cookie"] = decision.cookie
        self.metrics.decisions.labels(decision.experiment or "-", decision.variant or "-", decision.reason).inc()
        self.metrics.decision_seconds.observe(time.perf_counter() - started)
        return Response(status_code=200, headers=out)
