"""The router application: wires settings, store, snapshot, recorder and the endpoints.

Lifecycle: on start-up the first snapshot is loaded (if Redis answers) and the
refresh, flush and loop-lag tasks start, and (``CROUPIER_ALERTS``) the alert delivery and
the monitor, which work only while this router holds the alerts lease; on shutdown queued
assignments are written before the Redis connection closes, so a graceful stop loses
nothing, and the alerts lease is given up so another router takes over at once.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from croupier.router.admin import AdminAPI
from croupier.router.alerts import Delivery, Lease, Outbox
from croupier.router.alerts_api import AlertsAPI
from croupier.router.archive_backlog import ArchiveBacklog
from croupier.router.assign import Assigner
from croupier.router.batch import BatchAssigner
from croupier.router.batch_api import BatchAPI
from croupier.router.batch_jobs import Jobs
from croupier.router.beacon import Beacon
from croupier.router.capacity_leases import CapacityLeases
from croupier.router.fallback_report import FallbackReports
from croupier.router.channels import ChannelsAPI
from croupier.router.dashboard import Dashboard
from croupier.router.decide import DECIDE_PATH, Decider
from croupier.router.decide_listener import DecideListener
from croupier.router.loop_lag import LoopLagProbe
from croupier.router.metrics import Metrics
from croupier.router.monitor import Monitor, default_checks
from croupier.router.predict_api import PredictAPI
from croupier.router.recorder import AssignmentRecorder
from croupier.router.refresh import SnapshotKeeper
from croupier.router.retrainer import Retrainer
from croupier.router.server import configure_logging
from croupier.router.settings import Settings
from croupier.router.store import Store, StoreUnavailable
from croupier.router.guardrails_api import GuardrailsAPI
from croupier.router.strategies_api import StrategiesAPI
from croupier.router.webhooks import WebhooksAPI

log = logging.getLogger("croupier")


def create_app(settings: Settings, store: Store | None = None) -> RouterApp:
    store = store or Store(settings)
    metrics = Metrics()
    snapshots = SnapshotKeeper(store, settings.refresh_interval, np.random.default_rng(), settings.bucket_seconds,
                               settings.max_segments, metrics=metrics)
    loop_lag = LoopLagProbe(metrics.event_loop_lag.observe)
    recorder = AssignmentRecorder(store, metrics, settings.flush_interval, settings.max_pending)
    capacity = CapacityLeases(store, snapshots, settings.refresh_interval, block=settings.capacity_block,
                              idle=settings.capacity_idle, ttl=settings.capacity_ttl)
    core = Assigner(settings, snapshots, recorder, metrics, capacity=capacity)
    decider = Decider(settings, core)
    listener = DecideListener(decider.respond, settings.host, settings.decide_port) if settings.decide_port else None
    beacon = Beacon(settings, store, core)
    fallbacks = FallbackReports(settings, store)
    admin = AdminAPI(settings, store, snapshots)
    channels = ChannelsAPI(settings, store, core)
    batch = BatchAssigner(store, core)
    jobs = Jobs(store, snapshots, batch)
    webhooks = WebhooksAPI(store, admin.guarded)  # the admin API's token check
    guardrails = GuardrailsAPI(store, admin.guarded, admin.experiment)
    # alerts: raised by the monitor (and later checks), delivered by whichever router holds the lease
    lease = Lease(store, settings.alert_lease_seconds)
    outbox = Outbox(store, metrics, settings.alert_stream_maxlen)
    delivery = Delivery(settings, store, lease, metrics, outbox)
    monitor = Monitor(settings.monitor_interval, store, snapshots, outbox, lease, metrics,
                      default_checks(metrics, settings),
                      archive_backlog=ArchiveBacklog(store, metrics) if settings.archive else None)
    retrainer = Retrainer(settings, store, snapshots, metrics)  # its own lease: CROUPIER_RETRAIN_INTERVAL

    async def livez(request: Request) -> Response:
        return PlainTextResponse("ok")  # never touches Redis: a Redis outage must not restart routers

    async def readyz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreUnavailable as exc:
            return JSONResponse({"status": "unavailable", "redis": str(exc) or type(exc).__name__},
                                status_code=503)
        return JSONResponse({"status": "ok", "redis": "ok", "experiments": len(snapshots.current.experiments),
                             "pending_assignments": len(recorder.pending)})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            await snapshots.refresh()
        except StoreUnavailable as exc:
            log.warning("Redis is not reachable at start-up (%s); deciding control until it is", exc)
        snapshots.start()
        recorder.start()
        capacity.start()
        loop_lag.start()
        if listener is not None:
            await listener.start()
        if settings.alerts:
            delivery.start()
            monitor.start()
        retrainer.start()
        try:
            yield
        finally:
            if listener is not None:  # first: the assignments it queued are written below
                await listener.stop()
            await loop_lag.stop()
            await monitor.stop()
            await retrainer.stop()  # gives the retrain lease up
            await delivery.stop()  # gives the lease up: another router delivers from now on
            await jobs.stop()  # another router resumes them
            await batch.drain()  # chunks under way finish: their new assignments reach the recorder
            await capacity.stop()  # the decisions stopped: unused capacity units back
            await snapshots.stop()
            await recorder.stop()
            await store.close()

    app = Starlette(
        routes=[
            Route("/_croupier/beacon", beacon.event, methods=["POST"]),
            Route("/_croupier/fallback", fallbacks.report, methods=["POST"]),
            Route("/_croupier/beacon.js", beacon.script_endpoint, methods=["GET"]),
            Route("/livez", livez, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
            # channels: API keys, not the admin token; webhooks: the admin token
            Mount("/api/v1", routes=[*channels.routes(), *BatchAPI(channels, batch, jobs).routes(), *PredictAPI(channels).routes(), *admin.routes(),
                                     *webhooks.routes(), *guardrails.routes(),
                                     *StrategiesAPI(store, admin.guarded, admin.experiment, admin.stored_model).routes(),
                                     *AlertsAPI(store, admin.guarded, admin.experiment).routes()]),
            Mount("/dashboard", routes=Dashboard(settings, store).routes(), name="dashboard"),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = store
    app.state.snapshots = snapshots
    app.state.recorder = recorder
    app.state.metrics = metrics
    app.state.outbox = outbox
    app.state.delivery = delivery
    app.state.monitor = monitor
    app.state.retrainer = retrainer
    return RouterApp(app, decider)


class RouterApp:
    """The Starlette app, with the decide subrequest answered before it.

    Every page view passes through /_croupier/decide, so it does not pay for
    Starlette's routing and middleware (about a third of its cost when profiled);
    everything else, the lifespan included, is the Starlette app's.
    """

    def __init__(self, app: Starlette, decider: Decider) -> None:
        self.app = app
        self.decider = decider

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == DECIDE_PATH and scope["method"] in ("GET", "HEAD"):
            await self.decider.asgi(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @property
    def state(self):
        return self.app.state


def app_from_env() -> RouterApp:
    """Factory for uvicorn (``--factory``), used when running several workers."""
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    return create_app(settings)
