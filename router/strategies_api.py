"""The admin API's strategy comparison (behind the admin token, like the rest of it):

``GET /api/v1/experiments/{id}/strategies[?events=N]``: what Thompson sampling, UCB1,
epsilon-greedy, every fixed variant, the even split and the stored model's choice per
visitor would have converted on the experiment's latest ``N`` logged events (default
and most ``MAX_EVENTS``), each with its interval (``croupier.router.strategies``).

The stream is read a page at a time and the estimates are computed on a worker
thread, one experiment at a time, so the loop that answers decisions is never held
for long; an answer is kept for ``CACHE_SECONDS``, and concurrent requests for one
experiment share one computation. The archive is not read here (the router's image
does without pyarrow): ``croupier-ope --compare`` reads the whole history.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from croupier.router.admin import error
from croupier.router.experiments import Experiment
from croupier.router.ope import OPEError, join_log, observed
from croupier.router.store import Store
from croupier.router.strategies import compare_strategies

Handler = Callable[[Request], Awaitable[Response]]
MAX_EVENTS = 50_000
CACHE_SECONDS = 60.0


def comparison(entries: list[tuple[str, dict]], experiment: Experiment, model: Any,
               seed: int = 0) -> dict[str, Any]:
    """The comparison document of an experiment's log (pure: runs on a worker thread)."""
    log, report = join_log(entries, experiment.goal, reward=experiment.reward)
    doc: dict[str, Any] = {"experiment": experiment.id, "goal": experiment.goal, "events": len(entries),
                           "assignments": log.n, "conversions": report.attributed, "model": model is not None}
    if log.n == 0:
        return {**doc, "observed": None, "strategies": [], "note": "no assignments in the latest events"}
    rng = np.random.default_rng(seed)
    found = compare_strategies(log, model=model, rng=rng, min_share=experiment.min_share)
    return {**doc, "observed": observed(log).to_dict(), "strategies": [e.to_dict() for e in found]}


class StrategiesAPI:
    def __init__(self, store: Store, guarded: Callable[[Handler], Handler],
                 experiment: Callable[[str], Awaitable[Experiment]],
                 stored_model: Callable[[str], Awaitable[Any]], *, cache_seconds: float = CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.guarded = guarded
        self._experiment = experiment  # the admin API's: the registry's record, or 404
        self._stored_model = stored_model
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[tuple[str, int], tuple[float, dict]] = {}
        self._running: dict[tuple[str, int], asyncio.Task] = {}
        self._one_at_a_time = asyncio.Lock()

    def routes(self) -> list[Route]:
        return [Route("/experiments/{id}/strategies", self.guarded(self.show), methods=["GET"])]

    async def show(self, request: Request) -> Response:
        e = await self._experiment(request.path_params["id"])
        raw = request.query_params.get("events", str(MAX_EVENTS))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_EVENTS:
            return error(400, f"events: must be a whole number in [1, {MAX_EVENTS}]")
        key = (e.id, int(raw))
        held = self._cache.get(key)
        if held is not None and self.clock() - held[0] < self.cache_seconds:
            return JSONResponse({**held[1], "cached": True, "age": round(self.clock() - held[0], 3)})
        task = self._running.get(key)
        if task is None:
            task = self._running[key] = asyncio.ensure_future(self._compute(e, key[1]))
            task.add_done_callback(lambda _: self._running.pop(key, None))
        try:
            doc = await asyncio.shield(task)
        except OPEError as exc:
            return error(422, str(exc))
        self._cache[key] = (self.clock(), doc)
        if len(self._cache) > 256:  # bounded: the oldest answers go first
            for old in sorted(self._cache, key=lambda k: self._cache[k][0])[:128]:
                del self._cache[old]
        return JSONResponse({**doc, "cached": False, "age": 0.0})

    async def _compute(self, e: Experiment, events: int) -> dict:
        async with self._one_at_a_time:
            entries = await self.store.recent_events(e.id, events)
            try:
                stored = await self._stored_model(e.id)
            except ValueError:  # an unreadable stored model: compare without it
                stored = None
            model = stored.model if stored is not None else None
            return await asyncio.to_thread(comparison, entries, e, model)
