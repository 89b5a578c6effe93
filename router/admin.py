"""The admin API under /api/v1: experiments, variants and their statistics.

Behind a bearer token (``CROUPIER_ADMIN_TOKEN``). Writes go through the store
under optimistic locking; every router picks the change up on its next
snapshot refresh. Errors are JSON ``{"error": ...}`` naming the field.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from functools import wraps

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from croupier.router.session import CsrfRefused, session_authorizes
from croupier.router.history import bucket_arrays
from croupier.router.hybrid import StoredModel, decode
from croupier.router.model import ModelError
from croupier.router.model_validation import accuracy_over_time
from croupier.router import engagement
from croupier.router.experiments import (Experiment, InvalidExperiment, merge, parse_new_experiment, parse_variant, touched,
                                with_variant, without_variant)
from croupier.router.capacity import capacity_figures
from croupier.router.factorial_view import factorial_stats
from croupier.router.listing import Totals, parse_query, select, totals
from croupier.router.openapi import OPENAPI
from croupier.router.segments import busiest_segments, shrunk_stats
from croupier.router.settings import Settings
from croupier.router.snapshot import SnapshotKeeper, arm_stats
from croupier.router.statistics import posterior_summary, srm_check, stratified_lift
from croupier.router.store import ExperimentExists, ExperimentNotFound, Store, StoreUnavailable

Handler = Callable[[Request], Awaitable[Response]]


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def json_body(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise InvalidExperiment("body: is not valid JSON") from None


class AdminAPI:
    def __init__(self, settings: Settings, store: Store, snapshots: SnapshotKeeper) -> None:
        self.settings = settings
        self.store = store
        self.snapshots = snapshots
        self.token = settings.admin_token.encode()
        # the registry as last read and the version it was read at: reading and parsing all of
        # it takes seconds at 10,000 experiments, so a page reads it only after a change
        self._registry: tuple[int, list[Experiment]] = (-1, [])
        self._registry_lock = asyncio.Lock()

    def authorized(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if bool(self.token) and scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), self.token):
            return True
        return session_authorizes(request, self.settings)  # the dashboard's pages; raises CsrfRefused

    def guarded(self, handler: Handler) -> Handler:
        """Token check and the mapping of domain errors to HTTP answers, for every admin route."""
        @wraps(handler)
        async def wrapper(request: Request) -> Response:
            try:
                allowed = self.authorized(request)
            except CsrfRefused as exc:
                return error(403, str(exc))
            if not allowed:
                why = "missing or wrong bearer token" if self.token else \
                    "the admin API is disabled: set CROUPIER_ADMIN_TOKEN"
                return JSONResponse({"error": why}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
            try:
                return await handler(request)
            except InvalidExperiment as exc:
                return error(422, str(exc))
            except ExperimentNotFound as exc:
                return error(404, f"experiment {exc.args[0]!r} not found")
            except ExperimentExists as exc:
                return error(409, f"experiment {exc.args[0]!r} already exists")
            except StoreUnavailable:
                return error(503, "Redis is unavailable, try again")
        return wrapper

    def routes(self) -> list[Route]:
        g = self.guarded
        return [
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/experiments", g(self.list_experiments), methods=["GET"]),
            Route("/experiments", g(self.create_experiment), methods=["POST"]),
            Route("/experiments/{id}", g(self.get_experiment), methods=["GET"]),
            Route("/experiments/{id}", g(self.update_experiment), methods=["PATCH"]),
            Route("/experiments/{id}", g(self.delete_experiment), methods=["DELETE"]),
            Route("/experiments/{id}/promote", g(self.promote), methods=["POST"]),
            Route("/experiments/{id}/stats", g(self.stats), methods=["GET"]),
            Route("/experiments/{id}/timeseries", g(self.timeseries), methods=["GET"]),
            Route("/experiments/{id}/model", g(self.model), methods=["GET"]),
            Route("/experiments/{id}/model", g(self.delete_model), methods=["DELETE"]),
            Route("/experiments/{id}/model/prior", g(self.model_prior), methods=["GET"]),
            Route("/experiments/{id}/variants", g(self.add_variant), methods=["POST"]),
            Route("/experiments/{id}/variants/{vid}", g(self.update_variant), methods=["PATCH"]),
            Route("/experiments/{id}/variants/{vid}", g(self.remove_variant), methods=["DELETE"]),
        ]

    async def experiment(self, exp_id: str) -> Experiment:
        """The registry's experiment, or ``ExperimentNotFound`` (404)."""
        experiment = await self.store.get_experiment(exp_id)
        if experiment is None:
            raise ExperimentNotFound(exp_id)
        return experiment

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)

    async def registry(self) -> list[Experiment]:
        """Every experiment, sorted by id: the cached copy while the registry version is unchanged."""
        version = await self.store.registry_version()  # before the read: a change after it bumps it again
        async with self._registry_lock:  # concurrent pages after a change share one read
            if self._registry[0] != version:
                # the refresh task parses only what changed: once its snapshot holds this
                # version, its records are the registry, with no read at all
                current = self.snapshots.current
                found = list(current.experiments.values()) if current.registry_version == version \
                    else await self.store.list_experiments()
                self._registry = (version, sorted(found, key=lambda e: e.id))
            return self._registry[1]

    async def list_experiments(self, request: Request) -> Response:
        """A page of experiments, filtered, searched and sorted, with each one's live trials,
        conversions and rate from this router's snapshot (no Redis read per experiment)."""
        query = parse_query({name: request.query_params.getlist(name) for name in request.query_params})
        counters = self.snapshots.current.counters
        held: dict[str, Totals] = {}

        def live(e: Experiment) -> Totals:
            if e.id not in held:
                held[e.id] = totals(e, counters.get(e.id, {}))
            return held[e.id]

        page = select(await self.registry(), query, live)
        rows = [{**e.to_dict(), "trials": live(e).trials, "conversions": live(e).conversions, "rate": live(e).rate}
                for e in page.experiments]
        return JSONResponse({"experiments": rows, "next_cursor": page.next_cursor, "total": page.total})

    async def change(self, exp_id: str, change: Callable[[Experiment], Experiment]) -> Experiment:
        """Every write of an existing experiment, stamped with the time of the change."""
        return await self.store.update_experiment(exp_id, lambda e: touched(change(e), time.time()))

    async def create_experiment(self, request: Request) -> Response:
        experiment = parse_new_experiment(await json_body(request), time.time())
        await self.store.create_experiment(experiment)
        return JSONResponse(experiment.to_dict(), status_code=201)

    async def get_experiment(self, request: Request) -> Response:
        exp_id = request.path_params["id"]
        experiment = await self.experiment(exp_id)
        return JSONResponse(experiment.to_dict())

    async def update_experiment(self, request: Request) -> Response:
        changes = await json_body(request)
        updated = await self.change(request.path_params["id"], lambda e: merge(e, changes))
        return JSONResponse(updated.to_dict())

    async def delete_experiment(self, request: Request) -> Response:
        await self.store.delete_experiment(request.path_params["id"])
        return Response(status_code=204)

    async def promote(self, request: Request) -> Response:
        """All traffic to one variant from now on; the experiment ends."""
        body = await json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("variant"), str):
            raise InvalidExperiment("variant: the id of the variant to promote is required")
        winner = body["variant"]
        updated = await self.change(request.path_params["id"],
                                    lambda e: merge(e, {"status": "ended", "winner": winner}))
        return JSONResponse(updated.to_dict())

    async def add_variant(self, request: Request) -> Response:
        variant = parse_variant(await json_body(request))

        def add(experiment):
            if experiment.variant(variant.id) is not None:
                raise InvalidExperiment(f"variant.id: {variant.id!r} already exists in this experiment")
            return with_variant(experiment, variant)

        updated = await self.change(request.path_params["id"], add)
        return JSONResponse(updated.to_dict(), status_code=201)

    async def update_variant(self, request: Request) -> Response:
        changes = await json_body(request)
        vid = request.path_params["vid"]
        if not isinstance(changes, dict):
            raise InvalidExperiment("body: must be a JSON object")
        if "id" in changes and changes["id"] != vid:
            raise InvalidExperiment("variant.id: cannot be changed")

        def update(experiment):
            current = experiment.variant(vid)
            if current is None:
                raise VariantNotFound(vid)
            return with_variant(experiment, parse_variant({**asdict(current), **changes}))

        try:
            updated = await self.change(request.path_params["id"], update)
        except VariantNotFound:
            return error(404, f"variant {vid!r} not found")
        return JSONResponse(updated.to_dict())

    async def remove_variant(self, request: Request) -> Response:
        vid = request.path_params["vid"]

        def remove(experiment):
            if experiment.variant(vid) is None:
                raise VariantNotFound(vid)
            return without_variant(experiment, vid)

        try:
            await self.change(request.path_params["id"], remove)
        except VariantNotFound:
            return error(404, f"variant {vid!r} not found")
        return Response(status_code=204)

    async def stats(self, request: Request) -> Response:
        exp_id = request.path_params["id"]
        experiment = await self.experiment(exp_id)
        counters = (await self.store.counters([exp_id]))[exp_id]
        engaged_by_variant, engaged_by_segment = await self.store.engagement_counters(exp_id)
        # the posterior of the experiment's reward (conversions unless it says otherwise), as the policy sees it
        arms = arm_stats(experiment, experiment.variants, counters, engaged_by_variant)
        if experiment.factorial is None:
            summary = posterior_summary(arms, np.random.default_rng(), draws=20_000)
        else:  # up to 16,384 combinations: fewer draws, and off the loop that answers decisions
            summary = await asyncio.to_thread(posterior_summary, arms, np.random.default_rng(), draws=2_000)
        live = self.snapshots.current.arms.get(exp_id)
        shares = dict(live.labelled()) if live and experiment.status == "running" else {}
        if experiment.status == "ended":
            shares = {experiment.winner: 1.0}
        elif experiment.status == "paused":
            shares = {experiment.control: 1.0}
        # only experiments with a capped variant pay for the read
        held = (await self.store.capacity_held([exp_id]))[exp_id] if experiment.capped else {}
        rows = []
        for i, v in enumerate(experiment.variants):
            c = counters.get(v.id, {})
            trials, conversions = c.get("trials", 0.0), c.get(f"conv:{experiment.goal}", 0.0)
            rows.append({
                "id": v.id, "name": v.name, "status": v.status, "control": v.id == experiment.control,
                "trials": int(trials), "conversions": int(conversions),
                "rate": conversions / trials if trials else 0.0,
                "posterior_mean": float(summary["mean"][i]),
                "ci95": [float(summary["ci_low"][i]), float(summary["ci_high"][i])],
                "p_best": float(summary["p_best"][i]),
                "expected_loss": float(summary["expected_loss"][i]),
                "share": shares.get(v.id, 0.0),
                "views": int(c.get("view", 0)), "clicks": int(c.get("click", 0)),
                # pages NGINX served control instead of this variant (router/fallback_report.py)
                "fallbacks": int(c.get("fallback", 0)),
                "value": c.get(f"value:{experiment.goal}", 0.0),
                # the summed reward the policy optimises (croupier.router.reward), less what a
                # detected change set aside
                "reward": float(arms.successes[i]), "reward_trials": float(arms.trials[i]),
                "capacity": None if v.capacity is None else capacity_figures(v.capacity, *held.get(v.id, (0, 0))),
            })
        for row in rows:
            row["engagement"] = engagement.summary(engaged_by_variant.get(row["id"], {}))
        ids = [v.id for v in experiment.variants]
        conv = f"conv:{experiment.goal}"
        _, periods = bucket_arrays(await self.store.buckets(exp_id), ids, ["trials", "expected", conv])
        lift = stratified_lift(periods["trials"], periods[conv], control=ids.index(experiment.control)) \
            if len(periods["trials"]) else None
        extra = {}
        if experiment.factorial is not None:
            extra.update(await asyncio.to_thread(factorial_stats, experiment, counters,
                                                 self.snapshots.current.factorial.get(exp_id),
                                                 np.random.default_rng()))
        if experiment.segment_keys:
            extra["segments"] = await self.segment_rows(experiment, counters)
            # the segments the conversion rows show, so the two tables line up
            extra["engagement_segments"] = {
                segment: [{"id": v.id, **engagement.summary(engaged_by_segment.get(segment, {}).get(v.id, {}))}
                          for v in experiment.variants] for segment in extra["segments"]}
        if experiment.model_weight > 0:
            try:
                stored = await self.stored_model(exp_id)
            except ModelError as exc:  # the bandit runs alone meanwhile (croupier.router.snapshot)
                extra["model"] = {"error": f"the stored model cannot be read: {exc}"}
            else:
                if stored is not None:
                    extra["model"] = {**stored.summary([v.id for v in experiment.variants]),
                                      "weight": experiment.model_weight,
                                      # per version: validation figures and live log loss on later events
                                      "accuracy": accuracy_over_time(await self.store.model_records(exp_id))}
        return JSONResponse({**extra,
            "experiment": exp_id, "status": experiment.status, "goal": experiment.goal,
            "policy": experiment.policy, "policy_params": experiment.policy_params,
            "winner": experiment.winner or None,
            "snapshot_age_seconds": _age(self.snapshots),
            "variants": rows,
            "engagement": engagement.DEFINITION,
            "reward": experiment.reward.to_json(),
            # the split changes over time, so the check compares each period with what the policy gave then
            "sample_ratio": srm_check(periods["trials"], periods["expected"]) if len(periods["trials"]) else None,
            "lift": lift,
        })

    async def segment_rows(self, experiment, counters: dict) -> dict[str, list[dict]]:
        """Per segment (the busiest, up to CROUPIER_MAX_SEGMENTS) and variant: trials, conversions,
        rate, and the segment bandit's posterior (with its experiment-level prior): 95% interval,
        probability to be best, and the segment's current share."""
        by_segment = (await self.store.segment_counters([experiment.id]))[experiment.id]
        variants = experiment.variants
        conv = f"conv:{experiment.goal}"
        # the segments the bandit runs (router/snapshot.py chooses them the same way)
        chosen, _ = busiest_segments(by_segment, [v.id for v in experiment.active_variants],
                                     self.settings.max_segments)
        if not chosen:
            return {}
        trials = np.array([[by_segment[s].get(v.id, {}).get("trials", 0.0) for v in variants] for s in chosen])
        wins = np.array([[by_segment[s].get(v.id, {}).get(conv, 0.0) for v in variants] for s in chosen])
        overall = arm_stats(experiment, variants, counters)
        shrunk = shrunk_stats(trials, wins, overall.trials, overall.successes,
                              [v.prior_alpha for v in variants], [v.prior_beta for v in variants])
        live = self.snapshots.current.segments.get(experiment.id)
        rng = np.random.default_rng()
        out = {}
        for i, segment in enumerate(chosen):
            summary = posterior_summary(type(shrunk)(shrunk.trials[i], shrunk.successes[i], shrunk.prior_alpha[i],
                                                     shrunk.prior_beta[i]), rng, draws=5000)
            split = live.arms.get(segment) if live is not None and experiment.status == "running" else None
            shares = dict(split.labelled()) if split is not None else {}
            out[segment] = [{
                "id": v.id, "trials": int(trials[i, k]), "conversions": int(wins[i, k]),
                "rate": float(wins[i, k] / trials[i, k]) if trials[i, k] else 0.0,
                "ci95": [float(summary["ci_low"][k]), float(summary["ci_high"][k])],
                "p_best": float(summary["p_best"][k]), "share": shares.get(v.id, 0.0),
            } for k, v in enumerate(variants)]
        return out

    async def timeseries(self, request: Request) -> Response:
        """Per time bucket and variant: trials, expected trials, conversions, views and clicks."""
        exp_id = request.path_params["id"]
        experiment = await self.experiment(exp_id)
        ids = [v.id for v in experiment.variants]
        conv = f"conv:{experiment.goal}"
        names = {"trials": "trials", "expected": "expected", conv: "conversions", "view": "views",
                 "click": "clicks"}
        starts, arrays = bucket_arrays(await self.store.buckets(exp_id), ids, list(names))
        return JSONResponse({
            "experiment": exp_id, "bucket_seconds": self.settings.bucket_seconds, "buckets": starts,
            "variants": {vid: {names[c]: arrays[c][:, k].tolist() for c in names} for k, vid in enumerate(ids)},
        })


    async def stored_model(self, exp_id: str) -> StoredModel | None:
        """The experiment's trained model: the snapshot's copy while its version is current."""
        held = self.snapshots.models.get(exp_id)
        if held is not None and (await self.store.model_versions([exp_id]))[exp_id] == held.version:
            return held
        found = await self.store.load_model(exp_id)
        return decode(found[1], found[0]) if found else None

    async def _model_of(self, request: Request) -> tuple[object, StoredModel]:
        exp_id = request.path_params["id"]
        experiment = await self.experiment(exp_id)
        try:
            stored = await self.stored_model(exp_id)
        except ModelError as exc:
            raise ModelUnavailable(f"the stored model of experiment {exp_id!r} cannot be read ({exc}); "
                                   f"train it again: croupier-model train --experiment {exp_id}") from None
        if stored is None:
            raise ModelUnavailable(f"experiment {exp_id!r} has no trained model; "
                                   f"train one: croupier-model train --experiment {exp_id}")
        return experiment, stored

    async def model(self, request: Request) -> Response:
        """The stored conversion model: version, training, and each variant's predicted rate."""
        try:
            experiment, stored = await self._model_of(request)
        except ModelUnavailable as exc:
            return error(404, str(exc))
        return JSONResponse({"experiment": experiment.id, "model_weight": experiment.model_weight,
                             "in_use": experiment.model_weight > 0,
                             **stored.summary([v.id for v in experiment.variants])})

    async def delete_model(self, request: Request) -> Response:
        """Remove the trained model: from the next refresh the bandit's own priors alone decide
        (a later model gets a new version, so no router keeps the removed one)."""
        experiment = await self.experiment(request.path_params["id"])
        if not await self.store.delete_model(experiment.id):
            return error(404, f"experiment {experiment.id!r} has no trained model")
        return Response(status_code=204)

    async def model_prior(self, request: Request) -> Response:
        """A new variant's Beta prior from the model: its predicted rate worth ``strength``
        visitors at most (less when the model is unsure)."""
        raw = request.query_params.get("strength", "200")
        try:
            strength = float(raw)
        except ValueError:
            strength = float("nan")
        if not 0 < strength <= 1e6:
            raise InvalidExperiment(f"strength: must be a number above 0 and at most 1000000, got {raw!r}")
        try:
            experiment, stored = await self._model_of(request)
        except ModelUnavailable as exc:
            return error(404, str(exc))
        alpha, beta = stored.prior(strength)
        return JSONResponse({"experiment": experiment.id, "version": stored.version, "strength": strength,
                             "prior_alpha": alpha, "prior_beta": beta, "rate": alpha / (alpha + beta),
                             "weight": alpha + beta})


class VariantNotFound(Exception):
    pass


class ModelUnavailable(Exception):
    pass


def _age(snapshots: SnapshotKeeper) -> float | None:
    loaded = snapshots.current.loaded_at
    return round(time.time() - loaded, 3) if loaded else None
