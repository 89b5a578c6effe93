"""The stored form of the conversion model and the hybrid the snapshot applies. Pure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from croupier.router.experiments import InvalidExperiment, parse_experiment
from croupier.router.hybrid import MAX_COLUMNS, blend_overall, blend_segments, decode, encode, training_mix
from croupier.router.model import ModelError, fit, prior_for
from croupier.router.policies import ArmStats
from croupier.router.snapshot import compute_arms, compute_segment_arms

ARMS = ("a", "b", "c")
RATES = np.array([0.04, 0.12, 0.06])


def plain_model(n: int = 30_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 3, n)
    rewards = (rng.random(n) < RATES[actions]).astype(float)
    return fit(None, ARMS, actions, rewards)


def device_model(n: int = 30_000, seed: int = 1):
    """b converts at 12% on desktop and 3% on mobile; a and c do not care about the device."""
    rng = np.random.default_rng(seed)
    devices = rng.choice(["mobile", "desktop"], n)
    actions = rng.integers(0, 3, n)
    rates = np.where((actions == 1) & (devices == "mobile"), 0.03, RATES[actions])
    rewards = (rng.random(n) < rates).astype(float)
    return fit([{"device": d} for d in devices], ARMS, actions, rewards), devices


def stored(model, contexts=None, version: int = 1):
    # through JSON, as the store keeps it
    return decode(json.loads(json.dumps(encode(model, goal="signup", trained_at=1.5, contexts=contexts))), version)


def test_round_trip_predicts_the_same():
    model, devices = device_model()
    back = stored(model, [{"device": d} for d in devices], version=7)
    assert back.version == 7 and back.goal == "signup" and back.trained_at == 1.5 and back.model.rows == 30_000
    for ctx in ({"device": "mobile"}, {"device": "desktop"}, None):
        for arm in (*ARMS, "new"):
            assert back.model.predict(ctx, arm) == model.predict(ctx, arm)
    assert sorted(s for _, s in back.mix) == pytest.approx([0.5, 0.5], abs=0.02)


def test_plain_model_summary_is_the_context_free_prediction():
    model = plain_model()
    back = stored(model)
    assert back.mix == (({}, 1.0),)
    summary = back.summary(["a", "b", "c", "d"])
    for k, arm in enumerate(ARMS):
        assert summary["arms"][arm]["rate"] == pytest.approx(model.predict(None, arm)[0])
        assert abs(summary["arms"][arm]["rate"] - RATES[k]) < 4 * summary["arms"][arm]["sd"]
        assert summary["arms"][arm]["seen"]
    assert not summary["arms"]["d"]["seen"] and summary["arms"]["d"]["sd"] > summary["arms"]["a"]["sd"]
    assert back.prior(200) == pytest.approx(prior_for(model, None, 200))


def test_overall_rate_averages_the_training_mix():
    model, devices = device_model()
    back = stored(model, [{"device": d} for d in devices])
    rate, _ = back.overall(["b"])
    assert rate[0] == pytest.approx((0.12 + 0.03) / 2, abs=0.01)


def test_training_mix_keeps_the_most_frequent_contexts():
    mix = training_mix([{"device": "mobile"}] * 3 + [{"device": "desktop"}] + [{"country": ""}] * 2, limit=2)
    assert mix == [({"device": "mobile"}, 0.6), ({}, 0.4)]
    assert training_mix(None) == [({}, 1.0)]


def test_decode_names_what_is_wrong():
    doc = encode(plain_model(3000), goal="signup", trained_at=0.0)
    with pytest.raises(ModelError, match="format"):
        decode({**doc, "format": 99})
    with pytest.raises(ModelError, match="weights"):
        decode({**doc, "weights": doc["covariance"]})
    with pytest.raises(ModelError, match="hashed"):
        decode({k: v for k, v in doc.items() if k != "hashed"})


def test_a_model_with_too_many_columns_is_refused():
    rng = np.random.default_rng(0)
    n = 3000
    contexts = [{"city": f"c{i}"} for i in rng.integers(0, 400, n)]
    model = fit(contexts, ARMS, rng.integers(0, 3, n), rng.random(n) < 0.1, l2=1.0)
    assert len(model.weights) > MAX_COLUMNS
    with pytest.raises(ModelError, match="^columns: "):
        encode(model, goal="signup", trained_at=0.0)


def test_blend_moves_a_new_arms_prior_towards_the_prediction():
    back = stored(plain_model())
    stats = ArmStats.from_counts(np.zeros(4), np.zeros(4))
    blended = blend_overall(stats, ["a", "b", "c", "d"], back, 0.5)
    mean = blended.prior_alpha / (blended.prior_alpha + blended.prior_beta)
    assert mean[:3] == pytest.approx(RATES, abs=0.02)
    assert mean[3] < 0.25  # the flat prior's mean is 0.5: the model says a new variant is a typical one
    assert (blended.prior_alpha + blended.prior_beta)[3] < (blended.prior_alpha + blended.prior_beta)[0]
    # weight 0 is the bandit alone
    assert blend_overall(stats, ["a", "b", "c", "d"], back, 0.0).prior_alpha == pytest.approx(np.ones(4))


def test_blend_segments_reads_each_segments_context():
    model, devices = device_model()
    back = stored(model, [{"device": d} for d in devices])
    stats = ArmStats.from_counts(np.zeros((2, 3)), np.zeros((2, 3)))
    blended = blend_segments(stats, ["device=mobile", "device=desktop"], list(ARMS), back, 1.0)
    mean = blended.prior_alpha / (blended.prior_alpha + blended.prior_beta)
    assert mean[0, 1] == pytest.approx(0.03, abs=0.01) and mean[1, 1] == pytest.approx(0.12, abs=0.015)


def experiment(**extra):
    return parse_experiment({"id": "demo", "variants": [{"id": v, "upstream": f"v{v}:80"} for v in "abcd"],
                             "min_share": 0.0, **extra})


def test_the_snapshot_gives_a_new_variant_a_split_from_the_model():
    """Three variants with data and a fourth without: with the flat prior the newcomer is sampled
    as if it might convert at 50%; with the model it starts near the model's rate, with the
    uncertainty of an arm the model never saw (a logit sd of 1 at l2 = 1), so it keeps less traffic."""
    back = stored(plain_model())
    counters = {v: {"trials": 2000.0, "conv:signup": 2000.0 * r} for v, r in zip(ARMS, RATES)}
    alone = compute_arms(experiment(), counters, np.random.default_rng(0))
    hybrid = compute_arms(experiment(model_weight=0.5), counters, np.random.default_rng(0), model=back)
    assert alone.probabilities[3] > 0.5
    assert hybrid.probabilities[3] < alone.probabilities[3] - 0.2
    # model_weight 0: the model is ignored even when one is loaded
    off = compute_arms(experiment(), counters, np.random.default_rng(0), model=back)
    assert off.probabilities == pytest.approx(alone.probabilities, abs=0.05)


def test_the_snapshot_blends_per_segment():
    model, devices = device_model()
    back = stored(model, [{"device": d} for d in devices])
    exp = experiment(segment_keys=["device"], model_weight=1.0)
    few = {"device=mobile": {v: {"trials": 5.0} for v in "abcd"}, "device=desktop": {v: {"trials": 5.0} for v in "abcd"}}
    arms = compute_segment_arms(exp, {}, few, np.random.default_rng(0), cap=10, model=back)
    assert arms.arms["device=desktop"].probabilities[1] > arms.arms["device=mobile"].probabilities[1]


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.5", True, None])
def test_model_weight_is_validated(value):
    with pytest.raises(InvalidExperiment, match="^model_weight: "):
        experiment(model_weight=value)


def test_model_weight_defaults_to_off_and_round_trips():
    assert experiment().model_weight == 0.0
    assert parse_experiment(experiment(model_weight=0.25).to_dict()).model_weight == 0.25
