"""The keeper of the decide path's snapshot: a background refresh that costs what changed.

What runs where. The Redis reads are awaited on the event loop (I/O, pipelined in
batches by ``router/store.py``); the CPU work (parsing registry entries and counters,
the policies' allocations, building the snapshot) runs on the keeper's own worker
thread. The loop only swaps the finished snapshot in: decisions read ``current``, an
immutable object, and never wait on a refresh.

What a refresh costs:
- the registry: its version and change log (``router/lua/registry_changed.lua``) name
  the experiments created, changed or removed since the last refresh; only their
  entries are read again, and an entry whose stored text did not change keeps its
  parsed record and its policy object (built once per record);
- the counters: the recording scripts bump an experiment's counters revision with every
  write, so a refresh reads every revision (one MGET per batch of experiments) and the
  counters hash only of those whose revision moved, plus a rolling slice of the others
  (``SWEEP`` a refresh), which catches a write that did not bump it (a router of an
  older release during a rolling upgrade). A running experiment keeps its allocations,
  the very same objects, while its counters hash, its record, its model version and
  (non-stationary policies) the start of its history window are what they were. The
  scripts write segment counts, time buckets and contextual statistics together with
  the counters hash, so those are read only for the experiments recomputed;
- the allocations of the experiments recomputed are batched: one policy call per group
  of experiments sharing a policy, a number of arms and the controls
  (``croupier.router.snapshot.compute_many``).

A conversion model (``model_weight`` > 0) is read again only when its stored version
changed; a version that could not be decoded is not read again until a new one.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from croupier.router.background import cancel, shut
from croupier.router.experiments import EXPERIMENT_STATUSES, Experiment, InvalidExperiment, parse_experiment
from croupier.router.hybrid import StoredModel, decode
from croupier.router.model import ModelError
from croupier.router.policies import Policy, PolicyError, make_policy
from croupier.router.snapshot import Computed, Job, Routes, Snapshot, compute_many, history_since
from croupier.router.store import Store, StoreUnavailable, parse_buckets, parse_counters, parse_linear, parse_segment_counters

if TYPE_CHECKING:
    from croupier.router.metrics import Metrics

log = logging.getLogger("croupier.snapshot")
SWEEP = 100  # experiments whose counters a refresh reads even though their revision did not move


@dataclass(frozen=True)
class Registry:
    """The experiments as last read: their stored text, parsed records and policies."""

    version: int = -1
    epoch: str = ""  # the registry's token (router/store.py): another one means it was written anew
    docs: dict[str, str] = field(default_factory=dict)
    experiments: dict[str, Experiment] = field(default_factory=dict)
    policies: dict[str, Policy] = field(default_factory=dict)
    routes: Routes = field(default_factory=lambda: Routes(()))


# What an experiment's held allocation was computed from, besides its counters hash:
# (its record, compared by identity; its model version; its history window's start).
Basis = tuple[Experiment, int, int | None]


@dataclass(frozen=True)
class Plan:
    """The first half of a refresh: which experiments to recompute, and everyone's counters."""

    registry: Registry
    revisions: dict[str, int]
    stats: dict[str, dict[str, str]]
    counters: dict[str, dict[str, dict[str, float]]]
    bases: dict[str, Basis]  # every running experiment's
    stale: tuple[str, ...]  # the running experiments whose basis or counters changed


def reparse(registry: Registry, version: int, epoch: str, docs: dict[str, str | None], full: bool) -> Registry:
    """The registry with ``docs`` read again (all of them when ``full``). Unchanged text keeps
    its record and policy; a record that cannot be parsed is left out (and logged), so it
    cannot stop the others from being served."""
    held = registry.docs
    if full:
        texts = {exp_id: doc for exp_id, doc in docs.items() if doc}
    else:
        texts = dict(held)
        for exp_id, doc in docs.items():
            if doc:
                texts[exp_id] = doc
            else:
                texts.pop(exp_id, None)
    experiments: dict[str, Experiment] = {}
    policies: dict[str, Policy] = {}
    for exp_id in sorted(texts):
        doc = texts[exp_id]
        if held.get(exp_id) == doc and exp_id in registry.experiments:
            experiments[exp_id], policies[exp_id] = registry.experiments[exp_id], registry.policies[exp_id]
            continue
        try:
            experiment = parse_experiment(json.loads(doc))
            policies[exp_id] = make_policy(experiment.policy, experiment.policy_params)
            experiments[exp_id] = experiment
        except (ValueError, InvalidExperiment, PolicyError) as exc:
            log.warning("experiment %s: its registry entry cannot be read, leaving it out: %s", exp_id, exc)
    return Registry(version, epoch, texts, experiments, policies, Routes(experiments.values()))


class SnapshotKeeper:
    """Owns the current snapshot and the task that refreshes it."""

    def __init__(self, store: Store, refresh_interval: float, rng: np.random.Generator,
                 bucket_seconds: int = 60, max_segments: int = 50, *, metrics: Metrics | None = None) -> None:
        self.store = store
        self.max_segments = max_segments
        self.refresh_interval = refresh_interval
        self.bucket_seconds = bucket_seconds
        self.rng = rng  # used on the worker thread only
        self.current = Snapshot()
        self.last_error: str | None = None
        self.models: dict[str, StoredModel] = {}  # experiment → the conversion model in use
        self.recomputed = 0  # experiments whose allocations the last refresh computed
        self.metrics = metrics
        self._unreadable: dict[str, int] = {}  # experiment → a model version that could not be read
        self._registry = Registry()
        self._revisions: dict[str, str | None] = {}  # the counters revision of each hash held
        # per registry read (by the identity of its experiments): who may blend a model in,
        # and how many experiments have each status
        self._listed: tuple[dict[str, Experiment] | None, list[str], Counter] = (None, [], Counter())
        self._stats: dict[str, dict[str, str]] = {}  # the counters hashes last read
        self._sweep = 0  # where the next slice of the rolling sweep starts
        self._counters: dict[str, dict[str, dict[str, float]]] = {}
        self._bases: dict[str, Basis] = {}
        self._history_of: dict[str, Experiment] | None = None  # the registry _history was listed from
        self._history: list[str] = []
        self._computed: dict[str, Computed] = {}
        self._lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task | None = None
        if metrics is not None:
            metrics.snapshot_age.set_function(self.age)

    def age(self) -> float:
        """Seconds since the current snapshot's data was read (infinite before the first)."""
        loaded = self.current.loaded_at
        return time.time() - loaded if loaded else float("inf")

    async def _in_worker(self, fn, *args: Any) -> Any:
        # one thread of our own: refreshes never wait for (nor crowd) other users of the default
        # executor, and the generator is only ever used there
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="croupier-refresh")
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    async def refresh(self) -> Snapshot:
        async with self._lock:
            started = time.perf_counter()
            snapshot = await self._refresh()
            if self.metrics is not None:
                self.metrics.snapshot_refresh_seconds.observe(time.perf_counter() - started)
                self.metrics.snapshot_recomputed.set(self.recomputed)
                statuses = self._listing(self._registry)[2]
                for status in EXPERIMENT_STATUSES:
                    self.metrics.experiments.labels(status=status).set(statuses.get(status, 0))
            return snapshot

    async def _refresh(self) -> Snapshot:
        read_at = time.time()
        registry = self._registry
        changes = await self.store.registry_changes(registry.version, registry.epoch)
        held_revisions = self._revisions
        if changes.changed is None:
            docs = await self.store.experiment_docs(await self.store.experiment_ids())
            registry = await self._in_worker(reparse, registry, changes.version, changes.epoch, docs, True)
            held_revisions = {}  # a registry that went back may be a Redis that lost data: read all
        elif changes.changed:
            docs = await self.store.experiment_docs(sorted(changes.changed))
            registry = await self._in_worker(reparse, registry, changes.version, changes.epoch, docs, False)
        elif changes.version != registry.version:
            registry = Registry(changes.version, changes.epoch, registry.docs, registry.experiments,
                                registry.policies, registry.routes)
        ids = list(registry.experiments)
        revisions = await self.store.revisions(ids)
        stats = await self.store.stats_hashes(self._to_read(ids, revisions, held_revisions))
        versions = await self.store.model_versions(self._listing(registry)[1])
        found = await self._read_models(versions)
        now = time.time()
        plan = await self._in_worker(self._plan, registry, revisions, stats, versions, now)
        stale = [registry.experiments[exp_id] for exp_id in plan.stale]
        policies = registry.policies
        segments = await self.store.segment_hashes(e.id for e in stale if e.segment_keys)
        buckets = await self.store.bucket_hashes(e.id for e in stale if policies[e.id].needs_history)
        linear = await self.store.linear_hashes(e.id for e in stale if policies[e.id].needs_context)
        engagement = await self.store.engagement_hashes(e.id for e in stale if e.reward.needs_engagement)
        snapshot, computed, models, unreadable = await self._in_worker(
            self._compute, plan, versions, found, segments, buckets, linear, engagement, now, read_at)
        # commit: all of it, or (when anything above raised) none of it
        self._registry, self._revisions, self._stats = registry, plan.revisions, plan.stats
        self._counters, self._bases = plan.counters, plan.bases
        self._computed, self.models, self._unreadable = computed, models, unreadable
        self.recomputed = len(stale)
        self.current = snapshot
        self.last_error = None
        return snapshot

    def _listing(self, registry: Registry) -> tuple[dict[str, Experiment], list[str], Counter]:
        """The running experiments that blend a model in, and the count of each status, listed
        once per registry read rather than in every refresh."""
        if self._listed[0] is not registry.experiments:
            experiments = registry.experiments
            self._listed = (experiments,
                            [e.id for e in experiments.values() if e.status == "running" and e.model_weight > 0],
                            Counter(e.status for e in experiments.values()))
        return self._listed

    def _to_read(self, ids: list[str], revisions: dict[str, str | None], held: dict[str, str | None]) -> list[str]:
        """The experiments whose counters hash to read: revision moved (or none held), and the
        sweep's next slice."""
        # a difference of item views runs in C: a steady refresh of 10,000 experiments finds
        # its few moved revisions without a Python pass over all of them
        wanted = {exp_id for exp_id, _ in revisions.items() - held.items()}
        if len(ids) > len(wanted):
            start = self._sweep % len(ids)
            wanted.update(ids[start:start + SWEEP], ids[:max(0, start + SWEEP - len(ids))])
            self._sweep = start + SWEEP
        return sorted(wanted)

    async def _read_models(self, versions: dict[str, int]) -> dict[str, tuple[int, dict]]:
        """The stored models whose version is not the one held (nor one known to be unreadable).
        Models change when one is trained, rarely, and each is up to megabytes: read one by
        one, concurrently, rather than in one pipeline."""
        wanted = []
        for exp_id, version in versions.items():
            held = self.models.get(exp_id)
            if version and (held is None or held.version != version) and self._unreadable.get(exp_id) != version:
                wanted.append(exp_id)
        loaded = await asyncio.gather(*(self.store.load_model(exp_id) for exp_id in wanted))
        return {exp_id: found for exp_id, found in zip(wanted, loaded) if found is not None}

    # -- on the worker thread -------------------------------------------------

    def _plan(self, registry: Registry, revisions: dict[str, int], read: dict[str, dict[str, str]],
              versions: dict[str, int], now: float) -> Plan:
        held = self._registry
        if registry.experiments is held.experiments and held.experiments:
            return self._plan_changes(registry, revisions, read, versions, now)
        stats: dict[str, dict[str, str]] = {}
        counters: dict[str, dict[str, dict[str, float]]] = {}
        changed: set[str] = set()
        for exp_id in registry.experiments:
            raw = read.get(exp_id)
            if raw is None or (self._stats.get(exp_id) == raw and exp_id in self._counters):
                stats[exp_id], counters[exp_id] = self._stats[exp_id], self._counters[exp_id]
            else:
                stats[exp_id], counters[exp_id] = raw, parse_counters(raw)
                changed.add(exp_id)
        bases: dict[str, Basis] = {}
        stale = self._stale(registry.experiments, registry, changed, versions, now, bases)
        return Plan(registry, revisions, stats, counters, bases, stale)

    def _plan_changes(self, registry: Registry, revisions: dict[str, int], read: dict[str, dict[str, str]],
                      versions: dict[str, int], now: float) -> Plan:
        """The plan when the registry's records are the ones held: only the experiments whose
        counters were read and moved, whose model version may have changed, or whose history
        window moves with the clock are looked at; everyone else's state is carried over
        (dict copies, not a Python pass over every experiment: at 10,000 experiments that
        pass cost most of a steady refresh)."""
        stats, counters, bases = dict(self._stats), dict(self._counters), dict(self._bases)
        experiments = registry.experiments
        changed = set()
        for exp_id, raw in read.items():
            if exp_id in experiments and not (stats.get(exp_id) == raw and exp_id in counters):
                stats[exp_id], counters[exp_id] = raw, parse_counters(raw)
                changed.add(exp_id)
        if self._history_of is not experiments:  # the experiments whose window moves with the clock
            self._history_of = experiments
            self._history = [exp_id for exp_id, policy in registry.policies.items() if policy.needs_history]
        stale = self._stale(sorted(changed.union(versions, self._history)), registry, changed, versions, now, bases)
        return Plan(registry, revisions, stats, counters, bases, stale)

    def _stale(self, ids: Iterable[str], registry: Registry, changed: set[str], versions: dict[str, int],
               now: float, bases: dict[str, Basis]) -> tuple[str, ...]:
        """The running experiments among ``ids`` to recompute (counters moved, or another basis
        than the held allocation's); each one's basis is recorded in ``bases``."""
        stale = []
        for exp_id in ids:
            e = registry.experiments[exp_id]
            if e.status != "running":
                continue
            basis = bases[exp_id] = self._basis(e, registry.policies[exp_id], versions, now)
            if exp_id in changed or self._moved(exp_id, basis):
                stale.append(exp_id)
        return tuple(stale)

    def _basis(self, e: Experiment, policy: Policy, versions: dict[str, int], now: float) -> Basis:
        return (e, versions.get(e.id, 0),
                history_since(policy, self.bucket_seconds, now) if policy.needs_history else None)

    def _moved(self, exp_id: str, basis: Basis) -> bool:
        """Whether the held allocation of ``exp_id`` was computed from another basis (or none)."""
        held = self._bases.get(exp_id)
        return held is None or held[0] is not basis[0] or held[1:] != basis[1:]

    def _compute(self, plan: Plan, versions: dict[str, int], found: dict[str, tuple[int, dict]],
                 segments: dict[str, dict[str, str]], buckets: dict[str, dict[str, str]],
                 linear: dict[str, dict[str, str]], engagement: dict[str, dict[str, str]], now: float,
                 read_at: float) -> tuple[Snapshot, dict[str, Computed], dict[str, StoredModel], dict[str, int]]:
        models, unreadable = self._models(versions, found)
        registry = plan.registry
        jobs = [Job(e, plan.counters.get(e.id, {}), registry.policies[e.id],
                    buckets=parse_buckets(buckets[e.id]) if e.id in buckets else None,
                    segment_counters=parse_segment_counters(segments[e.id]) if e.id in segments else None,
                    linear=parse_linear(linear[e.id]) if e.id in linear else None,
                    model=models.get(e.id), previous=self._factorial_fit(e.id),
                    engagement=parse_counters(engagement[e.id]) if e.id in engagement else None)
                for e in (registry.experiments[exp_id] for exp_id in plan.stale)]
        fresh = compute_many(jobs, self.rng, bucket_seconds=self.bucket_seconds, now=now,
                             max_segments=self.max_segments)
        held = self.current
        if self._computed.keys() == plan.bases.keys():  # the same running experiments: update in place
            computed = dict(self._computed)
            computed.update(fresh)
            arms, segments, contextual = dict(held.arms), dict(held.segments), dict(held.contextual)
            factorial = dict(held.factorial)
            for exp_id, c in fresh.items():
                for table, value in ((arms, c.arms), (segments, c.segments), (contextual, c.contextual),
                                     (factorial, c.factorial)):
                    if value is None:
                        table.pop(exp_id, None)
                    else:
                        table[exp_id] = value
        else:
            computed = {exp_id: fresh[exp_id] if exp_id in fresh else self._computed[exp_id] for exp_id in plan.bases}
            arms = {exp_id: c.arms for exp_id, c in computed.items() if c.arms is not None}
            segments = {exp_id: c.segments for exp_id, c in computed.items() if c.segments is not None}
            contextual = {exp_id: c.contextual for exp_id, c in computed.items() if c.contextual is not None}
            factorial = {exp_id: c.factorial for exp_id, c in computed.items() if c.factorial is not None}
        snapshot = Snapshot(registry.experiments, arms, plan.counters, registry.version, read_at, registry.routes,
                            segments, contextual, factorial)
        return snapshot, computed, models, unreadable

    def _factorial_fit(self, exp_id: str):
        held = self._computed.get(exp_id)
        return held.factorial if held is not None else None

    def _models(self, versions: dict[str, int],
                found: dict[str, tuple[int, dict]]) -> tuple[dict[str, StoredModel], dict[str, int]]:
        """The models in use after this refresh: the held ones still current, and those just read."""
        models: dict[str, StoredModel] = {}
        unreadable = {exp_id: v for exp_id, v in self._unreadable.items() if exp_id in versions}
        for exp_id, version in versions.items():
            held = self.models.get(exp_id)
            if held is not None and held.version == version:
                models[exp_id] = held
            elif exp_id in found:
                stored_version, doc = found[exp_id]
                try:
                    models[exp_id] = decode(doc, stored_version)
                except ModelError as exc:  # the bandit alone until a readable model is trained
                    log.warning("experiment %s: stored model version %s is unreadable: %s",
                                exp_id, stored_version, exc)
                    unreadable[exp_id] = stored_version
        return models, unreadable

    # -- the background task --------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                # keep deciding from the last good snapshot; Redis may come back
                if self.last_error is None:
                    log.warning("snapshot refresh failed, serving the last snapshot: %s", exc)
                self.last_error = str(exc)
                self._count_failure(exc)
            except Exception as exc:  # a bad record must not stop refreshing for everyone else
                log.exception("snapshot refresh failed")
                self._count_failure(exc)
            await asyncio.sleep(self.refresh_interval)

    def _count_failure(self, exc: BaseException) -> None:
        if self.metrics is not None:
            self.metrics.snapshot_refresh_failures.labels(error=type(exc).__name__).inc()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-snapshot")

    async def stop(self) -> None:
        await cancel(self._task)
        shut(self._executor)
        self._executor = None
