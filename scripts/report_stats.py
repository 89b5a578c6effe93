"""The figures of an experiment report, from what ``report_data`` read. Pure: numpy and the
router's own statistics (posteriors, stratified lift, off-policy estimators).

The headline is the conversions gained or lost against an even split over the same
visitors: observed conversions minus the doubly robust estimate (Dudik, Langford & Li
2011; ``croupier.router.ope``) of what the uniform policy would have converted on the
logged traffic, times the visitors. Both come from the same rows, so the interval is the
normal one of the per-row differences ``r_i - dr_i``, whose correlation the two separate
intervals would miss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import reduce

import numpy as np

from croupier.router.engagement import wilson
from croupier.router.experiments import Experiment
from croupier.router.history import bucket_arrays
from croupier.router.ope import LoggedData, OPEError, doubly_robust, ips, per_arm_rates, uniform_target, z_value
from croupier.router.segments import busiest_segments

MAX_PERIODS = 60  # points on a time chart: buckets are merged beyond this
MAX_LINES = 8  # variants on one chart (the palette's size); a factorial experiment shows its busiest
MAX_SEGMENTS = 12
INTERVAL = (0.025, 0.975)


@dataclass(frozen=True)
class Periods:
    """Counters per period (merged time buckets) and variant: ``(P, K)`` arrays."""

    starts: list[datetime]
    seconds: int  # a period's length
    trials: np.ndarray
    conversions: np.ndarray


@dataclass(frozen=True)
class Gain:
    """Conversions gained over an even split (negative: lost), by one estimator, with its interval."""

    estimator: str
    value: float
    low: float
    high: float
    observed: float  # conversions the logged traffic made
    even_split: float  # conversions the even split would have made, estimated
    visitors: int


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def bucket_width(starts: list[int], default: int) -> int:
    """The buckets' width: every start is a multiple of it (the router's setting is not in Redis)."""
    gaps = [b - a for a, b in zip(starts, starts[1:]) if b > a]
    return reduce(math.gcd, gaps) if gaps else default


def periods(buckets: dict, variant_ids: list[str], goal: str, default_width: int,
            max_periods: int = MAX_PERIODS) -> Periods:
    """The store's buckets merged into at most ``max_periods`` equal periods (empty ones kept,
    so the time axis is even)."""
    conv = f"conv:{goal}"
    starts, arrays = bucket_arrays(buckets, variant_ids, ["trials", conv])
    if not starts:
        k = len(variant_ids)
        return Periods([], default_width, np.zeros((0, k)), np.zeros((0, k)))
    width = bucket_width(starts, default_width)
    span = starts[-1] - starts[0] + width
    length = width * max(1, math.ceil(span / width / max_periods))
    index = (np.asarray(starts) - starts[0]) // length
    count = int(index[-1]) + 1
    trials, conversions = np.zeros((count, len(variant_ids))), np.zeros((count, len(variant_ids)))
    np.add.at(trials, index, arrays["trials"])
    np.add.at(conversions, index, arrays[conv])
    return Periods([utc(starts[0] + i * length) for i in range(count)], length, trials, conversions)


def cumulative_rates(trials: np.ndarray, conversions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each variant's conversion rate up to the end of each period, with its Wilson 95% interval
    (NaN before its first visitor)."""
    n, s = np.cumsum(trials, axis=0), np.cumsum(conversions, axis=0)
    rate, low, high = (np.full(n.shape, np.nan) for _ in range(3))
    for (p, k), visitors in np.ndenumerate(n):
        bounds = wilson(min(s[p, k], visitors), visitors)
        if bounds is not None:
            rate[p, k], (low[p, k], high[p, k]) = s[p, k] / visitors, bounds
    return rate, low, high


def shown(trials: np.ndarray, variant_ids: list[str], limit: int = MAX_LINES, always: tuple[int, ...] = ()) -> list[int]:
    """Indices of the variants a chart shows, in registry order: all, or ``always`` (the leader,
    the control) and the busiest of the others up to ``limit``."""
    if len(variant_ids) <= limit:
        return list(range(len(variant_ids)))
    always = tuple(dict.fromkeys(always))[:limit]
    busiest = [i for i in np.argsort(-np.asarray(trials), kind="stable").tolist() if i not in always]
    return sorted([*always, *busiest[:limit - len(always)]])


def leader(experiment: Experiment, alpha: np.ndarray, beta: np.ndarray, p_best: np.ndarray,
           rng: np.random.Generator, draws: int = 20_000) -> dict:
    """The winner so far (the declared one, else the active variant most likely best) and its
    lift over control: the ratio of their posterior mean rates minus one, with the 2.5% and
    97.5% quantiles of ``p_winner / p_control - 1`` over draws of their Beta posteriors.

    The posteriors pool each variant's visitors, as the bandit does. (The stratified lift of
    the stats endpoint also guards against a base rate that moves with the allocation, but a
    starved control makes it swing by hundreds of percent from one period to the next.)"""
    ids = [v.id for v in experiment.variants]
    if experiment.winner in ids:
        best, declared = ids.index(experiment.winner), True
    else:
        active = {v.id for v in experiment.active_variants}
        best = max((i for i in range(len(ids)) if ids[i] in active), key=lambda i: p_best[i], default=0)
        declared = False
    control = ids.index(experiment.control)
    out = {"id": ids[best], "declared": declared, "p_best": float(p_best[best]), "control": experiment.control,
           "lift": None, "lift_low": None, "lift_high": None}
    if best == control:
        return out
    mean = alpha / (alpha + beta)
    ratio = rng.beta(alpha[best], beta[best], draws) / np.maximum(rng.beta(alpha[control], beta[control], draws),
                                                                 1e-12)
    low, high = np.quantile(ratio - 1.0, INTERVAL)
    out.update(lift=float(mean[best] / mean[control] - 1.0), lift_low=float(low), lift_high=float(high))
    return out


def even_split_gain(log: LoggedData, *, confidence: float = 0.95) -> list[Gain]:
    """Conversions gained over an even split on the logged visitors: by doubly robust (the
    headline: each arm's observed rate as its reward model) and by IPS. ``OPEError`` when the
    log cannot be evaluated (no assignments, no usable propensity)."""
    target = uniform_target(log)
    prop = log.propensities
    usable = prop > 0  # as the estimators do: a logged arm with probability 0 is a broken record
    rows = np.flatnonzero(usable)
    if rows.size == 0:
        raise OPEError("no assignment with a usable propensity")
    r = log.rewards[rows]
    w = target[rows, log.actions[rows]] / prop[rows]
    q = per_arm_rates(log)
    dr_terms = (target[rows] * q).sum(axis=1) + w * (r - q[log.actions[rows]])
    z, n = z_value(confidence), rows.size
    out = []
    for name, estimate, terms in (("dr", doubly_robust(log, target, confidence=confidence), dr_terms),
                                  ("ips", ips(log, target, confidence=confidence), w * r)):
        even = estimate.value * n
        diff = r - terms
        se = float(diff.std(ddof=1) * math.sqrt(n)) if n > 1 else math.inf
        gain = float(r.sum() - even)
        out.append(Gain(name, gain, gain - z * se, gain + z * se, float(r.sum()), float(even), int(n)))
    return out


def segment_table(experiment: Experiment, segment_counters: dict, max_segments: int,
                  limit: int = MAX_SEGMENTS) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The busiest segments (those the bandit runs, as the stats choose them) with each variant's
    visitors and observed rate and Wilson 95% interval: ``(segments, trials, rate, low, high)``."""
    ids = [v.id for v in experiment.variants]
    chosen, _ = busiest_segments(segment_counters, [v.id for v in experiment.active_variants],
                                 min(max_segments, limit))
    conv = f"conv:{experiment.goal}"
    trials = np.array([[segment_counters[s].get(v, {}).get("trials", 0.0) for v in ids] for s in chosen])
    wins = np.array([[segment_counters[s].get(v, {}).get(conv, 0.0) for v in ids] for s in chosen])
    rate, low, high = (np.full(trials.shape, np.nan) for _ in range(3))
    for (i, k), n in np.ndenumerate(trials):
        bounds = wilson(min(wins[i, k], n), n)
        if bounds is not None:
            rate[i, k], (low[i, k], high[i, k]) = wins[i, k] / n, bounds
    return chosen, trials, rate, low, high


def timeline(entries: list[tuple[str, dict]], alerts: list[dict]) -> list[tuple[datetime, str]]:
    """Guardrail breaches and clearings (the event stream) and drift, mix and sample-ratio alerts,
    oldest first, as ``(when, label)``."""
    events = []
    for _, fields in entries:
        if fields.get("type") == "guardrail":
            try:
                events.append((int(fields["ts"]) / 1000.0, f"guardrail: {fields.get('variant', '')} {fields.get('state', '')}"))
            except (KeyError, ValueError):
                continue
    for alert in alerts:
        try:
            label = f"{alert['kind']}" + (f": {alert['variant']}" if alert.get("variant") else "")
            events.append((float(alert["time"]), label))
        except (KeyError, TypeError, ValueError):
            continue
    return [(utc(ts), label) for ts, label in sorted(events)]
