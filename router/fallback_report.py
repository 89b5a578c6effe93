"""NGINX's report of a page it served control instead of the variant the router chose.

NGINX serves the control variant when a variant fails (refused, timed out, a 5xx), and
mirrors that request to ``/_croupier/fallback`` with the experiment and the variant it
could not serve. The router counts it as the variant's ``fallback`` counter: the error
rate a guardrail (``error_rate``) compares with control's. Only NGINX can report: the
request must carry the pass key NGINX and the routers share (CROUPIER_PASS_KEY), and a
client's copy of the location is refused by NGINX itself. A report without a variant (the
router did not answer, so nothing was assigned) counts nothing.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from croupier.router.rules import ARM, ID
from croupier.router.settings import Settings
from croupier.router.store import Store, StoreUnavailable

KEY_HEADER = "x-croupier-report-key"


class FallbackReports:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.key = settings.pass_key.encode()
        self.store = store

    async def report(self, request: Request) -> Response:
        given = request.headers.get(KEY_HEADER, "").encode()
        if not self.key or not hmac.compare_digest(given, self.key):
            return Response(status_code=403)
        experiment = request.headers.get("x-croupier-experiment", "")
        variant = request.headers.get("x-croupier-variant", "")
        if not (ID.ok(experiment) and ARM.ok(variant)):
            return Response(status_code=204)  # nothing was assigned: not the variant's failure
        try:
            await self.store.record_fallback(experiment, variant)
        except StoreUnavailable:
            return Response(status_code=503)
        return Response(status_code=204)
