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
    png = tmp_path / "policies.png"
    assert bench.main(["--horizon", "6000", "--runs", "3", "--workers", "1", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    goal_lines = [line for line in out.splitlines() if line.startswith("goal ")]
    assert len(goal_lines) == 9
    assert all(line.endswith(" met") for line in goal_lines)  # "met" or "not met": always a verdict
    assert "Chapelle & Li" in out and "drift" in out
    assert png.read_bytes().startswith(b"\x89PNG")


def test_plot_draws_a_panel_per_scenario_with_its_legend_beside_it(tmp_path):
    sc = Scenario("two arms", (0.3, 0.1), 2000)
    drift = Scenario("drift", (0.3, 0.1), 2000, batch=100, rates_after=(0.1, 0.3), change_at=1000)
    results = {}
    for scenario, name in ((sc, "thompson"), (sc, "ucb1"), (drift, "thompson")):
        case = bench.Case(scenario, name)
        results[case.key] = bench.Result(case, simulate(make_policy(name), scenario, runs=2, seed=1))
    fig = bench.figure(results)
    fig.canvas.draw()
    assert [ax.get_title() for ax in fig.axes] == ["two arms", "drift"]
    assert all(ax.get_ylim()[0] == 0 for ax in fig.axes)
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len({(line.get_color(), line.get_linestyle()) for line in lines}) == len(lines)  # distinct
        legend, plotted = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= plotted.x1  # beside the lines, never over them
    thompson = [line for ax in fig.axes for line in ax.get_lines() if line.get_label() == "thompson (each visitor)"]
    assert len({(line.get_color(), line.get_linestyle()) for line in thompson}) == 1  # one look in every panel
    svg = tmp_path / "policies.svg"
    bench.plot(results, str(svg))
    assert svg.read_text().startswith("<svg")
