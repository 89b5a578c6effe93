"""What a simulated scenario's runs come to: traffic shares over time, the time until the best
variant takes most of the traffic, regret against always showing it, and conversions gained over
an even split, per run and as the median with a band over runs. Pure (numpy).

All conversion figures are expected conversions (the rates of the variants shown), so the
visitors' own coin flips do not blur the comparison: the regret of a run is
``sum over visitors of (best rate - rate of the variant shown)``, the gain over an even split
``sum over visitors of (rate of the variant shown - mean rate)``, the rates being those of the
moment (after a drift, the drifted ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from croupier.scripts.scenario import Scenario
from croupier.scripts.simulation import Trace

BAND = (0.05, 0.95)  # the band over runs: 90% of the runs fall inside


@dataclass(frozen=True)
class Band:
    """Median and band over runs, at each checkpoint (or one number)."""

    median: np.ndarray
    low: np.ndarray
    high: np.ndarray


def band(values: np.ndarray) -> Band:
    """Median and ``BAND`` quantiles over the first axis (the runs)."""
    values = np.asarray(values, dtype=np.float64)
    low, median, high = np.quantile(values, (BAND[0], 0.5, BAND[1]), axis=0)
    return Band(median, low, high)


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    days: np.ndarray  # (C,) the checkpoints in days since the start
    visitors: np.ndarray  # (C,) the checkpoints in visitors
    share: np.ndarray  # (R, C, K) each variant's share of the visitors since the previous checkpoint
    regret: np.ndarray  # (R, C) cumulative expected conversions lost to always showing the best
    gain: np.ndarray  # (R, C) cumulative expected conversions over an even split
    even_regret: np.ndarray  # (C,) the even split's own regret
    conversions: np.ndarray  # (R,) expected conversions of each run
    even_conversions: float
    best_conversions: float
    takeover_days: np.ndarray  # (R,) days from the start (or the drift) to the end of the first day-long
    # window in which the best variant had takeover_share of the traffic; nan: never
    takeover_from: int  # the day (1-based) the takeover is counted from: 1, or the drift's day
    best: int  # the variant that is best at the end

    @property
    def variants(self) -> tuple[str, ...]:
        return self.scenario.variants

    def final(self, values: np.ndarray) -> Band:
        return band(values[:, -1])


def _rates_per_interval(scenario: Scenario, visitors: np.ndarray) -> np.ndarray:
    """(C, K): the rates of each interval between checkpoints (the change point is a checkpoint)."""
    starts = np.concatenate([[0], visitors[:-1]])
    engine = scenario.engine()
    return np.stack([engine.rates_at(int(t)) for t in starts])


def takeover(pulls: np.ndarray, visitors: np.ndarray, best: np.ndarray, threshold: float, start: int,
             window: int) -> np.ndarray:
    """Per run, visitors from ``start`` to the end of the first ``window`` of visitors (ending at a
    checkpoint, starting at ``start`` or later) in which ``best`` (the best variant at the
    window's end) had at least ``threshold`` of the traffic; nan where that never happened.

    A window of a day, not the share between two checkpoints, so that a few lucky hours do not
    count as a takeover."""
    cumulative = np.concatenate([np.zeros_like(pulls[:, :1]), pulls], axis=1)  # (R, C + 1, K)
    at = np.concatenate([[0], visitors])
    ends = np.nonzero(visitors - window >= start)[0]
    begins = np.searchsorted(at, visitors[ends] - window)
    counts = cumulative[:, ends + 1] - cumulative[:, begins]  # (R, E, K)
    share = counts[:, np.arange(len(ends)), best[ends]] / np.maximum(counts.sum(axis=2), 1.0)
    hit = share >= threshold
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), visitors[ends][first] - start, np.nan).astype(np.float64)


def summarise(scenario: Scenario, trace: Trace) -> Outcome:
    visitors = np.asarray(trace.checkpoints, dtype=np.int64)
    days = visitors / scenario.daily_visitors
    pulls = np.asarray(trace.pulls, dtype=np.float64)  # (R, C, K)
    delta = np.diff(pulls, axis=1, prepend=0.0)
    totals = delta.sum(axis=2, keepdims=True)
    share = np.divide(delta, totals, out=np.zeros_like(delta), where=totals > 0)
    rates = _rates_per_interval(scenario, visitors)  # (C, K)
    sizes = np.diff(visitors, prepend=0).astype(np.float64)  # (C,)
    expected = np.cumsum(np.einsum("rck,ck->rc", delta, rates), axis=1)
    best_line = np.cumsum(sizes * rates.max(axis=1))
    even_line = np.cumsum(sizes * rates.mean(axis=1))
    best_now = np.argmax(rates, axis=1)  # (C,)
    start = scenario.change_at or 0
    return Outcome(
        scenario=scenario, days=days, visitors=visitors, share=share,
        regret=best_line[None, :] - expected, gain=expected - even_line[None, :],
        even_regret=best_line - even_line, conversions=expected[:, -1],
        even_conversions=float(even_line[-1]), best_conversions=float(best_line[-1]),
        takeover_days=takeover(pulls, visitors, best_now, scenario.takeover_share, start,
                               scenario.daily_visitors) / scenario.daily_visitors,
        takeover_from=1 if scenario.drift is None else scenario.drift.day,
        best=int(best_now[-1]),
    )
