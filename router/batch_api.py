"""The batch API: customer lists assigned by the one assignment core, behind the
channels API's keys (``router/channels.py``).

- ``POST /api/v1/batches/assign?experiment=<id>&channel=email``: the list in the body as
  JSON lines (``router/batch_input.py``); the answer is JSON lines too, one per input
  line in order, streamed as each chunk is assigned.
- ``POST /api/v1/batches?experiment=<id>&channel=email``: a larger list as a job; 202 with
  its id. ``GET /api/v1/batches/<id>``: its progress. ``GET /api/v1/batches/<id>/results``:
  the results of the chunks done so far, JSON lines in the list's order.

``slot=<slot>`` may stand for ``experiment``, as on ``/decide``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from croupier.router import rules
from croupier.router.batch import BatchAssigner
from croupier.router.batch_input import chunks, parse_lines
from croupier.router.batch_jobs import Jobs, progress, split_job_id
from croupier.router.channels import ChannelsAPI, checked
from croupier.router.experiments import Experiment
from croupier.router.request_body import Rejected, read_limited
from croupier.router.store import StoreUnavailable

MAX_ASSIGN_BYTES = 16 * 1024 * 1024  # ~200,000 customers a request; larger lists as a job
MAX_JOB_BYTES = 256 * 1024 * 1024  # ~3 million customers
QUERY_FIELDS = {"experiment", "slot", "channel"}
JSON_LINES = "application/x-ndjson"


class BatchAPI:
    def __init__(self, channels: ChannelsAPI, batch: BatchAssigner, jobs: Jobs) -> None:
        self.channels, self.batch, self.jobs = channels, batch, jobs

    def routes(self) -> list[Route]:
        guarded = self.channels.guarded
        return [Route("/batches/assign", guarded(self.assign), methods=["POST"]),
                Route("/batches", guarded(self.create_job), methods=["POST"]),
                Route("/batches/{id}", guarded(self.job), methods=["GET"]),
                Route("/batches/{id}/results", guarded(self.results), methods=["GET"])]

    def target(self, request: Request, tenant: str) -> tuple[Experiment, str]:
        """The experiment (or slot) and channel the query names."""
        params = dict(request.query_params)
        unknown = sorted(set(params) - QUERY_FIELDS)
        if unknown:
            raise Rejected(400, "unknown_field", f"{unknown[0]}: unknown query parameter "
                                                 f"(experiment or slot, and channel)")
        experiment = self.channels.experiment(params, tenant)
        return experiment, checked(params, "channel", rules.CHANNEL) or ""

    async def assign(self, request: Request, tenant: str) -> Response:
        experiment, channel = self.target(request, tenant)
        body = await read_limited(request, MAX_ASSIGN_BYTES)

        async def lines() -> AsyncIterator[str]:
            for first, part in chunks(body):
                try:
                    result = await self.batch.assign(experiment, channel, parse_lines(part, first))
                except StoreUnavailable:  # the status is sent: say where it stopped, in the stream
                    yield json.dumps({"line": first, "error": "Redis is unavailable: this line and the ones "
                                      "after it were not assigned; send them again", "reason": "unavailable"}) + "\n"
                    return
                yield result.text

        return StreamingResponse(lines(), media_type=JSON_LINES)

    async def create_job(self, request: Request, tenant: str) -> Response:
        experiment, channel = self.target(request, tenant)
        body = await read_limited(request, MAX_JOB_BYTES)
        job, total = await self.jobs.create(experiment.id, tenant, channel, body)
        return JSONResponse({"id": job, "experiment": experiment.id, "total": total, "status": "running",
                             "progress": f"/api/v1/batches/{job}", "results": f"/api/v1/batches/{job}/results"},
                            status_code=202)

    async def _found(self, request: Request, tenant: str) -> tuple[str, str, dict, int]:
        value = request.path_params["id"]
        parts = split_job_id(value)
        found = await self.jobs.store.job(*parts) if parts else None
        if found is None or found[0].get("tenant", "") != tenant:
            raise Rejected(404, "unknown_job", f"id: no batch job {value!r} (jobs are kept 7 days)")
        return parts[0], parts[1], *found

    async def job(self, request: Request, tenant: str) -> Response:
        experiment_id, job, figures, done = await self._found(request, tenant)
        if figures.get("status") == "running":
            self.jobs.resume(experiment_id, job)  # a no-op unless its router stopped
        return JSONResponse({"id": request.path_params["id"], **progress(figures, done)})

    async def results(self, request: Request, tenant: str) -> Response:
        experiment_id, job, figures, done = await self._found(request, tenant)
        store = self.jobs.store

        async def lines() -> AsyncIterator[str]:
            for start in range(0, done, 10):
                for text in await store.job_results(experiment_id, job, start, min(10, done - start)):
                    yield text

        return StreamingResponse(lines(), media_type=JSON_LINES,
                                 headers={"X-Croupier-Job-Status": figures.get("status", "running"),
                                          "X-Croupier-Chunks-Done": str(done)})
