"""Parsing a factorial experiment: its arms as variants, the declaration kept, and every
refusal naming its field. Pure."""

from __future__ import annotations

import json

import pytest

from croupier.router.experiments import MAX_VARIANTS, InvalidExperiment, merge, parse_experiment
from croupier.router.factors import MAX_COMBINATIONS, parse_declaration
from croupier.router.policies import POLICIES
from tests.router.factors.spring import SPRING, spring


def test_arms_are_the_allowed_combinations_in_product_order():
    experiment = parse_experiment(SPRING)
    assert [v.id for v in experiment.variants] == [
        "plain_go_none", "plain_go_cashback", "plain_buy-now_none",
        "savings_go_none", "savings_go_cashback", "savings_buy-now_none"]
    assert experiment.control == "plain_go_none" == experiment.factorial.control_arm
    arm = experiment.variant("savings_go_cashback")
    assert arm.upstream == "variant-a:8000" and arm.status == "active"
    assert arm.name == "headline: savings · cta: go · offer: cashback"
    # shallow per key; a JSON object such as colors merges one level deep
    assert arm.params == {"headline": "Save 20% this spring", "cta": "Go", "badge": "5% cashback",
                          "colors": {"primary": "#111111", "accent": "#333333"}}
    assert experiment.variant("plain_buy-now_cashback") is None  # excluded by the constraint
    assert experiment.variant("page") is None  # the page server is not an arm


def test_the_registry_keeps_the_declaration_not_the_arms():
    experiment = parse_experiment(SPRING)
    stored = experiment.to_dict()
    assert [v["id"] for v in stored["variants"]] == ["page"]
    assert stored["factors"] == SPRING["factors"] and stored["constraints"] == SPRING["constraints"]
    assert parse_experiment(json.loads(json.dumps(stored))) == experiment
    # an ordinary experiment's record has no factorial fields
    plain = parse_experiment({"id": "e", "variants": [{"id": "a", "upstream": "h:1"}]}).to_dict()
    assert "factors" not in plain and "constraints" not in plain and "factorial" not in plain


def test_control_and_winner_are_arms():
    assert parse_experiment(spring(control="savings_go_none")).control == "savings_go_none"
    ended = parse_experiment(spring(status="ended", winner="savings_buy-now_none"))
    assert ended.winner == "savings_buy-now_none"
    assert merge(ended, {"status": "running", "winner": ""}).winner == ""


def test_one_factor_names_its_arms_by_level_alone():
    experiment = parse_experiment(spring(factors={"cta": {"go": {"cta": "Go"}, "buy": {"cta": "Buy"}}},
                                         constraints=[]))
    assert [v.id for v in experiment.variants] == ["go", "buy"]


@pytest.mark.parametrize("changes, error", [
    ({"factors": {"headline": {"plain": {}, "savings": 3}}}, "factors.headline.savings: must be a JSON object"),
    ({"factors": {"headline": {"plain": {}}}}, "factors.headline: needs at least 2 levels"),
    ({"factors": {"headline": {f"l{i}": {} for i in range(17)}}}, "factors.headline: at most 16 levels"),
    ({"factors": {"headline": ["plain", "savings"]}}, "factors.headline: must be a JSON object"),
    ({"factors": {}}, "factors: must be a JSON object"),
    ({"factors": {f"f{i}": {"a": {}, "b": {}} for i in range(9)}}, "factors: at most 8"),
    ({"factors": {"Head_line": {"a": {}, "b": {}}}}, "factors.Head_line: must be 1-24 lowercase"),
    ({"factors": {"cta": {"buy_now": {}, "go": {}}}}, "factors.cta.buy_now: must be 1-24 lowercase"),
    ({"factors": {"cta": {"a" * 25: {}, "go": {}}}}, f"factors.cta.{'a' * 25}: must be 1-24"),
    ({"factors": {"cta": {"go": {"headline": "x" * 9000}, "buy": {}}}}, "factors.cta.go: larger than 8192 bytes"),
    ({"constraints": [{"offer": "x", "cta": "go"}]}, "constraints[0].offer: unknown level 'x'"),
    ({"constraints": [{"offre": "none", "cta": "go"}]}, "constraints[0].offre: unknown factor 'offre'"),
    ({"constraints": [{"offer": "cashback"}]}, "constraints[0]: must be a JSON object of at least 2 factors"),
    ({"constraints": {"offer": "cashback"}}, "constraints: must be a list"),
    ({"constraints": [{"offer": "none", "cta": "go"}]}, "constraints[0]: excludes the control combination"),
    ({"constraints": [{"headline": "savings", "cta": "go"}, {"headline": "savings", "cta": "buy-now"},
                      {"headline": "plain", "cta": "buy-now"}, {"headline": "plain", "offer": "cashback"}]},
     "constraints: leave fewer than 2 allowed combinations"),
    ({"control": "plain_buy-now_cashback"}, "control: 'plain_buy-now_cashback' is not an allowed combination"),
    ({"control": "page"}, "control: 'page' is not an allowed combination"),
    ({"winner": "plain_go"}, "winner: 'plain_go' is not one of the variants"),
    ({"variants": [SPRING["variants"][0]] * 2}, "variants: a factorial experiment declares exactly one variant"),
    ({"variants": [{**SPRING["variants"][0], "status": "paused"}]}, "variants[0].status:"),
    ({"variants": [{"id": "page", "upstream": "no port"}]}, "variants[0].upstream:"),
    ({"policy": "ucb1"}, "policy: a factorial experiment takes one of factorial_thompson, thompson"),
    ({"segment_keys": ["country"]}, "segment_keys: not available for a factorial experiment"),
    ({"model_weight": 0.5}, "model_weight: not available for a factorial experiment"),
    ({"min_share": 0.6}, "min_share: times the most levels of a factor must not exceed 1"),
])
def test_refusals_name_the_field(changes, error):
    with pytest.raises(InvalidExperiment) as raised:
        parse_experiment(spring(**changes))
    assert str(raised.value).startswith(error), str(raised.value)


def test_the_combination_count_is_checked_before_anything_is_enumerated():
    factors = {f"f{i}": {f"l{j}": {} for j in range(16)} for i in range(8)}  # 16^8: enumerating would hang
    with pytest.raises(InvalidExperiment, match=f"factors: 4294967296 combinations of levels; at most {MAX_COMBINATIONS}"):
        parse_experiment(spring(factors=factors, constraints=[]))


def test_constraints_belong_to_factorial_experiments():
    data = {"id": "e", "variants": [{"id": "a", "upstream": "h:1"}, {"id": "b", "upstream": "h:2"}]}
    with pytest.raises(InvalidExperiment, match="^constraints: only for a factorial experiment"):
        parse_experiment({**data, "constraints": []})
    with pytest.raises(InvalidExperiment, match="^policy: factorial_thompson needs factors"):
        parse_experiment({**data, "policy": "factorial_thompson"})


def test_min_share_is_per_level_for_factorial_and_per_variant_otherwise():
    assert parse_experiment(spring(min_share=0.5)).min_share == 0.5  # 2 levels a factor, 6 arms
    variants = [{"id": f"v{i}", "upstream": "h:1"} for i in range(3)]
    with pytest.raises(InvalidExperiment, match="^min_share: times the number of variants"):
        parse_experiment({"id": "e", "variants": variants, "min_share": 0.5})


def test_max_variants_bounds_ordinary_experiments_only():
    variants = [{"id": f"v{i}", "upstream": "h:1"} for i in range(MAX_VARIANTS + 1)]
    with pytest.raises(InvalidExperiment, match=f"^variants: at most {MAX_VARIANTS}"):
        parse_experiment({"id": "e", "variants": variants})
    factors = {f"f{i}": {"a": {}, "b": {}} for i in range(6)}
    assert len(parse_experiment(spring(factors=factors, constraints=[])).variants) == 64


def test_factorial_thompson_is_accepted_registered_or_not(monkeypatch):
    registered = POLICIES.get("factorial_thompson")
    monkeypatch.delitem(POLICIES, "factorial_thompson", raising=False)
    assert parse_experiment(spring(policy="factorial_thompson")).policy == "factorial_thompson"
    if registered is not None:  # once registered, make_policy checks its parameters too
        monkeypatch.setitem(POLICIES, "factorial_thompson", registered)
        assert parse_experiment(spring(policy="factorial_thompson")).policy == "factorial_thompson"
        with pytest.raises(InvalidExperiment, match="^policy_params.no_such_thing"):
            parse_experiment(spring(policy="factorial_thompson", policy_params={"no_such_thing": 1}))


def test_the_variant_servers_part_alone():
    declared = parse_declaration(spring(control="savings_go_none", policy="anything: not its business"))
    assert declared.experiment == "spring" and declared.control == "savings_go_none"
    assert declared.factorial == parse_experiment(SPRING).factorial
