"""The factorial benchmark on a tiny horizon: its scenario, its table and its goal lines (not their values)."""

import re

import numpy as np

from bench import factorial as bench


def test_the_scenario_is_the_stated_one():
    levels, rates = bench.design()
    assert levels.shape == (255, 4) and tuple(bench.EXCLUDED) not in {tuple(c) for c in levels}
    assert 0.02 <= rates.min() and rates.max() <= 0.06
    # the interaction changes which offer is best with the best headline
    (f, a), (g, b), _ = bench.INTERACTION
    best = levels[np.argmax(rates)]
    assert best[f] == a and best[g] == b
    assert int(np.argmax(bench.MAIN[g])) != b


def test_marks_fall_on_refreshes():
    assert bench.Marks.for_horizon(200_000) == bench.Marks(40_000, 50_000, 160_000)
    small = bench.Marks.for_horizon(2000)
    assert all(v % bench.REFRESH == 0 for v in (small.window_start, small.at, small.last_from))
    assert small.window_start < small.at <= small.last_from < 2000


def test_every_policy_serves_every_visitor():
    for policy in bench.POLICIES:
        result = bench.run(policy, runs=2, visitors=1000, seed=3)
        assert result.regret.shape == (2,) and np.all(result.regret >= 0)
        assert result.last.sum(axis=1).tolist() == [200.0, 200.0]  # the last 20% of 1,000
        assert np.all(result.conversions <= 1000)


def test_a_tiny_run_prints_the_table_and_goal_lines(capsys):
    assert bench.main(["--runs", "2", "--visitors", "2000", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    for policy in bench.POLICIES:
        assert re.search(rf"^{policy} +\d+ ± \d+ +\d+ ± \d+ ", out, re.M), out
    goals = dict(re.findall(r"^goal (\S+): .* \([<>]= [\d.%]+\) (met|not met)$", out, re.M))
    assert set(goals) == {"factorial-regret", "factorial-best-by-50k", "decision-cost"}, out
