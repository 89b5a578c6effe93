"""From registry and counters to the traffic split the decide path samples (no Redis)."""

import random

import numpy as np

from croupier.router.experiments import parse_experiment
from croupier.router.snapshot import Arms, compute_arms


def experiment(**extra):
    return parse_experiment({"id": "e", "variants": [{"id": v, "upstream": f"h:{i + 1}"}
                                                     for i, v in enumerate("abc")], **extra})


def test_probabilities_follow_the_evidence_and_respect_the_floor():
    counters = {"a": {"trials": 1000, "conv:signup": 20}, "b": {"trials": 1000, "conv:signup": 80},
                "c": {"trials": 1000, "conv:signup": 30}}
    arms = compute_arms(experiment(min_share=0.05), counters, np.random.default_rng(0))
    probs = dict(arms.labels)
    assert probs["b"] > 0.85 and min(probs.values()) >= 0.05 - 1e-9
    assert abs(sum(probs.values()) - 1) < 1e-9


def test_paused_variants_get_no_traffic():
    exp = parse_experiment({"id": "e", "variants": [{"id": "a", "upstream": "h:1"},
                                                    {"id": "b", "upstream": "h:2", "status": "paused"}]})
    arms = compute_arms(exp, {}, np.random.default_rng(0))
    assert [v.id for v in arms.variants] == ["a"]


def test_holdout_is_uniform_labelled_and_in_the_logged_propensities():
    counters = {"a": {"trials": 5000, "conv:signup": 50}, "b": {"trials": 5000, "conv:signup": 500},
                "c": {"trials": 5000, "conv:signup": 50}}
    arms = compute_arms(experiment(holdout=0.3, min_share=0.0), counters, np.random.default_rng(0))
    rand = random.Random(1)
    picks = [arms.pick(rand.random()) for _ in range(30_000)]
    held = [v.id for v, h in picks if h]
    assert abs(len(held) / len(picks) - 0.3) < 0.02
    assert all(abs(held.count(v) / len(held) - 1 / 3) < 0.03 for v in "abc")
    # the logged propensity is the real marginal probability of each arm
    observed = {v: sum(1 for p, _ in picks if p.id == v) / len(picks) for v in "abc"}
    for vid, p in arms.labels:
        assert abs(observed[vid] - p) < 0.015
        assert p >= 0.1 - 1e-9  # at least the holdout's uniform share


def test_non_stationary_policy_reads_recent_buckets():
    now = 1_800_000_000
    old, recent = now - 6 * 3600, now - 120
    buckets = {
        old - old % 60: {"a": {"trials": 5000, "conv:signup": 500}, "b": {"trials": 5000, "conv:signup": 50},
                         "c": {"trials": 5000, "conv:signup": 50}},
        recent - recent % 60: {"a": {"trials": 2000, "conv:signup": 20}, "b": {"trials": 2000, "conv:signup": 200},
                               "c": {"trials": 2000, "conv:signup": 20}},
    }
    lifetime = {"a": {"trials": 7000, "conv:signup": 520}, "b": {"trials": 7000, "conv:signup": 250},
                "c": {"trials": 7000, "conv:signup": 70}}
    plain = dict(compute_arms(experiment(), lifetime, np.random.default_rng(0)).labels)
    drifting = dict(compute_arms(experiment(policy="sliding_window_thompson", policy_params={"window": 3600}),
                                 lifetime, np.random.default_rng(0), buckets=buckets, bucket_seconds=60,
                                 now=now).labels)
    assert plain["a"] > 0.9  # lifetime totals still favour the old winner
    assert drifting["b"] > 0.9  # the window sees only the recent change


def test_arms_pick_covers_every_arm():
    arms = Arms.build(tuple(experiment().variants), np.array([0.2, 0.5, 0.3]))
    assert arms.pick(0.0)[0].id == "a" and arms.pick(0.25)[0].id == "b" and arms.pick(0.999999)[0].id == "c"
