"""The admin API's read of one experiment's alerts (behind the admin token, like the rest of it):

- ``GET /api/v1/experiments/{id}/alerts``: the experiment's latest alerts, newest first, at
  most ``LIMIT``, as they were raised (sample ratio mismatch, guardrail, drift, ...): each
  one's ``id``, ``kind``, ``variant``, ``time``, ``summary`` and ``details``.

The dashboard lists them and marks each drift's change point (``details.changed_at``) on
its conversion-rate chart: a drift raises an alert but writes nothing to the experiment's
event stream, so the alerts are where the page learns of it.

Every experiment's alerts share one capped stream, the outbox (``router/alerts.py``); each
experiment also has its own index of them, written with the outbox entry
(``lua/raise_alert.lua``), which the route reads: however many alerts other experiments
raise, this one's latest are listed, as long as the outbox (``CROUPIER_ALERT_STREAM_MAXLEN``
entries) still holds them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from croupier.router.experiments import Experiment
from croupier.router.store import Store

Handler = Callable[[Request], Awaitable[Response]]
LIMIT = 50  # alerts listed per experiment
FIELDS = ("id", "kind", "variant", "time", "summary", "details")


class AlertsAPI:
    def __init__(self, store: Store, guarded: Callable[[Handler], Handler],
                 experiment: Callable[[str], Awaitable[Experiment]]) -> None:
        self.store = store
        self.guarded = guarded
        self.experiment = experiment  # the registry's experiment, or ExperimentNotFound (404)

    def routes(self) -> list[Route]:
        return [Route("/experiments/{id}/alerts", self.guarded(self.list_alerts), methods=["GET"])]

    async def list_alerts(self, request: Request) -> Response:
        e = await self.experiment(request.path_params["id"])
        found = [{name: doc.get(name) for name in FIELDS}
                 for doc in await self.store.experiment_alerts(e.id, LIMIT) if isinstance(doc, dict)]
        return JSONResponse({"experiment": e.id, "alerts": found})
