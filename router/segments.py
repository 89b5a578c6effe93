"""Segmented bandits: one bandit per segment of visitors, borrowing strength from the whole experiment. Pure.

A segment is the tuple of an experiment's ``segment_keys`` values of the
visitor's context, written ``device=mobile`` or ``country=fr,device=mobile``
(keys in the experiment's order; an unknown value is ``none``).

Shrinkage (empirical Bayes): a segment's arm ``k`` starts from the prior
``Beta(m p_k, m (1 - p_k))`` centred on the arm's experiment-wide posterior
mean ``p_k = (alpha0_k + s_k) / (alpha0_k + beta0_k + n_k)``. The strength ``m``
is fitted by the method of moments across segments (beta-binomial: the
between-segment variance of the rates is ``tau^2 = p (1 - p) / (m + 1)``, so
``m = p (1 - p) / tau^2 - 1``, with ``tau^2`` the weighted variance of the
segment rates less the binomial noise ``p (1 - p) E[1 / n]``), clipped to
``[MIN_STRENGTH, MAX_STRENGTH]`` and never more than the experiment-wide
evidence of the arm. A new segment therefore starts at the experiment's rates
instead of from zero, and its own data takes over as it grows (Efron & Morris
1975, "Data Analysis Using Stein's Estimator and its Generalizations";
Gelman et al., "Bayesian Data Analysis", 3rd ed., section 5.3).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from croupier.router.context import Context
from croupier.router.policies import ArmStats

NONE = "none"
DEFAULT_STRENGTH = 100.0
MIN_STRENGTH = 10.0
MAX_STRENGTH = 2000.0
MAX_KEYS = 3


def segment_id(context: Context, keys: Sequence[str]) -> str:
    """``device=mobile`` or ``country=fr,device=mobile``: the segment of ``context`` for ``keys``."""
    return ",".join(f"{key}={getattr(context, key) or NONE}" for key in keys)


def segment_fields(segment: str) -> dict[str, str]:
    """The context fields a segment id names: ``{"country": "fr", "device": "mobile"}``."""
    pairs = (part.partition("=") for part in segment.split(",") if part)
    return {key: value for key, sep, value in pairs if sep}


def moment_strength(trials: np.ndarray, successes: np.ndarray, *, min_trials: float = 30.0) -> float:
    """The prior strength ``m`` fitted across segments (rows) by the method of moments, pooled over arms.

    ``trials``/``successes``: shape ``(S, K)``. Segments with fewer than ``min_trials``
    of an arm do not inform that arm; with fewer than two informative segments
    per arm the default strength is used.
    """
    trials = np.asarray(trials, dtype=np.float64)
    successes = np.asarray(successes, dtype=np.float64)
    if trials.ndim != 2 or trials.shape[0] < 2:
        return DEFAULT_STRENGTH
    estimates = []
    for k in range(trials.shape[1]):
        n, s = trials[:, k], successes[:, k]
        used = n >= min_trials
        if used.sum() < 2:
            continue
        n, s = n[used], s[used]
        p = s.sum() / n.sum()
        if not 0.0 < p < 1.0:
            continue
        rates = s / n
        observed = float(np.sum(n * (rates - p) ** 2) / n.sum())
        noise = p * (1.0 - p) * float(np.mean(1.0 / n))
        tau2 = observed - noise
        estimates.append(MAX_STRENGTH if tau2 <= 0 else p * (1.0 - p) / tau2 - 1.0)
    if not estimates:
        return DEFAULT_STRENGTH
    return float(np.clip(np.median(estimates), MIN_STRENGTH, MAX_STRENGTH))


def shrunk_stats(trials: np.ndarray, successes: np.ndarray, overall_trials: np.ndarray,
                 overall_successes: np.ndarray, prior_alpha: np.ndarray, prior_beta: np.ndarray,
                 strength: float | np.ndarray | None = None) -> ArmStats:
    """Per-segment arm statistics with the experiment-level prior: shape ``(..., S, K)``.

    ``trials``/``successes``: the segments' counts ``(..., S, K)``; ``overall_*`` the
    experiment's ``(..., K)``; ``prior_*`` the variants' own Beta priors ``(K,)``.
    ``strength``: ``m`` (scalar or ``(...,)``); None fits it by ``moment_strength``.
    """
    trials = np.asarray(trials, dtype=np.float64)
    successes = np.minimum(np.asarray(successes, dtype=np.float64), trials)
    overall_trials = np.asarray(overall_trials, dtype=np.float64)
    overall_successes = np.asarray(overall_successes, dtype=np.float64)
    a0, b0 = np.asarray(prior_alpha, dtype=np.float64), np.asarray(prior_beta, dtype=np.float64)
    mean = (a0 + overall_successes) / (a0 + b0 + overall_trials)
    if strength is None:
        strength = moment_strength(trials, successes) if trials.ndim == 2 else DEFAULT_STRENGTH
    m = np.asarray(strength, dtype=np.float64)[..., None]  # broadcasts over arms
    # a prior never claims more evidence than the experiment has (a fresh experiment: the variants' own prior)
    m = np.maximum(np.minimum(m, a0 + b0 + overall_trials), a0 + b0)
    alpha = (m * mean)[..., None, :]
    beta = (m * (1.0 - mean))[..., None, :]
    return ArmStats.from_counts(trials, successes, np.broadcast_to(alpha, trials.shape),
                                np.broadcast_to(beta, trials.shape))


def busiest_segments(counters_by_segment: dict[str, dict[str, dict[str, float]]], variant_ids: Sequence[str],
                     cap: int) -> tuple[list[str], bool]:
    """The segments that get a bandit of their own: the ``cap`` with the most trials of the
    experiment's active variants (``variant_ids``; ties by id), and whether the cap is reached.

    ``counters_by_segment``: segment → variant → counters, as the store reads them; the
    experiment-wide counters ('' segment) are no segment. The snapshot (which runs the
    bandits) and the stats (which show them) both choose here, so they list the same ones."""
    seen = {segment: sum(by_variant.get(v, {}).get("trials", 0.0) for v in variant_ids)
            for segment, by_variant in counters_by_segment.items() if segment}
    return sorted(seen, key=lambda s: (-seen[s], s))[:cap], len(seen) >= cap
