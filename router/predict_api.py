"""``POST /api/v1/predict``: each variant's predicted conversion probability for a customer's context.

Behind the channels API's keys, each acting for one tenant; the experiment (or slot) and
the context are read exactly as ``POST /api/v1/decide`` reads them (``croupier.router.channels``).
The answer comes from the experiment's current conversion model (``croupier.router.model``):
per active variant the rate, its standard deviation, and a 95% interval that is normal
on the logit scale (the Laplace approximation of the weights' posterior, so it stays
inside [0, 1]): the model's uncertainty about the rate, not whether this customer converts.

The model is the refresh's copy when the experiment blends one in (``model_weight`` > 0);
otherwise it is read from Redis once per version and kept (a version check per request).
A prediction is a few dot products on the loop (cached per context and variants), and
``inference_ms`` is measured around it in the handler.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from croupier.router.channels import ChannelsAPI, json_object, parse_context
from croupier.router.hybrid import StoredModel, decode
from croupier.router.model import ModelError
from croupier.router.request_body import Rejected

PREDICT_FIELDS = {"experiment", "slot", "context"}
Z95 = 1.959964


def interval(rate: float, sd: float, z: float = Z95) -> tuple[float, float]:
    """``sigmoid(logit(p) -+ z sd_eta)`` with ``sd_eta = sd / (p (1 - p))``: the delta method's
    standard deviation back on the logit scale, where the model's uncertainty is normal."""
    p = min(max(rate, 1e-12), 1 - 1e-12)
    half = z * sd / (p * (1.0 - p))
    eta = math.log(p / (1.0 - p))
    return 1.0 / (1.0 + math.exp(-(eta - half))), 1.0 / (1.0 + math.exp(-(eta + half)))


class PredictAPI:
    def __init__(self, channels: ChannelsAPI) -> None:
        self.channels = channels
        self.store = channels.store
        self._models: dict[str, StoredModel] = {}  # experiment → the model read for it, by version

    def routes(self) -> list[Route]:
        return [Route("/predict", self.channels.guarded(self.predict), methods=["POST"])]

    async def model(self, experiment_id: str) -> StoredModel:
        held = self.channels.core.snapshots.models.get(experiment_id)
        if held is not None:
            return held
        version = (await self.store.model_versions([experiment_id]))[experiment_id]
        if not version:
            self._models.pop(experiment_id, None)
            raise Rejected(404, "no_model", f"experiment: {experiment_id!r} has no trained model; train one: "
                                            f"croupier-model train --experiment {experiment_id}")
        cached = self._models.get(experiment_id)
        if cached is not None and cached.version == version:
            return cached
        found = await self.store.load_model(experiment_id)
        if found is None:  # removed between the two reads
            raise Rejected(404, "no_model", f"experiment: {experiment_id!r} has no trained model")
        try:
            stored = await asyncio.to_thread(decode, found[1], found[0])  # a large covariance: off the loop
        except ModelError as exc:
            raise Rejected(409, "model_unreadable", f"experiment: the stored model of {experiment_id!r} cannot "
                                                    f"be read ({exc}); train it again") from None
        self._models[experiment_id] = stored
        return stored

    async def predict(self, request: Request, tenant: str) -> Response:
        body = await json_object(request, PREDICT_FIELDS)
        experiment = self.channels.experiment(body, tenant)
        context = parse_context(body.get("context"))
        stored = await self.model(experiment.id)
        ids = [v.id for v in experiment.active_variants] or [experiment.control]
        values = {k: v for k, v in dataclasses.asdict(context).items() if v} if context is not None else {}
        started = time.perf_counter()
        rates, sds = stored.predict(values or None, ids)
        variants = {}
        for vid, rate, sd in zip(ids, rates, sds):
            low, high = interval(float(rate), float(sd))
            variants[vid] = {"p": float(rate), "sd": float(sd), "low": low, "high": high,
                             "seen": vid in stored.model.arms}
        elapsed = (time.perf_counter() - started) * 1000.0
        return JSONResponse({"experiment": experiment.id, "model_version": stored.version,
                             "trained_at": stored.trained_at, "goal": stored.goal,
                             "context": values,
                             "variants": variants, "interval": "95%, normal on the logit scale",
                             "inference_ms": round(elapsed, 4)})
