"""Scenario parsing and validation (pure): every error names its field."""

import pytest

from croupier.scripts.scenario import (MAX_REFRESHES, ScenarioError, default_refresh, drift_option, parse_scenario,
                                       parse_text, rates_option)

VARIANTS = [{"id": "a", "rate": 0.04}, {"id": "b", "rate": 0.05}]


def scenario(**fields):
    return parse_scenario({"variants": VARIANTS, "daily_visitors": 5000, "days": 30, **fields})


def test_defaults_are_the_experiments():
    sc = scenario()
    assert (sc.policy, sc.policy_params, sc.min_share, sc.burn_in, sc.holdout) == ("thompson", {}, 0.01, 0, 0.0)
    assert (sc.variants, sc.rates, sc.visitors, sc.runs, sc.seed) == (("a", "b"), (0.04, 0.05), 150_000, 50, 1)
    assert sc.drift is None and sc.rates_after is None and sc.change_at is None


def test_drift_becomes_one_change_point():
    sc = scenario(drift={"day": 10, "rates": {"b": 0.03}})
    assert sc.rates_after == (0.04, 0.03)
    assert sc.change_at == 9 * 5000  # day 10 starts after nine days
    engine = sc.engine()
    assert list(engine.rates_at(sc.change_at - 1)) == [0.04, 0.05]
    assert list(engine.rates_at(sc.change_at)) == [0.04, 0.03]
    assert sc.change_at in sc.checkpoints()


def test_checkpoints_cover_every_day_and_end_at_the_horizon():
    sc = scenario()
    cps = sc.checkpoints()
    assert cps[-1] == sc.visitors and all(d * 5000 in cps for d in range(1, 31))
    assert len(cps) <= 240


def test_refresh_follows_the_router_but_bounds_the_work():
    # a busy site: one router refresh interval (0.5 s) of 100 million visitors a day is 579 visitors
    assert default_refresh(100_000_000, 1) == 50_000  # 2,000 refreshes
    assert default_refresh(1000, 1) == 1  # a quiet day: every visitor sees the newest allocation
    assert default_refresh(5000, 30) == 150_000 // MAX_REFRESHES
    assert scenario(refresh_visitors=10).refresh_visitors == 10


def test_history_buckets_stand_for_an_hour():
    engine = scenario(policy="discounted_thompson").engine()
    assert engine.bucket == round(5000 / 24)
    assert engine.bucket_seconds == pytest.approx(3600, rel=0.01)


@pytest.mark.parametrize("fields, message", [
    ({"policy": "nope"}, "policy: unknown policy 'nope'"),
    ({"policy": "linear_thompson"}, "policy: the simulator's visitors have no context"),
    ({"policy": "factorial_thompson"}, "policy: factorial_thompson needs factors"),
    ({"policy": "ucb1", "policy_params": {"exploration": -1}}, "policy_params.exploration: must be in"),
    ({"policy": "ucb1", "policy_params": {"epsilon": 0.1}},
     "policy_params.epsilon: unknown parameter for policy 'ucb1'"),
    ({"min_share": 0.6}, "min_share: times the number of variants must not exceed 1"),
    ({"holdout": 0.9}, "holdout: must be between"),
    ({"burn_in": -1}, "burn_in: must be an integer"),
    ({"variants": [{"id": "a", "rate": 0.04}]}, "variants: must be a list of at least two"),
    ({"variants": [{"id": "a", "rate": 0.04}, {"id": "B", "rate": 0.05}]}, "variants[1].id: must be"),
    ({"variants": [{"id": "a", "rate": 0.04}, {"id": "a", "rate": 0.05}]}, "variants: ids must be unique"),
    ({"variants": [{"id": "a", "rate": 0.04}, {"id": "b", "rate": 5}]}, "variants[1].rate: must be a conversion"),
    ({"variants": [{"id": "a", "rate": 0.04}, {"id": "b"}]}, "variants[1].rate: is required"),
    ({"variants": [{"id": "a", "rate": 0.04}, {"id": "b", "rate": 0.05, "colour": "red"}]},
     "variants[1].colour: unknown field"),
    ({"daily_visitors": 0}, "daily_visitors: must be an integer between 1"),
    ({"days": 2.5}, "days: must be an integer"),
    ({"days": 3000, "daily_visitors": 1_000_000}, "days: times daily_visitors must not exceed"),
    ({"drift": {"day": 1, "rates": {"b": 0.1}}}, "drift.day: must be an integer between 2 and days (30)"),
    ({"drift": {"day": 5, "rates": {"c": 0.1}}}, "drift.rates.c: is not one of the variants"),
    ({"drift": {"day": 5, "rates": {"b": -0.1}}}, "drift.rates.b: must be a conversion rate"),
    ({"drift": {"rates": {"b": 0.1}}}, "drift.day: is required"),
    ({"drift": {"day": 5, "when": 1, "rates": {"b": 0.1}}}, "drift.when: unknown field"),
    ({"runs": 0}, "runs: must be an integer between 1 and 1000"),
    ({"seed": -1}, "seed: must be an integer"),
    ({"refresh_visitors": 6000}, "refresh_visitors: must be an integer between 1 and 5000"),
    ({"refresh_visitors": 1, "daily_visitors": 100_000}, "refresh_visitors: must be an integer between 15 and"),
    ({"takeover_share": 0.2}, "takeover_share: must be between 0.5 and 1.0"),
    ({"visitors": 3}, "visitors: unknown field (accepted: burn_in,"),
])
def test_errors_name_the_field(fields, message):
    with pytest.raises(ScenarioError) as exc:
        scenario(**fields)
    assert str(exc.value).startswith(message), str(exc.value)


def test_required_fields():
    with pytest.raises(ScenarioError, match="^daily_visitors: is required"):
        parse_scenario({"variants": VARIANTS, "days": 3})
    with pytest.raises(ScenarioError, match="^scenario: must be an object"):
        parse_scenario(["a"])


def test_yaml_and_json_files():
    text = "variants:\n  - {id: a, rate: 0.04}\n  - {id: b, rate: 0.05}\ndaily_visitors: 100\ndays: 3\n"
    assert parse_scenario(parse_text(text, "yaml")).visitors == 300
    assert parse_text('{"days": 3}', "json") == {"days": 3}
    with pytest.raises(ScenarioError, match="^scenario: not valid JSON"):
        parse_text("{days: 3", "json")
    with pytest.raises(ScenarioError, match="^scenario: not valid YAML"):
        parse_text("variants: [a, b\n", "yaml")


def test_command_line_pairs():
    assert rates_option("a=0.04, b=0.05") == VARIANTS
    assert drift_option("10:b=0.03") == {"day": 10, "rates": {"b": 0.03}}
    for bad in ("a0.04", "a=x", "=0.1", ""):
        with pytest.raises(ScenarioError, match="^--rates: "):
            rates_option(bad)
    for bad in ("b=0.03", "x:b=0.03", "10:b"):
        with pytest.raises(ScenarioError, match="^--drift: "):
            drift_option(bad)
