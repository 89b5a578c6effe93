"""Posterior summaries for the stats endpoint and the dashboard. Pure numpy.

Beta posteriors per variant: mean, 95% credible interval, probability to be
best and expected loss (Monte Carlo over the joint posterior, vectorised).
"""

from __future__ import annotations

import numpy as np

from router.policies import ArmStats


def posterior_summary(arms: ArmStats, rng: np.random.Generator, draws: int = 20_000) -> dict[str, np.ndarray]:
    """Per-arm ``mean``, ``ci_low``, ``ci_high``, ``p_best`` and ``expected_loss`` (shape ``(K,)``)."""
    alpha, beta = arms.alpha, arms.beta
    samples = rng.beta(alpha, beta, size=(draws, arms.n_arms))
    best = samples.max(axis=1, keepdims=True)
    winners = np.argmax(samples, axis=1)
    low, high = np.quantile(samples, [0.025, 0.975], axis=0)
    return {
        "mean": alpha / (alpha + beta),
        "ci_low": low,
        "ci_high": high,
        "p_best": np.bincount(winners, minlength=arms.n_arms) / draws,
        # what choosing this arm costs, in conversion rate, if another is really best
        "expected_loss": (best - samples).mean(axis=0),
    }
