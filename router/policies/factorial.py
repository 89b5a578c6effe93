"""Thompson sampling over the combinations of a factorial experiment, through a shared model. Pure numpy.

A factorial experiment varies F page elements (factors) at once; its arms are
the C allowed combinations of their levels, ``levels`` (C, F) of level
indices with level 0 of each factor the control. Independent arms would learn
each combination alone; here every combination's conversion shares
parameters with every other that holds one of its levels:

    logit P(convert | c) = b_0 + sum_f b_f[l_f(c)] + sum_{f<g} b_fg[l_f(c), l_g(c)]

with ``b_f[0] = 0`` and ``b_fg[a, b] = 0`` when either level is a control
(treatment coding), so the intercept is the all-control combination's logit.
``interactions = "none"`` keeps the main effects alone. With 4 factors of 4
levels: 1 + 12 + 6 * 9 = 67 coefficients. Columns no allowed combination
holds (a pair of levels a constraint forbids) are left out.

Prior: independent normals, the intercept ``N(logit(base_rate), 2^2)`` (wide:
rates from 0.1% to 50% within two sd of 5%), main effects ``N(0, prior_scale^2)``
and pairwise interactions ``N(0, (prior_scale / 2)^2)``, so an interaction
stays near 0 unless the data insist. The default ``prior_scale = 0.2`` puts 95%
of a page element's effect within a factor of 1.5 on the odds of converting
(interactions within 1.2), still wide for landing pages, where one element's
lift is rarely beyond a few tens of percent; a wider prior costs exploration
and, through the interactions' prior, the search for the best combination
(docs/policies.md measures 0.2, 0.3, 0.5 and 1.0). A larger true effect is
still learnt, with the data outweighing the prior a little later.

Posterior: the Laplace approximation ``N(m, H^-1)`` at the mode ``m``, found
by Newton's method on the aggregated binomial counts of each combination
(the design matrix is one row per combination, not per visitor):
gradient ``X^T (s - n p) - P (b - mu)``, Hessian ``-(X^T diag(n p (1 - p)) X + P)``,
``P`` the prior precision. The log-posterior is strictly concave, so each
Newton step with step halving (until the log-posterior does not fall)
converges; a refit starts from the previous mode (``previous``), which a
refresh's few new visitors move little. With no data the gradient at the
prior mean is 0 and the posterior is the prior. Bishop, "Pattern Recognition
and Machine Learning" (2006), 4.5; Chapelle & Li (2011) for Thompson sampling
on a Laplace-approximated logistic posterior.

Thompson sampling through a posterior pool, like ``contextual.py``: each
refresh draws ``pool`` coefficient vectors from the posterior, finds the
combination each one scores highest (``winning_combinations``), and a
combination's probability is the share of pool members it wins. The router
draws each visitor's combination from these probabilities, so the propensity
logged with an assignment is exactly its probability under the policy, not an
estimate of one. Past ``search_above`` combinations the argmax is a stated
search instead of scoring every combination (``winning_combinations``).

The pool is drawn from ``N(m, temperature * H^-1)``, ``temperature`` 0.7 by
default: a tuning, not a posterior. Thompson sampling explores in proportion to
the posterior's width, and with 67 coefficients and 54 of them interactions
that keep many neighbours of the leader alive, narrowing the draws cut the
benchmark's regret by about 15% with no loss in finding the best (docs/policies.md);
Chapelle & Li (2011) discuss the same reshaping of the posterior. The
posterior itself (``FactorialState.posterior``, what the statistics read) is
untempered.

``level_floor`` turns an experiment's ``min_share`` into a floor on every
level's marginal share (a per-combination floor of 1% is impossible for 255
combinations).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from croupier.router.policies.base import ArmStats, Policy, PolicyError, check_int, check_number
from croupier.router.policies.best_arm import thompson_probabilities

INTERACTIONS = ("none", "pairwise")
MAX_COMBINATIONS = 16384
INTERCEPT_SD = 2.0
PAIR_SHRINK = 0.5  # an interaction's prior sd relative to a main effect's
_NEWTON_MAX = 50
# Newton decrement g^T H^-1 g: the squared length of the step in posterior sd. Stop when it is below
# _TOL, or right after a full step from a point where it was below _ONE_STEP (quadratic convergence
# leaves a decrement of order _ONE_STEP^2 there; the covariance is then the Hessian one small step away)
_TOL = 1e-10
_ONE_STEP = 1e-3
# the search past search_above: starts per pool member and a bound on sweeps over the factors
_CANDIDATES = 64
_RANDOM_STARTS = 1
_MAX_SWEEPS = 20


def logistic(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + e^-x)`` without overflow for large ``|x|``."""
    return np.exp(-np.logaddexp(0.0, -x))


def level_index(levels: np.ndarray, n_levels: tuple[int, ...]) -> np.ndarray:
    """Each combination's levels as indices into the flat list of all factors' levels: (C, F).

    Factor ``f``'s level ``a`` is ``sum(n_levels[:f]) + a``; per-level sums are one
    ``bincount`` over these (marginal shares, level counts, level rates)."""
    offsets = np.concatenate([[0], np.cumsum(n_levels)[:-1]]).astype(np.int64)
    return levels + offsets


def level_sums(values: np.ndarray, levels: np.ndarray, n_levels: tuple[int, ...]) -> np.ndarray:
    """``values`` (C,) summed over the combinations holding each level: flat (sum(n_levels),)."""
    flat = level_index(levels, n_levels)
    total = int(sum(n_levels))
    return sum(np.bincount(flat[:, f], weights=values, minlength=total) for f in range(levels.shape[1]))


@dataclass(frozen=True, eq=False)
class Design:
    """The model's columns for one experiment's allowed combinations.

    ``columns[j]``: ``()`` the intercept, ``(f, a)`` factor f's level a, ``(f, a, g, b)``
    the interaction of f's level a with g's level b (``f < g``). ``active`` (C, m)
    lists each combination's columns (``d`` = ``len(columns)`` where a term has none:
    a control level), so a score is a sum of ``m`` coefficients; ``matrix`` is the
    dense one-hot form (C, d). ``main_col`` (F, L) and ``pair_col`` (F, F, L, L) map
    levels to columns (``d`` for none), both ways round for pairs, for the search.
    """

    levels: np.ndarray
    n_levels: tuple[int, ...]
    interactions: str
    columns: tuple[tuple[int, ...], ...]
    active: np.ndarray
    matrix: np.ndarray
    main_col: np.ndarray
    pair_col: np.ndarray
    code: np.ndarray = field(repr=False)  # each combination's mixed-radix code
    codes: np.ndarray = field(repr=False)  # the same, sorted
    code_order: np.ndarray = field(repr=False)  # combination index of each sorted code
    radix: np.ndarray = field(repr=False)

    @classmethod
    def build(cls, levels, n_levels, interactions: str = "pairwise") -> Design:
        levels, n_levels = check_design(levels, n_levels)
        c, f_count = levels.shape
        big = max(n_levels)
        # candidate columns in a fixed order; those no allowed combination holds are dropped
        candidates: list[tuple[int, ...]] = [()]
        holders: list[np.ndarray] = [np.ones(c, dtype=bool)]
        for f, n in enumerate(n_levels):
            for a in range(1, n):
                candidates.append((f, a))
                holders.append(levels[:, f] == a)
        if interactions == "pairwise":
            for f in range(f_count):
                for g in range(f + 1, f_count):
                    for a in range(1, n_levels[f]):
                        for b in range(1, n_levels[g]):
                            candidates.append((f, a, g, b))
                            holders.append((levels[:, f] == a) & (levels[:, g] == b))
        kept = [(col, h) for col, h in zip(candidates, holders) if h.any()]
        columns = tuple(col for col, _ in kept)
        d = len(columns)
        matrix = np.column_stack([h for _, h in kept]).astype(np.float64)
        main_col = np.full((f_count, big), d, dtype=np.int64)
        pair_col = np.full((f_count, f_count, big, big), d, dtype=np.int64)
        for j, col in enumerate(columns):
            if len(col) == 2:
                main_col[col] = j
            elif len(col) == 4:
                f, a, g, b = col
                pair_col[f, g, a, b] = pair_col[g, f, b, a] = j
        terms = [np.zeros(c, dtype=np.int64)]  # the intercept, column 0
        terms += [main_col[f, levels[:, f]] for f in range(f_count)]
        if interactions == "pairwise":
            terms += [pair_col[f, g, levels[:, f], levels[:, g]]
                      for f in range(f_count) for g in range(f + 1, f_count)]
        radix = np.concatenate([[1], np.cumprod(n_levels[:-1])]).astype(np.int64)
        code = levels @ radix
        order = np.argsort(code, kind="stable")
        if np.any(np.diff(code[order]) == 0):
            raise ValueError("levels: every combination must appear once")
        return cls(levels, n_levels, interactions, columns, np.column_stack(terms), matrix, main_col, pair_col,
                   code, code[order], order, radix)

    def matches(self, levels, n_levels, interactions: str) -> bool:
        levels = np.asarray(levels)
        return (self.interactions == interactions and tuple(n_levels) == self.n_levels
                and levels.shape == self.levels.shape and bool(np.array_equal(levels, self.levels)))

    @property
    def n_combinations(self) -> int:
        return int(self.levels.shape[0])

    def prior(self, base_rate: float, prior_scale: float) -> tuple[np.ndarray, np.ndarray]:
        """Prior mean and sd of every column."""
        mean = np.zeros(len(self.columns))
        mean[0] = np.log(base_rate / (1.0 - base_rate))
        sd = np.array([INTERCEPT_SD if not col else prior_scale if len(col) == 2 else prior_scale * PAIR_SHRINK
                       for col in self.columns])
        return mean, sd

    def lookup(self, code: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Combination index of each mixed-radix ``code`` and whether it is allowed."""
        pos = np.minimum(np.searchsorted(self.codes, code), len(self.codes) - 1)
        return self.code_order[pos], self.codes[pos] == code


def check_design(levels, n_levels) -> tuple[np.ndarray, tuple[int, ...]]:
    """``levels`` as an int array (C, F) of valid level indices and ``n_levels`` as a tuple; ValueError names the field."""
    try:
        n_levels = tuple(int(n) for n in n_levels)
    except (TypeError, ValueError):
        raise ValueError("n_levels: must be a sequence of level counts") from None
    if not n_levels or min(n_levels) < 2:
        raise ValueError("n_levels: every factor needs at least 2 levels")
    if math.prod(n_levels) >= 1 << 62:  # a combination's code (mixed radix) must fit in an int64
        raise ValueError("n_levels: too many combinations in the full factorial")
    levels = np.asarray(levels)
    if levels.ndim != 2 or levels.shape[1] != len(n_levels) or levels.shape[0] == 0:
        raise ValueError(f"levels: must be an array (C, {len(n_levels)}) with C >= 1")
    if not np.issubdtype(levels.dtype, np.integer) or np.any(levels < 0) or np.any(levels >= np.array(n_levels)):
        raise ValueError("levels: every entry must be a level index below its factor's n_levels")
    if levels.shape[0] > MAX_COMBINATIONS:
        raise ValueError(f"levels: at most {MAX_COMBINATIONS} combinations")
    return levels.astype(np.int64), n_levels


@dataclass(frozen=True, eq=False)
class Posterior:
    """``N(mean, cov)`` over the design's columns; ``iterations``: Newton steps the fit took."""

    design: Design
    mean: np.ndarray
    cov: np.ndarray
    iterations: int

    @property
    def columns(self) -> tuple[tuple[int, ...], ...]:
        return self.design.columns

    def draws(self, rng: np.random.Generator, size: int, temperature: float = 1.0) -> np.ndarray:
        """``size`` coefficient vectors from the posterior, or from ``N(mean, temperature * cov)``: (size, d)."""
        chol = np.linalg.cholesky(self.cov) * math.sqrt(temperature)
        return self.mean + rng.standard_normal((size, len(self.mean))) @ chol.T


@dataclass(frozen=True, eq=False)
class FactorialState:
    """What one refresh computes: ``probs`` (C,) the router draws from (floor applied), ``shares``
    the pool's shares before the floor, and the posterior (mean, covariance, columns), which the
    statistics read and the next refresh warm-starts from."""

    probs: np.ndarray
    shares: np.ndarray
    posterior: Posterior

    @property
    def mean(self) -> np.ndarray:
        return self.posterior.mean

    @property
    def cov(self) -> np.ndarray:
        return self.posterior.cov

    @property
    def columns(self) -> tuple[tuple[int, ...], ...]:
        return self.posterior.columns


def laplace_fit(design: Design, trials, successes, prior_mean: np.ndarray, prior_sd: np.ndarray,
                start: np.ndarray | None = None) -> Posterior:
    """The Laplace approximation of the logistic posterior on aggregated counts (module docstring)."""
    x = design.matrix
    n = np.asarray(trials, dtype=np.float64)
    if n.shape != (design.n_combinations,) or not np.all(np.isfinite(n) & (n >= 0)):
        raise ValueError(f"trials: must be {design.n_combinations} finite counts >= 0")
    s = np.asarray(successes, dtype=np.float64)
    if s.shape != n.shape or not np.all(np.isfinite(s) & (s >= 0)):
        raise ValueError(f"successes: must be {design.n_combinations} finite counts >= 0")
    s = np.minimum(s, n)
    precision = 1.0 / prior_sd ** 2

    def log_posterior(b: np.ndarray, eta: np.ndarray) -> float:
        return float(s @ eta - n @ np.logaddexp(0.0, eta) - 0.5 * precision @ (b - prior_mean) ** 2)

    beta = prior_mean.copy() if start is None else np.asarray(start, dtype=np.float64).copy()
    eta = x @ beta
    it = 0
    while True:
        p = logistic(eta)
        grad = x.T @ (s - n * p) - precision * (beta - prior_mean)
        root = x * np.sqrt(n * p * (1.0 - p))[:, None]
        hessian = root.T @ root  # a product of an array with its own transpose: BLAS syrk, half a gemm
        hessian[np.diag_indices_from(hessian)] += precision
        step = np.linalg.solve(hessian, grad)
        decrement = float(grad @ step)
        if decrement <= _TOL or it >= _NEWTON_MAX:
            break
        it += 1
        old, t = log_posterior(beta, eta), 1.0
        while True:  # step halving: Newton's full step can overshoot far from the mode
            trial = beta + t * step
            trial_eta = x @ trial
            if log_posterior(trial, trial_eta) >= old - 1e-12 * abs(old) or t < 1e-6:
                break
            t *= 0.5
        beta, eta = trial, trial_eta
        if t == 1.0 and decrement <= _ONE_STEP:
            break
    cov = np.linalg.inv(hessian)
    return Posterior(design, beta, 0.5 * (cov + cov.T), it)


def winning_combinations(design: Design, coefficients: np.ndarray, rng: np.random.Generator,
                         search_above: int, mean: np.ndarray | None = None) -> np.ndarray:
    """The combination each coefficient vector (P, d) scores highest: (P,) indices.

    Up to ``search_above`` combinations: every combination is scored (exact).
    Beyond, a search. Starts: the ``_CANDIDATES`` combinations that score highest
    under ``mean`` (default: the pool's average) are scored exactly for every pool
    member, and the member's best of them is its first start; the combination of
    each factor's best level by the member's main effects alone (where the
    constraints allow it) is the second; ``_RANDOM_STARTS`` allowed combinations
    drawn at random are the others. From each start,
    coordinate ascent: sweep the factors in turn, moving a factor to its best
    level among those the constraints allow with the other factors held (only
    the coefficients touching that factor change), until a sweep moves nothing
    (at most ``_MAX_SWEEPS``). The member's winner is the best end point. With
    main effects alone and no constraints one sweep reaches the exact argmax;
    interactions and constraints can leave a local maximum, which the starts
    guard against (the tests compare it with the exact argmax). Whatever the
    search returns, the shares of its winners are the probabilities the router
    draws from, so the logged propensities stay exact.
    """
    c = design.n_combinations
    if c <= search_above:
        return np.argmax(coefficients @ design.matrix.T, axis=-1)
    size, d = coefficients.shape
    width = d + 1
    flat = np.concatenate([coefficients, np.zeros((size, 1))], axis=1).ravel()  # coefficient d: "no column", 0
    centre = coefficients.mean(axis=0) if mean is None else mean
    top = np.argsort(-(design.matrix @ centre), kind="stable")[:_CANDIDATES]
    first = top[np.argmax(coefficients @ design.matrix[top].T, axis=1)]
    # each factor's best level by its main effect alone (where the constraints allow that combination)
    main = flat[np.arange(size)[:, None, None] * width + design.main_col[None]]  # (P, F, L)
    for f, n_f in enumerate(design.n_levels):
        main[:, f, n_f:] = -np.inf
    second, allowed = design.lookup(np.argmax(main, axis=2) @ design.radix)
    second = np.where(allowed, second, first)
    starts = 2 + _RANDOM_STARTS
    current = np.concatenate([first[:, None], second[:, None], rng.integers(c, size=(size, _RANDOM_STARTS))],
                             axis=1).ravel()
    offset = np.repeat(np.arange(size) * width, starts)  # each walker's row of coefficients in ``flat``
    n_factors, big = design.pair_col.shape[1], design.pair_col.shape[2]
    pair_flat = design.pair_col.reshape(n_factors, -1)
    factors = np.arange(n_factors)
    walking = np.arange(len(current))  # walkers that moved in the last sweep; the others are at a local maximum
    for _ in range(_MAX_SWEEPS):
        moved = np.zeros(len(walking), dtype=bool)
        rows = np.arange(len(walking))
        for f, n_f in enumerate(design.n_levels):
            combos = current[walking]
            held = design.levels[combos]  # (W, F)
            here = held[:, f]
            options = np.arange(n_f)
            cand, ok = design.lookup(design.code[combos][:, None] + (options - here[:, None]) * design.radix[f])
            # the only terms that change with factor f's level a: its main effect and its interactions
            cols = np.concatenate([np.broadcast_to(design.main_col[f, :n_f, None], (len(walking), n_f, 1)),
                                   pair_flat[f][(factors * big + options[:, None]) * big + held[:, None, :]]],
                                  axis=-1)  # (W, n_f, 1 + F)
            part = flat[offset[walking, None, None] + cols].sum(axis=-1)
            part[~ok] = -np.inf
            best = np.argmax(part, axis=1)
            gain = part[rows, best] > part[rows, here]  # a strict gain only, so a sweep cannot cycle
            current[walking[gain]] = cand[rows, best][gain]
            moved |= gain
        walking = walking[moved]
        if not len(walking):
            break
    ends = flat[offset[:, None] + design.active[current]].sum(axis=-1).reshape(size, starts)
    return current.reshape(size, starts)[np.arange(size), np.argmax(ends, axis=1)]


def level_floor(probs, levels, n_levels, min_share: float) -> np.ndarray:
    """``probs`` (C,) mixed with the uniform split over the allowed combinations, just enough that
    every level of every factor gets at least ``min_share`` of the traffic.

    Mixing ``p' = (1 - lam) p + lam u`` moves each level's marginal share linearly,
    ``m' = (1 - lam) m + lam m_u``, so a level below the floor (``m < min_share``)
    needs ``lam >= (min_share - m) / (m_u - m)`` and the smallest mixture that
    satisfies every level takes the largest of these. Feasible iff every level's
    uniform marginal ``m_u`` (its share of the allowed combinations) is at least
    ``min_share``; otherwise ``PolicyError`` names ``min_share``. Mixing with the
    uniform split keeps the policy's ranking of the combinations and gives every
    combination some traffic; a floor per level rather than per combination is
    what a factorial experiment can afford.
    """
    check_number("min_share", min_share, 0.0, 1.0)
    levels, n_levels = check_design(levels, n_levels)
    p = np.asarray(probs, dtype=np.float64)
    if min_share == 0.0:
        return p
    c = levels.shape[0]
    uniform_share = level_sums(np.full(c, 1.0 / c), levels, n_levels)
    if uniform_share.min() < min_share * (1.0 - 1e-12):
        worst = int(np.argmin(uniform_share))
        f = int(np.searchsorted(np.cumsum(n_levels), worst, side="right"))
        a = worst - int(sum(n_levels[:f]))
        raise PolicyError(f"min_share: {min_share:g} per level is infeasible: level {a} of factor {f} is in "
                          f"{uniform_share[worst]:.4g} of the allowed combinations")
    share = level_sums(p, levels, n_levels)
    short = share < min_share
    if not short.any():
        return p
    need = (min_share - share[short]) / np.maximum(uniform_share[short] - share[short], 1e-300)
    lam = float(min(1.0, need.max() * (1.0 + 1e-12)))  # the margin keeps rounding from leaving a level just short
    return (1.0 - lam) * p + lam / c


@dataclass(frozen=True)
class FactorialThompson(Policy):
    """Thompson sampling on a Bayesian logistic model of the factors (module docstring).

    ``interactions``: ``"pairwise"`` (main effects and every two-factor interaction)
    or ``"none"``; ``prior_scale``: prior sd of a main effect on the logit scale
    (interactions get half); ``base_rate``: the intercept's prior centre;
    ``pool``: posterior draws per refresh; ``search_above``: past this many
    combinations the argmax is a search (``winning_combinations``); ``temperature``:
    the pool's draws come from the posterior with its covariance scaled by this
    (1 is plain Thompson sampling; below 1 explores less).

    The router calls ``allocate`` once per refresh with the experiment's design.
    ``probabilities(arms, rng)`` has no design to work with: it is exact
    Beta-Bernoulli Thompson sampling on the arms' counts, so the class works
    wherever any policy does.
    """

    name: ClassVar[str] = "factorial_thompson"
    interactions: str = "pairwise"
    prior_scale: float = 0.2
    base_rate: float = 0.05
    pool: int = 1024
    search_above: int = 2048
    temperature: float = 0.7

    def __post_init__(self) -> None:
        if self.interactions not in INTERACTIONS:
            raise PolicyError(f"interactions: must be one of {', '.join(repr(i) for i in INTERACTIONS)}")
        check_number("prior_scale", self.prior_scale, 0.0, 100.0, lo_open=True)
        check_number("base_rate", self.base_rate, 0.0, 0.99, lo_open=True)
        check_int("pool", self.pool, 16, 65536)
        check_int("search_above", self.search_above, 1, MAX_COMBINATIONS)
        check_number("temperature", self.temperature, 0.0, 1.0, lo_open=True)

    def probabilities(self, arms: ArmStats, rng: np.random.Generator) -> np.ndarray:
        return thompson_probabilities(arms.alpha, arms.beta)

    def design(self, levels, n_levels, previous: FactorialState | Posterior | None = None) -> Design:
        """The experiment's design, reused from ``previous`` when the combinations are the same."""
        old = previous.posterior if isinstance(previous, FactorialState) else previous
        if old is not None and old.design.matches(levels, n_levels, self.interactions):
            return old.design
        return Design.build(levels, n_levels, self.interactions)

    def posterior(self, levels, n_levels, trials, successes, *,
                  previous: FactorialState | Posterior | None = None) -> Posterior:
        """The model's posterior given each combination's ``trials`` and ``successes`` (C,)."""
        design = self.design(levels, n_levels, previous)
        old = previous.posterior if isinstance(previous, FactorialState) else previous
        start = old.mean if old is not None and old.design is design else None
        prior_mean, prior_sd = design.prior(self.base_rate, self.prior_scale)
        return laplace_fit(design, trials, successes, prior_mean, prior_sd, start)

    def allocate(self, levels, n_levels, trials, successes, rng: np.random.Generator, *,
                 min_share: float = 0.0, previous: FactorialState | Posterior | None = None) -> FactorialState:
        """One refresh: refit (warm from ``previous``), draw the pool, share out the wins, floor each level.

        ``levels`` (C, F) and ``n_levels`` the design; ``trials``/``successes`` (C,) each
        combination's counts; ``min_share`` the least share of traffic for every level
        (``level_floor``). ``result.probs`` is what each visitor's combination is drawn from.
        """
        check_number("min_share", min_share, 0.0, 1.0)
        posterior = self.posterior(levels, n_levels, trials, successes, previous=previous)
        coefficients = posterior.draws(rng, self.pool, self.temperature)
        winners = winning_combinations(posterior.design, coefficients, rng, self.search_above, posterior.mean)
        shares = np.bincount(winners, minlength=posterior.design.n_combinations) / self.pool
        probs = level_floor(shares, posterior.design.levels, posterior.design.n_levels, min_share)
        return FactorialState(probs, shares, posterior)


__all__ = ["Design", "FactorialState", "FactorialThompson", "Posterior", "laplace_fit", "level_floor",
           "level_index", "level_sums", "logistic", "winning_combinations"]
