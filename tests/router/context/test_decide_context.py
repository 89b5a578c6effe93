"""Decisions by context on an in-memory snapshot: no Redis, no HTTP."""

from __future__ import annotations

import random

import numpy as np
import pytest

from croupier.router.assign import Assigner
from croupier.router.decide import Decider
from croupier.router.experiments import parse_experiment
from croupier.router.metrics import Metrics
from croupier.router.recorder import AssignmentRecorder
from croupier.router.settings import Settings
from croupier.router.snapshot import Snapshot, SnapshotKeeper, compute_arms, compute_contextual, compute_segment_arms
from croupier.router.token import verify

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile/15E148 Safari/604.1"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Safari/537.36"
NOW = 1_800_000_000.0
SETTINGS = Settings(secret="s" * 32)


def experiment(exp_id, **extra):
    return parse_experiment({"id": exp_id, "path_prefix": f"/{exp_id}/", "min_share": 0.0, "variants": [
        {"id": "a", "upstream": "a:80"}, {"id": "b", "upstream": "b:80"}], **extra})


def decider_for(experiments, segment_counters=None, linear=None, cap=50):
    rng = np.random.default_rng(0)
    keeper = SnapshotKeeper(store=None, refresh_interval=1, rng=rng)
    arms = {e.id: compute_arms(e, {}, rng) for e in experiments}
    segments = {e.id: compute_segment_arms(e, {}, (segment_counters or {}).get(e.id, {}), rng, cap)
                for e in experiments if e.segment_keys}
    contextual = {e.id: compute_contextual(e, {}, (linear or {}).get(e.id, {}), rng)
                  for e in experiments if e.policy == "linear_thompson"}
    keeper.current = Snapshot.build(experiments, arms, {}, 1, segments=segments, contextual=contextual)
    recorder = AssignmentRecorder(store=None, metrics=Metrics(), flush_interval=1, max_pending=10_000)
    return Decider(SETTINGS, Assigner(SETTINGS, keeper, recorder, Metrics(), random.Random(1))), recorder


def token_of(decision):
    return verify(decision.cookie.split("=", 1)[1].split(";", 1)[0], SETTINGS.signing_keys(), now=int(NOW),
                  max_age=SETTINGS.cookie_max_age)


def test_each_segment_draws_from_its_own_bandit():
    seg = experiment("seg", segment_keys=["device"])
    counters = {"seg": {
        "device=mobile": {"a": {"trials": 5000, "conv:signup": 50}, "b": {"trials": 5000, "conv:signup": 400}},
        "device=desktop": {"a": {"trials": 5000, "conv:signup": 400}, "b": {"trials": 5000, "conv:signup": 50}},
    }}
    decider, recorder = decider_for([seg], counters)
    mobile = [decider.decide("x", "/seg/", IPHONE, {}, NOW) for _ in range(50)]
    desktop = [decider.decide("x", "/seg/", DESKTOP, {}, NOW) for _ in range(50)]
    assert {d.variant for d in mobile} == {"b"} and {d.variant for d in desktop} == {"a"}
    assert token_of(mobile[0]).segment == "device=mobile"
    assert token_of(desktop[0]).segment == "device=desktop"
    assert {r.segment for r in recorder.pending} == {"device=mobile", "device=desktop"}


def test_a_new_segment_is_counted_until_the_cap_is_reached():
    seg = experiment("seg", segment_keys=["device"])
    counters = {"seg": {"device=mobile": {"a": {"trials": 10}, "b": {"trials": 10}}}}
    decider, recorder = decider_for([seg], counters, cap=2)
    assert token_of(decider.decide("x", "/seg/", DESKTOP, {}, NOW)).segment == "device=desktop"
    decider, recorder = decider_for([seg], counters, cap=1)
    decision = decider.decide("x", "/seg/", DESKTOP, {}, NOW)
    assert token_of(decision).segment == "" and decision.cookie.split("=", 1)[1].startswith("v1.")


def test_plain_experiments_keep_v1_tokens_and_read_no_context():
    decider, recorder = decider_for([experiment("plain")])
    decider.context_reader = None  # reading a context would fail
    assert decider.decide("x", "/plain/", IPHONE, {}, NOW).cookie.split("=", 1)[1].startswith("v1.")


def test_the_device_class_is_recorded_whether_or_not_the_experiment_reads_a_context():
    plain, seg = experiment("plain"), experiment("seg", segment_keys=["device"])
    decider, recorder = decider_for([plain, seg])
    decider.context_reader = None  # a plain experiment still reads no context: the device class alone
    decider.decide("x", "/plain/", IPHONE, {}, NOW)
    decider.decide("x", "/plain/", "", {}, NOW)
    decider, recorder_seg = decider_for([plain, seg])
    decider.decide("x", "/seg/", DESKTOP, {}, NOW)
    assert [r.device for r in recorder.pending + recorder_seg.pending] == ["mobile", "unknown", "desktop"]


def test_a_contextual_policy_chooses_per_visitor_and_records_features():
    ctx = experiment("ctx", policy="linear_thompson", policy_params={"dimensions": 32, "exploration": 0.05})
    decider, recorder = decider_for([ctx])
    mobile_features = decider.core.place(ctx, decider.read_context("x", "/ctx/", IPHONE, {}, NOW)).features
    desktop_features = decider.core.place(ctx, decider.read_context("x", "/ctx/", DESKTOP, {}, NOW)).features
    # b converts for mobile visitors, a for desktop ones
    state = {"a": {}, "b": {}}
    for features, good in ((mobile_features, "b"), (desktop_features, "a")):
        for variant in "ab":
            for n, i in enumerate(features):
                for j in features[n:]:
                    state[variant][(i, j)] = state[variant].get((i, j), 0) + 2000
                state[variant][i] = state[variant].get(i, 0) + (200 if variant == good else 20)
    decider, recorder = decider_for([ctx], linear={"ctx": state})
    mobile = [decider.decide("x", "/ctx/", IPHONE, {}, NOW) for _ in range(30)]
    desktop = [decider.decide("x", "/ctx/", DESKTOP, {}, NOW) for _ in range(30)]
    assert sum(d.variant == "b" for d in mobile) >= 27 and sum(d.variant == "a" for d in desktop) >= 27
    held = token_of(mobile[0])
    assert held.features == mobile_features and held.segment == ""
    record = recorder.pending[0]
    assert record.features == mobile_features
    assert sum(p for _, p in record.probabilities) == pytest.approx(1.0)


def test_geo_comes_only_from_the_configured_header():
    decider, _ = decider_for([experiment("seg", segment_keys=["country"])])
    ctx = decider.read_context("x", "/", IPHONE, {b"x-croupier-geo": b"FR;Paris"}, NOW)
    assert (ctx.country, ctx.city) == ("fr", "paris")
    assert decider.read_context("x", "/", IPHONE, {b"x-geo-country": b"FR"}, NOW).country == ""
    assert decider.read_context("x", "/", IPHONE, {b"x-croupier-geo": b";"}, NOW).country == ""


def test_a_returning_visitor_is_one_with_any_valid_cookie():
    decider, _ = decider_for([experiment("seg", segment_keys=["returning"]), experiment("other")])
    other = decider.decide("x", "/other/", IPHONE, {}, NOW).cookie.split(";", 1)[0]
    assert decider.read_context("x", "/seg/", IPHONE, {b"cookie": other.encode()}, NOW).returning == "yes"
    assert decider.read_context("x", "/seg/", IPHONE, {b"cookie": b"croupier_other=v1.forged"}, NOW).returning == "no"


def test_a_tenants_cookie_makes_a_returning_visitor_too():
    decider, _ = decider_for([experiment("seg", segment_keys=["returning"]),
                              experiment("shop", tenant="acme")])
    shop = decider.decide("x", "/shop/", IPHONE, {}, NOW).cookie.split(";", 1)[0]
    assert decider.read_context("x", "/seg/", IPHONE, {b"cookie": shop.encode()}, NOW).returning == "yes"
