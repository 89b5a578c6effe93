"""The guardrail and drift benchmark on tiny sizes: its scenarios, its table and its goal lines (not their values)."""

import re

import numpy as np
import pytest

from bench import guardrails as bench


@pytest.mark.parametrize("count, bound", [(0, 2.9957), (1, 4.7439), (5, 10.5130)])
def test_poisson_upper_bound_matches_tables(count, bound):
    assert bench.poisson_upper(count) == pytest.approx(bound, abs=1e-3)


def test_the_cap_scenario_holds_the_variant_at_the_floor():
    result = bench.run_cap(runs=4, visitors=2000, seed=1)
    assert (result["capped_at"] >= 0).all()  # a 30-point harm is caught in 2,000 visitors
    assert result["over_floor"] <= 1e-12
    free = bench.run_cap(runs=4, visitors=2000, seed=1, guarded=False)
    assert (free["capped_at"] == -1).all() and free["variant_share"].mean() > result["variant_share"].mean()


def test_the_mix_scenario_moves_the_mix_only():
    rates = np.array(bench.DEVICE_RATES)
    trials, conversions = bench._bucketed(2, 4000, 0, lambda t: rates,
                                          mix_at=lambda t: np.array(bench.MIX_BEFORE if t < 2000 else bench.MIX_AFTER))
    assert trials.shape == (4, len(bench.DEVICES), 2, 2)
    assert trials.sum() == 2 * 4000
    mobile = trials[:, 0].sum(axis=(1, 2)) / trials.sum(axis=(1, 2, 3))
    assert mobile[:2].max() < 0.45 < mobile[2:].min()


def test_a_quick_run_prints_the_table_and_goal_lines(capsys):
    assert bench.main(["--quick", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    for scenario in ("cap", "A/A", "drift delay", "false drift alarms", "mix shift"):
        assert re.search(rf"^{re.escape(scenario)} +\S", out, re.M), scenario
    goals = [line for line in out.splitlines() if line.startswith("goal ")]
    names = [line.split(":")[0].removeprefix("goal ") for line in goals]
    assert names == ["cap", "cap-holds", "aa-false-breach", "drift-delay", "false-drift-alarms", "mix-shift",
                     "runtime"]
    assert all(re.search(r" \([^()]+\) (met|not met)$", line) for line in goals), goals


def test_the_mix_goal_runs_the_routers_own_checks():
    result = bench.run_mix(runs=3, before=20_000, after=20_000, seed=2)
    assert result["mix_flagged"].all() and not result["steady_flagged"].any()
    assert not result["rate_alarm"].any()  # DriftCheck, by device: the rates held


def test_the_routers_rate_check_in_the_bench_sees_a_real_change():
    rates = np.array(bench.DEVICE_RATES)
    dropped = rates * np.array([1.0, 0.4])  # the better arm loses 60% on every device, the mix holds
    trials, conversions = bench._bucketed(2, 40_000, 3, lambda t: rates if t < 20_000 else dropped,
                                          mix_at=lambda t: np.array(bench.MIX_BEFORE))
    checked = bench.watch_checks(trials, conversions, shift=20, width=10)
    assert checked["rate_alarm"].all() and not (checked["mix_flagged"] | checked["steady_flagged"]).any()
