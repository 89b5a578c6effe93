"""Drift: an arm's conversion rate changing, and the traffic's mix changing. Pure numpy.

Two questions, answered apart because they call for different actions:

- **Rate drift** (``rate_drift``, ``watch``): did an arm's rate change? A
  windowed generalised likelihood ratio (GLR) change-point test for a binomial
  rate (Siegmund & Venkatraman 1995, "Using the generalized likelihood ratio
  statistic for sequential detection of a change-point", Ann. Statist. 23(1);
  rerun over a sliding window as in Lai 1995, "Sequential changepoint detection
  in quality control and dynamical systems", JRSS B 57(4)). For every bucket
  boundary ``tau`` of the window it compares "one rate throughout" with "one
  rate before ``tau``, another after"; the largest log-likelihood ratio over
  ``tau`` is the statistic, its ``argmax`` the change point.
- **Mix drift** (``mix_drift``): did the visitors change? The population
  stability index (PSI) and Jensen-Shannon divergence of a context field's
  distribution (device, source, ...) in a recent window against a reference one.

A mix shift moves an arm's overall rate even when no segment's rate moved
(more mobile visitors, who convert less, lower the average). Given counts per
stratum, ``rate_drift`` compares each side of ``tau`` with the conversions
*expected* from the window's per-stratum rates and that side's own mix
(indirect standardisation), so a mix shift alone raises no rate alarm; it shows
up in ``mix_drift`` instead.

Bucket arrays follow ``history.bucket_arrays``: time first, oldest first,
``(T, ..., K)``; with strata ``(T, S, ..., K)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The GLR statistic is a log-likelihood ratio: at one fixed tau, 2 * LLR is about
# chi-square(1), so LLR 16 is z = 5.7 (p = 1.6e-8). Scanning every tau and
# rerunning at every bucket multiply the chances. Measured on stationary
# streams, alarms per arm and rerun: 3 arms at 1,000 visitors a bucket and
# 120-bucket windows, LLR 10 gave 5.6e-5, 12 gave 6.7e-6; 850 trials at 5% a
# bucket and 80-bucket windows, 14 gave 1.5e-6 (3 in 2 million), 16 none in 2
# million (bench/guardrails.py measures it again). A 30% drop then takes about
# 14% longer to detect than at 14.
DEFAULT_THRESHOLD = 16.0
# both sides of a candidate change must expect this many conversions (and
# non-conversions): below it the binomial likelihood is too skewed for the threshold
DEFAULT_MIN_COUNT = 30.0
PSI_SIGNIFICANT = 0.2  # the usual rule of thumb: < 0.1 stable, 0.1 - 0.2 moderate, > 0.2 significant
PSI_MODERATE = 0.1
MIN_MIX_VIEWS = 100  # per window: below it PSI is mostly sampling noise


@dataclass(frozen=True)
class RateDrift:
    """Per arm (arrays ``(..., K)``): the strongest change in the window and whether it is one.

    ``change_at`` is the first bucket (index into the window) of the new rate,
    -1 when nothing is detected; ``direction`` +1 (rose), -1 (fell) or 0;
    ``rate_before``/``rate_after`` the raw rates on either side of the strongest
    candidate, ``relative_change`` its mix-adjusted change (observed over
    expected after, divided by the same before, minus 1); ``statistic`` the
    largest log-likelihood ratio (0 when no ``tau`` was eligible).
    """

    detected: np.ndarray
    change_at: np.ndarray
    direction: np.ndarray
    rate_before: np.ndarray
    rate_after: np.ndarray
    relative_change: np.ndarray
    statistic: np.ndarray


def _xlog(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``x log(x / y)`` with ``0 log 0 = 0`` (in place on one buffer: the scan's hot spot)."""
    positive = x > 0
    out = np.zeros_like(x)
    np.divide(x, y, out=out, where=positive)
    np.log(out, out=out, where=positive)
    out *= x
    return out


def _binomial_llr(observed, expected, n) -> np.ndarray:
    """``n * KL(observed / n || expected / n)``: the binomial log-likelihood ratio of one side."""
    return _xlog(observed, expected) + _xlog(n - observed, n - expected)


def rate_drift(trials, conversions, *, stratified: bool = False, threshold: float = DEFAULT_THRESHOLD,
               min_count: float = DEFAULT_MIN_COUNT) -> RateDrift:
    """The GLR change-point test on one window of buckets, per arm.

    ``trials``/``conversions``: ``(T, ..., K)``, or ``(T, S, ..., K)`` with
    ``stratified`` (``S`` strata, e.g. devices). Each stratum's rate ``p_s`` is
    estimated over the whole window; a side of ``tau`` with ``n`` trials and
    ``O`` conversions expects ``E = sum_s n_s p_s``, and

        LLR(tau) = sum over both sides of [O log(O / E) + (n - O) log((n - O) / (n - E))]

    (without strata ``E = n p``: the two-sample binomial likelihood ratio). A
    ``tau`` is eligible when each side expects ``min_count`` conversions and
    non-conversions. Detected when ``max_tau LLR > threshold``.

    Cost: ``O(T * S * K)`` per call (cumulative sums and one pass of logs), so
    the router can rerun it each minute over the last ``T`` buckets: a day of
    minute buckets, 3 strata and 10 arms took 3 ms on a busy 2-core machine,
    120 buckets of 10 arms 0.4 ms.
    """
    n = np.asarray(trials, dtype=np.float64)
    c = np.asarray(conversions, dtype=np.float64)
    if n.shape != c.shape:
        raise ValueError(f"rate_drift: trials {n.shape} and conversions {c.shape} differ in shape")
    if n.ndim < (3 if stratified else 2):
        raise ValueError(f"rate_drift: trials must be (T, {'S, ' if stratified else ''}..., K), got {n.shape}")
    if not stratified:
        n, c = n[:, None], c[:, None]
    # A conversion is counted in the bucket it happened in, its trial in the one it was assigned
    # in: a bucket (or a device's share of it) may hold more conversions than trials, a side of
    # tau as good as never; so the counts are clipped per side, not per bucket. Conversions of a
    # stratum with no trial in the window (a visitor whose device class changed) predict nothing
    # and are left out.
    totals = n.sum(axis=0)  # (S, ..., K)
    c = np.where(totals > 0, c, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        stratum_rate = np.minimum(np.nan_to_num(c.sum(axis=0) / totals), 1.0)
    expected = (n * stratum_rate).sum(axis=1)  # (T, ..., K): conversions the window's rates predict
    n, c = n.sum(axis=1), c.sum(axis=1)
    n1, o1, e1 = (np.cumsum(x, axis=0)[:-1] for x in (n, c, expected))  # before tau = 1 .. T-1
    n2, o2, e2 = n.sum(axis=0) - n1, c.sum(axis=0) - o1, expected.sum(axis=0) - e1
    o1, o2 = np.minimum(o1, n1), np.minimum(o2, n2)
    eligible = (np.minimum(e1, n1 - e1) >= min_count) & (np.minimum(e2, n2 - e2) >= min_count)
    llr = np.where(eligible, _binomial_llr(o1, e1, n1) + _binomial_llr(o2, e2, n2), 0.0)
    batch = n.shape[1:]
    if llr.shape[0] == 0:  # a single bucket: nothing to compare
        zeros = np.zeros(batch)
        return RateDrift(zeros.astype(bool), np.full(batch, -1), zeros.astype(int), zeros, zeros, zeros, zeros)
    best = np.argmax(llr, axis=0)[None]
    statistic, n1, o1, e1, n2, o2, e2 = (np.take_along_axis(x, best, axis=0)[0]
                                         for x in (llr, n1, o1, e1, n2, o2, e2))
    detected = statistic > threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = (o2 / e2) / (o1 / e1) - 1.0
        before, after = o1 / n1, o2 / n2
    direction = np.where(detected, np.sign(np.nan_to_num(relative)), 0).astype(int)
    return RateDrift(detected, np.where(detected, best[0] + 1, -1), direction,
                     np.nan_to_num(before), np.nan_to_num(after), np.nan_to_num(relative), statistic)


@dataclass(frozen=True)
class Alarms:
    """What a router rerunning ``rate_drift`` at every bucket would have raised, per arm ``(..., K)``.

    ``first_alarm``: the bucket (index into the stream) whose close raised the
    first alarm, -1 if none; ``first_change``/``first_direction``: that alarm's
    change point and direction; ``count``: alarms over the stream, the
    detector starting afresh after each.
    """

    first_alarm: np.ndarray
    first_change: np.ndarray
    first_direction: np.ndarray
    count: np.ndarray


def watch(trials, conversions, *, window: int, stratified: bool = False, threshold: float = DEFAULT_THRESHOLD,
          min_count: float = DEFAULT_MIN_COUNT, start: int = 1) -> Alarms:
    """Run ``rate_drift`` at the close of every bucket from ``start`` on, over the last ``window`` buckets.

    After an alarm the arm's detector forgets everything up to the alarming
    bucket (a router acts on an alarm once, then watches the new regime), so
    ``count`` counts distinct alarms. Cost: ``O(T * window * S * K)``.
    """
    n = np.asarray(trials, dtype=np.float64)
    c = np.asarray(conversions, dtype=np.float64)
    if window < 2:
        raise ValueError(f"window: must be at least 2 buckets, got {window}")
    arms_shape = n.shape[2:] if stratified else n.shape[1:]
    fresh_from = np.zeros(arms_shape, dtype=int)  # per arm: the first bucket the detector may use
    first_alarm = np.full(arms_shape, -1)
    first_change = np.full(arms_shape, -1)
    first_direction = np.zeros(arms_shape, dtype=int)
    count = np.zeros(arms_shape, dtype=int)
    for end in range(max(start, 1), n.shape[0]):
        lo = max(0, end + 1 - window)
        window_n, window_c = n[lo:end + 1], c[lo:end + 1]
        if fresh_from.any():  # buckets from before an arm's last alarm count as empty
            keep = np.arange(lo, end + 1).reshape((-1,) + (1,) * (n.ndim - 1)) >= fresh_from
            window_n, window_c = window_n * keep, window_c * keep
        found = rate_drift(window_n, window_c, stratified=stratified, threshold=threshold, min_count=min_count)
        new = found.detected & (first_alarm < 0)
        first_alarm = np.where(new, end, first_alarm)
        first_change = np.where(new, lo + found.change_at, first_change)
        first_direction = np.where(new, found.direction, first_direction)
        count += found.detected
        fresh_from = np.where(found.detected, end + 1, fresh_from)
    return Alarms(first_alarm, first_change, first_direction, count)


def forget_before(starts: Sequence[int], drift: RateDrift, variant_ids: Sequence[str]) -> dict[str, list[int]]:
    """For each variant with a detected change: the bucket starts from before it, to drop.

    ``starts`` are the window's bucket starts (``history.bucket_arrays``) that
    ``drift`` was computed on, ``drift`` for a single window (arrays ``(K,)``).
    Variants without a detected change are left out: nothing of theirs is dropped.
    """
    change_at = np.asarray(drift.change_at).reshape(-1)
    if len(change_at) != len(variant_ids):
        raise ValueError(f"forget_before: {len(variant_ids)} variant ids for {len(change_at)} arms")
    out = {}
    for vid, at in zip(variant_ids, change_at):
        if at >= 0:
            if at > len(starts):
                raise ValueError(f"forget_before: change at bucket {at} of a window of {len(starts)}")
            out[vid] = list(starts[:at])
    return out


@dataclass(frozen=True)
class MixDrift:
    """A context field's shift between two windows (arrays ``(...,)`` for batches)."""

    psi: np.ndarray
    js: np.ndarray  # Jensen-Shannon divergence in bits, 0 to 1
    shifted: np.ndarray  # psi > threshold with enough views in both windows
    reference_shares: np.ndarray
    recent_shares: np.ndarray


def mix_drift(reference, recent, *, threshold: float = PSI_SIGNIFICANT, min_views: int = MIN_MIX_VIEWS) -> MixDrift:
    """PSI and Jensen-Shannon divergence of ``recent`` counts per category against ``reference``.

    ``reference``/``recent``: ``(..., S)`` views per category (e.g. mobile,
    desktop, tablet) summed over each window. ``PSI = sum_s (q_s - p_s) log(q_s /
    p_s)`` (the symmetrised Kullback-Leibler divergence), shares smoothed with
    half a view per category so an empty category stays finite. Under no shift
    PSI is about ``(S - 1) (1 / n_ref + 1 / n_recent)`` from sampling alone,
    hence ``min_views``. Usual reading: below 0.1 stable, 0.1 to 0.2 a moderate
    shift, above 0.2 (``threshold``) significant.
    """
    ref = np.asarray(reference, dtype=np.float64)
    now = np.asarray(recent, dtype=np.float64)
    if ref.shape[-1] != now.shape[-1] or ref.shape[-1] < 2:
        raise ValueError(f"mix_drift: reference {ref.shape} and recent {now.shape} need the same categories (>= 2)")
    p = (ref + 0.5) / (ref.sum(axis=-1, keepdims=True) + 0.5 * ref.shape[-1])
    q = (now + 0.5) / (now.sum(axis=-1, keepdims=True) + 0.5 * now.shape[-1])
    psi = ((q - p) * np.log(q / p)).sum(axis=-1)
    m = (p + q) / 2.0
    js = 0.5 * ((p * np.log2(p / m)).sum(axis=-1) + (q * np.log2(q / m)).sum(axis=-1))
    enough = (ref.sum(axis=-1) >= min_views) & (now.sum(axis=-1) >= min_views)
    return MixDrift(psi, js, enough & (psi > threshold), p, q)


def psi_level(psi: float) -> str:
    """``"stable"``, ``"moderate"`` or ``"significant"`` by the usual PSI thresholds."""
    return "significant" if psi > PSI_SIGNIFICANT else "moderate" if psi > PSI_MODERATE else "stable"


__all__ = ["Alarms", "DEFAULT_MIN_COUNT", "DEFAULT_THRESHOLD", "MixDrift", "PSI_MODERATE", "PSI_SIGNIFICANT",
           "RateDrift", "forget_before", "mix_drift", "psi_level", "rate_drift", "watch"]
