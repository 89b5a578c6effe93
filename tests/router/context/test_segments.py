"""Segments and empirical-Bayes shrinkage: pure."""

from __future__ import annotations

import numpy as np
import pytest

from croupier.router.context import Context
from croupier.router.segments import (DEFAULT_STRENGTH, MAX_STRENGTH, MIN_STRENGTH, busiest_segments, moment_strength,
                             segment_fields, segment_id, shrunk_stats)


def test_segment_ids_follow_the_keys_order():
    ctx = Context(device="mobile", country="fr")
    assert segment_id(ctx, ["device"]) == "device=mobile"
    assert segment_id(ctx, ["country", "device"]) == "country=fr,device=mobile"
    assert segment_id(Context(), ["city"]) == "city=none"


def test_a_new_segment_starts_at_the_experiment_rates():
    overall_t, overall_s = np.array([10_000.0, 10_000.0]), np.array([300.0, 600.0])
    stats = shrunk_stats(np.zeros((1, 2)), np.zeros((1, 2)), overall_t, overall_s, [1.0, 1.0], [1.0, 1.0],
                         strength=200)
    mean = stats.alpha / (stats.alpha + stats.beta)
    assert mean[0] == pytest.approx([0.03, 0.06], abs=1e-3)
    assert (stats.alpha + stats.beta)[0] == pytest.approx([200, 200])


def test_a_large_segment_follows_its_own_data():
    stats = shrunk_stats(np.array([[20_000.0, 20_000.0]]), np.array([[1200.0, 400.0]]),
                         np.array([40_000.0, 40_000.0]), np.array([1600.0, 2000.0]), [1, 1], [1, 1], strength=100)
    mean = stats.alpha / (stats.alpha + stats.beta)
    assert mean[0, 0] > mean[0, 1]  # the segment's own ranking, against the experiment's
    assert mean[0] == pytest.approx([0.06, 0.02], abs=2e-3)


def test_the_prior_never_claims_more_than_the_experiment_has():
    stats = shrunk_stats(np.zeros((1, 2)), np.zeros((1, 2)), np.array([5.0, 0.0]), np.array([1.0, 0.0]),
                         [1, 1], [1, 1], strength=500)
    assert (stats.alpha + stats.beta)[0] == pytest.approx([7.0, 2.0])


def test_moment_strength_sees_how_much_segments_differ():
    rng = np.random.default_rng(0)
    n = np.full((20, 2), 5000.0)
    alike = rng.binomial(5000, 0.05, size=(20, 2)).astype(float)
    apart = rng.binomial(5000, np.where(np.arange(20) % 2, 0.02, 0.08)[:, None].repeat(2, 1)).astype(float)
    assert moment_strength(n, alike) > moment_strength(n, apart)
    assert moment_strength(n, apart) == pytest.approx(0.05 * 0.95 / 0.03 ** 2 - 1, rel=0.3)
    assert MIN_STRENGTH <= moment_strength(n, apart) <= MAX_STRENGTH
    assert moment_strength(np.ones((1, 2)), np.zeros((1, 2))) == DEFAULT_STRENGTH


def test_batched_shrinkage_keeps_leading_dimensions():
    stats = shrunk_stats(np.ones((4, 3, 2)), np.zeros((4, 3, 2)), np.full((4, 2), 10.0), np.ones((4, 2)),
                         [1, 1], [1, 1], strength=np.full(4, 50.0))
    assert stats.trials.shape == stats.alpha.shape == (4, 3, 2)


def test_busiest_segments_count_only_the_active_variants_trials():
    counters = {"": {"x": {"trials": 99}},  # the experiment-wide counters are no segment
                "s1": {"x": {"trials": 1}, "paused": {"trials": 50}}, "s2": {"x": {"trials": 5}},
                "s3": {"y": {"trials": 5}}, "s4": {}}
    assert busiest_segments(counters, ["x", "y"], 2) == (["s2", "s3"], True)
    assert busiest_segments(counters, ["x", "y"], 10) == (["s2", "s3", "s1", "s4"], False)


def test_segment_fields_read_a_segment_id_back():
    ctx = Context(device="mobile", country="fr")
    assert segment_fields(segment_id(ctx, ["country", "device"])) == {"country": "fr", "device": "mobile"}
    assert segment_fields("") == {}
