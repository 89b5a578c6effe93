"""A factorial experiment through the router in-process, against a real redis-server: the
refresh fits its model, the channels API answers a combination with its merged parameters
and logs the propensity it was drawn with, conversions credit the combination, and the stats
name each factor's levels with the model's rollups."""

from __future__ import annotations

import numpy as np
import pytest

from croupier.router.ope import evaluate, join_log, observed

from tests.conftest import eventually


def factorial(**extra) -> dict:
    return {"id": "mvt", "path_prefix": "/mvt/", "policy": "factorial_thompson", "min_share": 0.05,
            "variants": [{"id": "page", "upstream": "127.0.0.1:9100",
                          "params": {"headline": "Base", "cta": "Go", "badge": ""}}],
            "factors": {"headline": {"plain": {}, "savings": {"headline": "Save 20%"}},
                        "cta": {"go": {}, "buy": {"cta": "Buy now"}, "try": {"cta": "Try it"}},
                        "offer": {"none": {}, "cashback": {"badge": "5% cashback"}}},
            "constraints": [{"cta": "try", "offer": "cashback"}], **extra}


def test_a_factorial_experiment_is_decided_credited_and_summarised(api):
    created = api.create(factorial())
    assert created["variants"] == [factorial()["variants"][0] | {"status": "active", "name": "",
                                                                  "prior_alpha": 1.0, "prior_beta": 1.0}]
    snapshot = api.snapshot
    arms = snapshot.arms["mvt"]
    ids = [v.id for v in arms.variants]
    assert len(ids) == 2 * 3 * 2 - 2 and "savings_try_cashback" not in ids  # the constraint's two
    assert "mvt" in snapshot.factorial  # the refresh fitted the model
    levels = snapshot.experiments["mvt"].factorial.arms()
    # every level keeps at least min_share of the traffic
    for f in range(levels.shape[1]):
        for level in np.unique(levels[:, f]):
            assert sum(p for p, row in zip(arms.probabilities, levels) if row[f] == level) >= 0.05 - 1e-9

    answers = [api.decide(experiment="mvt", customer_id=f"c-{i}").json() for i in range(60)]
    for answer in answers:
        arm = answer["variant"]
        headline, cta, offer = arm.split("_")
        params = answer["params"]
        assert params["headline"] == ("Save 20%" if headline == "savings" else "Base")
        assert params["cta"] == {"go": "Go", "buy": "Buy now", "try": "Try it"}[cta]
        assert params["badge"] == ("5% cashback" if offer == "cashback" else "")
        assert answer["propensity"] == answer["probabilities"][arm] > 0

    # the customers shown the savings headline with cashback convert
    converted = [a for a in answers if a["variant"].startswith("savings_") and a["variant"].endswith("_cashback")]
    for answer in converted:
        assert api.convert(experiment="mvt", token=answer["token"]).status_code == 202
    eventually(lambda: api.total("mvt", "conversions") == len(converted) and api.total("mvt", "trials") == 60)

    stats = api.admin("GET", "/experiments/mvt/stats").json()
    assert [f["name"] for f in stats["factors"]] == ["headline", "cta", "offer"]
    headline = {level["name"]: level for level in stats["factors"][0]["levels"]}
    assert sum(level["trials"] for level in headline.values()) == 60
    assert headline["savings"]["conversions"] == len(converted)
    assert all(level["low"] <= level["rate"] <= level["high"] for level in headline.values())
    if converted:
        assert headline["savings"]["p_best"] > headline["plain"]["p_best"]
        assert stats["best"]["arm"].startswith("savings_") and stats["best"]["arm"].endswith("_cashback")
    assert stats["best"]["arm"] in ids
    assert [h["factors"] for h in stats["heatmaps"]] == [["headline", "cta"], ["headline", "offer"], ["cta", "offer"]]
    assert len(stats["heatmaps"][2]["rates"]) == 3 and stats["heatmaps"][2]["rates"][2][1] is None  # try x cashback
    assert {row["id"] for row in stats["variants"]} == set(ids)


def test_off_policy_evaluation_reads_a_factorial_log(api):
    """Each assignment is logged with the probability its combination was drawn with (and every
    other combination's), so the estimators work on factorial logs as on any other."""
    api.create(factorial(min_share=0.0))
    answers = {}
    for i in range(40):
        answer = api.decide(experiment="mvt", customer_id=f"c-{i}").json()
        answers[answer["token"].split(".")[2]] = answer  # by visitor id
        if answer["variant"].startswith("savings_"):
            assert api.convert(experiment="mvt", token=answer["token"]).status_code == 202
    eventually(lambda: len([e for e in api.events("mvt") if e.get("type") == "assign"]) == 40)
    entries = [(str(i), e) for i, e in enumerate(api.events("mvt"))]
    log, report = join_log(entries, "signup")
    assert report.assignments == 40 and len(log.arms) == 10
    for row, visitor in enumerate(e["visitor"] for _, e in entries if e.get("type") == "assign"):
        arm = log.arms[log.actions[row]]
        assert arm == answers[visitor]["variant"]
        assert log.probs[row, log.actions[row]] == pytest.approx(answers[visitor]["propensity"])
    seen = observed(log)
    logging = evaluate(log, log.probs)["ips"]
    assert logging.value == pytest.approx(seen.value)  # the logged split reproduces what was observed
    savings = np.array([a.startswith("savings_") for a in log.arms], dtype=float)
    target = np.broadcast_to(savings / savings.sum(), log.probs.shape)
    assert evaluate(log, target)["snips"].value == pytest.approx(1.0)  # every savings visitor converted
