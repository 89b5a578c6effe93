"""Editing a factorial experiment's levels: each edit re-validated, the control kept. Pure."""

from __future__ import annotations

import pytest

from croupier.router.experiments import (InvalidExperiment, Variant, parse_experiment, with_level, with_variant,
                                         without_level, without_variant)
from tests.router.factors.spring import SPRING, spring


@pytest.fixture
def experiment():
    return parse_experiment(SPRING)


def test_a_new_level_comes_last_and_adds_its_combinations(experiment):
    added = with_level(experiment, "cta", "sign-up", {"cta": "Sign up"})
    assert list(added.to_dict()["factors"]["cta"]) == ["go", "buy-now", "sign-up"]
    assert added.factorial.n_levels == (2, 3, 2)
    assert len(added.variants) == 10  # 12 combinations, 2 excluded by the constraint
    assert added.variant("savings_sign-up_cashback").params["cta"] == "Sign up"
    assert added.control == experiment.control
    assert with_level(added, "cta", "sign-up", {"cta": "Join"}).factorial.merged_params("plain_sign-up_none")["cta"] == "Join"


def test_a_new_level_is_validated(experiment):
    for level, params, error in (("Sign_up", {}, "factors.cta.Sign_up: must be 1-24"),
                                 ("sign-up", [], "factors.cta.sign-up: must be a JSON object")):
        with pytest.raises(InvalidExperiment, match=f"^{error}"):
            with_level(experiment, "cta", level, params)
    with pytest.raises(InvalidExperiment, match="^factors.colour: unknown factor"):
        with_level(experiment, "colour", "red", {})
    full = with_level(experiment, "cta", "x", {})
    for i in range(13):
        full = with_level(full, "cta", f"x{i}", {})
    with pytest.raises(InvalidExperiment, match="^factors.cta: at most 16 levels"):
        with_level(full, "cta", "one-more", {})


def test_removing_a_level_drops_its_arms_and_constraints(experiment):
    three = with_level(experiment, "cta", "sign-up", {"cta": "Sign up"})
    removed = without_level(three, "cta", "buy-now")
    assert removed.to_dict()["constraints"] == []  # it named buy-now
    assert [v.id for v in removed.variants] == [
        "plain_go_none", "plain_go_cashback", "plain_sign-up_none", "plain_sign-up_cashback",
        "savings_go_none", "savings_go_cashback", "savings_sign-up_none", "savings_sign-up_cashback"]


@pytest.mark.parametrize("factor, level, error", [
    ("cta", "go", "factors.cta.go: the control level (the factor's first) cannot be removed"),
    ("cta", "buy-now", "factors.cta: needs at least 2 levels; add another before removing 'buy-now'"),
    ("cta", "sign-in", "factors.cta.sign-in: unknown level"),
    ("colour", "red", "factors.colour: unknown factor"),
])
def test_removals_that_are_refused(experiment, factor, level, error):
    with pytest.raises(InvalidExperiment) as raised:
        without_level(experiment, factor, level)
    assert str(raised.value) == error


def test_the_control_and_the_winner_keep_their_levels():
    three = {**SPRING["factors"], "cta": {**SPRING["factors"]["cta"], "sign-up": {"cta": "Sign up"}}}
    controlled = parse_experiment(spring(factors=three, control="savings_sign-up_none"))
    with pytest.raises(InvalidExperiment, match="^factors.cta.sign-up: the control 'savings_sign-up_none' has this "
                                                "level; make another combination the control first"):
        without_level(controlled, "cta", "sign-up")
    won = parse_experiment(spring(factors=three, status="ended", winner="plain_sign-up_cashback"))
    with pytest.raises(InvalidExperiment, match="^factors.cta.sign-up: the winner 'plain_sign-up_cashback'"):
        without_level(won, "cta", "sign-up")
    assert len(without_level(won, "cta", "buy-now").variants) == 8


def test_variants_are_not_edited_one_by_one(experiment):
    for edit in (lambda: with_variant(experiment, Variant("extra", "h:1")),
                 lambda: with_variant(experiment, Variant("plain_go_none", "h:1", status="paused")),
                 lambda: without_variant(experiment, "savings_go_none")):
        with pytest.raises(InvalidExperiment, match="^variants: a factorial experiment's arms are its factors' "
                                                    "combinations; add or remove a level"):
            edit()


def test_levels_are_only_for_factorial_experiments():
    plain = parse_experiment({"id": "e", "variants": [{"id": "a", "upstream": "h:1"}]})
    with pytest.raises(InvalidExperiment, match="^factors: not a factorial experiment"):
        with_level(plain, "cta", "go", {})
