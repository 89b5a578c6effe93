"""Statistics for the stats endpoint and the dashboard. Pure: numpy and the standard library.

- ``posterior_summary``: Beta posteriors per variant (mean, 95% credible
  interval, probability to be best, expected loss), Monte Carlo, vectorised.
- ``srm_check``: sample-ratio mismatch against the shares the policy actually
  gave, period by period (the split moves, so a pooled chi-square would not do).
- ``stratified_lift``: lift per variant, stratified by allocation period, beside
  the pooled figure that is biased when allocation and base rate move together.

Functions that feed the admin API return plain floats, ints, bools and lists.
"""

from __future__ import annotations

import math

import numpy as np

from croupier.router.policies import ArmStats

SRM_ALERT_P = 0.001
_EPS = 1e-15
_MAX_TERMS = 10_000


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


def _log_gamma_prefactor(a: float, x: float) -> float:
    return -x + a * math.log(x) - math.lgamma(a)


def regularized_gamma_q(a: float, x: float) -> float:
    """Upper regularised incomplete gamma ``Q(a, x) = 1 - P(a, x)``.

    Series for ``x < a + 1``, Lentz's continued fraction otherwise (Press et al.,
    "Numerical Recipes", 3rd ed., section 6.2); each converges fast on its side.
    """
    if a <= 0 or x < 0 or math.isnan(x):
        raise ValueError(f"regularized_gamma_q: needs a > 0 and x >= 0, got a={a}, x={x}")
    if x == 0:
        return 1.0
    if x < a + 1.0:
        term = total = 1.0 / a
        for n in range(1, _MAX_TERMS):
            term *= x / (a + n)
            total += term
            if abs(term) < abs(total) * _EPS:
                break
        return max(0.0, 1.0 - total * math.exp(_log_gamma_prefactor(a, x)))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_TERMS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        step = d * c
        h *= step
        if abs(step - 1.0) < _EPS:
            break
    return min(1.0, math.exp(_log_gamma_prefactor(a, x)) * h)


def chi2_sf(x: float, dof: float) -> float:
    """P(X >= x) for X chi-square with ``dof`` degrees of freedom."""
    return regularized_gamma_q(dof / 2.0, max(x, 0.0) / 2.0) if dof > 0 else 1.0


def _merge_sparse_periods(observed: np.ndarray, expected: np.ndarray, min_expected: float):
    """Merge consecutive periods until every arm that was offered expects ``min_expected`` assignments."""
    groups_o, groups_e = [], []
    acc_o, acc_e = np.zeros(observed.shape[1]), np.zeros(observed.shape[1])
    for o, e in zip(observed, expected):
        acc_o, acc_e = acc_o + o, acc_e + e
        offered = acc_e > 0
        if offered.any() and acc_e[offered].min() >= min_expected:
            groups_o.append(acc_o)
            groups_e.append(acc_e)
            acc_o, acc_e = np.zeros_like(acc_o), np.zeros_like(acc_e)
    if acc_o.sum() > 0 or acc_e.sum() > 0:
        if groups_o:  # a sparse tail joins the last full group
            groups_o[-1] = groups_o[-1] + acc_o
            groups_e[-1] = groups_e[-1] + acc_e
        else:
            groups_o.append(acc_o)
            groups_e.append(acc_e)
    return groups_o, groups_e


def srm_check(observed, expected, *, min_expected: float = 5.0, alert_p: float = SRM_ALERT_P) -> dict:
    """Sample-ratio mismatch test when the split changed over time.

    ``observed[p, k]``: assignments to arm ``k`` in period ``p``; ``expected[p, k]``:
    the sum of the propensities the policy gave arm ``k`` over that period's
    assignments (what the split should have produced). Per period,
    ``sum_k (O - E)^2 / E`` with ``E`` rescaled to the period's observed total, has
    ``(arms offered - 1)`` degrees of freedom; the sum over periods is tested
    against chi-square with the summed degrees of freedom. Periods are merged
    (in order) until each offered arm expects ``min_expected`` assignments, so
    the chi-square approximation holds. When the propensities vary inside a
    period the counts are less variable than multinomial, which makes the test
    slightly conservative. Assignments to an arm with zero expected share are a
    mismatch by themselves and raise the alert.
    """
    observed = np.atleast_2d(np.asarray(observed, dtype=np.float64))
    expected = np.atleast_2d(np.asarray(expected, dtype=np.float64))
    if observed.shape != expected.shape:
        raise ValueError(f"srm_check: observed {observed.shape} and expected {expected.shape} differ in shape")
    if (observed < 0).any() or (expected < 0).any():
        raise ValueError("srm_check: counts must be non-negative")
    chi2, dof, unexpected = 0.0, 0, 0.0
    groups_o, groups_e = _merge_sparse_periods(observed, expected, min_expected)
    for o, e in zip(groups_o, groups_e):
        offered = e > 0
        unexpected += float(o[~offered].sum())
        if offered.sum() < 2 or o[offered].sum() == 0:
            continue
        e_scaled = e[offered] * (o[offered].sum() / e[offered].sum())
        chi2 += float((((o[offered] - e_scaled) ** 2) / e_scaled).sum())
        dof += int(offered.sum()) - 1
    p_value = chi2_sf(chi2, dof) if dof else 1.0
    return {
        "chi2": chi2,
        "dof": dof,
        "p_value": p_value,
        "alert": bool(p_value < alert_p or unexpected > 0),
        "alert_p": alert_p,
        "periods": len(groups_o),
        "unexpected_assignments": int(unexpected),
        "observed": observed.sum(axis=0).tolist(),
        "expected": expected.sum(axis=0).tolist(),
    }


def _floats(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN: undefined figures become ``None``."""
    return [None if not math.isfinite(v) else float(v) for v in np.asarray(values, dtype=np.float64)]


def stratified_lift(trials, successes, control: int = 0, z: float = 1.96) -> dict:
    """Each arm's lift over ``control``, pooled and stratified by allocation period.

    ``trials[p, k]`` and ``successes[p, k]`` per period ``p`` (a span with one
    split, e.g. a history bucket). Pooling divides total successes by total
    trials; if an arm got more traffic while the base rate was high, its pooled
    rate inherits that (Simpson's paradox). The stratified rate compares arms
    within each period and averages with the period's share of all visitors,
    ``r_k = sum_p w_p s_pk / n_pk``, over the periods where both the arm and the
    control were played (the direct standardisation of epidemiology). The
    difference ``r_k - r_control`` has variance
    ``sum_p w_p^2 (q_pk (1 - q_pk) / n_pk + q_pc (1 - q_pc) / n_pc)`` with
    ``q = (s + 1) / (n + 2)`` so periods without conversions do not claim zero
    variance.
    """
    n = np.atleast_2d(np.asarray(trials, dtype=np.float64))
    s = np.minimum(np.atleast_2d(np.asarray(successes, dtype=np.float64)), n)
    if n.shape != s.shape:
        raise ValueError(f"stratified_lift: trials {n.shape} and successes {s.shape} differ in shape")
    k = n.shape[1]
    if not 0 <= control < k:
        raise ValueError(f"stratified_lift: control {control} is not an arm index below {k}")
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = s.sum(axis=0) / n.sum(axis=0)
        rate = s / n
    q = (s + 1.0) / (n + 2.0)
    var = q * (1.0 - q) / np.maximum(n, 1.0)
    both = (n > 0) & (n[:, [control]] > 0)  # (P, K): periods usable for each arm
    weights = np.where(both, n.sum(axis=1, keepdims=True), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = weights / weights.sum(axis=0, keepdims=True)
        strat = np.where(both, weights * np.nan_to_num(rate), 0.0).sum(axis=0)
        strat_control = np.where(both, weights * np.nan_to_num(rate[:, [control]]), 0.0).sum(axis=0)
        usable = both.any(axis=0)
        strat = np.where(usable, strat, np.nan)
        strat_control = np.where(usable, strat_control, np.nan)
        diff = strat - strat_control
        se = np.sqrt(np.where(both, weights ** 2 * (var + var[:, [control]]), 0.0).sum(axis=0))
        se[control] = 0.0
        se = np.where(usable, se, np.nan)
        pooled_lift = pooled / pooled[control] - 1.0
        strat_lift = strat / strat_control - 1.0
    return {
        "control": control,
        "pooled_rate": _floats(pooled),
        "pooled_lift": _floats(pooled_lift),
        "pooled_diff": _floats(pooled - pooled[control]),
        "stratified_rate": _floats(strat),
        "stratified_lift": _floats(strat_lift),
        "stratified_diff": _floats(diff),
        "stratified_diff_se": _floats(se),
        "stratified_diff_ci_low": _floats(diff - z * se),
        "stratified_diff_ci_high": _floats(diff + z * se),
        "periods_used": both.sum(axis=0).astype(int).tolist(),
    }
