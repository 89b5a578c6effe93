"""The monitor: a periodic look at the running experiments that raises alerts.

Every ``CROUPIER_MONITOR_INTERVAL`` seconds, on the router holding the alerts lease
(``router/alerts.py``; the others skip their turn), the monitor takes the refresh's
snapshot (``app.state.snapshots.current``: the experiments and their counters), picks
the running experiments whose counters or record changed since its last look (by
identity: the refresh replaces an experiment's counters only when they moved), reads
what its checks need for those only (time buckets, pipelined in batches), runs every
check on each of them on its own worker thread, and then, on the event loop:

- raises each alert a check returned (``Outbox.raise_alert``: once per episode, so a
  condition that persists is not raised again at every look);
- clears the episodes of the check's kinds that the check, run on that experiment, no
  longer returned: the condition went away, and its return is a new alert;
- clears the episodes of experiments that stopped running.

With ``CROUPIER_ARCHIVE`` on, each look also sets the archive's backlog gauges
(``router/archive_backlog.py``: a bounded batch of streams a look).

Adding a check (a guardrail or drift check, say) touches neither the loop nor the
store: subclass ``Check`` and pass it in ``checks`` (``default_checks`` lists the
router's own)::

    class GuardrailCheck(Check):
        name = "guardrail"
        kinds = ("guardrail",)          # the alert kinds it raises and clears
        reads = ("buckets",)            # data it needs beyond the counters: READERS' names

        def run(self, seen: Observation) -> list[Alert]:
            ...                          # seen.experiment, seen.counters, seen.data["buckets"]
            self.metrics.guardrail_breached.labels(experiment=..., variant=...).set(1)
            return [Alert("guardrail", seen.experiment.id, "...", variant="b", tenant=...)]

        def forget(self, experiment_id: str) -> None:
            ...                          # remove the experiment's gauge series

A check is pure apart from setting its gauges: it gets an ``Observation`` and returns
the alerts whose condition holds now (empty: none does), one per episode
(kind, experiment, variant). ``run`` runs off the event loop; an exception is logged
and counted and leaves that experiment's episodes of the check as they were. Data no
reader provides yet is one entry in ``READERS`` (a store method reading many
experiments at once, and a parser run on the worker thread).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from croupier.router.background import cancel, shut
from croupier.router.rounds import Rounds
from croupier.router.alerts import Alert, Lease, Outbox, parse_episode
from croupier.router.archive_backlog import ArchiveBacklog
from croupier.router.experiments import Experiment
from croupier.router.history import bucket_arrays
from croupier.router.metrics import Metrics
from croupier.router.refresh import SnapshotKeeper
from croupier.router.settings import Settings
from croupier.router.statistics import SRM_ALERT_P, srm_check
from croupier.router.store import (Store, StoreUnavailable, parse_breaches, parse_buckets, parse_counters,
                                   parse_device_buckets, parse_mix_buckets)

log = logging.getLogger("croupier.monitor")
LOOK_BATCH = 100  # experiments a look checks at most (the others wait for the next looks)


@dataclass(frozen=True)
class Observation:
    """What a check sees of one running experiment whose counters changed."""

    experiment: Experiment
    counters: dict[str, dict[str, float]]  # variant → counter → total, the snapshot's
    data: Mapping[str, Any]  # what the checks' ``reads`` named, parsed: READERS' names
    now: float


class Check:
    """A monitor check (see the module docstring). Subclasses set ``name``, ``kinds`` and
    ``reads`` and implement ``run``; ``forget`` drops what they hold for an experiment that
    is no longer watched (stopped running, or this router gave the lease up)."""

    name: str = ""
    kinds: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()

    def run(self, seen: Observation) -> list[Alert]:
        raise NotImplementedError

    async def act(self, store: Store, alerts: list[Alert]) -> None:
        """What the router does about the alerts ``run`` returned that open a new episode
        (a guardrail breach caps its variant, a change forgets old evidence), on the event
        loop, before they are raised; an exception leaves them unraised, so the next look
        tries again."""

    def forget(self, experiment_id: str) -> None:
        pass


@dataclass(frozen=True)
class Reader:
    """Data for the checks: fetched for many experiments at once, parsed on the worker thread."""

    fetch: Callable[[Store, list[str]], Awaitable[dict[str, Any]]]
    parse: Callable[[Any], Any]


READERS: dict[str, Reader] = {
    # bucket start → variant → counter → total (router/history.py reads them as arrays)
    "buckets": Reader(lambda store, ids: store.bucket_hashes(ids), parse_buckets),
    # variant → engagement counter → total (router/engagement.py)
    "engagement": Reader(lambda store, ids: store.engagement_hashes(ids), parse_counters),
    # variant → its guardrail breach, held or cleared (router/guardrail_check.py)
    "breaches": Reader(lambda store, ids: store.breach_hashes(ids), parse_breaches),
    # bucket start → device class → variant → trials and conversions (the rate-drift strata)
    "devices": Reader(lambda store, ids: store.device_bucket_hashes(ids), parse_device_buckets),
    # bucket start → context field → value → assignments (the traffic's mix)
    "mix": Reader(lambda store, ids: store.mix_hashes(ids), parse_mix_buckets),
}


def _remove(gauge, *labels: str) -> None:
    try:
        gauge.remove(*labels)
    except KeyError:  # never set for these labels
        pass


class SampleRatioCheck(Check):
    """Sample-ratio mismatch: the assignments per period against the shares the policy gave
    then (``statistics.srm_check`` on the time buckets, as the stats endpoint does). Sets
    ``croupier_srm_p_value`` and ``croupier_srm_mismatch`` while a mismatch holds."""

    name = "srm"
    kinds = ("srm",)
    reads = ("buckets",)

    def __init__(self, metrics: Metrics | None = None, alert_p: float = SRM_ALERT_P) -> None:
        self.metrics = metrics
        self.alert_p = alert_p

    def run(self, seen: Observation) -> list[Alert]:
        e = seen.experiment
        ids = [v.id for v in e.variants]
        _, periods = bucket_arrays(seen.data["buckets"], ids, ["trials", "expected"])
        if not len(periods["trials"]):
            return []
        result = srm_check(periods["trials"], periods["expected"], alert_p=self.alert_p)
        if self.metrics is not None:
            # series only while the mismatch holds: with thousands of experiments a series each
            # would make every scrape (and the router rendering it) grow with the registry
            if result["alert"]:
                self.metrics.srm_p_value.labels(experiment=e.id).set(result["p_value"])
                self.metrics.srm_mismatch.labels(experiment=e.id).set(1)
            else:
                self.forget(e.id)
        if not result["alert"]:
            return []
        unexpected = result["unexpected_assignments"]
        summary = (f"Sample-ratio mismatch in experiment {e.id}: assignments differ from the split the "
                   f"policy gave (p = {result['p_value']:.2g}"
                   + (f"; {unexpected} assignments to arms given no share" if unexpected else "") + ")")
        details = {"p_value": result["p_value"], "alert_p": result["alert_p"], "chi2": round(result["chi2"], 3),
                   "dof": result["dof"], "periods": result["periods"], "unexpected_assignments": unexpected,
                   "observed": {vid: int(n) for vid, n in zip(ids, result["observed"])},
                   "expected": {vid: round(x, 1) for vid, x in zip(ids, result["expected"])}}
        return [Alert("srm", e.id, summary, tenant=e.tenant, details=details)]

    def forget(self, experiment_id: str) -> None:
        if self.metrics is not None:
            _remove(self.metrics.srm_p_value, experiment_id)
            _remove(self.metrics.srm_mismatch, experiment_id)


def default_checks(metrics: Metrics | None, settings: Settings | None = None) -> list[Check]:
    """The checks every router runs; ``settings`` configure the drift checks (CROUPIER_DRIFT_*,
    CROUPIER_MIX_*; their defaults without)."""
    from croupier.router.monitor_checks import GuardrailCheck, drift_checks  # they build on this module
    return [SampleRatioCheck(metrics), GuardrailCheck(metrics), *drift_checks(metrics, settings)]


@dataclass(frozen=True)
class Finding:
    """One check's answer for one experiment: its alerts, or None when it failed."""

    experiment: str
    check: Check
    alerts: list[Alert] | None


class Monitor:
    def __init__(self, monitor_interval: float, store: Store, snapshots: SnapshotKeeper, outbox: Outbox,
                 lease: Lease, metrics: Metrics, checks: Sequence[Check] | None = None,
                 batch: int = LOOK_BATCH, archive_backlog: ArchiveBacklog | None = None) -> None:
        self.interval = monitor_interval
        self.store = store
        self.snapshots = snapshots
        self.outbox = outbox
        self.lease = lease
        self.metrics = metrics
        self.checks = list(checks) if checks is not None else default_checks(metrics)
        self._kinds = {kind for check in self.checks for kind in check.kinds}
        # experiment → (its record, its counters) at the last look, compared by identity
        self._seen: dict[str, tuple[Experiment, object]] = {}
        self._looked: dict[str, float] = {}  # experiment → when a look last ran its checks on it
        self.batch = batch
        self.archive_backlog = archive_backlog  # CROUPIER_ARCHIVE on: the backlog's gauges, set at each look
        self._failing: set[tuple[str, str]] = set()  # (check, experiment) whose failure was logged
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        self._rounds = Rounds(log, "monitor round", self._count_failure)

    async def run_once(self) -> int:
        """One look; returns how many alerts it raised."""
        if not self.lease.held():
            self._forget(list(self._seen))
            if self.archive_backlog is not None:
                self.archive_backlog.forget()
            return 0
        snapshot = self.snapshots.current
        running = {exp_id: e for exp_id, e in snapshot.experiments.items() if e.status == "running"}
        self._forget([exp_id for exp_id in self._seen if exp_id not in running])
        changed = [e for exp_id, e in running.items() if not self._same(exp_id, e, snapshot.counters.get(exp_id))]
        for e in [e for e in changed if not snapshot.counters.get(e.id)]:
            # no visitor yet: nothing any check could find (most of a large registry, at first)
            self._seen[e.id] = (e, snapshot.counters.get(e.id))
        changed = [e for e in changed if snapshot.counters.get(e.id)]
        if len(changed) > self.batch:
            # A look reads each changed experiment's time buckets and more, and the replies are
            # parsed on the loop that answers decisions: at 10,000 experiments a first look at
            # all of them stalled it for a second. The ones looked at longest ago go first; the
            # rest stay changed and come at the next looks.
            changed = heapq.nsmallest(self.batch, changed, key=lambda e: self._looked.get(e.id, 0.0))
        findings: list[Finding] = []
        if changed:
            ids = [e.id for e in changed]
            wanted = {name for check in self.checks for name in check.reads}
            raw = {name: await READERS[name].fetch(self.store, ids) for name in wanted}
            findings = await self._in_worker(self._run_checks, changed, snapshot.counters, raw, time.time())
        raised, failed = await self._apply(findings, running)
        looked = time.monotonic()
        for e in changed:
            self._looked[e.id] = looked
            if e.id not in failed:  # a check that failed (or could not act) runs again at the next look
                self._seen[e.id] = (e, snapshot.counters.get(e.id))
        if self.archive_backlog is not None:
            await self._look_at_archive(list(snapshot.experiments))
        return raised

    async def _look_at_archive(self, experiment_ids: list[str]) -> None:
        try:
            await self.archive_backlog.look(experiment_ids)
        except StoreUnavailable:
            raise
        except Exception as exc:  # its failure must not cost the checks their next looks
            self.metrics.alert_failures.labels(task="archive", error=type(exc).__name__).inc()
            log.exception("the archive backlog could not be read")

    def _same(self, exp_id: str, experiment: Experiment, counters: object) -> bool:
        held = self._seen.get(exp_id)
        return held is not None and held[0] is experiment and held[1] is counters

    def _run_checks(self, experiments: list[Experiment], counters: dict, raw: dict[str, dict[str, Any]],
                    now: float) -> list[Finding]:
        """On the worker thread: every check on every experiment, a failure confined to its pair."""
        findings = []
        for e in experiments:
            data = {name: READERS[name].parse(found.get(e.id) or {}) for name, found in raw.items()}
            seen = Observation(e, counters.get(e.id, {}), data, now)
            for check in self.checks:
                try:
                    alerts = list(check.run(seen))
                    self._failing.discard((check.name, e.id))
                except Exception as exc:
                    self.metrics.alert_failures.labels(task="check", error=type(exc).__name__).inc()
                    if (check.name, e.id) not in self._failing:
                        self._failing.add((check.name, e.id))
                        log.exception("check %s failed on experiment %s", check.name, e.id)
                    alerts = None
                findings.append(Finding(e.id, check, alerts))
        return findings

    async def _apply(self, findings: list[Finding], running: Mapping[str, Experiment]) -> tuple[int, set[str]]:
        """Raise what the checks found; clear the episodes that ended. Returns the alerts raised
        and the experiments to look at again (a check failed, or could not act)."""
        open_episodes = await self.outbox.open_episodes()
        ended = set()
        for text in open_episodes:
            kind, experiment, _ = parse_episode(text)
            if kind in self._kinds and experiment not in running:
                ended.add(text)
        raised, failed = 0, set()
        for finding in findings:
            if finding.alerts is None:
                failed.add(finding.experiment)
                continue
            found = {alert.episode for alert in finding.alerts}
            for text in open_episodes:
                kind, experiment, _ = parse_episode(text)
                if experiment == finding.experiment and kind in finding.check.kinds and text not in found:
                    ended.add(text)
            new = [alert for alert in finding.alerts if alert.episode not in open_episodes]
            if new:  # an open one persists: not raised again
                try:
                    await finding.check.act(self.store, new)
                except StoreUnavailable:
                    raise
                except Exception as exc:
                    self.metrics.alert_failures.labels(task="act", error=type(exc).__name__).inc()
                    log.exception("check %s could not act on experiment %s", finding.check.name, finding.experiment)
                    failed.add(finding.experiment)
                    continue
            for alert in new:
                raised += await self.outbox.raise_alert(alert)
        if ended:
            await self.outbox.clear(ended)
            log.info("alert episodes cleared: %s", ", ".join(sorted(ended)))
        return raised, failed

    def _forget(self, experiment_ids: Iterable[str]) -> None:
        for exp_id in experiment_ids:
            for check in self.checks:
                check.forget(exp_id)
            self._seen.pop(exp_id, None)
            self._looked.pop(exp_id, None)

    async def _in_worker(self, fn, *args: Any) -> Any:
        # a thread of its own: checks on thousands of experiments never hold the loop that
        # answers decisions, nor the refresh's thread
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="croupier-monitor")
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    # -- the background task --------------------------------------------------

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._rounds.run(self.run_once)

    def _count_failure(self, exc: BaseException) -> None:
        self.metrics.alert_failures.labels(task="monitor", error=type(exc).__name__).inc()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-monitor")

    async def stop(self) -> None:
        await cancel(self._task)
        shut(self._executor)
        self._executor = None
        self._forget(list(self._seen))
