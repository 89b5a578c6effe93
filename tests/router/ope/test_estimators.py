"""The estimators on simulated logs whose true answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from croupier.router.ope import (LoggedData, OPEError, doubly_robust, evaluate, fixed_target, ips, observed, policy_target,
                        replay, sequential_target, snips, uniform_target)
from croupier.router.policies import EpsilonGreedy, ThompsonSampling
from tests.router.ope.sim import ARMS, RATES, bandit_logging, random_logging

SEEDS = 200


def _target(log: LoggedData, name: str) -> tuple[np.ndarray, float]:
    if name == "uniform":
        return uniform_target(log), float(RATES.mean())
    if name == "mix":  # a stochastic target
        mix = np.array([0.2, 0.5, 0.3])
        return np.broadcast_to(mix, log.probs.shape), float(mix @ RATES)
    return fixed_target(log, name), float(RATES[ARMS.index(name)])


def _coverage_and_bias(make_log, target: str, seeds: int = SEEDS):
    covered = {"ips": 0, "snips": 0, "dr": 0}
    values: dict[str, list[float]] = {k: [] for k in covered}
    for seed in range(seeds):
        log = make_log(seed)
        probs, truth = _target(log, target)
        for name, est in evaluate(log, probs).items():
            covered[name] += est.ci_low <= truth <= est.ci_high
            values[name].append(est.value)
    # bias in standard errors of the mean over seeds
    bias = {k: (np.mean(v) - truth) / (np.std(v) / np.sqrt(seeds)) for k, v in values.items()}
    return {k: c / seeds for k, c in covered.items()}, bias


@pytest.mark.parametrize("target", ["a", "b", "uniform", "mix"])
def test_intervals_cover_the_truth_near_95_percent_under_a_changing_logging_policy(target):
    coverage, bias = _coverage_and_bias(random_logging, target)
    for name, share in coverage.items():
        assert 0.90 <= share <= 0.99, (name, share)
    assert abs(bias["ips"]) < 3.5, bias  # IPS is unbiased: the mean over seeds sits on the truth


@pytest.mark.parametrize(("target", "lowest"), [("a", 0.78), ("b", 0.88), ("uniform", 0.88)])
def test_intervals_cover_the_truth_on_an_adaptive_thompson_log(target, lowest):
    """The router's own kind of log: Thompson sampling recomputed per batch, with a floor.

    The worst arm ("a") is played about 250 times with about 10 conversions and weights
    up to 1 / min_share: the normal interval then covers about 85%, not 95%."""
    coverage, bias = _coverage_and_bias(lambda s: bandit_logging(s, ThompsonSampling(draws=500)), target, seeds=100)
    for name, share in coverage.items():
        assert lowest <= share <= 0.99, (name, share)
    assert abs(bias["ips"]) < 3.5, bias


def test_the_holdout_mixture_is_the_propensity_of_every_row():
    log = bandit_logging(3, ThompsonSampling(draws=500), n=6000, holdout=0.2)
    assert 0.15 < log.uniform.mean() < 0.25
    for arm, rate in zip(ARMS, RATES):
        est = ips(log, fixed_target(log, arm), confidence=0.999)
        assert est.ci_low <= rate <= est.ci_high, (arm, est)


def test_dr_has_no_more_variance_than_ips_and_snips_is_close():
    log = random_logging(7, n=20000)
    target = fixed_target(log, "b")
    e_ips, e_snips, e_dr = ips(log, target), snips(log, target), doubly_robust(log, target)
    assert e_dr.std_error <= e_ips.std_error
    assert abs(e_snips.value - e_ips.value) < 2 * e_ips.std_error
    # an exact reward model leaves only the noise of the logged arm
    exact = doubly_robust(log, target, RATES)
    assert abs(exact.value - RATES[1]) < 3 * exact.std_error


def test_bootstrap_interval_agrees_with_the_normal_one():
    log = random_logging(11, n=5000)
    target = fixed_target(log, "b")
    normal = ips(log, target)
    boot = ips(log, target, bootstrap=300, rng=np.random.default_rng(0))
    assert boot.interval == "bootstrap(300)"
    assert abs((boot.ci_high - boot.ci_low) / (normal.ci_high - normal.ci_low) - 1) < 0.2
    assert boot.value == normal.value
    with pytest.raises(OPEError, match="rng"):
        ips(log, target, bootstrap=10)


def test_the_logging_policy_evaluated_on_itself_is_the_observed_rate():
    log = random_logging(5)
    assert ips(log, log.probs).value == pytest.approx(observed(log).value)
    assert snips(log, log.probs).value == pytest.approx(observed(log).value)


def test_zero_propensity_rows_are_excluded_and_counted():
    log = random_logging(1, n=1000)
    probs = log.probs.copy()
    broken = np.arange(10)
    probs[broken] = 0.0
    probs[broken, (log.actions[broken] + 1) % 3] = 1.0  # the logged arm "had no chance"
    bad = LoggedData(log.arms, log.actions, log.rewards, probs)
    est = ips(bad, fixed_target(bad, "a"))
    assert est.excluded == 10 and est.n == 990


def test_unsupported_target_mass_is_reported():
    log = LoggedData.from_arrays("ab", [0, 0, 1, 0], [1, 0, 0, 1], [[1, 0], [1, 0], [0.5, 0.5], [1, 0]])
    est = ips(log, fixed_target(log, "b"))
    assert est.unsupported == pytest.approx(0.75)


def test_errors_name_what_is_wrong():
    empty = LoggedData.from_arrays("ab", [], [], np.zeros((0, 2)))
    with pytest.raises(OPEError, match="empty log"):
        ips(empty, np.zeros((0, 2)))
    with pytest.raises(OPEError, match="empty log"):
        observed(empty)
    log = random_logging(0, n=10)
    with pytest.raises(OPEError, match="target: shape"):
        ips(log, np.ones((3, 3)) / 3)
    with pytest.raises(OPEError, match="target: row 0"):
        ips(log, np.ones((10, 3)))
    with pytest.raises(OPEError, match="arm 'z' is not in the log"):
        fixed_target(log, "z")
    with pytest.raises(OPEError, match="probs: row 1 sums"):
        LoggedData.from_arrays("ab", [0, 1], [0, 0], [[0.5, 0.5], [0.5, 0.6]])
    with pytest.raises(OPEError, match="confidence"):
        ips(log, log.probs, confidence=1.5)
    allzero = LoggedData.from_arrays("ab", [0], [1], [[0.0, 1.0]])
    with pytest.raises(OPEError, match="propensity 0"):
        ips(allzero, fixed_target(allzero, "a"))


def test_policy_targets():
    log = random_logging(2, n=20000)
    rng = np.random.default_rng(0)
    final = policy_target(log, ThompsonSampling(), rng)
    assert np.argmax(final[0]) == 1 and np.allclose(final, final[0])
    greedy = policy_target(log, EpsilonGreedy(epsilon=0.3), rng)
    np.testing.assert_allclose(greedy[0], [0.1, 0.8, 0.1])
    seq = sequential_target(log, ThompsonSampling(), rng, refresh=500)
    np.testing.assert_allclose(seq[:500], 1 / 3, atol=0.03)  # nothing seen yet: every arm alike (Monte Carlo)
    assert seq[-1, 1] > 0.9
    with pytest.raises(OPEError, match="refresh"):
        sequential_target(log, ThompsonSampling(), rng, refresh=0)


def test_replay_matches_the_policy_run_on_its_own():
    """Li et al.'s replay on uniform logs averages to what the policy itself achieves over as many visitors."""
    rates = np.array([0.05, 0.15, 0.08])
    policy = ThompsonSampling(draws=300)
    replayed, lengths, online = [], [], []
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n = 1500
        actions = rng.integers(0, 3, n)
        log = LoggedData.from_arrays(ARMS, actions, rng.random(n) < rates[actions], np.full((n, 3), 1 / 3),
                                     np.ones(n, dtype=bool))
        est = replay(log, policy, rng, refresh=10)
        replayed.append(est.value)
        lengths.append(est.n)
    for seed in range(30):  # the policy on live traffic, as many visitors as replay accepted
        rng = np.random.default_rng(1000 + seed)
        trials, successes, total = np.zeros(3), np.zeros(3), 0.0
        for t in range(lengths[seed]):
            if t % 10 == 0:
                from croupier.router.policies import ArmStats
                split = policy.probabilities(ArmStats.from_counts(trials, successes), rng)
            arm = rng.choice(3, p=split)
            r = float(rng.random() < rates[arm])
            trials[arm] += 1
            successes[arm] += r
            total += r
        online.append(total / lengths[seed])
    assert 400 < np.mean(lengths) < 600  # about n / K rows accepted
    diff = np.mean(replayed) - np.mean(online)
    se = np.sqrt(np.var(replayed) / 30 + np.var(online) / 30)
    assert abs(diff) < 3.5 * se, (np.mean(replayed), np.mean(online), se)
    assert np.mean(replayed) > rates.mean()  # it learnt, unlike a uniform split


def test_replay_needs_uniform_rows():
    log = random_logging(0, n=50)
    with pytest.raises(OPEError, match="uniformly logged rows"):
        replay(log, ThompsonSampling(), np.random.default_rng(0))
    uniform = EpsilonGreedy(epsilon=1.0)  # a uniform split replays to the mean rate
    n = 6000
    rng = np.random.default_rng(4)
    actions = rng.integers(0, 3, n)
    log = LoggedData.from_arrays(ARMS, actions, rng.random(n) < RATES[actions], np.full((n, 3), 1 / 3),
                                 np.ones(n, dtype=bool))
    est = replay(log, uniform, rng, confidence=0.999)
    assert est.ci_low <= RATES.mean() <= est.ci_high
