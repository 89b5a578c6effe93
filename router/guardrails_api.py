"""The admin API's guardrail routes (behind the admin token, like the rest of it):

- ``GET /api/v1/experiments/{id}/guardrails``: each guardrail, and for every variant but
  control its verdict now (the confidence sequence's estimate and interval of
  ``variant - control``, the samples, in words) and the breach it holds, if any, with the
  evidence recorded when it was found;
- ``DELETE /api/v1/experiments/{id}/guardrails/{variant}``: a marketer clears a breach.
  The variant gets its share from the bandit again at every router's next refresh, and the
  monitor does not breach it again (the marketer's call stands); the clearing is logged in
  the experiment's event stream.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from croupier.router.experiments import Experiment
from croupier.router.guardrail_check import metric_stats
from croupier.router.guardrails import evaluate
from croupier.router.store import Store, parse_breaches, parse_counters

Handler = Callable[[Request], Awaitable[Response]]


class GuardrailsAPI:
    def __init__(self, store: Store, guarded: Callable[[Handler], Handler],
                 experiment: Callable[[str], Awaitable[Experiment]]) -> None:
        self.store = store
        self.guarded = guarded
        self._experiment = experiment  # the admin API's: the registry's record, or 404

    def routes(self) -> list[Route]:
        g = self.guarded
        return [Route("/experiments/{id}/guardrails", g(self.show), methods=["GET"]),
                Route("/experiments/{id}/guardrails/{variant}", g(self.clear), methods=["DELETE"])]

    async def show(self, request: Request) -> Response:
        e = await self._experiment(request.path_params["id"])
        counters = (await self.store.counters([e.id]))[e.id]
        engagement = parse_counters((await self.store.engagement_hashes([e.id])).get(e.id) or {})
        breaches = parse_breaches((await self.store.breach_hashes([e.id])).get(e.id) or {})
        variants = []
        for v in e.variants:
            if v.id == e.control:
                continue
            verdicts = []
            for i, g in enumerate(e.guardrails):
                def stats(arm: str) -> tuple[float, ...]:
                    return metric_stats(g, e.goal, counters.get(arm, {}), engagement.get(arm, {}))
                verdict = evaluate(g, stats(e.control), stats(v.id))
                verdicts.append({"guardrail": i, "breached": bool(verdict.breached),
                                 "estimate": _num(verdict.estimate), "low": _num(verdict.low),
                                 "high": _num(verdict.high), "n_control": float(verdict.n_control),
                                 "n_variant": float(verdict.n_variant), "reason": str(verdict.reason)})
            variants.append({"id": v.id, "breach": breaches.get(v.id), "verdicts": verdicts})
        return JSONResponse({"experiment": e.id, "control": e.control,
                             "guardrails": [g.to_dict() for g in e.guardrails], "variants": variants})

    async def clear(self, request: Request) -> Response:
        e = await self._experiment(request.path_params["id"])
        variant = request.path_params["variant"]
        held = parse_breaches((await self.store.breach_hashes([e.id])).get(e.id) or {}).get(variant)
        if held is None or held.get("state") != "breached":
            return JSONResponse({"error": f"variant {variant!r} of {e.id!r} holds no breach"}, status_code=404)
        await self.store.record_breach(e.id, variant, {k: v for k, v in held.items() if k != "state"}, cleared=True)
        return Response(status_code=204)


def _num(value) -> float | None:
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None
