import numpy as np
import pytest

from croupier.router.allocation import allocate, allocate_with_holdout, apply_floor
from croupier.router.policies import ArmStats, PolicyError, ThompsonSampling, UCB1, thompson_probabilities


def test_floor_is_water_filling():
    out = apply_floor(np.array([0.98, 0.02, 0.0, 0.0]), 0.05)
    np.testing.assert_allclose(out, [0.85, 0.05, 0.05, 0.05])
    # arms above the floor keep their ratios
    out = apply_floor(np.array([0.6, 0.3, 0.1, 0.0]), 0.05)
    np.testing.assert_allclose(out[0] / out[1], 2.0)
    np.testing.assert_allclose(out.sum(), 1.0)


def test_floor_properties_on_random_vectors():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(6, 0.3), size=(500,))
    for floor in (0.0, 0.01, 0.1, 1 / 6, 0.5):
        out = apply_floor(probs, floor)
        np.testing.assert_allclose(out.sum(axis=-1), 1.0)
        assert out.min() >= min(floor, 1 / 6) - 1e-12
        # nothing is taken from an arm below the floor, and order is preserved
        assert np.all(np.argsort(out, axis=-1, kind="stable")[:, -1] == np.argmax(probs, axis=-1))


def test_burn_in_is_uniform_per_run():
    arms = ArmStats.from_counts([[100, 100], [100, 5]], [[10, 40], [10, 1]])
    probs = allocate(UCB1(), arms, np.random.default_rng(0), burn_in=50)
    np.testing.assert_allclose(probs, [[0, 1], [0.5, 0.5]])


def test_burn_in_can_look_at_lifetime_counts():
    arms = ArmStats.from_counts([3, 3], [0, 3])  # a short window
    probs = allocate(UCB1(), arms, np.random.default_rng(0), burn_in=50, burn_in_trials=np.array([500, 500]))
    np.testing.assert_allclose(probs, [0, 1])


def test_holdout_stays_uniform_and_is_reported_apart():
    arms = ArmStats.from_counts([1000, 1000, 1000], [10, 10, 300])
    rng = np.random.default_rng(1)
    bandit, share = allocate_with_holdout(UCB1(), arms, rng, min_share=0.01, holdout=0.2)
    assert share == 0.2
    np.testing.assert_allclose(bandit, [0.01, 0.01, 0.98])
    mixed = allocate(UCB1(), arms, rng, min_share=0.01, holdout=0.2)
    np.testing.assert_allclose(mixed, 0.8 * bandit + 0.2 / 3)


def test_thompson_allocation_is_exact_and_batched():
    """Many experiments in one call, each exactly as alone, whatever the generator."""
    trials = np.array([[1000, 1200, 900], [0, 0, 0], [100_000, 100_000, 100_000]])
    arms = ArmStats.from_counts(trials, [[50, 70, 40], [0, 0, 0], [5000, 5100, 4900]])
    one, two = (allocate(ThompsonSampling(), arms, np.random.default_rng(seed), min_share=0.01, holdout=0.1)
                for seed in (0, 1))
    np.testing.assert_array_equal(one, two)
    exact = apply_floor(thompson_probabilities(arms.alpha, arms.beta), 0.01)
    np.testing.assert_allclose(one, 0.9 * exact + 0.1 / 3, atol=1e-15)
    np.testing.assert_allclose(one[1], 1 / 3, atol=1e-12)


def test_single_arm():
    np.testing.assert_allclose(allocate(ThompsonSampling(), ArmStats.from_counts([5], [1]),
                                        np.random.default_rng(0), min_share=0.5), [1.0])


@pytest.mark.parametrize("controls, field", [
    ({"min_share": -0.1}, "min_share:"), ({"holdout": 1.5}, "holdout:"), ({"burn_in": -1}, "burn_in:"),
    ({"burn_in": 2.5}, "burn_in:"),
])
def test_invalid_controls_name_the_field(controls, field):
    with pytest.raises(PolicyError) as err:
        allocate(UCB1(), ArmStats.from_counts([1, 1], [0, 0]), np.random.default_rng(0), **controls)
    assert str(err.value).startswith(field)


# -- the holdout under a guardrail breach ------------------------------------------------

def _held(code: int) -> tuple:
    """An experiment with a 20% holdout and a 5% floor whose variant b holds a breach
    (``code``: 1 capped, 2 paused) although it converts best, as the snapshot computes it."""
    from croupier.router.experiments import parse_experiment
    from croupier.router.snapshot import compute_arms
    e = parse_experiment({"id": "spring", "path_prefix": "/spring/", "holdout": 0.2, "min_share": 0.05,
                          "variants": [{"id": v, "upstream": f"127.0.0.1:{9101 + i}"} for i, v in enumerate("abc")]})
    counters = {"a": {"trials": 1000, "conv:signup": 20}, "b": {"trials": 1000, "conv:signup": 300, "guardrail": code},
                "c": {"trials": 1000, "conv:signup": 20}}
    return e, compute_arms(e, counters, np.random.default_rng(0))


def _shares(arms, draws: int = 100_000) -> dict[str, float]:
    """Each variant's share of an even grid of draws through both ``pick`` and ``pick_many``."""
    u = (np.arange(draws) + 0.5) / draws
    picked = [arms.pick(x)[0].id for x in u]
    index, _ = arms.pick_many(u)
    assert picked == [arms.variants[i].id for i in index]
    return {v.id: picked.count(v.id) / draws for v in arms.variants}


def test_a_paused_variant_gets_no_visitor_from_the_holdout_either():
    _, arms = _held(2)
    probs = dict(arms.labelled())
    assert probs["b"] == 0.0 and sum(probs.values()) == pytest.approx(1.0)
    shares = _shares(arms)
    assert shares["b"] == 0.0
    assert shares["a"] == pytest.approx(probs["a"], abs=1e-4) and shares["c"] == pytest.approx(probs["c"], abs=1e-4)
    np.testing.assert_allclose(arms.holdout_shares(), [0.5, 0.0, 0.5])  # the holdout: even over the open arms


def test_a_capped_variant_gets_at_most_the_floor_holdout_included():
    e, arms = _held(1)
    probs = dict(arms.labelled())
    assert probs["b"] == pytest.approx(e.min_share) and sum(probs.values()) == pytest.approx(1.0)
    assert _shares(arms)["b"] <= e.min_share + 1e-4
    np.testing.assert_allclose(arms.holdout_shares(), [0.475, 0.05, 0.475])


def test_the_holdout_is_uniform_while_no_breach_is_held():
    _, arms = _held(-1)  # cleared by a marketer
    assert arms.holdout_cumulative == ()
    np.testing.assert_allclose(arms.holdout_shares(), [1 / 3] * 3)
    assert dict(arms.labelled())["b"] > 0.75  # 0.8 x (1 - 2 x 5%) + 0.2 / 3


def test_with_holdout_mixes_the_fixed_split_in():
    from croupier.router.allocation import holdout_split, with_holdout
    np.testing.assert_allclose(with_holdout(np.array([0.5, 0.5]), 0.2), [0.5, 0.5])
    np.testing.assert_allclose(with_holdout(np.array([1.0, 0.0]), 0.5, np.array([0.25, 0.75])), [0.625, 0.375])
    np.testing.assert_allclose(holdout_split(4), [0.25] * 4)
    np.testing.assert_allclose(holdout_split(2, lambda p: p * [2.0, 0.0]), [1.0, 0.0])
