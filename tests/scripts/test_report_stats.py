"""The report's figures, without servers: periods, cumulative rates, the even-split gain, events."""

from __future__ import annotations

import json

import numpy as np
import pytest

from croupier.router.ope import LoggedData, OPEError, doubly_robust, ips, uniform_target
from croupier.scripts import report_stats


def test_buckets_merge_into_even_periods_keeping_gaps():
    buckets = {1000: {"a": {"trials": 2, "conv:signup": 1}}, 1010: {"b": {"trials": 3}},
               1060: {"a": {"trials": 1}, "b": {"trials": 1, "conv:signup": 1}}}
    p = report_stats.periods(buckets, ["a", "b"], "signup", default_width=60, max_periods=4)
    assert p.seconds == 20  # buckets 10 s wide (the gcd of the gaps), 70 s in at most 4 periods
    assert len(p.starts) == 4 and p.starts[0].timestamp() == 1000
    assert p.trials.tolist() == [[2, 3], [0, 0], [0, 0], [1, 1]]
    assert p.conversions.sum() == 2
    empty = report_stats.periods({}, ["a", "b"], "signup", default_width=60)
    assert empty.starts == [] and empty.trials.shape == (0, 2)


def test_cumulative_rates_have_wilson_intervals_and_nothing_before_the_first_visitor():
    trials = np.array([[0.0, 10.0], [20.0, 30.0]])
    conversions = np.array([[0.0, 1.0], [2.0, 3.0]])
    rate, low, high = report_stats.cumulative_rates(trials, conversions)
    assert np.isnan(rate[0, 0])
    assert rate[1, 0] == pytest.approx(0.1) and rate[1, 1] == pytest.approx(0.1)
    assert low[1, 0] < low[1, 1] < 0.1 < high[1, 1] < high[1, 0]  # more visitors, narrower


def random_log(n: int, rates: list[float], split: list[float], seed: int = 3) -> LoggedData:
    rng = np.random.default_rng(seed)
    actions = rng.choice(len(rates), size=n, p=split)
    rewards = (rng.random(n) < np.asarray(rates)[actions]).astype(float)
    return LoggedData.from_arrays([chr(97 + k) for k in range(len(rates))], actions, rewards, np.tile(split, (n, 1)))


def test_gain_is_observed_minus_the_estimators_even_split():
    log = random_log(4000, [0.02, 0.10], [0.2, 0.8])
    dr, by_ips = report_stats.even_split_gain(log)
    target = uniform_target(log)
    assert dr.value == pytest.approx(log.rewards.sum() - log.n * doubly_robust(log, target).value)
    assert by_ips.value == pytest.approx(log.rewards.sum() - log.n * ips(log, target).value)
    # sending 80% to the better arm beats an even split by about n * 0.3 * 0.08 = 96 conversions
    assert dr.low < 96 < dr.high and dr.low > 0
    # the paired interval is narrower than one that ignores the two figures share their rows
    separate = log.n * np.hypot(log.rewards.std(ddof=1) / np.sqrt(log.n), doubly_robust(log, target).std_error)
    assert (dr.high - dr.low) / 2 < 1.96 * separate


def test_an_even_split_gains_nothing():
    log = random_log(4000, [0.05, 0.08], [0.5, 0.5])
    dr, by_ips = report_stats.even_split_gain(log)
    assert dr.value == pytest.approx(0.0, abs=1e-6) and by_ips.value == pytest.approx(0.0, abs=1e-6)


def test_gain_of_an_empty_log_says_why():
    log = LoggedData.from_arrays(["a"], np.zeros(0, int), np.zeros(0), np.zeros((0, 1)))
    with pytest.raises(OPEError):
        report_stats.even_split_gain(log)


def test_timeline_lists_breaches_and_alerts_in_order():
    entries = [("1-0", {"type": "assign"}),
               ("2-0", {"type": "guardrail", "variant": "b", "state": "breached", "ts": "5000",
                        "breach": json.dumps({"action": "cap"})}),
               ("3-0", {"type": "guardrail", "variant": "b", "ts": "not a number"})]
    alerts = [{"kind": "drift", "variant": "c", "time": 3.0}, {"kind": "srm", "time": 9.0}]
    got = [(when.timestamp(), label) for when, label in report_stats.timeline(entries, alerts)]
    assert got == [(3.0, "drift: c"), (5.0, "guardrail: b breached"), (9.0, "srm")]


def test_shown_keeps_the_busiest_in_registry_order():
    ids = [f"v{i}" for i in range(10)]
    trials = np.array([5, 1, 9, 0, 7, 3, 8, 2, 6, 4])
    assert report_stats.shown(trials, ids, limit=3) == [2, 4, 6]
    assert report_stats.shown(trials[:3], ids[:3], limit=8) == [0, 1, 2]
    assert report_stats.shown(trials, ids, limit=3, always=(3, 3)) == [2, 3, 6]  # the leader without visitors yet


def experiment(**changes):
    from croupier.router.experiments import parse_experiment
    return parse_experiment({"id": "x", "path_prefix": "/x/", **changes,
                             "variants": [{"id": v, "upstream": "127.0.0.1:9"} for v in "abc"]})


def test_leader_lift_is_the_posterior_ratio_with_its_interval():
    alpha, beta = np.array([51.0, 101.0, 41.0]), np.array([951.0, 901.0, 961.0])  # 5%, 10%, 4% of 1000
    p_best = np.array([0.0, 1.0, 0.0])
    got = report_stats.leader(experiment(), alpha, beta, p_best, np.random.default_rng(1))
    assert got["id"] == "b" and got["control"] == "a" and not got["declared"]
    assert got["lift"] == pytest.approx((101 / 1002) / (51 / 1002) - 1)
    assert 0.3 < got["lift_low"] < got["lift"] < got["lift_high"] < 2.0
    declared = report_stats.leader(experiment(status="ended", winner="c"), alpha, beta, p_best,
                                   np.random.default_rng(1))
    assert declared["id"] == "c" and declared["declared"] and declared["lift_high"] < 0.5
    control = report_stats.leader(experiment(), alpha, beta, np.array([1.0, 0.0, 0.0]), np.random.default_rng(1))
    assert control["id"] == "a" and control["lift"] is None
