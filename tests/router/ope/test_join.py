"""The event stream joined into a log: conversions go to the visitor's latest assignment before them."""

from __future__ import annotations

import json

import numpy as np

from croupier.router.ope import join_log


def assign(ts, visitor, variant, probs, reason="new", **extra):
    return (f"{ts}-0", {"type": "assign", "variant": variant, "visitor": visitor, "reason": reason,
                        "probs": json.dumps(probs), "ts": str(ts), **extra})


def event(ts, visitor, variant, kind="convert", goal="signup"):
    return (f"{ts}-1", {"type": kind, "variant": variant, "visitor": visitor, "goal": goal if kind == "convert" else "",
                        "value": "", "ts": str(ts), "id": ""})


def test_join_attributes_by_visitor_and_time():
    ab = {"a": 0.5, "b": 0.5}
    entries = [
        event(90, "v0", "a"),  # before any assignment of v0: unattributed
        assign(100, "v1", "a", ab),
        # written before its assignment (assignments are flushed in batches), but later in time
        event(120, "v2", "b"),
        assign(110, "v2", "b", ab),
        assign(130, "v3", "a", ab),
        assign(140, "v3", "b", {"a": 0.2, "b": 0.8}, reason="reassigned"),
        event(150, "v3", "b"),  # goes to the reassignment, the latest before it
        event(160, "v1", "a", goal="newsletter"),  # another goal
        event(170, "v1", "a", kind="view"),
        assign(180, "v4", "c", {"a": 0.25, "b": 0.25, "c": 0.5}, reason="holdout"),
        event(190, "v4", "b"),  # the beacon named another variant: still the assignment's
    ]
    log, report = join_log(entries, "signup")
    assert log.arms == ("a", "b", "c")
    assert log.actions.tolist() == [0, 1, 0, 1, 2]
    assert log.rewards.tolist() == [0, 1, 0, 1, 1]
    assert log.uniform.tolist() == [False, False, False, False, True]
    np.testing.assert_allclose(log.probs[3], [0.2, 0.8, 0.0])
    np.testing.assert_allclose(log.propensities, [0.5, 0.5, 0.5, 0.8, 0.5])
    assert (report.assignments, report.conversions, report.attributed, report.unattributed) == (5, 4, 3, 1)
    assert report.variant_mismatch == 1 and report.holdout == 1 and report.other_events == 2


def test_join_reads_context_and_survives_junk():
    entries = [
        assign(100, "v1", "a", {"a": 1.0}, context=json.dumps({"device": "mobile"})),
        assign(102, "v3", "b", {"b": 1.0}, segment="device=desktop,country=de"),
        (("101-0"), {"type": "assign", "variant": "a", "visitor": "v2", "probs": "not json", "ts": "101"}),
    ]
    log, report = join_log(entries, "signup")
    assert log.contexts == ({"device": "mobile"}, {"device": "desktop", "country": "de"})
    assert report.malformed == 1
    empty, report = join_log([], "signup")
    assert empty.n == 0 and report.assignments == 0


def test_a_reward_of_engaged_views_is_joined_like_a_conversion():
    """The experiment's reward (croupier.router.reward) defines each row's: a page view's
    engaged report counts for the visitor's latest assignment before it, once."""
    from croupier.router.reward import parse_reward

    def engagement(ts, visitor, engaged):
        return (f"{ts}-2", {"type": "engagement", "variant": "a", "visitor": visitor, "id": f"pv-{visitor}",
                            "ts": str(ts), "engaged": "1" if engaged else "0"})
    ab = {"a": 0.5, "b": 0.5}
    entries = [assign(100, "v1", "a", ab), assign(101, "v2", "b", ab), assign(102, "v3", "a", ab),
               engagement(110, "v1", True), engagement(111, "v1", True),  # the same view, reported twice
               engagement(112, "v2", False), event(113, "v2", "b"),
               engagement(114, "v3", True), event(115, "v3", "a")]
    conversions, _ = join_log(entries, "signup")
    assert conversions.rewards.tolist() == [0.0, 1.0, 1.0]
    engaged, _ = join_log(entries, "signup", reward=parse_reward("engaged"))
    assert engaged.rewards.tolist() == [1.0, 0.0, 1.0]
    mixed, _ = join_log(entries, "signup", reward=parse_reward({"conversion": 0.6, "engaged": 0.4}))
    assert np.allclose(mixed.rewards, [0.4, 0.6, 1.0])
