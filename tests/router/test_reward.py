"""What an experiment optimises: parsed once, and the policy's evidence follows it."""

from __future__ import annotations

import numpy as np
import pytest

from croupier.router.experiments import InvalidExperiment, parse_experiment
from croupier.router.reward import Reward, parse_reward
from croupier.router.snapshot import Job, arm_stats, compute_many


def experiment(**extra):
    return parse_experiment({"id": "x", "variants": [{"id": "a", "upstream": "h:1"}, {"id": "b", "upstream": "h:2"}],
                             **extra})


@pytest.mark.parametrize("value, weights", [
    (None, (1.0, 0.0)), ("conversion", (1.0, 0.0)), ("engaged", (0.0, 1.0)),
    ({"conversion": 0.25, "engaged": 0.75}, (0.25, 0.75)), ({"engaged": 1}, (0.0, 1.0)),
])
def test_rewards_parse_and_round_trip(value, weights):
    reward = parse_reward(value)
    assert (reward.conversion, reward.engaged) == weights
    assert parse_reward(reward.to_json()) == reward
    assert experiment(reward=value).reward == reward
    assert parse_experiment(experiment(reward=value).to_dict()).reward == reward


@pytest.mark.parametrize("value, message", [
    ("clicks", "reward: must be one of conversion, engaged"),
    ({"conversion": 0.5}, "reward: the weights must add up to 1"),
    ({"conversion": 1.5, "engaged": -0.5}, "reward.conversion: must be a number in [0, 1]"),
    ({"conversion": 0.5, "views": 0.5}, "reward.views: unknown field"),
    (3, "reward: must be a string or an object"),
])
def test_bad_rewards_name_the_field(value, message):
    with pytest.raises(InvalidExperiment, match=message.replace("[", r"\[").replace("]", r"\]")):
        experiment(reward=value)


def test_a_reward_of_engaged_views_is_refused_where_the_counts_live_elsewhere():
    with pytest.raises(InvalidExperiment, match="reward: engaged views are not available with segment_keys"):
        experiment(reward="engaged", segment_keys=["device"])
    with pytest.raises(InvalidExperiment, match="policy 'sliding_window_thompson'"):
        experiment(reward="engaged", policy="sliding_window_thompson")


def test_the_evidence_is_the_summed_reward():
    counters = {"a": {"trials": 100, "conv:signup": 10}, "b": {"trials": 100, "conv:signup": 20}}
    engagement = {"a": {"engaged": 60}, "b": {"engaged": 30, "views": 90}}
    plain = experiment()
    assert list(arm_stats(plain, plain.variants, counters, engagement).successes) == [10, 20]
    engaged = experiment(reward="engaged")
    assert list(arm_stats(engaged, engaged.variants, counters, engagement).successes) == [60, 30]
    assert list(arm_stats(engaged, engaged.variants, counters).successes) == [0, 0]  # none reported yet
    mixed = experiment(reward={"conversion": 0.5, "engaged": 0.5})
    assert list(arm_stats(mixed, mixed.variants, counters, engagement).successes) == [35, 25]
    # an arm is engaged at most once per visitor
    assert Reward(0.0, 1.0).successes(0, engaged_views=150, trials=100) == 100


def test_the_policy_follows_the_reward():
    """b converts twice as often, a engages twice as often: each reward picks its winner."""
    counters = {"a": {"trials": 2000, "conv:signup": 100}, "b": {"trials": 2000, "conv:signup": 200}}
    engagement = {"a": {"engaged": 1200}, "b": {"engaged": 600}}
    for reward, winner in (("conversion", "b"), ("engaged", "a")):
        e = experiment(reward=reward)
        arms = compute_many([Job(e, counters, engagement=engagement)], np.random.default_rng(0))["x"].arms
        shares = dict(arms.labelled())
        assert shares[winner] > 0.9, (reward, shares)
