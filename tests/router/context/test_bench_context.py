"""A fast run of ``bench.context``: it runs the router's code end to end and prints its goal lines."""

from __future__ import annotations

from bench import context


def test_bench_context_smoke(capsys):
    assert context.main(["--runs", "3", "--horizon", "4000", "--batch", "500"]) == 0
    out = capsys.readouterr().out
    for name in ("context-free", "segmented", "contextual"):
        assert name in out
    goals = [line for line in out.splitlines() if line.startswith("goal ")]
    assert len(goals) == 3
    assert all(line.endswith((" met", " not met")) for line in goals)
    assert "µs per decision" in out


def test_profiles_put_the_best_arm_where_the_scenario_says():
    profiles = context.Profiles()
    best = profiles.rates.argmax(axis=1)
    assert set(best[profiles.segment == 0]) == {1}  # mobile: b
    assert set(best[profiles.segment == 1]) == {2}  # desktop: c
    assert 0.02 < profiles.rates.min() and profiles.rates.max() < 0.1
