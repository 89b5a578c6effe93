"""What a factorial experiment has learnt, per level, per interaction and per combination. Pure numpy.

Everything comes from posterior draws of the factorial policy's model
(``croupier.router.policies.factorial``): a level's conversion rate is the
model's predicted rate averaged over the allowed combinations holding that
level (the other factors marginalised uniformly over what the constraints
allow), its interval the 2.5% and 97.5% quantiles of that average over the
draws, and ``p_best`` the share of draws in which it is the highest of its
factor's levels.

Adaptive allocation does not bias these figures: they are likelihood-based,
and the probability of each assignment depended only on data already
observed, so the allocation's factor in the likelihood is free of the model's
parameters and drops out of the posterior (the design is ignorable; Gelman et
al., "Bayesian Data Analysis", 3rd ed., 8.3). Raw per-level rates are not
offered: under a bandit's allocation a level's visitors are a mix of
combinations that differs from level to level.

The functions return JSON-ready dicts (floats, ints, lists; ``None`` where a
cell has no allowed combination) for the stats endpoint and the dashboard.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from croupier.router.policies.base import winner_shares
from croupier.router.policies.factorial import (FactorialState, FactorialThompson, Posterior, level_index,
                                               level_sums, logistic)

INTERVAL = (0.025, 0.975)
_Z = 1.959963984540054  # the normal's 97.5% quantile: the Laplace posterior of a coefficient is normal
_CELLS = 1 << 21  # draws x combinations per chunk of predicted rates: bounded memory for 16,384 combinations


def _posterior(source: FactorialState | Posterior | FactorialThompson, levels, n_levels, trials,
               successes) -> Posterior:
    """The posterior behind ``source``: a refresh's state, a posterior, or a policy to fit one now."""
    if isinstance(source, FactorialThompson):
        return source.posterior(levels, n_levels, trials, successes)
    posterior = source.posterior if isinstance(source, FactorialState) else source
    if not isinstance(posterior, Posterior):
        raise TypeError("source: must be a FactorialState, a Posterior or a FactorialThompson policy")
    if not posterior.design.matches(levels, n_levels, posterior.design.interactions):
        raise ValueError("levels: not the combinations the posterior was fitted on")
    return posterior


def _check_names(factor_names: Sequence[str], level_names: Sequence[Sequence[str]],
                 n_levels: tuple[int, ...]) -> None:
    if len(factor_names) != len(n_levels):
        raise ValueError(f"factor_names: needs {len(n_levels)} names, got {len(factor_names)}")
    if len(level_names) != len(n_levels):
        raise ValueError(f"level_names: needs one list per factor ({len(n_levels)})")
    for f, (names, n) in enumerate(zip(level_names, n_levels)):
        if len(names) != n:
            raise ValueError(f"level_names: factor {factor_names[f]!r} needs {n} names, got {len(names)}")


def _group_rates(posterior: Posterior, coefficients: np.ndarray, groups: np.ndarray,
                 n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Each draw's predicted rate averaged over the combinations of each group: (D, G) (NaN for
    an empty group), and every combination's posterior mean rate (C,).

    ``groups`` (C, k) assigns each combination to k groups (one column per factor for levels)."""
    x = posterior.design.matrix
    c = x.shape[0]
    member = np.zeros((c, n_groups))
    for column in groups.T:
        member[np.arange(c), column] = 1.0
    count = member.sum(axis=0)
    member /= np.where(count > 0, count, 1.0)
    out = np.empty((len(coefficients), n_groups))
    mean_rate = np.zeros(c)
    step = max(1, _CELLS // c)
    for start in range(0, len(coefficients), step):
        rates = logistic(coefficients[start:start + step] @ x.T)  # (chunk, C)
        out[start:start + step] = rates @ member
        mean_rate += rates.sum(axis=0)
    out[:, count == 0] = np.nan
    return out, mean_rate / len(coefficients)


def _interval(draws: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    low, high = np.quantile(draws, INTERVAL, axis=0)
    return draws.mean(axis=0), low, high


def _num(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def rollups(source: FactorialState | Posterior | FactorialThompson, levels, n_levels,
            factor_names: Sequence[str], level_names: Sequence[Sequence[str]], trials, successes,
            rng: np.random.Generator, draws: int = 2000) -> dict:
    """Per level: rate, 95% interval, ``p_best`` and raw counts; per pair of levels of each pair of
    factors: the interaction; and the best combination.

    ``source``: the refresh's ``FactorialState`` (or its ``Posterior``), or the policy
    (the posterior is then fitted here from ``trials``/``successes``). Shape::

        {"factors": [{"name", "levels": [{"name", "rate", "low", "high", "p_best",
                                          "trials", "conversions"}]}],
         "interactions": [{"factors": [f, g], "levels": [a, b], "effect", "low", "high",
                           "lift", "lift_low", "lift_high"}],
         "best": {"arm": index, "arm_levels": [...], "names": [...], "rate", "low", "high"}}

    ``effect`` is the interaction coefficient on the logit scale (posterior mean and
    95% interval of the normal posterior); ``lift`` is ``e^effect - 1``, the relative
    change in the odds of conversion when both levels are shown together beyond what
    their main effects predict. Interactions are empty for ``interactions = "none"``.
    The best combination has the highest posterior mean rate.
    """
    posterior = _posterior(source, levels, n_levels, trials, successes)
    design = posterior.design
    n_levels = design.n_levels
    _check_names(factor_names, level_names, n_levels)
    coefficients = posterior.draws(rng, draws)
    flat = level_index(design.levels, n_levels)
    level_draws, mean_rate = _group_rates(posterior, coefficients, flat, int(sum(n_levels)))
    rate, low, high = _interval(level_draws)
    level_trials = level_sums(np.asarray(trials, dtype=np.float64), design.levels, n_levels)
    level_conversions = level_sums(np.asarray(successes, dtype=np.float64), design.levels, n_levels)
    factors, offset = [], 0
    for f, n in enumerate(n_levels):
        block = level_draws[:, offset:offset + n]
        p_best = winner_shares(np.where(np.isnan(block), -np.inf, block))
        factors.append({"name": factor_names[f], "levels": [
            {"name": level_names[f][a], "rate": _num(rate[offset + a]), "low": _num(low[offset + a]),
             "high": _num(high[offset + a]), "p_best": float(p_best[a]),
             "trials": int(level_trials[offset + a]), "conversions": int(level_conversions[offset + a])}
            for a in range(n)]})
        offset += n
    interactions = []
    for j, column in enumerate(design.columns):
        if len(column) != 4:
            continue
        f, a, g, b = column
        effect, sd = float(posterior.mean[j]), float(np.sqrt(posterior.cov[j, j]))
        lo, hi = effect - _Z * sd, effect + _Z * sd
        interactions.append({"factors": [factor_names[f], factor_names[g]],
                             "levels": [level_names[f][a], level_names[g][b]],
                             "effect": effect, "low": lo, "high": hi,
                             "lift": float(np.expm1(effect)), "lift_low": float(np.expm1(lo)),
                             "lift_high": float(np.expm1(hi))})
    best = int(np.argmax(mean_rate))
    best_draws = logistic(coefficients @ design.matrix[best])
    _, best_low, best_high = _interval(best_draws)
    arm_levels = [int(v) for v in design.levels[best]]
    return {"factors": factors, "interactions": interactions,
            "best": {"arm": best, "arm_levels": arm_levels,
                     "names": [level_names[f][a] for f, a in enumerate(arm_levels)],
                     "rate": float(mean_rate[best]), "low": float(best_low), "high": float(best_high)}}


def _factor(which: int | str, factor_names: Sequence[str], field: str) -> int:
    if isinstance(which, str):
        if which not in factor_names:
            raise ValueError(f"{field}: unknown factor {which!r}")
        return list(factor_names).index(which)
    if isinstance(which, bool) or not isinstance(which, int) or not 0 <= which < len(factor_names):
        raise ValueError(f"{field}: must be a factor name or an index below {len(factor_names)}")
    return which


def heatmap(source: FactorialState | Posterior | FactorialThompson, levels, n_levels,
            factor_names: Sequence[str], level_names: Sequence[Sequence[str]], rows: int | str,
            cols: int | str, trials, successes, rng: np.random.Generator, draws: int = 2000) -> dict:
    """Predicted rates over the levels of two factors, the others marginalised uniformly over the
    allowed combinations: ``{"factors": [rows, cols], "rows": [...], "cols": [...],
    "rates": [[...]], "low": [[...]], "high": [[...]]}`` (``None`` where no allowed combination
    holds both levels). ``rows``/``cols``: factor names or indices."""
    posterior = _posterior(source, levels, n_levels, trials, successes)
    design = posterior.design
    _check_names(factor_names, level_names, design.n_levels)
    r, c = _factor(rows, factor_names, "rows"), _factor(cols, factor_names, "cols")
    if r == c:
        raise ValueError("cols: must differ from rows")
    n_r, n_c = design.n_levels[r], design.n_levels[c]
    cell = (design.levels[:, r] * n_c + design.levels[:, c])[:, None]
    cell_draws, _ = _group_rates(posterior, posterior.draws(rng, draws), cell, n_r * n_c)
    rate, low, high = _interval(cell_draws)

    def grid(values: np.ndarray) -> list[list[float | None]]:
        return [[_num(v) for v in row] for row in values.reshape(n_r, n_c)]

    return {"factors": [factor_names[r], factor_names[c]], "rows": list(level_names[r]),
            "cols": list(level_names[c]), "rates": grid(rate), "low": grid(low), "high": grid(high)}
