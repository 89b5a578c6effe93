"""Off-policy evaluation: the conversion rate another policy would have had, from the log.

Every assignment is logged with the probability the router gave each arm
(``mu_i(a)``, the logging policy), so the log supports unbiased estimates of any
target policy ``pi_i(a)`` that puts its mass where ``mu_i`` did. With ``a_i`` the
logged arm, ``r_i`` whether the visitor converted and ``w_i = pi_i(a_i) / mu_i(a_i)``:

- IPS (Horvitz & Thompson 1952): ``V = 1/n sum_i w_i r_i``. Unbiased, also for
  adaptively logged data (``mu_i`` depends only on what came before ``i``).
- SNIPS (self-normalised, Hesterberg 1995; Swaminathan & Joachims 2015):
  ``V = sum_i w_i r_i / sum_i w_i``. Slightly biased, much less variance when
  weights are large.
- DR (doubly robust, Dudik, Langford & Li 2011): with a reward model
  ``q_i(a)``, ``V = 1/n sum_i [sum_a pi_i(a) q_i(a) + w_i (r_i - q_i(a_i))]``.
  Unbiased if either the propensities or the model are right; the model takes
  out the variance it explains.
- Replay (Li, Chu, Langford & Wang 2011): on uniformly logged rows (the holdout),
  run a policy along the log and keep the rows where it picks the logged arm; the
  mean reward of the kept rows estimates the policy's rate, learning included.

Confidence intervals are normal approximations from the per-sample terms (the
delta method for SNIPS, clipped to [0, 1]), or Poisson-bootstrap percentiles. Targets are given as
probability matrices ``(n, K)`` (``fixed_target``, ``uniform_target``,
``policy_target``, ``sequential_target``), so any router policy can be evaluated.
``join_log`` turns the event stream into ``LoggedData``. Pure: numpy and the
standard library.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from croupier.router.allocation import allocate
from croupier.router.policies import ArmStats, Policy
from croupier.router.reward import Reward
from croupier.router.segments import segment_fields

_SUM_TOLERANCE = 1e-3  # logged vectors come through JSON; Monte Carlo shares sum to 1 exactly


class OPEError(ValueError):
    """The log or the target cannot be evaluated; the message says what is wrong."""


@dataclass(frozen=True)
class LoggedData:
    """One row per assignment, in time order.

    ``probs[i]`` is the logging policy's full vector (0 for arms that were not
    offered), ``actions[i]`` indexes ``arms``, ``uniform[i]`` marks rows drawn from
    the fixed uniform split over the offered arms (the holdout), and ``contexts``
    (optional) holds each visitor's context features.
    """

    arms: tuple[str, ...]
    actions: np.ndarray
    rewards: np.ndarray
    probs: np.ndarray
    uniform: np.ndarray | None = None
    contexts: tuple[dict[str, Any], ...] | None = None

    def __post_init__(self) -> None:
        n, k = len(self.actions), len(self.arms)
        if self.probs.shape != (n, k):
            raise OPEError(f"probs: shape {self.probs.shape}, expected ({n}, {k}) (rows, arms)")
        if self.rewards.shape != (n,):
            raise OPEError(f"rewards: shape {self.rewards.shape}, expected ({n},)")
        if n and (self.actions.min() < 0 or self.actions.max() >= k):
            raise OPEError(f"actions: must index the {k} arms")
        if not np.all(np.isfinite(self.probs)) or np.any(self.probs < 0) or np.any(self.probs > 1):
            raise OPEError("probs: every logged probability must be a number in [0, 1]")
        bad = np.flatnonzero(np.abs(self.probs.sum(axis=1) - 1.0) > _SUM_TOLERANCE)
        if bad.size:
            raise OPEError(f"probs: row {bad[0]} sums to {self.probs[bad[0]].sum():.6f}, not 1 "
                           f"({bad.size} such rows)")
        if self.uniform is None:
            object.__setattr__(self, "uniform", np.zeros(n, dtype=bool))
        if self.contexts is not None and len(self.contexts) != n:
            raise OPEError(f"contexts: {len(self.contexts)} given for {n} rows")

    @classmethod
    def from_arrays(cls, arms: Iterable[str], actions, rewards, probs, uniform=None, contexts=None) -> LoggedData:
        return cls(tuple(arms), np.asarray(actions, dtype=np.int64), np.asarray(rewards, dtype=np.float64),
                   np.asarray(probs, dtype=np.float64),
                   None if uniform is None else np.asarray(uniform, dtype=bool),
                   None if contexts is None else tuple(contexts))

    @property
    def n(self) -> int:
        return len(self.actions)

    @property
    def propensities(self) -> np.ndarray:
        """``mu_i(a_i)``: the probability the logged arm had."""
        return self.probs[np.arange(self.n), self.actions]

    def arm_index(self, arm: str) -> int:
        try:
            return self.arms.index(arm)
        except ValueError:
            raise OPEError(f"arm {arm!r} is not in the log (arms: {', '.join(self.arms)})") from None

    def arm_stats(self, prior_alpha: float = 1.0, prior_beta: float = 1.0) -> ArmStats:
        """Trials and conversions per arm over the whole log."""
        k = len(self.arms)
        trials = np.bincount(self.actions, minlength=k)
        successes = np.bincount(self.actions, weights=self.rewards, minlength=k)
        return ArmStats.from_counts(trials, successes, prior_alpha, prior_beta)


@dataclass(frozen=True)
class Estimate:
    """A policy value with its interval.

    ``excluded``: rows left out because the logged arm had no valid propensity;
    ``unsupported``: the target's mean mass on arms the logging policy gave
    probability 0 (the estimate cannot see those and is biased when it is > 0);
    ``effective_n``: Kish's ``(sum w)^2 / sum w^2``, how many rows the weights are worth.
    """

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    std_error: float
    n: int
    excluded: int = 0
    unsupported: float = 0.0
    effective_n: float = 0.0
    interval: str = "normal"

    def to_dict(self) -> dict[str, Any]:
        return finite_fields(asdict(self))


def finite_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with its undefined figures (NaN, infinite) as None: JSON has no NaN."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in doc.items()}


def z_value(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise OPEError(f"confidence: must be in (0, 1), got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


# -- targets ----------------------------------------------------------------

def fixed_target(log: LoggedData, arm: str) -> np.ndarray:
    """Everyone gets ``arm``."""
    out = np.zeros(log.probs.shape)
    out[:, log.arm_index(arm)] = 1.0
    return out


def uniform_target(log: LoggedData) -> np.ndarray:
    """An even split over the arms offered at each row (those with a logged probability)."""
    offered = (log.probs > 0).astype(np.float64)
    return offered / np.maximum(offered.sum(axis=1, keepdims=True), 1.0)


def policy_target(log: LoggedData, policy: Policy, rng: np.random.Generator, *, prior_alpha=1.0,
                  prior_beta=1.0, min_share: float = 0.0) -> np.ndarray:
    """The policy's split on the statistics of the whole log (e.g. Thompson sampling with the
    final posterior), the same for every row."""
    probs = allocate(policy, log.arm_stats(prior_alpha, prior_beta), rng, min_share=min_share)
    return np.broadcast_to(probs, log.probs.shape).copy()


def sequential_target(log: LoggedData, policy: Policy, rng: np.random.Generator, *, refresh: int = 100,
                      prior_alpha=1.0, prior_beta=1.0, min_share: float = 0.0, burn_in: int = 0) -> np.ndarray:
    """At each row, the split the policy gives on the log's statistics before that row,
    recomputed every ``refresh`` rows (as the router refreshes its snapshot).

    This evaluates the policy's decisions along the logged trajectory; what the
    policy would have learnt from its own choices is what ``replay`` measures.
    """
    if refresh < 1:
        raise OPEError(f"refresh: must be at least 1, got {refresh}")
    k, n = len(log.arms), log.n
    onehot = np.zeros((n, k))
    onehot[np.arange(n), log.actions] = 1.0
    trials = np.vstack([np.zeros(k), np.cumsum(onehot, axis=0)])
    successes = np.vstack([np.zeros(k), np.cumsum(onehot * log.rewards[:, None], axis=0)])
    starts = np.arange(0, n, refresh)
    # one batched policy call for every refresh point: policies take leading batch dimensions
    stats = ArmStats.from_counts(trials[starts], successes[starts], prior_alpha, prior_beta)
    probs = allocate(policy, stats, rng, min_share=min_share, burn_in=burn_in)
    return np.repeat(probs, refresh, axis=0)[:n]


# -- estimators -------------------------------------------------------------

def _prepare(log: LoggedData, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Usable rows, their weights, how many were excluded, and the unsupported mass."""
    target = np.asarray(target, dtype=np.float64)
    if target.shape != log.probs.shape:
        raise OPEError(f"target: shape {target.shape}, expected {log.probs.shape} (rows, arms)")
    if log.n == 0:
        raise OPEError("empty log: no assignments to evaluate")
    if not np.all(np.isfinite(target)) or np.any(target < 0):
        raise OPEError("target: probabilities must be finite and non-negative")
    bad = np.flatnonzero(np.abs(target.sum(axis=1) - 1.0) > _SUM_TOLERANCE)
    if bad.size:
        raise OPEError(f"target: row {bad[0]} sums to {target[bad[0]].sum():.6f}, not 1")
    prop = log.propensities
    usable = prop > 0  # a logged arm with probability 0 is a broken record, not evidence
    if not usable.any():
        raise OPEError(f"no usable rows: all {log.n} logged arms have propensity 0")
    unsupported = float((target * (log.probs <= 0)).sum(axis=1).mean())
    weights = target[np.arange(log.n), log.actions][usable] / prop[usable]
    return usable, weights, int(log.n - usable.sum()), unsupported


def _kish(weights: np.ndarray) -> float:
    total = weights.sum()
    return float(total * total / max((weights * weights).sum(), 1e-300))


def _finish(name: str, value: float, terms: np.ndarray, weights: np.ndarray, excluded: int, unsupported: float,
            confidence: float, bootstrap: Callable[[np.ndarray], float] | None, resamples: int,
            rng: np.random.Generator | None) -> Estimate:
    n = len(terms)
    se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    z = z_value(confidence)
    # a conversion rate lies in [0, 1]; a normal interval from few conversions can stray outside
    low, high, kind = max(0.0, value - z * se), min(1.0, value + z * se), "normal"
    if resamples:
        if bootstrap is None or rng is None:
            raise OPEError("bootstrap: needs a random generator (rng)")
        # Poisson(1) weights per row: the bootstrap without materialising resampled index arrays
        draws = np.array([bootstrap(rng.poisson(1.0, n).astype(np.float64)) for _ in range(resamples)])
        draws = draws[np.isfinite(draws)]
        tail = (1.0 - confidence) / 2.0
        low, high = (float(q) for q in np.quantile(draws, [tail, 1.0 - tail]))
        kind = f"bootstrap({resamples})"
    return Estimate(name, float(value), float(low), float(high), se, n, excluded, unsupported, _kish(weights), kind)


def ips(log: LoggedData, target: np.ndarray, *, confidence: float = 0.95, bootstrap: int = 0,
        rng: np.random.Generator | None = None) -> Estimate:
    """Inverse propensity scoring: ``V = 1/n sum_i w_i r_i`` (Horvitz-Thompson)."""
    usable, w, excluded, unsupported = _prepare(log, target)
    terms = w * log.rewards[usable]

    def boot(c: np.ndarray) -> float:
        return float((c * terms).sum() / max(c.sum(), 1.0))

    return _finish("ips", float(terms.mean()), terms, w, excluded, unsupported, confidence, boot, bootstrap, rng)


def snips(log: LoggedData, target: np.ndarray, *, confidence: float = 0.95, bootstrap: int = 0,
          rng: np.random.Generator | None = None) -> Estimate:
    """Self-normalised IPS: ``V = sum_i w_i r_i / sum_i w_i``.

    Its standard error is the delta method's: the terms ``w_i (r_i - V) / mean(w)``.
    """
    usable, w, excluded, unsupported = _prepare(log, target)
    r = log.rewards[usable]
    if w.sum() <= 0:
        raise OPEError("snips: the target gives no weight to any logged arm")
    value = float((w * r).sum() / w.sum())
    terms = w * (r - value) / w.mean()

    def boot(c: np.ndarray) -> float:
        cw = c * w
        return float((cw * r).sum() / cw.sum()) if cw.sum() > 0 else math.nan

    # the interval is centred on the estimate, not on the (zero-mean) terms
    estimate = _finish("snips", value, terms, w, excluded, unsupported, confidence, boot, bootstrap, rng)
    return estimate


def per_arm_rates(log: LoggedData) -> np.ndarray:
    """The simplest reward model: each arm's observed rate, ``(K,)``; the overall rate for
    arms never logged."""
    stats = log.arm_stats()
    overall = float(log.rewards.mean()) if log.n else 0.0
    return np.where(stats.trials > 0, stats.successes / np.maximum(stats.trials, 1.0), overall)


def doubly_robust(log: LoggedData, target: np.ndarray, reward_model: np.ndarray | None = None, *,
                  confidence: float = 0.95, bootstrap: int = 0, rng: np.random.Generator | None = None) -> Estimate:
    """Doubly robust (Dudik, Langford & Li 2011):
    ``V = 1/n sum_i [sum_a pi_i(a) q_i(a) + w_i (r_i - q_i(a_i))]``.

    ``reward_model``: predicted conversion rate per row and arm ``(n, K)``, or per arm
    ``(K,)``; default ``per_arm_rates(log)``. With context, pass ``ConversionModel.predict_log``.
    """
    usable, w, excluded, unsupported = _prepare(log, target)
    q = per_arm_rates(log) if reward_model is None else np.asarray(reward_model, dtype=np.float64)
    q = np.broadcast_to(q, log.probs.shape) if q.ndim == 1 else q
    if q.shape != log.probs.shape:
        raise OPEError(f"reward_model: shape {q.shape}, expected {log.probs.shape} or ({len(log.arms)},)")
    rows = np.flatnonzero(usable)
    direct = (np.asarray(target, dtype=np.float64)[rows] * q[rows]).sum(axis=1)
    terms = direct + w * (log.rewards[rows] - q[rows, log.actions[rows]])

    def boot(c: np.ndarray) -> float:
        return float((c * terms).sum() / max(c.sum(), 1.0))

    return _finish("dr", float(terms.mean()), terms, w, excluded, unsupported, confidence, boot, bootstrap, rng)


def evaluate(log: LoggedData, target: np.ndarray, reward_model: np.ndarray | None = None, *,
             confidence: float = 0.95, bootstrap: int = 0,
             rng: np.random.Generator | None = None) -> dict[str, Estimate]:
    """IPS, SNIPS and DR of one target, by name."""
    kw = {"confidence": confidence, "bootstrap": bootstrap, "rng": rng}
    return {"ips": ips(log, target, **kw), "snips": snips(log, target, **kw),
            "dr": doubly_robust(log, target, reward_model, **kw)}


def observed(log: LoggedData, *, confidence: float = 0.95) -> Estimate:
    """The logging policy's own rate: the mean reward, with a normal interval."""
    if log.n == 0:
        raise OPEError("empty log: no assignments to evaluate")
    ones = np.ones(log.n)
    return _finish("observed", float(log.rewards.mean()), log.rewards, ones, 0, 0.0, confidence, None, 0, None)


def replay(log: LoggedData, policy: Policy, rng: np.random.Generator, *, prior_alpha=1.0, prior_beta=1.0,
           min_share: float = 0.0, burn_in: int = 0, refresh: int = 1, confidence: float = 0.95) -> Estimate:
    """Replay (Li, Chu, Langford & Wang 2011) on the uniformly logged rows, in order.

    The policy, fed only the rows it accepted so far (its split recomputed every
    ``refresh`` accepted rows), draws an arm among those offered at the row; the
    row is accepted when that is the logged arm. With uniform logging every row is
    accepted with probability ``1/K`` whatever the policy's history, so the accepted
    rows are distributed as the policy's own first ``m`` visitors: the mean reward
    of the accepted rows estimates its rate. ``n`` of the result is ``m``.
    """
    rows = np.flatnonzero(log.uniform)
    if rows.size == 0:
        raise OPEError("replay: needs uniformly logged rows (the holdout); the log has none")
    if refresh < 1:
        raise OPEError(f"refresh: must be at least 1, got {refresh}")
    k = len(log.arms)
    trials, successes = np.zeros(k), np.zeros(k)
    accepted: list[float] = []
    split = None
    for i in rows:
        if split is None:
            split = allocate(policy, ArmStats.from_counts(trials, successes, prior_alpha, prior_beta), rng,
                             min_share=min_share, burn_in=burn_in)
        offered = split * (log.probs[i] > 0)
        if offered.sum() <= 0:
            continue
        choice = int(rng.choice(k, p=offered / offered.sum()))
        if choice != log.actions[i]:
            continue
        trials[choice] += 1
        successes[choice] += log.rewards[i]
        accepted.append(float(log.rewards[i]))
        if len(accepted) % refresh == 0:
            split = None
    if not accepted:
        raise OPEError(f"replay: the policy matched none of the {rows.size} uniformly logged rows")
    r = np.asarray(accepted)
    return _finish("replay", float(r.mean()), r, np.ones(len(r)), 0, 0.0, confidence, None, 0, None)


# -- the event stream -------------------------------------------------------

@dataclass(frozen=True)
class JoinReport:
    """How the stream's entries went into the log."""

    assignments: int = 0
    conversions: int = 0  # of the goal
    attributed: int = 0
    unattributed: int = 0  # no assignment of the visitor at or before the conversion (trimmed, or out of order)
    variant_mismatch: int = 0  # attributed, but the beacon named another variant than the assignment
    holdout: int = 0
    other_events: int = 0
    malformed: int = 0  # assignments whose fields could not be read
    arms: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return finite_fields(asdict(self))


def stream_context(fields: dict[str, str]) -> dict[str, Any]:
    """The default context of an assignment entry: its ``context`` field (a JSON object) if
    any, else the fields of its ``segment`` (``"device=mobile,country=de"``), else none."""
    raw = fields.get("context")
    if raw:
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return segment_fields(fields.get("segment", ""))


def join_log(entries: Iterable[tuple[str, dict[str, str]]], goal: str, *,
             context: Callable[[dict[str, str]], dict[str, Any]] = stream_context,
             reward: Reward | None = None) -> tuple[LoggedData, JoinReport]:
    """Assignments joined with conversions of ``goal``, by visitor.

    A conversion goes to the visitor's latest assignment at or before it (by the
    entries' millisecond timestamps: assignments reach the stream in batches, so
    a quick conversion can be written before its assignment). Each row's reward
    is 1 if a conversion was attributed to it, or, with a ``reward`` that counts
    engaged views (the experiment's, ``croupier.router.reward``), its weighted sum of
    converted and engaged (a page view's engagement reports attributed the same way).
    Rows are in time order.
    """
    assigns: list[tuple[int, str, str, dict[str, float], bool, dict[str, Any]]] = []
    converts: list[tuple[int, str, str]] = []
    engages: list[tuple[int, str]] = []
    counts: defaultdict[str, int] = defaultdict(int)
    for _, f in entries:
        kind = f.get("type")
        if kind == "assign":
            try:
                probs = {str(a): float(p) for a, p in json.loads(f["probs"]).items()}
                assigns.append((int(f["ts"]), f["visitor"], f["variant"], probs, f.get("reason") == "holdout",
                                context(f)))
            except (KeyError, ValueError, TypeError, AttributeError):
                counts["malformed"] += 1
        elif kind == "convert" and f.get("goal") == goal:
            try:
                converts.append((int(f["ts"]), f["visitor"], f.get("variant", "")))
            except (KeyError, ValueError):
                counts["malformed"] += 1
        elif kind == "engagement" and reward is not None and reward.needs_engagement:
            if f.get("engaged") == "1":
                try:
                    engages.append((int(f["ts"]), f["visitor"]))
                except (KeyError, ValueError):
                    counts["malformed"] += 1
        else:
            counts["other_events"] += 1
    assigns.sort(key=lambda a: a[0])  # stable: stream order among equal timestamps
    arms = tuple(sorted({a[2] for a in assigns} | {arm for a in assigns for arm in a[3]}))
    index = {arm: j for j, arm in enumerate(arms)}
    by_visitor: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, (ts, visitor, *_rest) in enumerate(assigns):
        by_visitor[visitor].append((ts, i))
    rewards = np.zeros(len(assigns))
    for ts, visitor, variant in converts:
        history = by_visitor.get(visitor, [])
        at = bisect_right(history, (ts, math.inf)) - 1
        if at < 0:
            counts["unattributed"] += 1
            continue
        i = history[at][1]
        rewards[i] = 1.0
        counts["attributed"] += 1
        counts["variant_mismatch"] += variant != assigns[i][2]
    if reward is not None and reward.needs_engagement:
        engaged = np.zeros(len(assigns))
        for ts, visitor in engages:  # an engaged page view, at its report
            history = by_visitor.get(visitor, [])
            at = bisect_right(history, (ts, math.inf)) - 1
            if at >= 0:
                engaged[history[at][1]] = 1.0
        rewards = reward.of_row(rewards, engaged)
    probs = np.zeros((len(assigns), len(arms)))
    for i, a in enumerate(assigns):
        for arm, p in a[3].items():
            probs[i, index[arm]] = p
    log = LoggedData.from_arrays(arms, [index[a[2]] for a in assigns], rewards, probs,
                                 [a[4] for a in assigns], [a[5] for a in assigns])
    report = JoinReport(assignments=len(assigns), conversions=len(converts), holdout=int(log.uniform.sum()),
                        arms=arms, **counts)
    return log, report
