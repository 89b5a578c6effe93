"""The factorial rollups (croupier.router.factorial_stats) on simulated data with a known truth."""

import itertools
import json

import numpy as np
import pytest

from croupier.router.factorial_stats import heatmap, rollups
from croupier.router.policies.factorial import Design, FactorialThompson, level_sums, logistic

FACTORS = ["headline", "cta", "image"]
LEVELS = [["plain", "savings", "urgency", "social"], ["buy-now", "try-free", "learn"], ["photo", "drawing"]]
N_LEVELS = (4, 3, 2)


def combinations(exclude=True) -> np.ndarray:
    levels = np.array(list(itertools.product(*(range(n) for n in N_LEVELS))))
    # a constraint: the urgency headline never goes with the "learn" button
    return levels[~((levels[:, 0] == 2) & (levels[:, 1] == 2))] if exclude else levels


def true_coefficients(design: Design) -> np.ndarray:
    beta = np.zeros(len(design.columns))
    effects = {(): -3.2, (0, 1): 0.35, (0, 2): 0.1, (0, 3): -0.2, (1, 1): 0.25, (1, 2): -0.15, (2, 1): 0.1,
               (0, 1, 1, 1): 0.3}
    for j, column in enumerate(design.columns):
        beta[j] = effects.get(column, 0.0)
    return beta


def simulate(seed: int, visitors_per_combination: int = 4000):
    levels = combinations()
    design = Design.build(levels, N_LEVELS)
    rates = logistic(design.matrix @ true_coefficients(design))
    rng = np.random.default_rng(seed)
    trials = np.full(len(levels), float(visitors_per_combination))
    successes = rng.binomial(visitors_per_combination, rates).astype(float)
    return levels, rates, trials, successes


def true_level_rates(levels, rates) -> np.ndarray:
    """Each level's rate averaged over the allowed combinations holding it."""
    return level_sums(rates, levels, N_LEVELS) / level_sums(np.ones(len(levels)), levels, N_LEVELS)


def test_intervals_cover_the_truth_and_the_best_level_leads():
    covered = total = 0
    policy = FactorialThompson()
    for seed in range(8):
        levels, rates, trials, successes = simulate(seed)
        state = policy.allocate(levels, N_LEVELS, trials, successes, np.random.default_rng(seed))
        out = rollups(state, levels, N_LEVELS, FACTORS, LEVELS, trials, successes, np.random.default_rng(seed))
        truth = true_level_rates(levels, rates)
        flat = [level for factor in out["factors"] for level in factor["levels"]]
        for level, true in zip(flat, truth):
            covered += level["low"] <= true <= level["high"]
            total += 1
        if seed == 0:
            for factor, best in zip(out["factors"], (1, 1, 1)):
                p_best = [level["p_best"] for level in factor["levels"]]
                assert int(np.argmax(p_best)) == best, factor
                assert sum(p_best) == pytest.approx(1.0)
    assert covered / total >= 0.88, f"{covered} of {total} intervals cover the true level rate"


def test_the_shape_the_stats_endpoint_serves():
    levels, rates, trials, successes = simulate(1)
    # prior_scale 0.3: the true interaction of 0.3 is 3 sd out under the default's (0.1), which shrinks it
    # (its 95% interval at these 4,000 visitors per combination ends at 0.28)
    state = FactorialThompson(prior_scale=0.3).allocate(levels, N_LEVELS, trials, successes, np.random.default_rng(1))
    out = rollups(state, levels, N_LEVELS, FACTORS, LEVELS, trials, successes, np.random.default_rng(2), draws=500)
    json.dumps(out)  # plain Python values only
    assert [f["name"] for f in out["factors"]] == FACTORS
    headline = out["factors"][0]["levels"]
    assert [level["name"] for level in headline] == LEVELS[0]
    assert set(headline[0]) == {"name", "rate", "low", "high", "p_best", "trials", "conversions"}
    # raw counts per level: every allowed combination holding it
    assert headline[2]["trials"] == 4000 * 4 and headline[0]["trials"] == 4000 * 6
    assert headline[0]["conversions"] == int(successes[levels[:, 0] == 0].sum())
    # one interaction per pair of non-control levels a combination can hold: 3*2 + 3*1 + 2*1, less the excluded pair
    pairs = {(tuple(i["factors"]), tuple(i["levels"])) for i in out["interactions"]}
    assert len(pairs) == 6 - 1 + 3 + 2
    assert (("headline", "cta"), ("urgency", "learn")) not in pairs
    strong = next(i for i in out["interactions"] if i["levels"] == ["savings", "try-free"])
    assert strong["low"] < 0.3 < strong["high"] and strong["low"] > 0  # the true interaction, clearly positive
    assert strong["lift"] == pytest.approx(np.expm1(strong["effect"]))
    best = out["best"]
    assert best["arm_levels"] == [int(v) for v in levels[np.argmax(rates)]] == [1, 1, 1]
    assert best["names"] == ["savings", "try-free", "drawing"]
    assert best["low"] < rates.max() < best["high"]


def test_no_interactions_with_main_effects_only():
    levels, _, trials, successes = simulate(2)
    policy = FactorialThompson(interactions="none")
    out = rollups(policy, levels, N_LEVELS, FACTORS, LEVELS, trials, successes, np.random.default_rng(0), draws=300)
    assert out["interactions"] == []
    assert len(out["factors"]) == 3


def test_the_policy_or_its_state_give_the_same_rollups():
    levels, _, trials, successes = simulate(3)
    policy = FactorialThompson()
    state = policy.allocate(levels, N_LEVELS, trials, successes, np.random.default_rng(0))
    from_state = rollups(state, levels, N_LEVELS, FACTORS, LEVELS, trials, successes, np.random.default_rng(9))
    from_policy = rollups(policy, levels, N_LEVELS, FACTORS, LEVELS, trials, successes, np.random.default_rng(9))
    assert from_state == from_policy


def test_heatmap_rows_average_to_the_level_rates_and_forbidden_cells_are_empty():
    levels, _, trials, successes = simulate(4)
    state = FactorialThompson().allocate(levels, N_LEVELS, trials, successes, np.random.default_rng(0))
    grid = heatmap(state, levels, N_LEVELS, FACTORS, LEVELS, "headline", "image", trials, successes,
                   np.random.default_rng(5), draws=400)
    json.dumps(grid)
    assert grid["factors"] == ["headline", "image"] and grid["rows"] == LEVELS[0] and grid["cols"] == LEVELS[2]
    out = rollups(state, levels, N_LEVELS, FACTORS, LEVELS, trials, successes, np.random.default_rng(5), draws=400)
    # every headline holds both images equally often, so a row's average is the headline's rate (same draws)
    for row, level in zip(grid["rates"], out["factors"][0]["levels"]):
        assert np.mean(row) == pytest.approx(level["rate"], rel=1e-12)
    forbidden = heatmap(state, levels, N_LEVELS, FACTORS, LEVELS, 0, 1, trials, successes,
                        np.random.default_rng(5), draws=100)
    assert forbidden["rates"][2][2] is None and forbidden["low"][2][2] is None
    assert all(v is not None for i, row in enumerate(forbidden["rates"]) for j, v in enumerate(row) if (i, j) != (2, 2))


@pytest.mark.parametrize("kwargs, field", [
    ({"factor_names": ["a", "b"]}, "factor_names:"),
    ({"level_names": [["x"] * 4, ["y"] * 3]}, "level_names:"),
    ({"level_names": [["x"] * 4, ["y"] * 2, ["z"] * 2]}, "level_names:"),
])
def test_names_must_match_the_design(kwargs, field):
    levels, _, trials, successes = simulate(5)
    args = {"factor_names": FACTORS, "level_names": LEVELS, **kwargs}
    with pytest.raises(ValueError, match=f"^{field}"):
        rollups(FactorialThompson(), levels, N_LEVELS, args["factor_names"], args["level_names"], trials, successes,
                np.random.default_rng(0), draws=100)


def test_heatmap_factors_must_exist_and_differ():
    levels, _, trials, successes = simulate(6)
    policy = FactorialThompson()
    for rows, cols, field in (("font", "cta", "rows:"), ("cta", "cta", "cols:"), (0, 7, "cols:")):
        with pytest.raises(ValueError, match=f"^{field}"):
            heatmap(policy, levels, N_LEVELS, FACTORS, LEVELS, rows, cols, trials, successes, np.random.default_rng(0))


def test_a_state_of_another_design_is_refused():
    levels, _, trials, successes = simulate(7)
    state = FactorialThompson().allocate(levels, N_LEVELS, trials, successes, np.random.default_rng(0))
    other = combinations(exclude=False)
    with pytest.raises(ValueError, match="^levels:"):
        rollups(state, other, N_LEVELS, FACTORS, LEVELS, np.zeros(len(other)), np.zeros(len(other)),
                np.random.default_rng(0))
