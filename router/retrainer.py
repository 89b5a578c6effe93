"""The retrainer: keeps each experiment's conversion model current, one router at a time.

Every few seconds the router holding the retrain lease (``Lease(..., name="retrain")``,
the alerts lease's Lua scripts under a key of its own) looks at the running experiments
that use a model (``model_weight`` > 0) and starts a training round
(``croupier.router.model_update.run_round``) for each that has events it has not read yet and

- ``schedule``: had no round for ``CROUPIER_RETRAIN_INTERVAL`` seconds (or never had one), or
- ``drift``: has an open rate-drift alert (the monitor's ``DriftCheck``; its episodes are in the
  alerts' open hash) that no round was started for yet. The round learns from the assignments
  since the change the alert dates (its ``changed_at``), when enough came since.

When a round runs and whether it found anything is in Redis (``Store.model_heads``), so a
router that takes the lease over goes on where the last one stopped: once per period,
whichever router runs it. A round runs on a worker thread with its own event loop and Redis
connection: reading, joining and fitting never hold the loop that answers decisions; its
events are bounded (``CROUPIER_RETRAIN_MAX_EVENTS``). The lease is renewed while it runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from croupier.router.background import cancel, shut
from croupier.router.rounds import Rounds
from croupier.router.alerts import Lease, parse_episode
from croupier.router.metrics import Metrics
from croupier.router.model import ModelError
from croupier.router.model_update import run_round
from croupier.router.refresh import SnapshotKeeper
from croupier.router.settings import Settings
from croupier.router.store import ModelHead, Store, StoreUnavailable

log = logging.getLogger("croupier.retrainer")


@dataclass(frozen=True)
class Due:
    experiment: str
    trigger: str  # schedule | drift
    drift: str = ""  # the open drift alerts' ids it answers, comma-separated


def drift_alerts(open_episodes: Mapping[str, str]) -> dict[str, str]:
    """Experiment → the ids of its open rate-drift alerts, sorted and comma-separated."""
    found: dict[str, list[str]] = {}
    for episode, alert_id in open_episodes.items():
        kind, experiment, _ = parse_episode(episode)
        if kind == "drift":
            found.setdefault(experiment, []).append(alert_id)
    return {experiment: ",".join(sorted(ids)) for experiment, ids in found.items()}


def due_rounds(heads: Mapping[str, ModelHead], drift: Mapping[str, str], interval: float, now: float) -> list[Due]:
    """The experiments to train now (module docstring), drift first, then the longest waiting."""
    out = []
    for exp_id, head in heads.items():
        if not head.last_event or head.last_event == head.through:
            continue  # nothing new since the last round: the same data would give the same model
        open_ids = drift.get(exp_id, "")
        if open_ids and not set(open_ids.split(",")) <= set(head.drift.split(",")):
            out.append(Due(exp_id, "drift", open_ids))
        elif not head.attempted or now - head.attempted >= interval:
            out.append(Due(exp_id, "schedule"))
    return sorted(out, key=lambda d: (d.trigger != "drift", heads[d.experiment].attempted))


def change_start(alerts: list[dict | None]) -> int | None:
    """The earliest change (milliseconds) the drift alerts date (``details.changed_at``, seconds);
    None when none of them says (trimmed from the outbox, or raised without it)."""
    starts = [float(a["details"]["changed_at"]) for a in alerts
              if a and isinstance(a.get("details"), dict) and "changed_at" in a["details"]]
    return int(min(starts) * 1000) if starts else None


class Retrainer:
    def __init__(self, settings: Settings, store: Store, snapshots: SnapshotKeeper, metrics: Metrics,
                 lease: Lease | None = None) -> None:
        self.settings = settings
        self.store = store
        self.snapshots = snapshots
        self.metrics = metrics
        self.lease = lease or Lease(store, settings.alert_lease_seconds, name="retrain")
        self.interval = settings.retrain_interval
        # drift alerts come at the monitor's pace; the lease is renewed well before it lapses
        self.tick = min(self.interval, settings.monitor_interval, self.lease.ttl / 3)
        # Rounds read the stream only: they train on the latest retrain_max_events, which the
        # stream holds, and the router's image has no Parquet reader (the archive is for the
        # offline tools, croupier-model --archive among them).
        self.rounds: list[dict[str, Any]] = []  # the latest rounds' records (tests and logs)
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self._rounds = Rounds(log, "retrain round", self._count_failure)

    def watched(self) -> list[str]:
        """The running experiments that use a model."""
        return sorted(e.id for e in self.snapshots.current.experiments.values()
                      if e.status == "running" and e.model_weight > 0)

    async def run_once(self) -> list[dict[str, Any]]:
        """One look: the rounds it ran (their records)."""
        if not await self.lease.hold():
            return []
        ids = self.watched()
        if not ids:
            return []
        heads = await self.store.model_heads(ids)
        due = due_rounds(heads, drift_alerts(await self.store.open_alerts()), self.interval, time.time())
        done = []
        raised = {doc.get("id"): doc for doc in await self.store.recent_alerts(200)} if any(
            job.drift for job in due) else {}
        for job in due:
            since = None
            if job.drift:
                await self.store.mark_model_drift(job.experiment, job.drift)
                since = change_start([raised.get(alert_id) for alert_id in job.drift.split(",")])
            try:
                record = await self._while_leased(self._round, job.experiment, job.trigger, since)
            except ModelError as exc:  # too little data yet: the next period tries again
                log.info("experiment %s: no model trained (%s): %s", job.experiment, job.trigger, exc)
                self.metrics.model_rounds.labels(trigger=job.trigger, outcome="skipped").inc()
                await self.store.mark_model_attempt(job.experiment, heads[job.experiment].last_event)
                continue
            self._count(record)
            done.append(record)
            if not self.lease.held():
                break  # lost it meanwhile: the new holder goes on
        self.rounds = (self.rounds + done)[-20:]
        return done

    def _count(self, record: dict[str, Any]) -> None:
        outcome = "accepted" if record["current"] else "rejected"
        self.metrics.model_rounds.labels(trigger=record["trigger"], outcome=outcome).inc()
        self.metrics.model_trained_at.labels(experiment=record["experiment"]).set(record["trained_at"])
        if record["current"]:
            self.metrics.model_version.labels(experiment=record["experiment"]).set(record["version"])
        log.info("experiment %s: model version %s %s (%s): %s", record["experiment"], record["version"], outcome,
                 record["trigger"], record["reason"])

    def _round(self, experiment_id: str, trigger: str, since_ms: int | None) -> dict[str, Any]:
        """On the worker thread: a loop and a Redis connection of its own."""
        async def go() -> dict[str, Any]:
            store = Store(self.settings)
            try:
                return await run_round(store, experiment_id, trigger=trigger,
                                       max_events=self.settings.retrain_max_events,
                                       holdout=self.settings.retrain_holdout, since_ms=since_ms)
            finally:
                await store.close()
        return asyncio.run(go())

    async def _while_leased(self, fn, *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="croupier-retrain")
        job = asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))
        while True:
            done, _ = await asyncio.wait({job}, timeout=self.lease.ttl / 3)
            if done:
                return job.result()
            try:
                await self.lease.hold()  # a long round keeps the lease: no second router starts it
            except StoreUnavailable:
                pass

    # -- the background task --------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            await self._rounds.run(self.run_once)

    def _count_failure(self, exc: BaseException) -> None:
        if not isinstance(exc, StoreUnavailable):  # an outage is not a failed round: none ran
            self.metrics.model_rounds.labels(trigger="any", outcome="failed").inc()

    def start(self) -> None:
        if self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="croupier-retrainer")

    async def stop(self) -> None:
        await cancel(self._task)
        shut(self._executor)
        self._executor = None
        try:
            await self.lease.release()
        except StoreUnavailable:
            pass
