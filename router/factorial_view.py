"""A factorial experiment as its stats show it: the model's rollups named with the experiment's
factors and levels, and a heatmap for every pair of factors.

Pure: the caller hands over the counters and the refresh's fitted model (or none, to fit one
here). The numbers are ``croupier.router.factorial_stats``'s; this module only names them.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from croupier.router.experiments import Experiment
from croupier.router.factorial_stats import heatmap, rollups
from croupier.router.policies import make_policy
from croupier.router.policies.factorial import FactorialState, FactorialThompson
from croupier.router.snapshot import arm_stats

DRAWS = 2000  # posterior draws per summary: the 95% bounds move by well under 1% of a rate between calls


def factorial_stats(experiment: Experiment, counters: dict[str, dict[str, float]],
                    fitted: FactorialState | None, rng: np.random.Generator) -> dict:
    """``{"factors", "interactions", "best", "heatmaps"}`` for the stats endpoint.

    ``fitted``: the model the last refresh fitted on (nearly) these counters; without one (the
    experiment is paused, ended, or runs independent-arm Thompson sampling) the policy's model
    is fitted here on the counters."""
    design = experiment.factorial
    assert design is not None
    policy = make_policy(experiment.policy, experiment.policy_params)
    if not isinstance(policy, FactorialThompson):
        policy = FactorialThompson()  # the rollups need the model even when the arms run independently
    levels, n_levels = design.arms(), design.n_levels
    stats = arm_stats(experiment, experiment.variants, counters)
    posterior = fitted.posterior if fitted is not None else None
    if posterior is None or not posterior.design.matches(levels, n_levels, policy.interactions):
        # no refresh fitted these combinations (paused, ended, independent arms, a level just added)
        posterior = policy.posterior(levels, n_levels, stats.trials, stats.successes)
    factor_names = [f.name for f in design.factors]
    level_names = [[level.name for level in f.levels] for f in design.factors]
    out = rollups(posterior, levels, n_levels, factor_names, level_names, stats.trials, stats.successes, rng,
                  draws=DRAWS)
    out["best"]["arm"] = design.arm_id(out["best"]["arm_levels"])
    out["heatmaps"] = [heatmap(posterior, levels, n_levels, factor_names, level_names, a, b, stats.trials,
                               stats.successes, rng, draws=DRAWS)
                       for a, b in combinations(range(len(factor_names)), 2)]
    return out
