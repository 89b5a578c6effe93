"""The packaged simulator on marketers' scenarios: reproducible for a seed, and a bandit that
finds a clearly better variant (the router's own policy and allocation code)."""

import numpy as np
import pytest

from croupier.router.policies import make_policy
from croupier.scripts.scenario import parse_scenario
from croupier.scripts.simulation import Controls, Scenario, simulate
from croupier.scripts.simulation_summary import band, summarise, takeover


def what_if(**fields):
    data = {"variants": [{"id": "a", "rate": 0.02}, {"id": "b", "rate": 0.06}, {"id": "c", "rate": 0.03}],
            "daily_visitors": 1000, "days": 10, "runs": 12, **fields}
    return parse_scenario(data)


def run(sc):
    return simulate(sc.policy_object(), sc.engine(), runs=sc.runs, seed=sc.seed, checkpoints=sc.checkpoints(),
                    controls=sc.controls())


def test_same_seed_same_numbers_other_seed_other_numbers():
    sc = what_if(refresh_visitors=50)
    one, two = run(sc), run(sc)
    np.testing.assert_array_equal(one.pulls, two.pulls)
    np.testing.assert_array_equal(one.conversions_at, two.conversions_at)
    other = run(what_if(refresh_visitors=50, seed=2))
    assert not np.array_equal(one.pulls, other.pulls)


def test_thompson_moves_traffic_to_the_clearly_better_variant_and_gains():
    sc = what_if()
    outcome = summarise(sc, run(sc))
    assert outcome.best == 1
    last_day = outcome.days > sc.days - 1
    assert np.median(outcome.share[:, last_day, 1].mean(axis=1)) > 0.8
    assert np.isfinite(outcome.takeover_days).mean() > 0.9 and np.nanmedian(outcome.takeover_days) < sc.days
    gain = outcome.final(outcome.gain)
    assert gain.low > 0  # every run but the worst 5% gains
    # expected conversions: the even split's and the best's, exactly
    assert outcome.even_conversions == pytest.approx(10_000 * np.mean([0.02, 0.06, 0.03]))
    assert outcome.best_conversions == pytest.approx(10_000 * 0.06)
    assert outcome.final(outcome.regret).median < outcome.even_regret[-1] / 2


def test_summary_regret_is_the_simulators_and_gain_is_its_mirror():
    sc = what_if(drift={"day": 6, "rates": {"a": 0.09}}, refresh_visitors=40)
    trace = run(sc)
    outcome = summarise(sc, trace)
    np.testing.assert_allclose(outcome.regret, trace.regret, atol=1e-6)
    np.testing.assert_allclose(outcome.gain + outcome.regret, np.tile(outcome.even_regret, (sc.runs, 1)), atol=1e-6)
    np.testing.assert_allclose(outcome.share.sum(axis=2), 1.0)
    assert outcome.takeover_from == 6 and outcome.best == 0  # a took over after the drift
    assert np.all(outcome.takeover_days[np.isfinite(outcome.takeover_days)] > 0)


def test_refreshes_need_not_divide_the_day():
    # 997 visitors a day (a prime) refreshed every 40: the last refresh of a day is shorter
    sc = what_if(daily_visitors=997, refresh_visitors=40, runs=3)
    trace = run(sc)
    np.testing.assert_allclose(trace.pulls[:, -1].sum(axis=1), sc.visitors)
    np.testing.assert_allclose(np.diff(trace.pulls.sum(axis=2), prepend=0, axis=1),
                               np.broadcast_to(np.diff(sc.checkpoints(), prepend=0), (3, len(sc.checkpoints()))))


def test_history_policies_and_controls_run_through_allocate():
    sc = what_if(policy="discounted_thompson", policy_params={"half_life": 86400.0}, min_share=0.1,
                 refresh_visitors=100, runs=4)
    trace = run(sc)
    assert (trace.pulls[:, -1] / sc.visitors).min() >= 0.1 * 0.9  # the floor holds (up to the draws' noise)
    assert summarise(sc, trace).best == 1


def test_progress_is_reported_up_to_the_horizon():
    seen = []
    sc = Scenario("tiny", (0.3, 0.1), 1000, batch=30)
    simulate(make_policy("thompson"), sc, runs=2, seed=1, checkpoints=np.array([500, 1000]),
             controls=Controls(min_share=0.01), on_step=seen.append)
    assert seen[-1] == 1000 and seen == sorted(seen) and 500 in seen


def test_band_is_median_and_quantiles_over_runs():
    b = band(np.arange(101, dtype=float)[:, None])
    assert (b.median[0], b.low[0], b.high[0]) == (50.0, 5.0, 95.0)


def test_takeover_needs_a_whole_day_at_the_share():
    # two runs, checkpoints every quarter day of 100 visitors; arm 1 is best throughout
    visitors = np.arange(25, 201, 25)
    per_interval = {0: [[5, 20]] * 8,  # 80% from the start: a whole day at 80% by the end of day 1
                    1: [[0, 25], [25, 0], [25, 0], [25, 0], [5, 20], [5, 20], [5, 20], [5, 20]]}
    pulls = np.cumsum(np.array([per_interval[0], per_interval[1]], dtype=float), axis=1)
    days = takeover(pulls, visitors, np.ones(8, dtype=int), 0.8, 0, 100)
    # run 1: a lucky first quarter is not a takeover; the day ending at 175 has 60/100 < 80%,
    # the day ending at 200 has 80/100
    assert list(days) == [100.0, 200.0]
    assert np.isnan(takeover(pulls, visitors, np.zeros(8, dtype=int), 0.8, 0, 100)[0])  # arm 0 never in run 0
    assert list(takeover(pulls, visitors, np.ones(8, dtype=int), 0.8, 100, 100)) == [100.0, 100.0]
