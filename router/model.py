"""A predictive conversion model: logistic regression on hashed context features x arm.

``logit P(convert | x, a) = w_0 + u_a + sum_f v_f + sum_f z_{a,f}`` over the
context's features ``f`` (``"device=mobile"``): a global intercept, an arm
deviation, context main effects and arm x context interactions, the last two
hashed (crc32) into ``2^bits`` columns. Fitted by Newton's method (IRLS) on the
L2-penalised binomial likelihood (prior ``w ~ N(0, 1/l2)``, the intercept nearly
free), on rows aggregated by (features, arm), so a million assignments with a
few hundred distinct contexts cost a few hundred rows. Only the columns the data
use are estimated; the Laplace approximation ``Cov(w) = H^-1`` gives each
prediction its uncertainty, and a feature (or arm) never seen adds its prior
variance ``1/l2``.

Uses: ``prior_for`` gives a new variant a Beta prior from the predicted rate,
and ``blend``/``with_model_prior`` add the model's prediction to a bandit's Beta
posterior as pseudo-observations weighted by the model's confidence. Which
features a visitor has is pluggable (``features``): the default reads a dict or
dataclass such as ``croupier.router.context.Context``. Pure: numpy and the standard library.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from croupier.router.policies import ArmStats

FeatureFn = Callable[[Any], Sequence[str]]
_INTERCEPT_PRECISION = 1e-4  # the global intercept is barely shrunk: the base rate is not a guess


class ModelError(ValueError):
    """Bad training data or parameters; the message names what is wrong."""


def context_features(context: Any) -> list[str]:
    """``{"device": "mobile", "country": ""}`` → ``["device=mobile"]``: one feature per field with a value.

    Accepts a mapping or a dataclass instance (``croupier.router.context.Context``); ``None``
    means no context, as in logs written before contexts were recorded."""
    if context is None:
        return []
    if dataclasses.is_dataclass(context) and not isinstance(context, type):
        context = dataclasses.asdict(context)
    if not isinstance(context, Mapping):
        raise ModelError(f"context: expected a mapping or a dataclass, got {type(context).__name__}")
    return [f"{k}={v}" for k, v in sorted(context.items()) if v not in (None, "")]


def _hash(name: str, bits: int) -> int:
    return zlib.crc32(name.encode()) & ((1 << bits) - 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -35.0, 35.0)))


@dataclass(frozen=True)
class ConversionModel:
    """A fitted model. Columns: 0 the intercept, ``1..K`` the arms, then the hashed
    columns that occurred in training (``hashed``), in that order."""

    arms: tuple[str, ...]
    weights: np.ndarray
    covariance: np.ndarray
    hashed: np.ndarray  # sorted hashed column ids that have a weight
    bits: int
    l2: float
    features: FeatureFn = field(default=context_features, compare=False)
    rows: int = 0  # assignments it was trained on

    def _columns(self, names: Sequence[str], arm: str | None) -> tuple[list[int], int]:
        """Model columns of one (context, arm) and how many of its terms were never seen."""
        cols, unseen = [0], 0
        if arm is not None:
            if arm in self.arms:
                cols.append(1 + self.arms.index(arm))
            else:
                unseen += 1
        terms = list(names) + ([f"{arm}|{f}" for f in names] if arm is not None else [])
        base = 1 + len(self.arms)
        for term in terms:
            h = _hash(term, self.bits)
            at = int(np.searchsorted(self.hashed, h))
            if at < len(self.hashed) and self.hashed[at] == h:
                cols.append(base + at)
            else:
                unseen += 1
        return cols, unseen

    def predict(self, context: Any, arm: str | None) -> tuple[float, float]:
        """Predicted conversion rate and its standard deviation (delta method on the logit).
        ``arm=None`` or an arm the model never saw: a new variant, with the prior's uncertainty."""
        cols, unseen = self._columns(self.features(context), arm)
        x = np.zeros(len(self.weights))
        np.add.at(x, cols, 1.0)  # hashed terms may collide: they add up, as in training
        eta = float(x @ self.weights)
        var_eta = float(x @ self.covariance @ x) + unseen / self.l2
        p = float(_sigmoid(np.array(eta)))
        return p, p * (1.0 - p) * math.sqrt(var_eta)

    def predict_arms(self, context: Any, arms: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rates and standard deviations of every arm, ``(K,)`` each."""
        out = [self.predict(context, a) for a in (arms or self.arms)]
        return np.array([p for p, _ in out]), np.array([s for _, s in out])

    def predict_log(self, contexts: Iterable[Any] | None, arms: Sequence[str], n: int) -> np.ndarray:
        """The reward model ``q_i(a)`` of ``croupier.router.ope.doubly_robust``: ``(n, K)``.

        Rows with the same context share one prediction."""
        contexts = [None] * n if contexts is None else list(contexts)
        cache: dict[tuple[str, ...], np.ndarray] = {}
        out = np.empty((n, len(arms)))
        for i, c in enumerate(contexts):
            key = tuple(self.features(c))
            if key not in cache:
                cache[key] = self.predict_arms(c, arms)[0]
            out[i] = cache[key]
        return out


def fit(contexts: Iterable[Any] | None, arms: Sequence[str], actions: Sequence[int], rewards: Sequence[float], *,
        features: FeatureFn = context_features, bits: int = 18, l2: float = 1.0, max_iter: int = 50,
        tol: float = 1e-8) -> ConversionModel:
    """Fit by Newton-Raphson (IRLS) on the penalised binomial log-likelihood.

    With ``X`` the aggregated design, ``n`` trials and ``s`` conversions per row and
    ``P = diag(precision)``: ``g = X^T (s - n p) - P w``, ``H = X^T diag(n p (1-p)) X + P``,
    ``w <- w + H^-1 g`` until the step is below ``tol``.
    """
    if not 1 <= bits <= 30:
        raise ModelError(f"bits: must be in [1, 30], got {bits}")
    if not l2 > 0:
        raise ModelError(f"l2: must be positive, got {l2}")
    actions, rewards = np.asarray(actions, dtype=np.int64), np.asarray(rewards, dtype=np.float64)
    n, k = len(actions), len(arms)
    if n == 0:
        raise ModelError("no rows to train on")
    if len(rewards) != n or (n and (actions.min() < 0 or actions.max() >= k)):
        raise ModelError("actions and rewards: one each per row, actions indexing arms")
    contexts = [None] * n if contexts is None else list(contexts)
    if len(contexts) != n:
        raise ModelError(f"contexts: {len(contexts)} given for {n} rows")
    # aggregate rows by (features, arm): the likelihood only needs trials and conversions per pattern
    groups: dict[tuple[tuple[str, ...], int], list[float]] = {}
    for c, a, r in zip(contexts, actions, rewards):
        cell = groups.setdefault((tuple(features(c)), int(a)), [0.0, 0.0])
        cell[0] += 1.0
        cell[1] += r
    patterns = list(groups)
    hashed_of = [[_hash(t, bits) for t in names] + [_hash(f"{arms[a]}|{t}", bits) for t in names]
                 for names, a in patterns]
    hashed = np.unique(np.fromiter((h for hs in hashed_of for h in hs), dtype=np.int64))
    base = 1 + k
    x = np.zeros((len(patterns), base + len(hashed)))
    x[:, 0] = 1.0
    for row, ((_, a), hs) in enumerate(zip(patterns, hashed_of)):
        x[row, 1 + a] = 1.0
        np.add.at(x[row], base + np.searchsorted(hashed, hs), 1.0)
    trials = np.array([groups[p][0] for p in patterns])
    successes = np.array([groups[p][1] for p in patterns])
    precision = np.full(x.shape[1], float(l2))
    precision[0] = _INTERCEPT_PRECISION
    w = np.zeros(x.shape[1])
    w[0] = math.log((successes.sum() + 0.5) / (trials.sum() - successes.sum() + 0.5))
    for _ in range(max_iter):
        p = _sigmoid(x @ w)
        grad = x.T @ (successes - trials * p) - precision * w
        hess = (x.T * (trials * p * (1.0 - p))) @ x + np.diag(precision)
        step = np.linalg.solve(hess, grad)
        w += step
        if np.max(np.abs(step)) < tol:
            break
    p = _sigmoid(x @ w)
    hess = (x.T * (trials * p * (1.0 - p))) @ x + np.diag(precision)
    return ConversionModel(tuple(arms), w, np.linalg.inv(hess), hashed, bits, float(l2), features, n)


def fit_log(log, *, features: FeatureFn = context_features, **kw) -> ConversionModel:
    """Fit on a ``croupier.router.ope.LoggedData`` (the joined event stream)."""
    return fit(log.contexts, log.arms, log.actions, log.rewards, features=features, **kw)


# -- priors and the hybrid -------------------------------------------------

def pseudo_observations(rate: np.ndarray | float, sd: np.ndarray | float) -> np.ndarray:
    """How many Bernoulli observations a prediction is worth: the ``m`` for which
    ``Beta(m p, m (1-p))`` has the prediction's variance, ``m = p (1-p) / sd^2 - 1`` (at least 0)."""
    p, s = np.asarray(rate, dtype=np.float64), np.asarray(sd, dtype=np.float64)
    return np.maximum(p * (1.0 - p) / np.maximum(s * s, 1e-300) - 1.0, 0.0)


def prior_for(model: ConversionModel, context: Any, strength: float, arm: str | None = None) -> tuple[float, float]:
    """A Beta prior ``(alpha, beta)`` for a new variant in ``context``.

    ``p`` is the model's rate for ``arm`` when it knows that arm, otherwise the mean of
    the known arms' rates in this context (a new variant starts as a typical one), with
    ``sd`` their root-mean-square uncertainty. The prior is ``p`` worth
    ``m = min(strength, pseudo_observations(p, sd))`` visitors: ``(m p, m (1-p))``, each at
    least the registry's minimum 0.001, so an uncertain model gives a weak prior whatever
    ``strength``. Set the result as the variant's ``prior_alpha``/``prior_beta``."""
    if not strength > 0:
        raise ModelError(f"strength: must be positive, got {strength}")
    if arm is not None and arm in model.arms:
        p, sd = model.predict(context, arm)
    else:
        rates, sds = model.predict_arms(context)
        p, sd = float(rates.mean()), float(np.sqrt((sds * sds).mean()))
    m = min(float(strength), float(pseudo_observations(p, sd)))
    return max(m * p, 1e-3), max(m * (1.0 - p), 1e-3)


def blend(alpha, beta, rate, sd, *, weight: float = 1.0, max_pseudo: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
    """Blend a bandit's Beta posteriors with the model's predictions, per arm.

    The prediction counts as ``m = weight * min(pseudo_observations(rate, sd), max_pseudo)``
    extra observations at the predicted rate:
    ``alpha' = alpha + m p``, ``beta' = beta + m (1 - p)``, so the blended mean is
    ``(alpha + m p) / (alpha + beta + m)``: the model's rate while the arm has few
    visitors (``alpha + beta << m``), the data's once it has many. The model was trained
    on the same visitors, so ``weight`` < 1 (or ``max_pseudo``) keeps it from counting
    their evidence twice.
    """
    if not 0 <= weight <= 1:
        raise ModelError(f"weight: must be in [0, 1], got {weight}")
    m = weight * np.minimum(pseudo_observations(rate, sd), max_pseudo)
    p = np.asarray(rate, dtype=np.float64)
    return np.asarray(alpha, dtype=np.float64) + m * p, np.asarray(beta, dtype=np.float64) + m * (1.0 - p)


def with_model_prior(arms: ArmStats, rate: np.ndarray, sd: np.ndarray, *, weight: float = 0.5,
                     max_pseudo: float = 1000.0) -> ArmStats:
    """The arms' statistics with a model's predicted rates (and their uncertainty) folded into
    each prior (``blend``), ready for any Beta policy."""
    alpha, beta = blend(arms.prior_alpha, arms.prior_beta, rate, sd, weight=weight, max_pseudo=max_pseudo)
    return dataclasses.replace(arms, prior_alpha=alpha, prior_beta=beta)
