"""The assignment core on an in-memory snapshot: the fixed variants, token checks under
tenant keys with their metric, drawing and queuing. No Redis, no HTTP."""

from __future__ import annotations

import random

import numpy as np
import pytest

from croupier.router.assign import NOWHERE, Assigner, by_device, fixed_variant
from croupier.router.context import Context
from croupier.router.experiments import parse_experiment
from croupier.router.metrics import Metrics
from croupier.router.recorder import AssignmentRecorder
from croupier.router.settings import Settings
from croupier.router.snapshot import Snapshot, SnapshotKeeper, compute_arms
from croupier.router.token import TokenError, new_visitor_id

NOW = 1_800_000_000.0
SETTINGS = Settings(secret="s" * 32)


def experiment(exp_id: str = "demo", **extra):
    return parse_experiment({"id": exp_id, "path_prefix": f"/{exp_id}/", "variants": [
        {"id": "a", "upstream": "a:80"}, {"id": "b", "upstream": "b:80"}, {"id": "c", "upstream": "c:80"}], **extra})


def core_for(*experiments, arms: bool = True) -> Assigner:
    keeper = SnapshotKeeper(store=None, refresh_interval=1, rng=np.random.default_rng(0))
    computed = {e.id: compute_arms(e, {}, np.random.default_rng(0)) for e in experiments} if arms else {}
    keeper.current = Snapshot.build(list(experiments), computed, {}, 1)
    recorder = AssignmentRecorder(store=None, metrics=Metrics(), flush_interval=1, max_pending=100)
    return Assigner(SETTINGS, keeper, recorder, Metrics(), random.Random(3))


def rejected(core: Assigner, reason: str) -> float:
    return core.metrics.tokens_rejected.labels(reason)._value.get()


@pytest.mark.parametrize("extra, bot, expected", [
    ({"status": "ended", "winner": "b"}, False, ("b", "ended")),
    ({"status": "ended", "winner": "b"}, True, ("b", "ended")),  # everyone sees the winner
    ({"status": "paused"}, False, ("a", "paused")),
    ({}, True, ("a", "bot")),
])
def test_fixed_variants(extra, bot, expected):
    variant, reason = fixed_variant(experiment(**extra), bot)
    assert (variant.id, reason) == expected


def test_a_running_experiment_assigns():
    assert fixed_variant(experiment()) is None


def test_a_drawn_assignment_is_queued_with_every_arms_probability():
    exp = experiment()
    core = core_for(exp)
    drawn = core.draw(exp)
    assert drawn is not None and drawn.variant.id in ("a", "b", "c") and not drawn.in_holdout
    core.record(exp, drawn, "visitor-1", "new", NOW, channel="email")
    (queued,) = core.recorder.pending
    assert (queued.experiment, queued.variant, queued.visitor, queued.channel) == ("demo", drawn.variant.id,
                                                                                    "visitor-1", "email")
    assert [arm for arm, _ in queued.probabilities] == ["a", "b", "c"]
    assert sum(p for _, p in queued.probabilities) == pytest.approx(1.0)


def test_the_visitors_device_class_is_queued_with_the_assignment():
    exp = experiment(segment_keys=["device"])
    core = core_for(exp)
    placement = core.place(exp, Context(device="tablet"))
    core.record(exp, core.draw(exp, placement), "visitor-1", "new", NOW, placement)
    core.record(exp, core.draw(exp), "visitor-2", "new", NOW)  # no context: not known
    assert [r.device for r in core.recorder.pending] == ["tablet", ""]
    assert by_device("mobile") is by_device("mobile") and by_device("mobile").arms is None


def test_nothing_is_drawn_before_the_snapshot_has_arms():
    exp = experiment()
    assert core_for(exp, arms=False).draw(exp, NOWHERE) is None


def test_tokens_verify_for_their_experiment_and_tenant_only():
    shop, other = experiment("shop", tenant="acme"), experiment("other")
    core = core_for(shop, other)
    visitor = new_visitor_id()
    token = core.token(shop, visitor, "b", int(NOW))
    held = core.verify(token, shop, NOW)
    assert (held.visitor, held.experiment, held.variant) == (visitor, "shop", "b")
    # the same id under the default tenant: another key, so the tenant's token is refused
    default_tenant_shop = experiment("shop")
    before = rejected(core, "bad_signature")
    with pytest.raises(TokenError) as caught:
        core.verify(token, default_tenant_shop, NOW)
    assert caught.value.reason == "bad_signature"
    assert rejected(core, "bad_signature") == before + 1  # every refusal is counted by its reason
    with pytest.raises(TokenError):
        core.verify(token, other, NOW)  # another experiment's token
    too_late = NOW + SETTINGS.cookie_max_age + 10
    with pytest.raises(TokenError):
        core.verify(token, shop, too_late)


def test_many_draws_at_once_pick_what_one_draw_picks_for_the_same_uniform():
    for holdout in (0.0, 0.3):
        core = core_for(experiment(holdout=holdout))
        arms = core.snapshots.current.arms["demo"]
        u = np.random.default_rng(1).random(5000)
        index, in_holdout = arms.pick_many(u)
        one_by_one = [arms.pick(x) for x in u]
        assert [arms.variants[i].id for i in index] == [v.id for v, _ in one_by_one]
        assert in_holdout.tolist() == [h for _, h in one_by_one]


def test_a_capped_variant_is_drawn_only_while_this_router_holds_units_of_it():
    e = parse_experiment({"id": "demo", "path_prefix": "/demo/", "variants": [
        {"id": "a", "upstream": "a:80"}, {"id": "b", "upstream": "b:80", "capacity": 5}]})
    core = core_for(e)
    assert {core.draw(e).variant.id for _ in range(200)} == {"a"}  # no reservation yet
    core.capacity.budget[("demo", "b")] = 3
    drawn = [core.draw(e) for _ in range(200)]
    assert sum(d.variant.id == "b" for d in drawn) == 3  # then full again
    late = drawn[-1]
    assert late.variant.id == "a" and late.arms.labelled() == (("a", 1.0), ("b", 0.0))  # logged renormalised
    assert core.capacity.used[("demo", "b")] == 3
    b = next(d for d in drawn if d.variant.id == "b")
    core.undraw(e, b)  # its claim lost: the unit is this router's again
    assert core.capacity.budget[("demo", "b")] == 1 and core.capacity.used[("demo", "b")] == 2
