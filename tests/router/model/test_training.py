"""A training round as pure computation: the split, the figures, the verdict and the live figures."""

from __future__ import annotations

import pytest

from croupier.router.hybrid import decode
from croupier.router.model import ModelError
from croupier.router.model_training import train_round
from tests.router.model.events import entries


def test_first_model_beats_the_base_rate_and_records_its_window():
    history = entries(3000, seed=1)
    found = train_round(history, "signup", trigger="schedule", now=100.0)
    assert found.accepted and "base-rate model" in found.reason
    r = found.record
    assert r["status"] == "accepted" and r["trigger"] == "schedule" and r["trained_at"] == 100.0
    assert (r["rows"]["train"], r["rows"]["holdout"]) == (2400, 600)
    assert r["data"]["first_id"] == history[0][0] and r["data"]["last_id"] == history[-1][0]
    # the held-out window is the most recent: it starts after every training row
    assert r["data"]["holdout_from_ms"] == 1_700_000_000_000 + 10 * 2400
    v = r["validation"]
    assert v["current"] is None and v["candidate"]["log_loss"] < v["base_rate"]["log_loss"]
    # four contexts x arms: four distinct predictions, so four groups
    assert v["candidate"]["rows"] == 600 and len(v["candidate"]["reliability"]) == 4
    assert found.live is None
    model = decode(found.doc, 1)
    rates, _ = model.predict({"device": "mobile"}, ["a", "b"])
    assert rates[0] > 0.15 and rates[1] < 0.1


def test_same_relationship_again_is_not_replaced_a_changed_one_is():
    first = train_round(entries(3000, seed=1), "signup", trigger="schedule", now=100.0)
    current = decode(first.doc, 1)
    after = first.record["data"]["last_ms"]
    same = entries(3000, seed=1) + entries(3000, seed=2, start_ms=after + 10, prefix="w")
    again = train_round(same, "signup", trigger="schedule", current=current, live_after_ms=after, now=200.0)
    assert not again.accepted and "not below the current model's" in again.reason
    assert again.live is not None and again.live["version"] == 1 and again.live["rows"] == 3000
    changed = entries(3000, seed=1) + entries(6000, seed=3, flipped=True, start_ms=after + 10, prefix="w")
    flipped = train_round(changed, "signup", trigger="drift", current=current, live_after_ms=after, now=300.0)
    assert flipped.accepted and "current model's" in flipped.reason
    v = flipped.record["validation"]
    assert v["current_version"] == 1 and v["candidate"]["log_loss"] < v["current"]["log_loss"]
    # the live figures say what went wrong: the current model on the later events is worse than at validation
    assert flipped.live["log_loss"] > first.record["validation"]["candidate"]["log_loss"]


def test_shuffled_labels_are_rejected_and_force_overrides_the_gate():
    history = entries(3000, seed=1)
    current = decode(train_round(history, "signup", trigger="manual").doc, 1)
    shuffled = train_round(history, "signup", trigger="manual", current=current, shuffle_labels=True)
    assert not shuffled.accepted and shuffled.record["shuffled_labels"] is True
    forced = train_round(history, "signup", trigger="manual", current=current, shuffle_labels=True, force=True)
    assert forced.accepted and forced.reason.startswith("forced past the gate")


def test_too_little_data_and_bad_arguments_name_the_problem():
    with pytest.raises(ModelError, match="too few to train on"):
        train_round(entries(50), "signup", trigger="schedule")
    with pytest.raises(ModelError, match="trigger"):
        train_round(entries(500), "signup", trigger="cron")
    with pytest.raises(ModelError, match="holdout"):
        train_round(entries(500), "signup", trigger="manual", holdout=1.0)


def test_a_drift_round_learns_from_the_events_since_the_change():
    first = entries(3000, seed=1)
    change = first[-1][1]["ts"]
    history = first + entries(6000, seed=3, flipped=True, start_ms=int(change) + 10, prefix="w")
    mixed = train_round(history, "signup", trigger="drift")
    since = train_round(history, "signup", trigger="drift", since_ms=int(change) + 10)
    assert mixed.record["data"]["since_ms"] is None and since.record["data"]["since_ms"] == int(change) + 10
    assert since.record["rows"]["train"] == 4800  # the 6,000 since the change, less the held-out fifth
    m, s = mixed.record["validation"]["candidate"], since.record["validation"]["candidate"]
    assert s["log_loss"] < m["log_loss"] * 0.95  # the relationship as it is now, not a mix
    assert abs(s["slope"] - 1) < abs(m["slope"] - 1)
    # a change too recent to learn from: the whole window
    late = train_round(history, "signup", trigger="drift", since_ms=int(history[-20][1]["ts"]))
    assert late.record["data"]["since_ms"] is None and late.record["rows"]["train"] == 7200
