"""Engagement per page view: what ``beacon.js`` reports besides views, clicks and
conversions, how the beacon checks it, and what the stats endpoint derives from it. Pure.

A page sends cumulative figures for its page view (an id it draws at load):
active time (visible and focused), the deepest scroll (percent of the page),
its clicks, and whether the view was engaged. The store keeps each page view's
last state and moves the counters by the difference (``lua/record_engagement.lua``),
so repeats and retries change nothing and an updated report adds only what grew.

Definitions (after GA4's engaged sessions and Plausible's engagement event):
- engaged: at least ``ENGAGED_SECONDS`` of active time, or a second interaction,
  or a conversion on the page; the page decides the last two, the router adds
  the first, so a view with the time is engaged whatever the flag says;
- a bounce: a view whose latest report is not engaged (``views - engaged``);
- active time per view is capped at ``ACTIVE_CAP_SECONDS`` before it is summed:
  a tab left in front all day says no more than half an hour does, and one such
  view cannot swamp a variant's mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from croupier.router.request_body import Rejected

ACTIVE_CAP_SECONDS = 1800
ENGAGED_SECONDS = 10
SCROLL_BUCKETS = 10  # of 10% each; a depth of 100% is in the last
# The largest figures a report may carry: beacon.js stops reporting 4 h after the page
# loaded and counts clicks up to MAX_CLICKS, so anything beyond is not from the page.
MAX_ACTIVE_MS = 86_400_000
MAX_CLICKS = 10_000
FIELDS = frozenset({"active_ms", "scroll", "clicks", "engaged"})
Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Engagement:
    """One report of a page view, checked: the figures the store records."""

    page_view: str
    active_ms: int  # capped at ACTIVE_CAP_SECONDS
    scroll: int  # deepest scroll, percent of the page, 0-100
    clicks: int
    engaged: bool


def _whole(body: dict, field: str, high: int, unit: str) -> int:
    value = body.get(field)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise Rejected(400, f"bad_{field}", f"{field}: must be a whole number of {unit} from 0 to {high}")
    return value


def parse_engagement(body: dict, page_view: str) -> Engagement:
    """The engagement fields of a beacon body (already a JSON object of known fields) and its
    page-view id; ``Rejected`` (400) names the field at fault."""
    if not page_view:
        raise Rejected(400, "bad_id", "id: an engagement event needs its page view's id")
    active_ms = _whole(body, "active_ms", MAX_ACTIVE_MS, "milliseconds")
    scroll = _whole(body, "scroll", 100, "percent")
    clicks = _whole(body, "clicks", MAX_CLICKS, "clicks")
    engaged = body.get("engaged")
    if not isinstance(engaged, bool):
        raise Rejected(400, "bad_engaged", "engaged: must be true or false")
    return Engagement(page_view, min(active_ms, ACTIVE_CAP_SECONDS * 1000), scroll, clicks,
                      engaged or active_ms >= ENGAGED_SECONDS * 1000)


def scroll_bucket(scroll: float) -> int:
    """The histogram bucket of a depth in percent (``lua/record_engagement.lua`` computes the same)."""
    return min(int(scroll * SCROLL_BUCKETS // 100), SCROLL_BUCKETS - 1)


# -- statistics ---------------------------------------------------------------


def wilson(successes: float, trials: float, z: float = Z95) -> list[float] | None:
    """Wilson score interval of a proportion (Wilson 1927; Agresti & Coull 1998): unlike
    ``p ± z se`` it stays inside [0, 1] and is sensible at 0 or ``trials`` successes."""
    if trials <= 0:
        return None
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z / (1 + z2 / trials) * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return [max(0.0, centre - half), min(1.0, centre + half)]


def mean_interval(total: float, squares: float, n: float, z: float = Z95) -> tuple[float | None, list[float] | None]:
    """Mean and normal-approximation 95% interval from a sum and a sum of squares.

    The sample variance is ``(squares - n mean^2) / (n - 1)``; it needs two values. The
    interval is clipped to ``[0, ACTIVE_CAP_SECONDS]``, where every value lies."""
    if n <= 0:
        return None, None
    mean = total / n
    if n < 2:
        return mean, None
    variance = max(0.0, (squares - n * mean * mean) / (n - 1))  # rounding can take it just below 0
    half = z * math.sqrt(variance / n)
    return mean, [max(0.0, mean - half), min(float(ACTIVE_CAP_SECONDS), mean + half)]


def grouped_median(histogram: list[int]) -> float | None:
    """The median depth in percent, interpolated inside the bucket that holds it."""
    n = sum(histogram)
    if n <= 0:
        return None
    width = 100 / SCROLL_BUCKETS
    below = 0
    for i, count in enumerate(histogram):
        if count and below + count >= n / 2:
            return i * width + (n / 2 - below) / count * width
        below += count
    return 100.0  # not reached: the loop finds the bucket


def summary(counters: dict[str, float]) -> dict:
    """One variant's (or one segment's variant's) engagement from its stored counters
    (``views``, ``engaged``, ``active_ms``, ``active_sq``, ``clicks``, ``scroll:<i>``)."""
    views = int(counters.get("views", 0))
    engaged = min(int(counters.get("engaged", 0)), views)
    bounces = views - engaged
    mean, interval = mean_interval(counters.get("active_ms", 0.0) / 1000, counters.get("active_sq", 0.0), views)
    histogram = [max(0, int(counters.get(f"scroll:{i}", 0))) for i in range(SCROLL_BUCKETS)]
    clicks = int(counters.get("clicks", 0))
    return {
        "views": views, "engaged": engaged, "bounces": bounces,
        "engaged_rate": engaged / views if views else None, "engaged_ci95": wilson(engaged, views),
        "bounce_rate": bounces / views if views else None, "bounce_ci95": wilson(bounces, views),
        "active_seconds_mean": mean, "active_seconds_ci95": interval,
        "scroll_histogram": histogram, "scroll_median": grouped_median(histogram),
        "clicks": clicks, "clicks_per_view": clicks / views if views else None,
    }


DEFINITION = {"active_cap_seconds": ACTIVE_CAP_SECONDS, "engaged_seconds": ENGAGED_SECONDS,
              "scroll_buckets": SCROLL_BUCKETS}
