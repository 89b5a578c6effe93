"""Strategy comparison on simulated logs whose true values are known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from croupier.router.model import fit_log
from croupier.router.ope import LoggedData, OPEError, sequential_target
from croupier.router.policies import ThompsonSampling, sample_arms
from croupier.router.strategies import ADAPTIVE, KINDS, StrategyEstimate, compare_strategies
from tests.router.ope.sim import ARMS, RATES, bandit_logging, random_logging

Z999 = 0.999


def by_name(results: list[StrategyEstimate]) -> dict[str, StrategyEstimate]:
    return {r.name: r for r in results}


def test_every_strategy_once_in_order_and_fixed_ones_cover_the_truth():
    log = random_logging(3, n=6000)
    results = compare_strategies(log, rng=np.random.default_rng(0), confidence=Z999)
    names = [r.name for r in results]
    assert names == ["thompson", "ucb1", "epsilon_greedy", "fixed:a", "fixed:b", "fixed:c", "even"]
    assert {r.kind for r in results} <= set(KINDS)
    found = by_name(results)
    for arm, rate in zip(ARMS, RATES):
        assert found[f"fixed:{arm}"].low <= rate <= found[f"fixed:{arm}"].high
    assert found["even"].low <= RATES.mean() <= found["even"].high
    for r in results:
        assert 0.0 <= r.low <= r.value <= r.high <= 1.0 and r.n == log.n and r.n_effective > 0
        assert json.loads(json.dumps(r.to_dict()))["name"] == r.name


@pytest.mark.parametrize("policy_index", range(len(ADAPTIVE)))
def test_adaptive_strategies_cover_their_value_along_the_log(policy_index):
    """An adaptive strategy's value along the logged trajectory is known: at each row its split
    (from the rows before) times the true rates. The estimate's interval covers it."""
    log = random_logging(5, n=8000)
    name, _, policy = ADAPTIVE[policy_index]
    found = by_name(compare_strategies(log, rng=np.random.default_rng(1), confidence=Z999, refresh=200))[name]
    target = sequential_target(log, policy, np.random.default_rng(1), refresh=200)
    truth = float((target @ RATES).mean())
    assert found.kind == "adaptive"
    assert found.low <= truth <= found.high, (name, found, truth)


def test_with_a_holdout_the_adaptive_strategies_are_replayed_and_learn():
    """On a log with a uniform holdout, each adaptive strategy is replayed on it: it learns
    from its own picks, so even UCB1 (which along another policy's trajectory keeps picking
    the arms that policy starved) ends up beside the best variant, not the worst."""
    log = bandit_logging(2, ThompsonSampling(draws=500), n=20_000, holdout=0.3, min_share=0.05)
    found = by_name(compare_strategies(log, rng=np.random.default_rng(2)))
    for name, _, _ in ADAPTIVE:
        assert found[name].estimator == "replay" and 0 < found[name].n < int(log.uniform.sum())
        assert found[name].value > found["fixed:a"].high, found[name]
        assert found[name].low <= RATES.max()
    assert found["fixed:b"].estimator == "dr"
    sequential = by_name(compare_strategies(log, rng=np.random.default_rng(2), replay_min_rows=10**9))
    assert sequential["ucb1"].estimator == "dr"


def contextual_log(seed: int, n: int) -> tuple[LoggedData, float]:
    """Mobile visitors convert best on a, desktop on b; logged by an even split. Returns the log
    and the true rate of giving everyone their best arm."""
    rng = np.random.default_rng(seed)
    rates = {"mobile": np.array([0.12, 0.03, 0.05]), "desktop": np.array([0.03, 0.11, 0.05])}
    devices = rng.choice(["mobile", "desktop"], size=n)
    probs = np.full((n, 3), 1.0 / 3.0)
    actions = sample_arms(probs, rng)
    row_rates = np.array([rates[d] for d in devices])
    rewards = (rng.random(n) < row_rates[np.arange(n), actions]).astype(float)
    log = LoggedData.from_arrays(ARMS, actions, rewards, probs, contexts=[{"device": d} for d in devices])
    return log, float(row_rates.max(axis=1).mean())


def test_the_models_choice_is_personal_and_wins_when_context_matters():
    log, truth = contextual_log(4, 9000)
    model = fit_log(log)
    found = by_name(compare_strategies(log, model=model, rng=np.random.default_rng(3), confidence=Z999))
    personal = found["model"]
    assert personal.kind == "model" and personal.label
    assert personal.low <= truth <= personal.high
    for arm in ARMS:
        assert personal.value > found[f"fixed:{arm}"].high  # no single variant serves both devices well
    assert "model" not in by_name(compare_strategies(log, rng=np.random.default_rng(3)))


def test_empty_log_is_refused():
    empty = LoggedData.from_arrays(ARMS, [], [], np.zeros((0, 3)))
    with pytest.raises(OPEError, match="empty log"):
        compare_strategies(empty, rng=np.random.default_rng(0))
