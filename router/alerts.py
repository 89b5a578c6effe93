"""Alerts: raised into an outbox in Redis, delivered to the webhooks by one router at a time.

Raising. ``Outbox.raise_alert(alert)`` appends an ``Alert`` to one Redis stream (the
outbox, ``router/store.py``) with a unique id. An alert belongs to an episode
(``<kind>|<experiment>|<variant>``): while its episode is open, raising the same
condition again does nothing; ``Outbox.clear`` closes episodes whose condition went
away, so the next occurrence is a new alert. The monitor (``router/monitor.py``)
raises and clears for its checks; anything else may raise too.

Delivering (``Delivery``), never on the decision path:
- one router at a time: the one holding the alerts lease (``Lease``: SET NX PX in
  Redis, renewed each round; a router stopped gracefully gives it up, a dead one's
  lapses and another takes it). The monitor runs on the same router, under the same lease;
- it reads the outbox with a consumer group; when it takes the lease it first claims
  every pending entry (XAUTOCLAIM), whoever read it, so what the previous holder read
  and did not finish is not lost;
- each alert goes to every webhook that matches it (tenant, experiment, kinds), each
  webhook on its own: a failing receiver is retried with capped, jittered exponential
  backoff without holding up the others, until it answers 2xx or the alert is older
  than ``CROUPIER_ALERT_MAX_AGE`` (dropped: counted and logged);
- what each (alert, webhook) pair got is written to Redis as soon as it is known, and
  the alert is acknowledged once every webhook is done with it: a new holder sends an
  alert only to the webhooks that had not taken it.

Guarantees: at least once per (alert, webhook) within the maximum age. Duplicates
happen only when the delivering router dies or loses its lease between a receiver's
2xx and the write that records it, or stops while a request outlasts ``STOP_WAIT``
(at most the requests in flight then: ``CROUPIER_ALERT_CONCURRENCY``);
receivers deduplicate by ``X-Croupier-Delivery``, the alert's id. Memory is bounded by
``CROUPIER_ALERT_MAX_INFLIGHT`` alerts (the rest wait in Redis), requests in flight by
``CROUPIER_ALERT_CONCURRENCY``. Failures of a round are logged and counted
(``croupier_alert_failures``) and the next round tries again.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from croupier.router.background import cancel
from croupier.router.rounds import Rounds
from croupier.router import webhooks
from croupier.router.metrics import Metrics
from croupier.router.settings import Settings
from croupier.router.store import Store, StoreUnavailable
from croupier.router.webhooks import Webhook

log = logging.getLogger("croupier.alerts")
READ_BATCH = 100  # outbox entries read or claimed per command
MIN_ROUND_GAP = 0.02  # seconds: attempts finishing in a burst wake the loop at most this often
SENT_KEEP = 86_400  # seconds an alert's delivery record outlives its maximum age
STOP_WAIT = 2.0  # seconds a graceful stop waits for the requests in flight


@dataclass(frozen=True)
class Alert:
    """One alert: what a check found. ``details`` must be JSON-serialisable."""

    kind: str  # srm, guardrail, drift, ...
    experiment: str
    summary: str  # one line a person reads in a chat message
    tenant: str = ""
    variant: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: float = field(default_factory=time.time)

    @property
    def episode(self) -> str:
        """What makes two alerts the same condition: one alert per episode until it clears."""
        return episode(self.kind, self.experiment, self.variant)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "experiment": self.experiment, "tenant": self.tenant,
                "variant": self.variant, "time": self.time, "summary": self.summary, "details": dict(self.details)}


def episode(kind: str, experiment: str, variant: str = "") -> str:
    return f"{kind}|{experiment}|{variant}"


def parse_episode(text: str) -> tuple[str, str, str]:
    """``(kind, experiment, variant)`` of an episode key."""
    kind, _, rest = text.partition("|")
    experiment, _, variant = rest.partition("|")
    return kind, experiment, variant


class Outbox:
    """Raises alerts (one per episode) and clears episodes; see the module's docstring."""

    def __init__(self, store: Store, metrics: Metrics, maxlen: int) -> None:
        self.store = store
        self.metrics = metrics
        self.maxlen = maxlen
        self.listeners: list[Callable[[], None]] = []  # told when an alert was raised here

    async def raise_alert(self, alert: Alert, *, once_per_episode: bool = True) -> bool:
        """Write ``alert`` to the outbox; False when its episode was already open (nothing written).
        Raises StoreUnavailable when Redis did not take it."""
        added = await self.store.raise_alert(alert.id, json.dumps(alert.to_dict(), separators=(",", ":")),
                                             alert.episode if once_per_episode else "", self.maxlen,
                                             alert.experiment)
        if added:
            self.metrics.alerts_raised.labels(kind=alert.kind).inc()
            log.warning("alert %s raised: [%s] %s", alert.id, alert.kind, alert.summary)
            for listener in self.listeners:
                listener()
        return added

    async def clear(self, episodes: Iterable[str]) -> None:
        """Close episodes whose condition went away: the next occurrence raises a new alert."""
        await self.store.close_alerts(episodes)

    async def open_episodes(self) -> dict[str, str]:
        """Episode → the id of the alert that opened it."""
        return await self.store.open_alerts()


class Lease:
    """One router at a time: a token in Redis that lapses unless its holder renews it."""

    def __init__(self, store: Store, ttl: float, clock: Callable[[], float] = time.monotonic,
                 name: str = "alerts") -> None:
        self.store = store
        self.ttl = ttl
        self.name = name  # which job's lease (store.LEASES)
        self.clock = clock
        self.token = secrets.token_hex(8)
        self._until = 0.0

    def held(self) -> bool:
        """Whether this router holds the lease now, by its own clock: the lease was taken or
        renewed less than ``ttl`` ago (measured from before the request, so never later than
        Redis lets it lapse)."""
        return self.clock() < self._until

    async def hold(self) -> bool:
        """Take the lease or renew it; False when another router holds it."""
        asked = self.clock()
        holding = await self.store.hold_lease(self.token, int(self.ttl * 1000), self.name)
        self._until = asked + self.ttl if holding else 0.0
        return holding

    async def release(self) -> None:
        if self._until:
            self._until = 0.0
            await self.store.release_lease(self.token, self.name)


@dataclass
class _Target:
    """One webhook's delivery of one alert."""

    webhook: str
    attempts: int = 0
    due: float = 0.0  # monotonic time of the next attempt
    outcome: str = ""  # '' pending | delivered | dropped | removed (the webhook was deleted)
    running: bool = False
    recorded: bool = False  # the outcome is written to Redis (or, removed, needs no record)


@dataclass
class _Held:
    """An alert read from the outbox and not yet finished."""

    entry: str  # its stream entry id
    doc: dict[str, Any]
    targets: dict[str, _Target]

    def done(self) -> bool:
        return all(t.outcome and t.recorded for t in self.targets.values())


def backoff(attempts: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds before attempt ``attempts + 1``: doubling from ``base`` up to ``cap``, less up to
    half at random, so receivers coming back are not hit by every retry at once."""
    return min(cap, base * 2 ** min(attempts - 1, 60)) * (1 - rng.random() / 2)


class Delivery:
    """The background task that delivers the outbox to the webhooks (module docstring)."""

    def __init__(self, settings: Settings, store: Store, lease: Lease, metrics: Metrics,
                 outbox: Outbox | None = None, *, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.lease = lease
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.clock, self.wall = clock, wall
        # a consumer name per process: pending entries name who read them
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{lease.token[:8]}"
        self.leading = False
        self._held: dict[str, _Held] = {}  # entry id → alert, oldest first
        self._claim_from: str | None = "0-0"  # where the claim pass goes on; None: done
        self._hooks: tuple[dict[str, str], dict[str, Webhook]] = ({}, {})
        self._failing: set[str] = set()  # webhooks whose last attempt failed (logged once per spell)
        self._attempts: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._rounds = Rounds(log, "alert delivery round", self._count_failure)
        if outbox is not None:
            outbox.listeners.append(self.wake)

    # -- one round ----------------------------------------------------------

    async def run_once(self) -> None:
        """Renew (or take) the lease; when held, take alerts in, start due attempts and write
        what finished."""
        if not await self._lead():
            return
        hooks = await self._webhooks()
        await self._take(hooks)
        self._settle(hooks)
        self._start(hooks)
        await self._record()
        self.metrics.alerts_pending.set(await self.store.alert_backlog())

    async def _lead(self) -> bool:
        if self.leading and not self.lease.held():  # a renewal failed for longer than the lease lasts
            self._let_go("its lease lapsed")
        holding = await self.lease.hold()
        if not holding:
            if self.leading:
                self._let_go("another router holds the lease")
            return False
        if not self.leading:
            await self.store.ensure_alert_group()
            self.leading, self._claim_from = True, "0-0"
            self.metrics.alert_lease.set(1)
            log.info("this router now delivers alerts (consumer %s)", self.consumer)
        return True

    def _let_go(self, why: str) -> None:
        """Stop delivering: what this router held is pending in Redis for the next holder."""
        log.warning("this router stops delivering alerts: %s", why)
        for task in self._attempts:
            task.cancel()
        self._held.clear()
        self._failing.clear()
        self.leading = False
        self.metrics.alert_lease.set(0)
        self.metrics.alerts_pending.set(0)

    async def _webhooks(self) -> dict[str, Webhook]:
        raw = await self.store.webhooks()
        if raw != self._hooks[0]:  # parsed again only after a change
            self._hooks = (raw, {w.id: w for w in webhooks.load_webhooks(raw)})
        return self._hooks[1]

    async def _take(self, hooks: dict[str, Webhook]) -> None:
        """Fill memory up to CROUPIER_ALERT_MAX_INFLIGHT: first the claim pass over what is
        pending (after taking the lease), then unread alerts."""
        room = self.settings.alert_max_inflight - len(self._held)
        entries: list[tuple[str, dict[str, str]]] = []
        try:
            if room > 0 and self._claim_from is not None:
                following, claimed, trimmed = await self.store.claim_alerts(
                    self.consumer, self._claim_from, min(room, READ_BATCH))
                self._claim_from = None if following == "0-0" else following
                for entry_id in trimmed:
                    self.metrics.alert_deliveries.labels(webhook="", outcome="dropped").inc()
                    log.error("alert entry %s was trimmed from the outbox before every webhook took it "
                              "(raise CROUPIER_ALERT_STREAM_MAXLEN)", entry_id)
                entries += [(entry_id, fields) for entry_id, fields in claimed if entry_id not in self._held]
                if self._claim_from is None:
                    await self.store.prune_alert_consumers(self.consumer)
                room -= len(entries)
            if room > 0:
                entries += await self.store.read_alerts(self.consumer, min(room, READ_BATCH))
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # the outbox was removed under us (a Redis that lost its data): start afresh
            await self.store.ensure_alert_group()
            self._held.clear()
            self._claim_from = "0-0"
            return
        if entries:
            await self._hold_entries(entries, hooks)

    async def _hold_entries(self, entries: list[tuple[str, dict[str, str]]], hooks: dict[str, Webhook]) -> None:
        docs: dict[str, dict[str, Any]] = {}
        for entry_id, fields in entries:
            try:
                doc = json.loads(fields["alert"])
                str(doc["id"]), str(doc["kind"]), float(doc["time"])
            except (KeyError, TypeError, ValueError) as exc:
                # no webhook could be sent it; it would come back at every claim pass
                log.error("alert entry %s cannot be read, acknowledging it undelivered: %r", entry_id, exc)
                self.metrics.alert_failures.labels(task="delivery", error="UnreadableAlert").inc()
                self._held[entry_id] = _Held(entry_id, {"id": ""}, {})
                continue
            docs[entry_id] = doc
        done = await self.store.alert_deliveries([doc["id"] for doc in docs.values()])
        for entry_id, doc in docs.items():
            taken = done.get(doc["id"], {})
            self._held[entry_id] = _Held(entry_id, doc, {
                hook.id: _Target(hook.id) for hook in hooks.values() if hook.matches(doc) and hook.id not in taken})

    def _settle(self, hooks: dict[str, Webhook]) -> None:
        """Targets that will never be attempted again: webhook deleted, or alert too old."""
        now = self.wall()
        for held in self._held.values():
            for t in held.targets.values():
                if t.outcome or t.running:
                    continue
                if t.webhook not in hooks:
                    t.outcome, t.recorded = "removed", True
                elif now - float(held.doc["time"]) > self.settings.alert_max_age:
                    t.outcome = "dropped"
                    self.metrics.alert_deliveries.labels(webhook=t.webhook, outcome="dropped").inc()
                    log.error("alert %s dropped for webhook %s: not delivered within %g s (%d attempts)",
                              held.doc["id"], t.webhook, self.settings.alert_max_age, t.attempts)

    def _start(self, hooks: dict[str, Webhook]) -> None:
        """Start the due attempts, oldest alert first, up to CROUPIER_ALERT_CONCURRENCY at once."""
        now = self.clock()
        for held in self._held.values():
            for t in held.targets.values():
                if len(self._attempts) >= self.settings.alert_concurrency:
                    return
                if t.outcome or t.running or t.due > now:
                    continue
                t.running = True
                task = asyncio.create_task(self._attempt(held.doc, t, hooks[t.webhook]))
                self._attempts.add(task)
                task.add_done_callback(self._attempts.discard)

    async def _attempt(self, doc: dict[str, Any], target: _Target, hook: Webhook) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.settings.alert_concurrency, thread_name_prefix="croupier-webhook")
        failure = None
        try:
            body, headers = webhooks.request(doc, hook, self.wall())
            status = await asyncio.get_running_loop().run_in_executor(
                self._executor, webhooks.post, hook.url, body, headers, self.settings.alert_timeout)
            if not 200 <= status < 300:
                failure = f"it answered HTTP {status}"
        except (OSError, http.client.HTTPException, ValueError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            target.running = False
        if failure is None:
            target.outcome = "delivered"
            self.metrics.alert_deliveries.labels(webhook=hook.id, outcome="delivered").inc()
            if hook.id in self._failing:
                self._failing.discard(hook.id)
                log.info("webhook %s takes alerts again", hook.id)
        else:
            target.attempts += 1
            target.due = self.clock() + backoff(target.attempts, self.settings.alert_retry_base,
                                                self.settings.alert_retry_max, self.rng)
            self.metrics.alert_deliveries.labels(webhook=hook.id, outcome="retried").inc()
            if hook.id not in self._failing:  # once per spell of failures, not once per retry
                self._failing.add(hook.id)
                log.warning("webhook %s: delivering alert %s failed (%s); retrying with backoff",
                            hook.id, doc["id"], failure)
            else:
                log.debug("webhook %s: alert %s attempt %d failed (%s)", hook.id, doc["id"], target.attempts, failure)
        self.wake()

    async def _record(self) -> None:
        """Write the outcomes known since the last round, then acknowledge finished alerts."""
        outcomes: dict[str, dict[str, str]] = {}
        written: list[_Target] = []
        for held in self._held.values():
            for t in held.targets.values():
                if t.outcome and not t.recorded:
                    outcomes.setdefault(held.doc["id"], {})[t.webhook] = t.outcome
                    written.append(t)
        if outcomes:
            await self.store.record_deliveries(outcomes, int(self.settings.alert_max_age) + SENT_KEEP)
            for t in written:
                t.recorded = True
        finished = [held for held in self._held.values() if held.done()]
        if finished:
            await self.store.finish_alerts([(held.entry, held.doc["id"]) for held in finished])
            for held in finished:
                self._held.pop(held.entry, None)

    # -- the background task --------------------------------------------------

    def wake(self) -> None:
        """Run the next round now (an alert was raised here, or an attempt finished)."""
        if self._wake is not None:
            self._wake.set()

    def _pause(self) -> float:
        """Until the next round: the poll interval, or sooner when an attempt falls due."""
        pause = self.settings.alert_poll_interval
        now = self.clock()
        for held in self._held.values():
            for t in held.targets.values():
                if not t.outcome and not t.running:
                    pause = min(pause, t.due - now)
        return max(pause, MIN_ROUND_GAP)

    async def _run(self) -> None:
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            await self._rounds.run(self.run_once)
            await asyncio.sleep(MIN_ROUND_GAP)
            try:
                await asyncio.wait_for(self._wake.wait(), self._pause())
            except asyncio.TimeoutError:
                pass

    def _count_failure(self, exc: BaseException) -> None:
        self.metrics.alert_failures.labels(task="delivery", error=type(exc).__name__).inc()

    async def _drain(self) -> None:
        """Let the requests in flight finish, briefly, keeping the lease meanwhile: each one cut
        off, or finished after another router took over, is sent again by the next holder."""
        deadline = self.clock() + min(self.settings.alert_timeout, STOP_WAIT)
        while self._attempts and self.leading and self.clock() < deadline:
            try:
                if not await self.lease.hold():
                    return
            except StoreUnavailable:
                return
            await asyncio.wait(set(self._attempts), timeout=min(self.lease.ttl / 3, deadline - self.clock()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-alert-delivery")

    async def stop(self) -> None:
        """Stop the loop, write what finished (so the next holder does not send it again) and
        give the lease up, so another router takes over at once."""
        await cancel(self._task)
        await self._drain()
        for task in self._attempts:
            task.cancel()
        if self.leading:
            try:
                await asyncio.wait_for(self._record(), timeout=2)
                await self.lease.release()
            except (asyncio.TimeoutError, *StoreUnavailable) as exc:
                log.warning("alert delivery: could not hand over cleanly (%r); the lease lapses on its own", exc)
            self.leading = False
            self.metrics.alert_lease.set(0)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
