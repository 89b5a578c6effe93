"""The benchmark's machinery on a tiny horizon, so CI exercises it in seconds."""

import numpy as np
import pytest

from bench import policies as bench
from bench.simulate import Controls, Scenario, checkpoint_grid, simulate
from croupier.router.policies import make_policy


def test_lai_robbins_constant():
    # Chapelle & Li's K=10 scenario
    assert bench.lai_robbins((0.5,) + (0.4,) * 9) == pytest.approx(44.70, abs=0.01)


@pytest.mark.parametrize("batch, delay", [(1, 0.0), (1, 30.0), (50, 0.0), (50, 200.0)])
def test_simulate_accounts_for_every_visitor(batch, delay):
    sc = Scenario("tiny", (0.3, 0.1, 0.2), 2000, batch=batch, delay=delay)
    trace = simulate(make_policy("thompson", {"draws": 100}), sc, runs=5, seed=1)
    assert trace.checkpoints[-1] == 2000
    np.testing.assert_allclose(trace.pulls[:, -1].sum(axis=-1), 2000)
    assert np.all(np.diff(trace.regret, axis=1) >= -1e-9)
    # pseudo-regret is what the pulls cost
    np.testing.assert_allclose(trace.regret[:, -1], trace.pulls[:, -1] @ np.array([0.0, 0.2, 0.1]))


def test_simulate_is_reproducible():
    sc = Scenario("tiny", (0.3, 0.1), 1000)
    one, two = (simulate(make_policy("ucb1"), sc, runs=3, seed=7) for _ in range(2))
    np.testing.assert_array_equal(one.pulls, two.pulls)


def test_history_policies_and_drift():
    sc = Scenario("drift", (0.5, 0.1), 4000, batch=20, rates_after=(0.1, 0.5), change_at=2000, bucket=100)
    policy = make_policy("discounted_thompson", {"half_life": 300.0, "draws": 100})
    trace = simulate(policy, sc, runs=8, seed=3, checkpoints=checkpoint_grid(sc))
    after = trace.pulls[:, -1] - trace.pulls[:, list(trace.checkpoints).index(2000)]
    assert after[:, 1].mean() > after[:, 0].mean()  # it followed the change


def test_controls_go_through_allocate():
    sc = Scenario("floor", (0.9, 0.1), 3000, batch=100)
    trace = simulate(make_policy("ucb1"), sc, runs=4, seed=2, controls=Controls(min_share=0.2))
    assert trace.pulls[:, -1, 1].min() >= 0.2 * 3000 * 0.8


def test_main_prints_tables_and_goal_lines(tmp_path, capsys):
    svg = tmp_path / "policies.svg"
    assert bench.main(["--horizon", "6000", "--runs", "3", "--workers", "1", "--svg", str(svg)]) == 0
    out = capsys.readouterr().out
    goal_lines = [line for line in out.splitlines() if line.startswith("goal ")]
    assert len(goal_lines) == 9
    assert all(line.endswith(" met") for line in goal_lines)  # "met" or "not met": always a verdict
    assert "Chapelle & Li" in out and "drift" in out
    assert svg.read_text().startswith("<svg")
