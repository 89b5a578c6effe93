"""The in-memory snapshot the decide path reads, so a decision never waits on Redis.

A background task rebuilds it every ``refresh_interval``: the registry when its
version changed, the counters every time, and each running experiment's
allocation (the policy's probabilities, computed once here and then sampled
per visitor). The snapshot object is immutable and swapped whole.

An experiment with ``model_weight`` > 0 and a trained conversion model gets the
model's predictions folded into its arms' priors before allocation
(``router.hybrid``); the model is read again only when its stored version changed.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from router.allocation import allocate_with_holdout, apply_floor
from router.history import Buckets, bucket_arrays
from router.experiments import Experiment, Variant
from router.hybrid import StoredModel, blend_overall, blend_segments, decode
from router.model import ModelError
from router.policies import ArmStats, make_policy
from router.policies.contextual import LinearThompson, pool_shares
from router.segments import busiest_segments, shrunk_stats
from router.store import Store, StoreUnavailable

log = logging.getLogger("croupier.snapshot")


@dataclass(frozen=True)
class Arms:
    """A running experiment's active variants and the traffic split among them."""

    variants: tuple[Variant, ...]
    probabilities: tuple[float, ...]
    cumulative: tuple[float, ...]
    # (variant id, probability) pairs, built once: every assignment of this
    # snapshot shares the same tuple, so the store can encode it once per batch
    labels: tuple[tuple[str, float], ...] = ()
    holdout: float = 0.0  # share of visitors on the fixed uniform split

    @classmethod
    def build(cls, variants: tuple[Variant, ...], bandit: np.ndarray, holdout: float = 0.0) -> Arms:
        """``bandit``: the policy's split outside the holdout. The logged propensity of
        every assignment is the mixture ``(1 - holdout) * bandit + holdout / K``."""
        cumulative = np.cumsum(bandit)
        cumulative[-1] = 1.0  # guard against rounding leaving a gap at the top
        mixed = (1.0 - holdout) * np.asarray(bandit) + holdout / len(variants)
        probs = tuple(float(p) for p in mixed)
        return cls(variants, probs, tuple(float(c) for c in cumulative),
                   tuple((v.id, p) for v, p in zip(variants, probs)), float(holdout))

    def pick(self, u: float) -> tuple[Variant, bool]:
        """The variant for a uniform draw ``u`` in [0, 1), and whether it is a holdout assignment."""
        h = self.holdout
        if u < h:  # the holdout: a uniform arm, analysable as a plain A/B split
            return self.variants[min(int(u / h * len(self.variants)), len(self.variants) - 1)], True
        u = (u - h) / (1.0 - h) if h else u
        return self.variants[bisect.bisect_right(self.cumulative, u)], False

    def labelled(self) -> tuple[tuple[str, float], ...]:
        return self.labels


@dataclass(frozen=True)
class SegmentArms:
    """A segmented experiment's bandits: one ``Arms`` per segment that has one (the busiest,
    up to the cap). ``full``: the cap is reached, so a visitor of any other segment is
    assigned by the experiment-wide bandit and not counted in a segment of their own."""

    arms: dict[str, Arms]
    full: bool = False


class ContextualArms:
    """A contextual experiment's posterior pool, from which each visitor's split is computed.

    Visitors with the same features share a split: it is cached (per snapshot, bounded)."""

    CACHE = 4096

    def __init__(self, variants: tuple[Variant, ...], policy: LinearThompson, pool: np.ndarray | None,
                 min_share: float, holdout: float) -> None:
        self.variants, self.policy, self.pool = variants, policy, pool
        self.min_share, self.holdout = min_share, holdout
        self._cache: dict[tuple[int, ...], Arms] = {}

    def arms_for(self, features: tuple[int, ...]) -> Arms:
        found = self._cache.get(features)
        if found is None:
            k = len(self.variants)
            # pool None: burning in, every arm alike
            shares = np.full(k, 1.0 / k) if self.pool is None or k == 1 else \
                apply_floor(pool_shares(self.pool, features), self.min_share)
            if len(self._cache) >= self.CACHE:
                self._cache.clear()
            found = self._cache[features] = Arms.build(self.variants, shares, self.holdout)
        return found


@dataclass(frozen=True)
class Snapshot:
    experiments: dict[str, Experiment] = field(default_factory=dict)
    arms: dict[str, Arms] = field(default_factory=dict)
    counters: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    registry_version: int = -1
    loaded_at: float = 0.0
    # (host, prefix) pairs, longest prefix first, host-specific before any-host
    _routes: tuple[tuple[str, str, Experiment], ...] = ()
    segments: dict[str, SegmentArms] = field(default_factory=dict)
    contextual: dict[str, ContextualArms] = field(default_factory=dict)

    @classmethod
    def build(cls, experiments: list[Experiment], arms: dict[str, Arms],
              counters: dict[str, dict[str, dict[str, float]]], version: int, *,
              segments: dict[str, SegmentArms] | None = None,
              contextual: dict[str, ContextualArms] | None = None) -> Snapshot:
        routes = sorted(((e.host, e.path_prefix, e) for e in experiments),
                        key=lambda r: (-len(r[1]), r[0] == ""))
        return cls({e.id: e for e in experiments}, arms, counters, version, time.time(), tuple(routes),
                   segments or {}, contextual or {})

    def match(self, host: str, path: str) -> Experiment | None:
        """The experiment owning ``host`` + ``path``: longest path prefix wins."""
        for exp_host, prefix, experiment in self._routes:
            if (not exp_host or exp_host == host) and path.startswith(prefix):
                return experiment
        return None


def arm_stats(experiment: Experiment, variants: tuple[Variant, ...],
              counters: dict[str, dict[str, float]]) -> ArmStats:
    """The bandit's evidence for ``variants``: trials and conversions of the experiment's goal."""
    goal = experiment.goal
    stats = [counters.get(v.id, {}) for v in variants]
    return ArmStats.from_counts(
        trials=[s.get("trials", 0.0) for s in stats],
        successes=[s.get(f"conv:{goal}", 0.0) for s in stats],
        prior_alpha=[v.prior_alpha for v in variants],
        prior_beta=[v.prior_beta for v in variants],
        value_sum=[s.get(f"value:{goal}", 0.0) for s in stats],
        value_sq_sum=[s.get(f"value2:{goal}", 0.0) for s in stats],
    )


def history_arm_stats(experiment: Experiment, variants: tuple[Variant, ...], policy,
                      buckets: Buckets, bucket_seconds: int, now: float) -> ArmStats:
    """A non-stationary policy's evidence: the recent time buckets, weighed by the policy."""
    since = int(now - policy.history_seconds) // bucket_seconds * bucket_seconds
    _, arrays = bucket_arrays(buckets, [v.id for v in variants], ["trials", f"conv:{experiment.goal}"], since)
    return policy.history_stats(arrays["trials"], arrays[f"conv:{experiment.goal}"], bucket_seconds=bucket_seconds,
                                prior_alpha=np.array([v.prior_alpha for v in variants]),
                                prior_beta=np.array([v.prior_beta for v in variants]))


def compute_arms(experiment: Experiment, counters: dict[str, dict[str, float]], rng: np.random.Generator,
                 *, buckets: Buckets | None = None, bucket_seconds: int = 60, now: float = 0.0,
                 model: StoredModel | None = None) -> Arms | None:
    variants = experiment.active_variants
    if not variants:
        return None
    policy = make_policy(experiment.policy, experiment.policy_params)
    lifetime = arm_stats(experiment, variants, counters)
    stats = lifetime
    if policy.needs_history:
        stats = history_arm_stats(experiment, variants, policy, buckets or {}, bucket_seconds, now or time.time())
    if model is not None and experiment.model_weight > 0:
        stats = blend_overall(stats, [v.id for v in variants], model, experiment.model_weight)
    probs, holdout = allocate_with_holdout(policy, stats, rng, min_share=experiment.min_share,
                                           burn_in=experiment.burn_in, holdout=experiment.holdout,
                                           burn_in_trials=lifetime.trials)
    return Arms.build(variants, probs, holdout)


def compute_segment_arms(experiment: Experiment, counters: dict[str, dict[str, float]],
                         segment_counters: dict[str, dict[str, dict[str, float]]], rng: np.random.Generator,
                         cap: int, model: StoredModel | None = None) -> SegmentArms | None:
    """One bandit per segment seen (the ``cap`` busiest), each on its own counts with the
    experiment-level prior (``router.segments.shrunk_stats``), all in one batched policy call."""
    variants = experiment.active_variants
    if not variants:
        return None
    goal = f"conv:{experiment.goal}"
    chosen, full = busiest_segments(segment_counters, [v.id for v in variants], cap)
    if not chosen:
        return SegmentArms({}, full)
    trials = np.array([[segment_counters[s].get(v.id, {}).get("trials", 0.0) for v in variants] for s in chosen])
    successes = np.array([[segment_counters[s].get(v.id, {}).get(goal, 0.0) for v in variants] for s in chosen])
    overall = arm_stats(experiment, variants, counters)
    stats = shrunk_stats(trials, successes, overall.trials, overall.successes,
                         [v.prior_alpha for v in variants], [v.prior_beta for v in variants])
    if model is not None and experiment.model_weight > 0:
        stats = blend_segments(stats, chosen, [v.id for v in variants], model, experiment.model_weight)
    policy = make_policy(experiment.policy, experiment.policy_params)
    probs, holdout = allocate_with_holdout(policy, stats, rng, min_share=experiment.min_share,
                                           burn_in=experiment.burn_in, holdout=experiment.holdout,
                                           burn_in_trials=np.broadcast_to(overall.trials, trials.shape))
    return SegmentArms({s: Arms.build(variants, probs[i], holdout) for i, s in enumerate(chosen)}, full)


def linear_arrays(variants: tuple[Variant, ...], state: dict[str, dict], dimensions: int) -> tuple[np.ndarray, np.ndarray]:
    """The summed ``x x^T`` (K, d, d) and ``r x`` (K, d) of each variant from the store's pair counts."""
    gram = np.zeros((len(variants), dimensions, dimensions))
    rewards = np.zeros((len(variants), dimensions))
    for k, v in enumerate(variants):
        for key, total in state.get(v.id, {}).items():
            if isinstance(key, tuple):
                i, j = key
                if i < dimensions and j < dimensions:
                    gram[k, i, j] = gram[k, j, i] = total
            elif key < dimensions:
                rewards[k, key] = total
    return gram, rewards


def compute_contextual(experiment: Experiment, counters: dict[str, dict[str, float]], state: dict[str, dict],
                       rng: np.random.Generator) -> ContextualArms | None:
    """The posterior pool of a contextual policy, or none (uniform) during the burn-in."""
    variants = experiment.active_variants
    policy = make_policy(experiment.policy, experiment.policy_params)
    if not variants or not isinstance(policy, LinearThompson):
        return None
    trials = arm_stats(experiment, variants, counters).trials
    pool = None
    if not (trials < experiment.burn_in).any():
        gram, rewards = linear_arrays(variants, state, policy.dimensions)
        pool = policy.posterior_pool(gram, rewards, rng)
    return ContextualArms(variants, policy, pool, experiment.min_share, experiment.holdout)


class SnapshotKeeper:
    """Owns the current snapshot and the task that refreshes it."""

    def __init__(self, store: Store, refresh_interval: float, rng: np.random.Generator,
                 bucket_seconds: int = 60, max_segments: int = 50) -> None:
        self.store = store
        self.max_segments = max_segments
        self.refresh_interval = refresh_interval
        self.bucket_seconds = bucket_seconds
        self.rng = rng
        self.current = Snapshot()
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None
        self.models: dict[str, StoredModel] = {}  # experiment → the conversion model in use
        self._unreadable: dict[str, int] = {}  # experiment → a model version that could not be read

    async def refresh(self) -> Snapshot:
        previous = self.current
        version = await self.store.registry_version()
        if version != previous.registry_version:
            experiments = await self.store.list_experiments()
        else:
            experiments = list(previous.experiments.values())
        counters = await self.store.counters(e.id for e in experiments)
        arms = {}
        now = time.time()
        running = [e for e in experiments if e.status == "running"]
        segmented = await self.store.segment_counters(e.id for e in running if e.segment_keys)
        models = await self.load_models(running)
        segments, contextual = {}, {}
        for e in running:
            if e.segment_keys:
                computed_segments = compute_segment_arms(e, counters.get(e.id, {}), segmented.get(e.id, {}),
                                                         self.rng, self.max_segments, models.get(e.id))
                if computed_segments:
                    segments[e.id] = computed_segments
            if make_policy(e.policy, e.policy_params).needs_context:
                computed_contextual = compute_contextual(e, counters.get(e.id, {}),
                                                         await self.store.linear_state(e.id), self.rng)
                if computed_contextual:
                    contextual[e.id] = computed_contextual
        for e in experiments:
            if e.status != "running":
                continue
            # only non-stationary policies read the time buckets (a larger read)
            buckets = await self.store.buckets(e.id) if make_policy(e.policy, e.policy_params).needs_history \
                else None
            computed = compute_arms(e, counters.get(e.id, {}), self.rng, buckets=buckets,
                                    bucket_seconds=self.bucket_seconds, now=now, model=models.get(e.id))
            if computed:
                arms[e.id] = computed
        self.current = Snapshot.build(experiments, arms, counters, version, segments=segments,
                                      contextual=contextual)
        self.last_error = None
        return self.current

    async def load_models(self, running: list[Experiment]) -> dict[str, StoredModel]:
        """The conversion models of the experiments that blend one in: a pipelined version check
        per refresh, and a read of the model itself only when its version changed."""
        versions = await self.store.model_versions(e.id for e in running if e.model_weight > 0)
        models = {}
        for exp_id, version in versions.items():
            held = self.models.get(exp_id)
            if held is not None and held.version == version:
                models[exp_id] = held
            elif version and self._unreadable.get(exp_id) != version:
                found = await self.store.load_model(exp_id)
                if found is None:
                    continue
                try:
                    models[exp_id] = decode(found[1], found[0])
                except ModelError as exc:  # the bandit alone until a readable model is trained
                    log.warning("experiment %s: stored model version %s is unreadable: %s", exp_id, found[0], exc)
                    self._unreadable[exp_id] = found[0]
        self.models = models
        return models

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                # keep deciding from the last good snapshot; Redis may come back
                if self.last_error is None:
                    log.warning("snapshot refresh failed, serving the last snapshot: %s", exc)
                self.last_error = str(exc)
            except Exception:  # a bad record must not stop refreshing for everyone else
                log.exception("snapshot refresh failed")
            await asyncio.sleep(self.refresh_interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="croupier-snapshot")

    async def stop(self) -> None:
        # Cancel until the task is done: redis-py can absorb a cancellation that lands inside a
        # command (it catches it to drop the connection), and the loop would then refresh on
        # while stop waited for it forever.
        while self._task and not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=0.1)
