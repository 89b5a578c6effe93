"""The conversion model: recovers known effects, feeds priors, the hybrid and doubly robust estimates."""

from __future__ import annotations

import numpy as np
import pytest

from croupier.router.model import (ModelError, blend, context_features, fit, fit_log, with_model_prior, prior_for,
                          pseudo_observations)
from croupier.router.ope import LoggedData, doubly_robust, fixed_target, ips
from croupier.router.policies import ArmStats, sample_arms

ARMS = ("a", "b", "c")
ARM_EFFECT = np.array([0.0, 0.6, 0.2])
COUNTRY_EFFECT = {"de": 0.0, "fr": 0.3, "us": -0.4}


def true_logit(arm: int, device: str, country: str) -> float:
    # b is the best on desktop but loses most of its edge on mobile (an interaction)
    return (-3.0 + ARM_EFFECT[arm] + (-0.5 if device == "mobile" else 0.0) + COUNTRY_EFFECT[country]
            + (-0.6 if arm == 1 and device == "mobile" else 0.0))


def simulate(seed: int, n: int, logging=None):
    rng = np.random.default_rng(seed)
    devices = rng.choice(["mobile", "desktop"], n, p=[0.6, 0.4])
    countries = rng.choice(["de", "fr", "us"], n)
    probs = np.full((n, 3), 1 / 3) if logging is None else np.array([logging[d] for d in devices])
    actions = sample_arms(probs, rng)
    eta = np.array([true_logit(a, d, c) for a, d, c in zip(actions, devices, countries)])
    rewards = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.float64)
    contexts = [{"device": d, "country": c} for d, c in zip(devices, countries)]
    return LoggedData.from_arrays(ARMS, actions, rewards, probs, contexts=contexts)


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


@pytest.fixture(scope="module")
def model():
    return fit_log(simulate(0, 200_000), l2=0.1)


def test_recovers_known_effects_and_rates(model):
    mobile, desktop = {"device": "mobile", "country": "de"}, {"device": "desktop", "country": "de"}
    # log-odds contrasts: mobile vs desktop is -0.5 for a and -1.1 for b
    assert logit(model.predict(mobile, "a")[0]) - logit(model.predict(desktop, "a")[0]) == pytest.approx(-0.5, abs=0.15)
    assert logit(model.predict(mobile, "b")[0]) - logit(model.predict(desktop, "b")[0]) == pytest.approx(-1.1, abs=0.15)
    fr, us = {"device": "desktop", "country": "fr"}, {"device": "desktop", "country": "us"}
    assert logit(model.predict(fr, "c")[0]) - logit(model.predict(us, "c")[0]) == pytest.approx(0.7, abs=0.15)
    for device in ("mobile", "desktop"):
        for country in COUNTRY_EFFECT:
            for k, arm in enumerate(ARMS):
                p, sd = model.predict({"device": device, "country": country}, arm)
                truth = 1 / (1 + np.exp(-true_logit(k, device, country)))
                assert abs(p - truth) < 4 * sd + 1e-3, (device, country, arm, p, truth, sd)
                assert sd < 0.01


def test_unseen_features_and_arms_are_uncertain(model):
    _, known = model.predict({"device": "mobile", "country": "de"}, "b")
    _, new_country = model.predict({"device": "mobile", "country": "jp"}, "b")
    _, new_arm = model.predict({"device": "mobile", "country": "de"}, "z")
    assert new_country > 3 * known and new_arm > 3 * known


def test_without_context_it_is_the_per_arm_rate():
    rng = np.random.default_rng(1)
    actions = rng.integers(0, 3, 30_000)
    rates = np.array([0.04, 0.09, 0.05])
    rewards = rng.random(30_000) < rates[actions]
    model = fit(None, ARMS, actions, rewards, l2=1.0)
    for k, arm in enumerate(ARMS):
        observed = rewards[actions == k].mean()
        assert model.predict(None, arm)[0] == pytest.approx(observed, rel=0.02)


def test_prior_for_a_new_variant(model):
    context = {"device": "desktop", "country": "de"}
    alpha, beta = prior_for(model, context, strength=100)
    rates = [1 / (1 + np.exp(-true_logit(k, "desktop", "de"))) for k in range(3)]
    assert alpha + beta == pytest.approx(100)  # the model is sure enough: the strength asked for
    assert alpha / (alpha + beta) == pytest.approx(np.mean(rates), abs=0.005)
    alpha, beta = prior_for(model, context, strength=1e9)  # capped by what the model knows
    assert alpha + beta < 1e6
    alpha, beta = prior_for(model, context, strength=50, arm="b")
    assert alpha / (alpha + beta) == pytest.approx(rates[1], abs=0.005)
    with pytest.raises(ModelError, match="strength"):
        prior_for(model, context, strength=0)


def test_blend_follows_the_model_with_little_data_and_the_data_with_much():
    model_rate, model_sd = 0.10, 0.01  # worth about 899 visitors
    assert pseudo_observations(model_rate, model_sd) == pytest.approx(899)
    # little data: 1 conversion in 5 visitors (observed 20%)
    a, b = blend(1 + 1, 1 + 4, model_rate, model_sd)
    assert abs(a / (a + b) - 0.10) < 0.005
    # much data: 5,000 in 100,000 (observed 5%)
    a, b = blend(1 + 5000, 1 + 95000, model_rate, model_sd)
    assert abs(a / (a + b) - 0.05) < 0.001
    # weight 0: the bandit alone; a tighter cap pulls less
    assert blend(2.0, 5.0, model_rate, model_sd, weight=0.0) == (2.0, 5.0)
    a, b = blend(2.0, 5.0, model_rate, model_sd, max_pseudo=10)
    assert a + b == pytest.approx(17)
    with pytest.raises(ModelError, match="weight"):
        blend(1, 1, 0.1, 0.01, weight=2)


def test_with_model_prior_feeds_a_beta_policy(model):
    arms = ArmStats.from_counts([10, 10, 10], [0, 1, 0])
    rate, sd = model.predict_arms({"device": "desktop", "country": "fr"}, ARMS)
    hybrid = with_model_prior(arms, rate, sd, weight=1.0, max_pseudo=500)
    means = hybrid.alpha / (hybrid.alpha + hybrid.beta)
    assert np.argmax(means) == 1  # b is the model's best on desktop
    np.testing.assert_array_equal(hybrid.trials, arms.trials)


def test_dr_with_the_model_on_a_contextual_log():
    """The logging policy favours c on mobile and b on desktop; rates depend on both."""
    logging = {"mobile": [0.2, 0.2, 0.6], "desktop": [0.2, 0.6, 0.2]}
    log = simulate(3, 40_000, logging)
    model = fit_log(log, l2=1.0)
    q = model.predict_log(log.contexts, log.arms, log.n)
    target = fixed_target(log, "b")
    # devices 60/40, countries even
    truth = sum(share / 3 / (1 + np.exp(-true_logit(1, device, country)))
                for device, share in (("mobile", 0.6), ("desktop", 0.4)) for country in COUNTRY_EFFECT)
    dr, plain = doubly_robust(log, target, q), ips(log, target)
    assert dr.ci_low <= truth <= dr.ci_high
    assert dr.std_error < plain.std_error


def test_features_and_errors():
    from dataclasses import dataclass

    @dataclass
    class Ctx:
        device: str = "mobile"
        country: str = ""

    assert context_features(Ctx()) == ["device=mobile"]
    assert context_features(None) == []
    with pytest.raises(ModelError, match="context"):
        context_features(42)
    with pytest.raises(ModelError, match="no rows"):
        fit(None, ARMS, [], [])
    with pytest.raises(ModelError, match="l2"):
        fit(None, ARMS, [0], [1], l2=0)
    # a custom feature function: only the device counts
    model = fit([{"device": "m", "x": "1"}, {"device": "d", "x": "2"}] * 50, ARMS, [0, 1] * 50, [1, 0] * 50,
                features=lambda c: [f"device={c['device']}"])
    assert model.predict({"device": "m", "x": "9"}, "a")[0] > 0.5
