"""The in-memory snapshot the decide path reads, so a decision never waits on Redis.

A background task rebuilds it every ``refresh_interval``: the registry when its
version changed, the counters every time, and each running experiment's
allocation (the policy's probabilities, computed once here and then sampled
per visitor). The snapshot object is immutable and swapped whole.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from router.allocation import allocate_with_holdout
from router.history import Buckets, bucket_arrays
from router.experiments import Experiment, Variant
from router.policies import ArmStats, make_policy
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
class Snapshot:
    experiments: dict[str, Experiment] = field(default_factory=dict)
    arms: dict[str, Arms] = field(default_factory=dict)
    counters: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    registry_version: int = -1
    loaded_at: float = 0.0
    # (host, prefix) pairs, longest prefix first, host-specific before any-host
    _routes: tuple[tuple[str, str, Experiment], ...] = ()

    @classmethod
    def build(cls, experiments: list[Experiment], arms: dict[str, Arms],
              counters: dict[str, dict[str, dict[str, float]]], version: int) -> Snapshot:
        routes = sorted(((e.host, e.path_prefix, e) for e in experiments),
                        key=lambda r: (-len(r[1]), r[0] == ""))
        return cls({e.id: e for e in experiments}, arms, counters, version, time.time(), tuple(routes))

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
                 *, buckets: Buckets | None = None, bucket_seconds: int = 60, now: float = 0.0) -> Arms | None:
    variants = experiment.active_variants
    if not variants:
        return None
    policy = make_policy(experiment.policy, experiment.policy_params)
    lifetime = arm_stats(experiment, variants, counters)
    stats = lifetime
    if policy.needs_history:
        stats = history_arm_stats(experiment, variants, policy, buckets or {}, bucket_seconds, now or time.time())
    probs, holdout = allocate_with_holdout(policy, stats, rng, min_share=experiment.min_share,
                                           burn_in=experiment.burn_in, holdout=experiment.holdout,
                                           burn_in_trials=lifetime.trials)
    return Arms.build(variants, probs, holdout)


class SnapshotKeeper:
    """Owns the current snapshot and the task that refreshes it."""

    def __init__(self, store: Store, refresh_interval: float, rng: np.random.Generator,
                 bucket_seconds: int = 60) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self.bucket_seconds = bucket_seconds
        self.rng = rng
        self.current = Snapshot()
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None

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
        for e in experiments:
            if e.status != "running":
                continue
            # only non-stationary policies read the time buckets (a larger read)
            buckets = await self.store.buckets(e.id) if make_policy(e.policy, e.policy_params).needs_history \
                else None
            computed = compute_arms(e, counters.get(e.id, {}), self.rng, buckets=buckets,
                                    bucket_seconds=self.bucket_seconds, now=now)
            if computed:
                arms[e.id] = computed
        self.current = Snapshot.build(experiments, arms, counters, version)
        self.last_error = None
        return self.current

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
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
