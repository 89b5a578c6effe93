"""The in-memory snapshot the decide path reads, so a decision never waits on Redis,
and the pure computation of its allocations.

The snapshot object is immutable and swapped whole by the keeper
(``router/refresh.py``), which rebuilds it every ``refresh_interval`` at the cost
of what changed. Each running experiment's allocation (the policy's
probabilities, computed here once and then sampled per visitor) is computed for
many experiments at once: experiments that share a policy, a number of arms and
the experiment-level controls form one group, and a group is one batched policy
call over arrays ``(E, K)``.

An experiment with ``model_weight`` > 0 and a trained conversion model gets the
model's predictions folded into its arms' priors before allocation
(``croupier.router.hybrid``).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

import numpy as np

from croupier.router.allocation import allocate_with_holdout, apply_floor, holdout_split, with_holdout
from croupier.router.experiments import Experiment, Variant
from croupier.router.guardrail_check import capped, limits
from croupier.router.guardrails import required_burn_in
from croupier.router.history import Buckets, bucket_arrays
from croupier.router.hybrid import StoredModel, blend_overall, blend_segments
from croupier.router.policies import ArmStats, Policy, make_policy
from croupier.router.policies.contextual import LinearThompson, pool_shares
from croupier.router.policies.factorial import FactorialState, FactorialThompson, level_sums
from croupier.router.segments import busiest_segments, shrunk_stats


@dataclass(frozen=True)
class Arms:
    """A running experiment's active variants and the traffic split among them."""

    variants: tuple[Variant, ...]
    probabilities: tuple[float, ...]
    cumulative: tuple[float, ...]
    # (variant id, probability) pairs, built once: every assignment of this
    # snapshot shares the same tuple, so the store can encode it once per batch
    labels: tuple[tuple[str, float], ...] = ()
    holdout: float = 0.0  # share of visitors on the fixed split
    # the holdout's split, cumulative, when it is not uniform over every variant: a guardrail
    # breach holds its variant to its limit there too (allocation.holdout_split)
    holdout_cumulative: tuple[float, ...] = ()

    @classmethod
    def build(cls, variants: tuple[Variant, ...], bandit: np.ndarray, holdout: float = 0.0,
              holdout_split: np.ndarray | None = None) -> Arms:
        """``bandit``: the policy's split outside the holdout; ``holdout_split``: the holdout's
        (None: uniform). The logged propensity of every assignment is the mixture
        ``(1 - holdout) * bandit + holdout * holdout_split`` (``allocation.with_holdout``)."""
        fixed = None
        if holdout_split is not None:
            fixed = np.asarray(holdout_split, dtype=np.float64)
            total = fixed.sum()
            fixed = fixed / total if total > 0 else None  # no arm left open: uniform, never empty
        mixed = with_holdout(bandit, holdout, fixed)
        probs = tuple(float(p) for p in mixed)
        return cls(variants, probs, _cumulative(bandit), tuple((v.id, p) for v, p in zip(variants, probs)),
                   float(holdout), () if fixed is None else _cumulative(fixed))

    def pick(self, u: float) -> tuple[Variant, bool]:
        """The variant for a uniform draw ``u`` in [0, 1), and whether it is a holdout assignment."""
        h = self.holdout
        if u < h:  # the holdout: a fixed split, analysable as a plain A/B split
            if self.holdout_cumulative:
                index = bisect.bisect_right(self.holdout_cumulative, u / h)
                return self.variants[min(index, len(self.variants) - 1)], True
            return self.variants[min(int(u / h * len(self.variants)), len(self.variants) - 1)], True
        u = (u - h) / (1.0 - h) if h else u
        return self.variants[bisect.bisect_right(self.cumulative, u)], False

    def pick_many(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``pick`` for many uniform draws at once: each draw's variant index and whether it is
        a holdout assignment."""
        k, h = len(self.variants), self.holdout
        in_holdout = u < h
        scaled = (u - h) / (1.0 - h) if h else u
        index = np.searchsorted(np.asarray(self.cumulative), scaled, side="right")
        if h:
            fixed = np.searchsorted(np.asarray(self.holdout_cumulative), u / h, side="right") \
                if self.holdout_cumulative else (u / h * k).astype(np.int64)
            index = np.where(in_holdout, fixed, index)
        return np.minimum(index, k - 1), in_holdout

    def holdout_shares(self) -> np.ndarray:
        """The holdout's split, ``(K,)``."""
        if not self.holdout_cumulative:
            return np.full(len(self.variants), 1.0 / len(self.variants))
        return np.diff(np.concatenate(([0.0], self.holdout_cumulative)))

    def labelled(self) -> tuple[tuple[str, float], ...]:
        return self.labels


def _cumulative(split: np.ndarray) -> tuple[float, ...]:
    """The split's cumulative sums for ``bisect``, ending at exactly 1 from the last arm with a
    share on: rounding never leaves a gap at the top, nor a sliver for a trailing arm with none
    (a paused one)."""
    split = np.asarray(split, dtype=np.float64)
    cumulative = np.cumsum(split)
    open_arms = np.flatnonzero(split > 0)
    cumulative[open_arms[-1] if len(open_arms) else -1:] = 1.0
    return tuple(float(c) for c in cumulative)


def holdout_split_of(experiment: Experiment, variants: tuple[Variant, ...],
                     counters: dict[str, dict[str, float]] | None) -> np.ndarray | None:
    """The holdout's split of an experiment: None (uniform) unless it has a holdout and a
    guardrail breach is held; then every breached variant at most its limit of it
    (``allocation.holdout_split``), as in the bandit's split."""
    if not experiment.holdout or not limits(experiment, variants, counters or {}):
        return None
    return holdout_split(len(variants), lambda split: capped(experiment, variants, split, counters))


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
                 min_share: float, holdout: float, limit: Callable[[np.ndarray], np.ndarray] | None = None,
                 holdout_split: np.ndarray | None = None) -> None:
        self.variants, self.policy, self.pool = variants, policy, pool
        self.min_share, self.holdout = min_share, holdout
        self.limit, self.holdout_split = limit, holdout_split  # the guardrail breaches held
        self._cache: dict[tuple[int, ...], Arms] = {}

    def arms_for(self, features: tuple[int, ...]) -> Arms:
        found = self._cache.get(features)
        if found is None:
            k = len(self.variants)
            # pool None: burning in, every arm alike
            shares = np.full(k, 1.0 / k) if self.pool is None or k == 1 else \
                apply_floor(pool_shares(self.pool, features), self.min_share)
            if self.limit is not None:
                shares = self.limit(shares)
            if len(self._cache) >= self.CACHE:
                self._cache.clear()
            found = self._cache[features] = Arms.build(self.variants, shares, self.holdout, self.holdout_split)
        return found


@dataclass(frozen=True)
class Snapshot:
    experiments: dict[str, Experiment] = field(default_factory=dict)
    arms: dict[str, Arms] = field(default_factory=dict)
    counters: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    registry_version: int = -1
    loaded_at: float = 0.0  # when the data it was computed from was read from Redis
    _routes: Routes = field(default_factory=lambda: Routes(()))
    segments: dict[str, SegmentArms] = field(default_factory=dict)
    contextual: dict[str, ContextualArms] = field(default_factory=dict)
    # a factorial experiment's model as its last refresh fitted it: the stats read its posterior
    factorial: dict[str, FactorialState] = field(default_factory=dict)

    @classmethod
    def build(cls, experiments: Iterable[Experiment], arms: dict[str, Arms],
              counters: dict[str, dict[str, dict[str, float]]], version: int, *,
              segments: dict[str, SegmentArms] | None = None,
              contextual: dict[str, ContextualArms] | None = None,
              loaded_at: float | None = None) -> Snapshot:
        experiments = list(experiments)
        return cls({e.id: e for e in experiments}, arms, counters, version,
                   time.time() if loaded_at is None else loaded_at, Routes(experiments),
                   segments or {}, contextual or {})

    def match(self, host: str, path: str) -> Experiment | None:
        """The experiment owning ``host`` + ``path``: longest path prefix wins."""
        return self._routes.find(host, path)


class Routes:
    """Which experiment owns a host and path: the longest registered prefix of the path wins,
    and at equal prefixes a host's own experiment wins over an any-host one.

    A decision looks the path's prefixes up in a dict, one per registered prefix length,
    longest first: its cost grows with the number of distinct prefix lengths (a few dozen at
    most), not with the number of experiments, where a scan of 10,000 prefixes cost every
    decision about a millisecond."""

    __slots__ = ("owners", "lengths")

    def __init__(self, experiments: Iterable[Experiment]) -> None:
        self.owners: dict[tuple[str, str], Experiment] = {}
        for e in experiments:
            self.owners.setdefault((e.host, e.path_prefix), e)  # the first registered keeps a shared prefix
        self.lengths = tuple(sorted({len(prefix) for _, prefix in self.owners}, reverse=True))

    def find(self, host: str, path: str) -> Experiment | None:
        owner = self.owners.get
        size = len(path)
        for length in self.lengths:
            if length <= size:
                prefix = path[:length]
                found = owner((host, prefix)) or owner(("", prefix))
                if found is not None:
                    return found
        return None


# -- the allocations ---------------------------------------------------------

# Experiments per batched policy call, times their arms: bounds the memory of a Monte
# Carlo policy's draws (draws x cells floats) and hands the GIL back between chunks.
CHUNK_CELLS = 192


@dataclass(frozen=True)
class Job:
    """One experiment whose allocations a refresh computes, with everything they read."""

    experiment: Experiment
    counters: dict[str, dict[str, float]]
    policy: Policy | None = None  # built from the experiment when not given
    buckets: Buckets | None = None  # a non-stationary policy's time buckets
    segment_counters: dict[str, dict[str, dict[str, float]]] | None = None  # a segmented experiment's
    linear: dict[str, dict] | None = None  # a contextual policy's sufficient statistics
    model: StoredModel | None = None
    previous: FactorialState | None = None  # a factorial model's last fit: the next one starts there
    engagement: dict[str, dict[str, float]] | None = None  # per variant, when the reward counts engaged views

    def the_policy(self) -> Policy:
        return self.policy or make_policy(self.experiment.policy, self.experiment.policy_params)


@dataclass(frozen=True)
class Computed:
    """An experiment's allocations: the experiment-wide split, and per segment or per visitor."""

    arms: Arms | None = None
    segments: SegmentArms | None = None
    contextual: ContextualArms | None = None
    factorial: FactorialState | None = None


def arm_stats(experiment: Experiment, variants: tuple[Variant, ...],
              counters: dict[str, dict[str, float]],
              engagement: dict[str, dict[str, float]] | None = None) -> ArmStats:
    """The bandit's evidence for ``variants``: trials and the summed reward
    (``croupier.router.reward``: conversions of the experiment's goal by default).
    ``engagement``: per variant engagement totals, for a reward that counts engaged views
    (none: no view reported engagement yet)."""
    goal = experiment.goal
    stats = [counters.get(v.id, {}) for v in variants]
    reward = experiment.reward
    engaged = [(engagement or {}).get(v.id, {}).get("engaged", 0.0) for v in variants] \
        if reward.needs_engagement else [0.0] * len(variants)
    def kept(s: dict[str, float], name: str) -> float:  # less what a detected change set aside
        return max(s.get(name, 0.0) - s.get(f"forgot:{name}", 0.0), 0.0)
    return ArmStats.from_counts(
        trials=[kept(s, "trials") for s in stats],
        successes=[reward.successes(kept(s, f"conv:{goal}"), e, kept(s, "trials")) for s, e in zip(stats, engaged)],
        prior_alpha=[v.prior_alpha for v in variants],
        prior_beta=[v.prior_beta for v in variants],
        value_sum=[s.get(f"value:{goal}", 0.0) for s in stats],
        value_sq_sum=[s.get(f"value2:{goal}", 0.0) for s in stats],
    )


def history_arm_stats(experiment: Experiment, variants: tuple[Variant, ...], policy,
                      buckets: Buckets, bucket_seconds: int, now: float) -> ArmStats:
    """A non-stationary policy's evidence: the recent time buckets, weighed by the policy."""
    since = history_since(policy, bucket_seconds, now)
    _, arrays = bucket_arrays(buckets, [v.id for v in variants], ["trials", f"conv:{experiment.goal}"], since)
    return policy.history_stats(arrays["trials"], arrays[f"conv:{experiment.goal}"], bucket_seconds=bucket_seconds,
                                prior_alpha=np.array([v.prior_alpha for v in variants]),
                                prior_beta=np.array([v.prior_beta for v in variants]))


def history_since(policy: Policy, bucket_seconds: int, now: float) -> int:
    """The first time bucket a non-stationary policy reads: its evidence changes when this moves,
    even without a new count."""
    return int(now - policy.history_seconds) // bucket_seconds * bucket_seconds


@dataclass
class Evidence:
    """One experiment's evidence for its experiment-wide split, ready for a batched policy call."""

    experiment: Experiment
    variants: tuple[Variant, ...]
    stats: ArmStats
    lifetime_trials: np.ndarray
    counters: dict[str, dict[str, float]] | None = None  # the guardrail breaches held are among them


def evidence(job: Job, policy: Policy, bucket_seconds: int, now: float) -> Evidence | None:
    experiment = job.experiment
    variants = experiment.active_variants
    if not variants:
        return None
    lifetime = arm_stats(experiment, variants, job.counters, job.engagement)
    stats = lifetime
    if policy.needs_history:
        stats = history_arm_stats(experiment, variants, policy, job.buckets or {}, bucket_seconds,
                                  now or time.time())
    if job.model is not None and experiment.model_weight > 0:
        stats = blend_overall(stats, [v.id for v in variants], job.model, experiment.model_weight)
    return Evidence(experiment, variants, stats, lifetime.trials, job.counters)


def _group_key(policy: Policy, pending: Evidence) -> Hashable:
    """Experiments whose splits one policy call can compute together: the same policy and
    hyperparameters, number of arms and experiment-level controls (the holdout is applied
    per experiment, after the call)."""
    e = pending.experiment
    try:
        hash(policy)
        same_policy: Hashable = policy
    except TypeError:  # a policy with an unhashable field: compared by its repr
        same_policy = repr(policy)
    shapes = (pending.stats.value_sum is None, pending.stats.value_sq_sum is None)
    return same_policy, len(pending.variants), e.min_share, burn_in(e), shapes


def burn_in(experiment: Experiment) -> int:
    """The experiment's burn-in, at least what its guardrails need: a split the bandit has
    already tilted would starve control of the views every guardrail compares with."""
    return max(experiment.burn_in, required_burn_in(experiment.guardrails)) if experiment.guardrails \
        else experiment.burn_in


def _stacked(stats: list[ArmStats]) -> ArmStats:
    def stack(name: str) -> np.ndarray | None:
        values = [getattr(s, name) for s in stats]
        return None if values[0] is None else np.stack(values)
    return ArmStats(trials=stack("trials"), successes=stack("successes"), prior_alpha=stack("prior_alpha"),
                    prior_beta=stack("prior_beta"), value_sum=stack("value_sum"), value_sq_sum=stack("value_sq_sum"))


def allocate_many(items: list[tuple[Policy, Evidence]], rng: np.random.Generator) -> dict[str, Arms]:
    """The experiment-wide split of each experiment, one policy call per group (and chunk)."""
    groups: dict[Hashable, list[tuple[Policy, Evidence]]] = {}
    for policy, pending in items:
        groups.setdefault(_group_key(policy, pending), []).append((policy, pending))
    out: dict[str, Arms] = {}
    for members in groups.values():
        policy, first = members[0]
        chunk = max(1, CHUNK_CELLS // len(first.variants))
        for start in range(0, len(members), chunk):
            part = [p for _, p in members[start:start + chunk]]
            probs, _ = allocate_with_holdout(
                policy, _stacked([p.stats for p in part]), rng, min_share=first.experiment.min_share,
                burn_in=burn_in(first.experiment), burn_in_trials=np.stack([p.lifetime_trials for p in part]))
            for p, row in zip(part, probs):
                row = capped(p.experiment, p.variants, row, p.counters)
                out[p.experiment.id] = Arms.build(p.variants, row, p.experiment.holdout,
                                                  holdout_split_of(p.experiment, p.variants, p.counters))
    return out


def compute_many(jobs: Iterable[Job], rng: np.random.Generator, *, bucket_seconds: int = 60, now: float = 0.0,
                 max_segments: int = 50) -> dict[str, Computed]:
    """Every allocation of each job's experiment; the experiment-wide splits batched (``allocate_many``)."""
    items: list[tuple[Policy, Evidence]] = []
    partial: dict[str, Computed] = {}
    for job in jobs:
        policy = job.the_policy()
        e = job.experiment
        if e.factorial is not None and isinstance(policy, FactorialThompson):
            arms, state = compute_factorial(e, job.counters, rng, policy, job.previous, job.engagement)
            partial[e.id] = Computed(arms, factorial=state)
            continue
        pending = evidence(job, policy, bucket_seconds, now)
        if pending is not None:
            items.append((policy, pending))
        segments = compute_segment_arms(e, job.counters, job.segment_counters or {}, rng, max_segments, job.model,
                                        policy=policy) if e.segment_keys else None
        contextual = compute_contextual(e, job.counters, job.linear or {}, rng, policy=policy) \
            if policy.needs_context else None
        partial[e.id] = Computed(None, segments, contextual)
    arms = allocate_many(items, rng)
    return {exp_id: c if c.factorial is not None else Computed(arms.get(exp_id), c.segments, c.contextual)
            for exp_id, c in partial.items()}


def compute_factorial(experiment: Experiment, counters: dict[str, dict[str, float]], rng: np.random.Generator,
                      policy: FactorialThompson, previous: FactorialState | None = None,
                      engagement: dict[str, dict[str, float]] | None = None,
                      ) -> tuple[Arms | None, FactorialState | None]:
    """A factorial experiment's split over its allowed combinations, from one model of the
    factors' effects (``croupier.router.policies.factorial``). Uniform while any level has had
    fewer than ``burn_in`` visitors: the burn-in counts levels, since a combination of a
    large design may never reach it."""
    design = experiment.factorial
    variants = experiment.variants  # the generated arms, in the order of design.arms()
    if design is None or not variants:
        return None, None
    levels, n_levels = design.arms(), design.n_levels
    stats = arm_stats(experiment, variants, counters, engagement)
    state = policy.allocate(levels, n_levels, stats.trials, stats.successes, rng,
                            min_share=experiment.min_share, previous=previous)
    probs = state.probs
    if burn_in(experiment) and (level_sums(stats.trials, levels, n_levels) < burn_in(experiment)).any():
        probs = np.full(len(variants), 1.0 / len(variants))
    return Arms.build(variants, capped(experiment, variants, probs, counters), experiment.holdout,
                      holdout_split_of(experiment, variants, counters)), state


def compute_arms(experiment: Experiment, counters: dict[str, dict[str, float]], rng: np.random.Generator,
                 *, buckets: Buckets | None = None, bucket_seconds: int = 60, now: float = 0.0,
                 model: StoredModel | None = None, policy: Policy | None = None) -> Arms | None:
    """One experiment's experiment-wide split (``allocate_many`` with one member)."""
    policy = policy or make_policy(experiment.policy, experiment.policy_params)
    pending = evidence(Job(experiment, counters, policy, buckets, model=model), policy, bucket_seconds, now)
    return None if pending is None else allocate_many([(policy, pending)], rng)[experiment.id]


def compute_segment_arms(experiment: Experiment, counters: dict[str, dict[str, float]],
                         segment_counters: dict[str, dict[str, dict[str, float]]], rng: np.random.Generator,
                         cap: int, model: StoredModel | None = None, *,
                         policy: Policy | None = None) -> SegmentArms | None:
    """One bandit per segment seen (the ``cap`` busiest), each on its own counts with the
    experiment-level prior (``croupier.router.segments.shrunk_stats``), all in one batched policy call."""
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
    policy = policy or make_policy(experiment.policy, experiment.policy_params)
    probs, holdout = allocate_with_holdout(policy, stats, rng, min_share=experiment.min_share,
                                           burn_in=burn_in(experiment), holdout=experiment.holdout,
                                           burn_in_trials=np.broadcast_to(overall.trials, trials.shape))
    probs = capped(experiment, variants, probs, counters)
    fixed = holdout_split_of(experiment, variants, counters)
    return SegmentArms({s: Arms.build(variants, probs[i], holdout, fixed) for i, s in enumerate(chosen)}, full)


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
                       rng: np.random.Generator, *, policy: Policy | None = None) -> ContextualArms | None:
    """The posterior pool of a contextual policy, or none (uniform) during the burn-in."""
    variants = experiment.active_variants
    policy = policy or make_policy(experiment.policy, experiment.policy_params)
    if not variants or not isinstance(policy, LinearThompson):
        return None
    trials = arm_stats(experiment, variants, counters).trials
    pool = None
    if not (trials < experiment.burn_in).any():
        gram, rewards = linear_arrays(variants, state, policy.dimensions)
        pool = policy.posterior_pool(gram, rewards, rng)
    limit = (lambda split: capped(experiment, variants, split, counters)) \
        if limits(experiment, variants, counters) else None
    return ContextualArms(variants, policy, pool, experiment.min_share, experiment.holdout, limit,
                          holdout_split_of(experiment, variants, counters))


def __getattr__(name: str):
    # The keeper lives in router/refresh.py (it imports this module); ``from croupier.router.snapshot
    # import SnapshotKeeper`` keeps working for its callers.
    if name == "SnapshotKeeper":
        from croupier.router.refresh import SnapshotKeeper
        return SnapshotKeeper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
