"""Always-valid inference on a variant against control: a confidence sequence. Pure numpy.

A guardrail is checked at every snapshot refresh. A fixed-sample 95% interval
looked at that often would, sooner or later, exclude the truth in most
experiments; a *confidence sequence* holds the truth at every look at once
(``P(for all n: truth in interval_n) >= 1 - alpha``), so it may be looked at
after every visitor, and a decision taken at any look keeps its error rate.

The method: Robbins' normal mixture, in the form of Howard, Ramdas, McAuliffe
and Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49(2), eq. (14) (the two-sided normal-mixture
boundary), with each arm's variance estimated from its data (asymptotically
valid: Waudby-Smith et al. 2021, "Time-uniform central limit theory and
asymptotic confidence sequences"). For arm ``k`` with ``n_k`` observations of
variance ``s_k^2`` and sum ``S_k``,

    M_k = sqrt(rho / (n_k + rho)) * exp((S_k - n_k mu_k)^2 / (2 s_k^2 (n_k + rho)))

is the normal mixture (mixing precision ``rho * s_k^2``) of the exponential
supermartingales of that arm. Each ``M_k`` moves only when arm ``k`` is
observed, so the product ``M_control * M_variant`` is a nonnegative
supermartingale whatever decides which arm a visitor gets (a bandit's adaptive
split included), and Ville's inequality gives ``P(ever M >= 1 / alpha) <= alpha``.
``{(mu_c, mu_v): M < 1 / alpha}`` is an ellipse around the arms' means; any
contrast ``theta = mu_v - ratio * mu_c`` lies, at every look, in the ellipse's
projection:

    theta_hat +- sqrt(2 L W),
    W = s_v^2 (n_v + rho) / n_v^2 + ratio^2 s_c^2 (n_c + rho) / n_c^2,
    L = log(1 / alpha) + (log(1 + n_v / rho) + log(1 + n_c / rho)) / 2.

``rho`` (in observations) sets where the sequence is tightest: ``rho_for(n)``
picks the ``rho`` that minimises the width at ``n`` observations per arm
(Howard et al. 2021, section 3.5). Every contrast comes from the same ellipse,
so intervals for several ratios hold simultaneously.

Relative thresholds ("no more than 10% above control") are tested exactly,
without the delta method: ``mu_v <= 1.1 mu_c`` is ``mu_v - 1.1 mu_c <= 0``,
the contrast with ``ratio = 1.1``.

Sufficient statistics per arm: ``(n, successes)`` for a proportion,
``(n, sum, sum_of_squares)`` for a mean. Every function broadcasts over arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

KINDS = ("proportion", "mean")
DEFAULT_N_OPT = 1000  # observations per arm where the default sequence is tightest
ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass(frozen=True)
class Interval:
    """A confidence sequence's value at one look: arrays of one shape (or floats)."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def contains(self, value) -> np.ndarray:
        return (self.low <= value) & (value <= self.high)


@lru_cache(maxsize=64)
def rho_for(n_opt: float, alpha: float = 0.05) -> float:
    """The mixing ``rho`` whose two-arm sequence is narrowest at ``n_opt`` observations per arm.

    With ``x = rho / n`` the width is ``(1 + x) (log(1 / alpha) + log(1 + 1 / x))``
    up to factors free of ``x``; its minimum solves ``1 / x = log(1 / alpha) +
    log(1 + 1 / x)`` (found by fixed-point iteration; Howard et al. 2021 give the
    one-arm analogue ``x ~ 1 / (2 log(1 / alpha) + log(1 + 2 log(1 / alpha)))``).
    """
    if not n_opt > 0 or not 0 < alpha < 1:
        raise ValueError(f"rho_for: needs n_opt > 0 and 0 < alpha < 1, got {n_opt}, {alpha}")
    level = math.log(1.0 / alpha)
    inverse = level + 1.0
    for _ in range(100):
        inverse = level + math.log1p(inverse)
    return n_opt / inverse


def arm_moments(kind: str, stats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(n, mean, variance)`` of one arm's sufficient statistics.

    A proportion's variance is ``q (1 - q)`` with ``q = (k + 1) / (n + 2)``, so an
    arm with no successes yet does not claim to be certain (as in
    ``statistics.stratified_lift``). A mean's is the sample variance; below two
    observations it is unknown (infinite).
    """
    if kind not in KINDS:
        raise ValueError(f"kind: must be one of {', '.join(KINDS)}, got {kind!r}")
    expected = 2 if kind == "proportion" else 3
    if len(stats) != expected:
        names = "(n, successes)" if kind == "proportion" else "(n, sum, sum_of_squares)"
        raise ValueError(f"{kind} statistics: must be {names}, got {len(stats)} values")
    n = np.asarray(stats[0], dtype=np.float64)
    safe = np.maximum(n, 1.0)
    if kind == "proportion":
        k = np.clip(np.asarray(stats[1], dtype=np.float64), 0.0, n)
        q = (k + 1.0) / (n + 2.0)
        return n, k / safe, q * (1.0 - q)
    total = np.asarray(stats[1], dtype=np.float64)
    squares = np.asarray(stats[2], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(n >= 2, np.maximum(squares - total * total / safe, 0.0) / (n - 1.0), np.inf)
    return n, total / safe, var


def _contrast(kind: str, control, variant, ratio, rho: float):
    """``theta_hat``, ``W`` and the log term ``G = L - log(1 / alpha)`` of the module docstring."""
    n_c, mean_c, var_c = arm_moments(kind, control)
    n_v, mean_v, var_v = arm_moments(kind, variant)
    ratio = np.asarray(ratio, dtype=np.float64)
    empty = (n_c <= 0) | (n_v <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = (var_v * (n_v + rho) / np.square(n_v)
                  + np.where(ratio == 0, 0.0, np.square(ratio) * var_c * (n_c + rho) / np.square(n_c)))
    spread = np.where(empty, np.inf, spread)
    estimate = np.where(empty, np.nan, mean_v - ratio * mean_c)
    log_term = 0.5 * (np.log1p(np.maximum(n_v, 0.0) / rho) + np.log1p(np.maximum(n_c, 0.0) / rho))
    return estimate, spread, log_term


def _rho(rho: float | None, alpha: float) -> float:
    if rho is None:
        return rho_for(DEFAULT_N_OPT, alpha)
    if not rho > 0:
        raise ValueError(f"rho: must be positive, got {rho}")
    return float(rho)


def difference_sequence(kind: str, control, variant, alpha: float = 0.05, *, ratio=1.0,
                        rho: float | None = None) -> Interval:
    """The confidence sequence for ``mean_variant - ratio * mean_control`` at this look.

    Holds the truth at every look at once with probability at least ``1 - alpha``
    (see the module docstring). ``rho`` defaults to ``rho_for(DEFAULT_N_OPT, alpha)``.
    An arm without observations gives ``(nan, -inf, inf)``.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must be in (0, 1), got {alpha}")
    estimate, spread, log_term = _contrast(kind, control, variant, ratio, _rho(rho, alpha))
    half = np.sqrt(2.0 * (math.log(1.0 / alpha) + log_term) * spread)
    low = np.where(np.isnan(estimate), -np.inf, estimate - half)
    high = np.where(np.isnan(estimate), np.inf, estimate + half)
    return Interval(estimate, low, high)


def always_valid_p_value(kind: str, control, variant, *, null=0.0, ratio=1.0, alternative: str = "greater",
                         rho: float | None = None, alpha: float = 0.05) -> np.ndarray:
    """An always-valid p-value for ``H0: mean_variant - ratio * mean_control <= null`` (``"greater"``).

    ``"less"`` tests ``>= null``, ``"two-sided"`` ``== null``. ``p < alpha`` exactly
    when the ``alpha``-level sequence excludes every value of ``H0``, so under
    ``H0`` the chance that ``p`` ever drops below ``alpha`` is at most ``alpha``;
    the running minimum over looks is valid too. ``alpha`` only picks the default
    ``rho`` (the p-value is that of the sequence tuned for ``alpha``).
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative: must be one of {', '.join(ALTERNATIVES)}, got {alternative!r}")
    estimate, spread, log_term = _contrast(kind, control, variant, ratio, _rho(rho, alpha))
    gap = estimate - np.asarray(null, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(1.0, np.exp(log_term - np.square(gap) / (2.0 * spread)))
    if alternative == "greater":
        p = np.where(gap > 0, p, 1.0)
    elif alternative == "less":
        p = np.where(gap < 0, p, 1.0)
    return np.where(np.isnan(gap) | np.isnan(p), 1.0, p)  # nan: no data, or 0 / 0 with no spread
