"""Invalid hyperparameters: every error names the field it is about."""

import pytest

from croupier.router.policies import POLICIES, PolicyError, make_policy

INVALID = [
    ("thompson", {"draws": 10}, "draws:"),
    ("thompson", {"draws": 4000.5}, "draws:"),
    ("thompson", {"draws": True}, "draws:"),
    ("top_two_thompson", {"beta": 1.5}, "beta:"),
    ("top_two_thompson", {"beta": "half"}, "beta:"),
    ("ucb1", {"exploration": 0}, "exploration:"),
    ("ucb1", {"exploration": float("nan")}, "exploration:"),
    ("kl_ucb", {"c": -1}, "c:"),
    ("epsilon_greedy", {"epsilon": -0.1}, "epsilon:"),
    ("epsilon_greedy", {"epsilon": 1.01}, "epsilon:"),
    ("epsilon_greedy", {"epsilon": None}, "epsilon:"),
    ("decaying_epsilon_greedy", {"c": 0}, "c:"),
    ("decaying_epsilon_greedy", {"d": 0}, "d:"),
    ("decaying_epsilon_greedy", {"d": 2}, "d:"),
    ("discounted_thompson", {"half_life": 0}, "half_life:"),
    ("discounted_thompson", {"half_life": float("inf")}, "half_life:"),
    ("sliding_window_thompson", {"window": -60}, "window:"),
    ("gaussian_thompson", {"prior_count": 0}, "prior_count:"),
    ("gaussian_thompson", {"prior_shape": -1}, "prior_shape:"),
    ("gaussian_thompson", {"prior_scale": 0}, "prior_scale:"),
    ("gaussian_thompson", {"prior_mean": "zero"}, "prior_mean:"),
    ("gaussian_thompson", {"draws": 0}, "draws:"),
]


@pytest.mark.parametrize("name, params, field", INVALID)
def test_invalid_parameter_names_the_field(name, params, field):
    with pytest.raises(PolicyError) as err:
        make_policy(name, params)
    assert str(err.value).startswith(field)


def test_unknown_parameter_names_it():
    with pytest.raises(PolicyError, match=r"^epsilon: unknown parameter for policy 'thompson'"):
        make_policy("thompson", {"epsilon": 0.1})


def test_unknown_policy_names_the_policy_field():
    with pytest.raises(PolicyError, match=r"^policy: unknown policy 'greedy'"):
        make_policy("greedy", {})


def test_params_must_be_an_object():
    with pytest.raises(PolicyError, match=r"^policy_params:"):
        make_policy("thompson", [("draws", 100)])  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_defaults_are_valid_and_round_trip(name):
    policy = make_policy(name, None)
    assert make_policy(name, policy.params()) == policy


def test_integers_are_accepted_for_float_fields():
    assert make_policy("epsilon_greedy", {"epsilon": 1}).epsilon == 1
