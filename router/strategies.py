"""Strategy comparison: what each way of choosing variants would have converted on the logged traffic.

A campaign optimiser compares strategies by rotating them through live traffic;
here every strategy is scored on the same log, off-policy, so no visitor is
spent on a strategy that loses. The strategies:

- adaptive: Thompson sampling, UCB1 and epsilon-greedy (``croupier.router.policies``),
  learning as they go. With enough uniformly logged rows (the holdout) each is
  replayed on them (``ope.replay``, Li et al. 2011): the policy learns only from
  the rows where it picked the logged arm, so its estimate includes what its own
  exploration costs. Without, each decides at every row from the log's statistics
  before that row, as the router would have with its snapshot
  (``ope.sequential_target``), by doubly robust: that scores its choices along the
  logged trajectory, not what it would have learnt from its own (an index policy
  such as UCB1 then keeps picking the arms the logging policy starved);
- fixed: every variant to everyone, and the even split over the variants offered;
- model: each visitor the variant the conversion model (``croupier.router.model``)
  predicts best for their context, when a model is given.

The others are estimated by doubly robust (``ope.doubly_robust``) with a normal
interval; the reward model is the conversion model's per-row prediction when
there is one, else each arm's observed rate. ``StrategyEstimate.estimator`` says
which estimator gave a row. Pure: numpy and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from croupier.router.ope import (Estimate, LoggedData, OPEError, doubly_robust, finite_fields, fixed_target,
                                 replay, sequential_target, uniform_target)
from croupier.router.policies import EpsilonGreedy, Policy, ThompsonSampling, UCB1

KINDS = ("adaptive", "fixed", "model")
REPLAY_MIN_ROWS = 500  # uniformly logged rows from which the adaptive strategies are replayed

# (name, label, policy): the adaptive strategies compared by default
ADAPTIVE: tuple[tuple[str, str, Policy], ...] = (
    ("thompson", "Thompson sampling", ThompsonSampling()),
    ("ucb1", "UCB1", UCB1()),
    ("epsilon_greedy", "Epsilon-greedy (10%)", EpsilonGreedy(epsilon=0.1)),
)


@dataclass(frozen=True)
class StrategyEstimate:
    """One strategy's estimated conversion rate on the log, with its interval.

    ``n_effective``: how many rows the importance weights are worth (Kish); far below
    the log's rows means the strategy differs much from what was logged and the
    interval is wide. ``unsupported``: the strategy's share of traffic on arms the log
    never offered (its estimate cannot see those; biased when above 0).
    """

    name: str  # stable id: thompson, ucb1, epsilon_greedy, fixed:<variant>, even, model
    label: str  # for people
    kind: str  # adaptive | fixed | model
    value: float
    low: float
    high: float
    std_error: float
    n: int
    n_effective: float
    unsupported: float = 0.0
    estimator: str = "dr"  # dr | replay
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return finite_fields(asdict(self))


def _from_estimate(name: str, label: str, kind: str, e: Estimate, confidence: float) -> StrategyEstimate:
    return StrategyEstimate(name, label, kind, e.value, e.ci_low, e.ci_high, e.std_error, e.n, e.effective_n,
                            e.unsupported, e.estimator, confidence)


def model_target(log: LoggedData, predicted: np.ndarray) -> np.ndarray:
    """Everyone gets the arm with the highest predicted rate for them (``predicted``: ``(n, K)``;
    ties go to the first arm)."""
    out = np.zeros(log.probs.shape)
    out[np.arange(log.n), np.argmax(predicted, axis=1)] = 1.0
    return out


def compare_strategies(log: LoggedData, *, model: Any = None, rng: np.random.Generator,
                       confidence: float = 0.95, refresh: int = 100, min_share: float = 0.0,
                       adaptive: Sequence[tuple[str, str, Policy]] = ADAPTIVE,
                       replay_min_rows: int = REPLAY_MIN_ROWS, replay_refresh: int = 10) -> list[StrategyEstimate]:
    """Every strategy's estimated conversion rate on ``log``, in the order adaptive, fixed
    (each variant, then the even split), model.

    ``model``: a ``ConversionModel`` (anything with ``predict_log(contexts, arms, n)``), or None
    to leave out the personalised strategy. ``refresh``: rows between an adaptive strategy's
    recomputed splits along the log (``replay_refresh``: accepted rows between them in a
    replay); ``min_share``: the floor the experiment gives every arm, applied to the adaptive
    strategies as the router would. With at least ``replay_min_rows`` uniformly logged rows
    the adaptive strategies are replayed. Raises ``OPEError`` on an empty log.
    """
    if log.n == 0:
        raise OPEError("empty log: no assignments to compare strategies on")
    predicted = None if model is None else np.asarray(model.predict_log(log.contexts, log.arms, log.n))
    reward_model = predicted  # None: each arm's observed rate

    def dr(target: np.ndarray) -> Estimate:
        return doubly_robust(log, target, reward_model, confidence=confidence)

    out: list[StrategyEstimate] = []
    replayed = int(log.uniform.sum()) >= replay_min_rows
    for name, label, policy in adaptive:
        if replayed:
            estimate = replay(log, policy, rng, min_share=min_share, refresh=replay_refresh, confidence=confidence)
        else:
            estimate = dr(sequential_target(log, policy, rng, refresh=refresh, min_share=min_share))
        out.append(_from_estimate(name, label, "adaptive", estimate, confidence))
    for arm in log.arms:
        out.append(_from_estimate(f"fixed:{arm}", f"Always {arm}", "fixed", dr(fixed_target(log, arm)), confidence))
    out.append(_from_estimate("even", "Even split", "fixed", dr(uniform_target(log)), confidence))
    if predicted is not None:
        out.append(_from_estimate("model", "Model's choice per visitor", "model",
                                  dr(model_target(log, predicted)), confidence))
    return out
