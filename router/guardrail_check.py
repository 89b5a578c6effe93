"""Guardrails applied to an experiment: each variant's metric against control, the breaches
that follow, and the split a breach leaves. Pure; the monitor (router/monitor.py) runs the
check and records breaches through the store, the snapshot caps the split.

The metrics come from the counters the router keeps anyway:

- ``bounce_rate`` and ``engaged_rate``: the page views that reported engagement
  (``croupier.router.engagement``) and how many of them were engaged;
- ``active_time``: their capped active seconds (sum and sum of squares);
- ``conversion_value``: every assignment's value of the experiment's goal (0 for a
  visitor who did not convert), from the value sums the beacon keeps;
- ``error_rate``: the variant's pages NGINX served control instead of (a fallback, which
  NGINX reports to the router) per assignment.

A breached variant keeps at most the experiment's ``min_share`` (action ``cap``) or
gets no new visitors at all (``pause``), inside the allocation: whatever its conversions
say, the bandit never sends it more. A breach holds until a marketer clears it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from croupier.router.experiments import Experiment, Variant
from croupier.router.guardrails import Guardrail, cap, evaluate

Counts = Mapping[str, Mapping[str, float]]  # variant -> counter -> total


def metric_stats(guardrail: Guardrail, goal: str, counters: Mapping[str, float],
                 engagement: Mapping[str, float]) -> tuple[float, ...]:
    """One arm's sufficient statistics for the guardrail's metric: ``(n, k)`` for a
    proportion, ``(n, sum, sum_sq)`` for a mean."""
    metric = guardrail.metric
    views, engaged = engagement.get("views", 0.0), engagement.get("engaged", 0.0)
    if metric == "bounce_rate":
        return views, max(views - engaged, 0.0)
    if metric == "engaged_rate":
        return views, engaged
    if metric == "active_time":
        return views, engagement.get("active_ms", 0.0) / 1000.0, engagement.get("active_sq", 0.0)
    trials = counters.get("trials", 0.0)
    if metric == "conversion_value":
        return trials, counters.get(f"value:{goal}", 0.0), counters.get(f"value2:{goal}", 0.0)
    if metric == "error_rate":
        return trials, min(counters.get("fallback", 0.0), trials)
    raise ValueError(f"metric: unknown {metric!r}")


@dataclass(frozen=True)
class Breach:
    variant: str
    guardrail: int  # its index in the experiment's guardrails
    doc: dict  # what the store keeps and the dashboard and alerts show


def check(experiment: Experiment, counters: Counts, engagement: Counts, held: Mapping[str, dict],
          now: float | None = None) -> list[Breach]:
    """The new breaches of a running experiment: every active variant but control, against
    control, on every guardrail; variants already holding a breach (or a cleared one) are
    not looked at again."""
    control = experiment.control
    out = []
    for variant in experiment.active_variants:
        if variant.id == control or variant.id in held:
            continue
        for i, guardrail in enumerate(experiment.guardrails):
            def stats(arm: str) -> tuple[float, ...]:
                return metric_stats(guardrail, experiment.goal, counters.get(arm, {}), engagement.get(arm, {}))
            verdict = evaluate(guardrail, stats(control), stats(variant.id))
            if bool(verdict.breached):
                out.append(Breach(variant.id, i, {
                    "guardrail": i, "metric": guardrail.metric, "direction": guardrail.direction,
                    "threshold": guardrail.threshold, "relative": guardrail.relative, "action": guardrail.action,
                    "alpha": guardrail.alpha, "estimate": float(verdict.estimate), "low": float(verdict.low),
                    "high": float(verdict.high), "p_value": float(verdict.p_value),
                    "n_control": float(verdict.n_control), "n_variant": float(verdict.n_variant),
                    "reason": str(verdict.reason), "at": time.time() if now is None else now}))
                break  # one breach per variant: the first guardrail it fails
    return out


CAP, PAUSE = 1, 2  # a variant's ``guardrail`` counter (Store.record_breach); -1 cleared, 0 never breached


def limits(experiment: Experiment, variants: tuple[Variant, ...], counters: Counts) -> dict[str, float]:
    """Variant → the most share it may get, for every variant under a breach not cleared."""
    out = {}
    for v in variants:
        code = counters.get(v.id, {}).get("guardrail", 0)
        if code in (CAP, PAUSE):
            out[v.id] = 0.0 if code == PAUSE else experiment.min_share
    return out


def capped(experiment: Experiment, variants: tuple[Variant, ...], probs: np.ndarray,
           counters: Counts | None) -> np.ndarray:
    """``probs`` (..., K) with every breached variant held at its limit. Never shuts every
    arm: when all of them are breached the split is left as it is (control was never
    compared with itself, so this happens only to an experiment whose control is paused)."""
    held = limits(experiment, variants, counters or {})
    if not held:
        return probs
    mask = np.array([v.id in held for v in variants])
    if mask.all():
        return probs
    out = np.asarray(probs, dtype=np.float64)
    for floor in sorted(set(held.values())):  # pause (0) and cap (min_share) may both be held
        out = cap(out, mask & np.array([held.get(v.id) == floor for v in variants]), floor)
    return out
