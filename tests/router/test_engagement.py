"""Engagement reports checked and summarised: pure, no Redis."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from croupier.router.engagement import (ACTIVE_CAP_SECONDS, SCROLL_BUCKETS, Engagement, grouped_median,
                                        mean_interval, parse_engagement, scroll_bucket, summary, wilson)
from croupier.router.request_body import Rejected

GOOD = {"active_ms": 4200, "scroll": 55, "clicks": 2, "engaged": False}


def test_a_report_is_read_as_sent():
    assert parse_engagement(GOOD, "pv-12345678") == Engagement("pv-12345678", 4200, 55, 2, False)


def test_active_time_is_capped_and_ten_seconds_make_a_view_engaged():
    long = parse_engagement({**GOOD, "active_ms": 5_000_000}, "pv-12345678")
    assert long.active_ms == ACTIVE_CAP_SECONDS * 1000 and long.engaged is True
    assert parse_engagement({**GOOD, "active_ms": 10_000}, "pv-12345678").engaged is True
    assert parse_engagement({**GOOD, "active_ms": 9_999}, "pv-12345678").engaged is False
    # the page's own reasons (a second interaction, a conversion) stand without the time
    assert parse_engagement({**GOOD, "engaged": True}, "pv-12345678").engaged is True


@pytest.mark.parametrize("change, reason, field", [
    ({"active_ms": -1}, "bad_active_ms", "active_ms"),
    ({"active_ms": 1.5}, "bad_active_ms", "active_ms"),
    ({"active_ms": True}, "bad_active_ms", "active_ms"),
    ({"active_ms": 86_400_001}, "bad_active_ms", "active_ms"),
    ({"active_ms": None}, "bad_active_ms", "active_ms"),
    ({"scroll": 101}, "bad_scroll", "scroll"),
    ({"scroll": "50"}, "bad_scroll", "scroll"),
    ({"clicks": 10_001}, "bad_clicks", "clicks"),
    ({"engaged": 1}, "bad_engaged", "engaged"),
    ({"engaged": None}, "bad_engaged", "engaged"),
])
def test_a_bad_field_is_refused_by_name(change, reason, field):
    with pytest.raises(Rejected) as refused:
        parse_engagement({**GOOD, **change}, "pv-12345678")
    assert (refused.value.status, refused.value.reason) == (400, reason)
    assert refused.value.message.startswith(f"{field}: ")


def test_a_report_needs_its_page_view():
    with pytest.raises(Rejected, match="id: an engagement event needs its page view's id"):
        parse_engagement(GOOD, "")


@pytest.mark.parametrize("depth, bucket", [(0, 0), (9, 0), (10, 1), (55, 5), (99, 9), (100, SCROLL_BUCKETS - 1)])
def test_scroll_buckets_are_tenths_with_the_whole_page_in_the_last(depth, bucket):
    assert scroll_bucket(depth) == bucket


def test_wilson_interval_matches_published_values():
    # Newcombe (1998), table I: 81/263 → 0.2553 to 0.3662; 0/10 → 0 to 0.2775
    low, high = wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert [round(x, 4) for x in wilson(0, 10)] == [0.0, 0.2775]
    assert [round(x, 4) for x in wilson(10, 10)] == [0.7225, 1.0]
    assert wilson(0, 0) is None


def test_mean_interval_from_sums_matches_the_sample():
    rng = random.Random(4)
    values = [min(rng.expovariate(1 / 40), ACTIVE_CAP_SECONDS) for _ in range(500)]
    mean, (low, high) = mean_interval(sum(values), sum(v * v for v in values), len(values))
    assert math.isclose(mean, statistics.fmean(values))
    half = 1.959963984540054 * statistics.stdev(values) / math.sqrt(len(values))
    assert math.isclose(low, mean - half) and math.isclose(high, mean + half)
    assert mean_interval(0, 0, 0) == (None, None)
    assert mean_interval(12.0, 144.0, 1) == (12.0, None)  # one view has no spread
    # equal values: rounding must not make the variance negative
    assert mean_interval(0.3 * 3, 0.09 * 3, 3) == (pytest.approx(0.3), [pytest.approx(0.3), pytest.approx(0.3)])


def test_grouped_median_interpolates_inside_its_bucket():
    assert grouped_median([0] * SCROLL_BUCKETS) is None
    assert grouped_median([0, 0, 0, 0, 0, 1, 0, 0, 0, 0]) == 55.0  # one view: the middle of 50-60%
    assert grouped_median([2, 0, 0, 0, 0, 0, 0, 0, 0, 2]) == 10.0  # half the views below 10%
    assert grouped_median([1, 1, 1, 1, 0, 0, 0, 0, 0, 0]) == 20.0


def test_summary_of_stored_counters():
    counters = {"views": 4.0, "engaged": 1.0, "active_ms": 40_000.0, "active_sq": 100.0 * 3 + 10.0 ** 2,
                "clicks": 6.0, "scroll:2": 1.0, "scroll:9": 3.0, "scroll:5": 0.0}
    found = summary(counters)
    assert found["views"] == 4 and found["engaged"] == 1 and found["bounces"] == 3
    assert found["engaged_rate"] == 0.25 and found["bounce_rate"] == 0.75
    assert found["engaged_ci95"] == wilson(1, 4) and found["bounce_ci95"] == wilson(3, 4)
    assert found["active_seconds_mean"] == 10.0 and found["active_seconds_ci95"] == [10.0, 10.0]
    assert found["scroll_histogram"] == [0, 0, 1, 0, 0, 0, 0, 0, 0, 3]
    assert found["clicks"] == 6 and found["clicks_per_view"] == 1.5


def test_summary_without_views_has_no_rates():
    found = summary({})
    assert found["views"] == 0 and found["scroll_histogram"] == [0] * SCROLL_BUCKETS
    assert all(found[k] is None for k in ("engaged_rate", "engaged_ci95", "bounce_rate", "bounce_ci95",
                                          "active_seconds_mean", "active_seconds_ci95", "scroll_median",
                                          "clicks_per_view"))
