"""What an experiment report says: the summary a manager reads first, then each chart with a
one-sentence caption, and the sections that cannot be shown with the reason.

Pure: from what ``report_data.gather`` read to figures (``croupier.scripts.charts``) and words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from itertools import islice

import numpy as np

from croupier.router.ope import OPEError, join_log
from croupier.router.snapshot import arm_stats
from croupier.router.statistics import posterior_summary
from croupier.scripts import charts, report_stats
from croupier.scripts.charts import Event, Interval, Series
from croupier.scripts.report_data import Gathered

MAX_HEATMAPS = 6
MAX_FIXED_STRATEGIES = 8  # "always <variant>" rows: a factorial experiment has thousands of arms


@dataclass
class Chart:
    key: str  # the PNG's file name
    title: str
    caption: str
    figure: object  # matplotlib Figure


@dataclass
class Report:
    summary: dict
    charts: list[Chart] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (section, why it is not shown)
    events: list[tuple[str, str]] = field(default_factory=list)  # (when, what), for the table


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None or x != x else f"{x:.{digits}%}"


def _signed(x: float) -> str:
    return f"{x:+,.0f}"


def build(g: Gathered, *, default_bucket_seconds: int, rng: np.random.Generator, confidence: float = 0.95,
          strategies: bool = True) -> Report:
    e = g.experiment
    ids = [v.id for v in e.variants]
    colour_of = charts.colours(ids)
    arms = arm_stats(e, e.variants, g.counters, g.engagement)  # the posterior of the reward the bandit optimises
    draws = 20_000 if len(ids) <= 64 else 2_000
    posterior = posterior_summary(arms, rng, draws=draws)
    periods = report_stats.periods(g.buckets, ids, e.goal, default_bucket_seconds)
    trials_total = np.array([g.counters.get(v, {}).get("trials", 0.0) for v in ids])
    conversions_total = np.array([g.counters.get(v, {}).get(f"conv:{e.goal}", 0.0) for v in ids])
    timeline = report_stats.timeline(g.entries, g.alerts)
    events = [Event(when, label) for when, label in timeline]
    first, last = (periods.starts[0], periods.starts[-1]) if periods.starts else (None, None)
    leader = report_stats.leader(e, arms.alpha, arms.beta, posterior["p_best"], rng)
    keep = report_stats.shown(trials_total, ids, always=(ids.index(leader["id"]), ids.index(e.control)))
    kept_ids = [ids[i] for i in keep]
    report = Report(summary={
        "experiment": e.id, "name": e.name or e.id, "status": e.status, "goal": e.goal, "policy": e.policy,
        "visitors": int(trials_total.sum()), "conversions": int(conversions_total.sum()),
        "from": first.strftime("%Y-%m-%d %H:%M UTC") if first else "n/a",
        "to": (last + timedelta(seconds=periods.seconds)).strftime("%Y-%m-%d %H:%M UTC") if last else "n/a",
        "leader": leader, "leader_rate": float(posterior["mean"][ids.index(leader["id"])]),
        "gain": None, "variants": [
            {"id": v, "visitors": int(trials_total[i]), "conversions": int(conversions_total[i]),
             "rate": _pct(conversions_total[i] / trials_total[i] if trials_total[i] else None),
             "interval": f"{_pct(posterior['ci_low'][i])} to {_pct(posterior['ci_high'][i])}",
             "p_best": f"{posterior['p_best'][i]:.0%}"} for i, v in islice(enumerate(ids), 50)],
        "more_variants": max(0, len(ids) - 50),
    }, events=[(when.strftime("%Y-%m-%d %H:%M:%S UTC"), label) for when, label in timeline])
    add = report.charts.append

    # -- over time
    x = periods.starts
    fig = charts.traffic_share(x, periods.trials[:, keep], kept_ids, colour_of=colour_of, events=events,
                               end=x[-1] + timedelta(seconds=periods.seconds) if x else None,
                               title="Traffic share per variant",
                               x_label=f"time (UTC), periods of {_duration(periods.seconds)}")
    last_share = periods.trials[-1] / max(periods.trials[-1].sum(), 1.0) if len(x) else np.zeros(len(ids))
    top = int(np.argmax(last_share)) if len(x) else 0
    add(Chart("traffic-share", "Traffic share over time",
              f"How the visitors of each period were split; in the last period {ids[top]} got "
              f"{_pct(last_share[top], 0)} of them.", fig))
    rate, low, high = report_stats.cumulative_rates(periods.trials, periods.conversions)
    ends = [start + timedelta(seconds=periods.seconds) for start in x]  # the rate so far, at each period's end
    series = [Series(ids[k], ends, rate[:, k], low[:, k], high[:, k]) for k in keep]
    fig = charts.line_chart(series, title="Conversion rate so far, per variant", x_label="time (UTC)",
                            y_label="conversion rate (95% interval)", colour_of=colour_of, events=events,
                            percent=True)
    add(Chart("conversion-rate", "Conversion rate over time",
              "Each variant's conversion rate from the start to each point, with its 95% (Wilson) interval: "
              "the bands narrow as visitors accumulate.", fig))

    # -- where each variant stands
    fig = charts.posterior_densities(arms.alpha[keep], arms.beta[keep], kept_ids, colour_of=colour_of)
    add(Chart("posteriors", "What each variant's conversion rate may be",
              f"The bandit's belief about each variant's conversion rate (its Beta posterior); "
              f"{leader['id']} is best with probability {leader['p_best']:.0%}.", fig))

    # -- what the bandit earned, from the logged propensities
    log = None
    try:
        log, _ = join_log(g.entries, e.goal)
        gains = report_stats.even_split_gain(log, confidence=confidence)
    except OPEError as exc:
        report.missing.append(("Conversions gained over an even split", f"not available: {exc}"))
    else:
        dr = gains[0]
        report.summary["gain"] = {"value": dr.value, "low": dr.low, "high": dr.high, "visitors": dr.visitors,
                                  "observed": dr.observed, "even_split": dr.even_split,
                                  "text": f"{_signed(dr.value)} ({_signed(dr.low)} to {_signed(dr.high)})"}
        rows = [Interval({"dr": "doubly robust", "ips": "inverse propensity"}[gain.estimator], gain.value,
                         gain.low, gain.high) for gain in gains]
        fig = charts.gain_vs_even_split(rows)
        add(Chart("gain-vs-even-split", "Conversions gained over an even split",
                  f"The {dr.visitors:,} logged visitors converted {dr.observed:,.0f} times; an even split over the "
                  f"same visitors would have converted about {dr.even_split:,.0f} times, estimated from the logged "
                  f"propensities (doubly robust; {confidence:.0%} interval).", fig))

    if strategies and log is not None and log.n:
        try:
            from croupier.router.strategies import compare_strategies
            found = compare_strategies(log, rng=rng, confidence=confidence, min_share=e.min_share)
        except OPEError as exc:
            report.missing.append(("Strategy comparison", f"not available: {exc}"))
        else:
            fixed = sorted((s for s in found if s.kind == "fixed" and s.name != "even"), key=lambda s: -s.value)
            chosen = [s for s in found if s.kind != "fixed" or s.name == "even"] + fixed[:MAX_FIXED_STRATEGIES]
            observed = float(log.rewards.mean())
            best = max(chosen, key=lambda s: s.value)
            fig = charts.strategy_comparison([Interval(s.label, s.value, s.low, s.high) for s in chosen],
                                             observed=observed)
            add(Chart("strategies", "Strategy comparison",
                      f"What each way of choosing variants would have converted at on the same visitors (doubly "
                      f"robust estimates from the log); the best estimate is {best.label} at {_pct(best.value, 2)}, "
                      f"against {_pct(observed, 2)} observed.", fig))
    elif strategies:
        report.missing.append(("Strategy comparison", "not available: no assignment in the event history"))

    # -- segments
    if e.segment_keys:
        segments, _, s_rate, s_low, s_high = report_stats.segment_table(e, g.segment_counters, g.max_segments)
        if segments:
            fig = charts.segment_chart(segments, kept_ids, s_rate[:, keep], s_low[:, keep], s_high[:, keep],
                                       colour_of=colour_of)
            add(Chart("segments", "Conversion rate per segment",
                      f"Each variant's observed rate in the {len(segments)} busiest segments "
                      f"({', '.join(e.segment_keys)}), with its 95% interval: where a variant wins may differ "
                      f"by segment.", fig))
        else:
            report.missing.append(("Segments", "no visitor was counted in a segment yet"))

    # -- factorial
    if e.factorial is not None:
        from croupier.router.factorial_view import factorial_stats
        stats = factorial_stats(e, g.counters, None, rng)
        best = stats["best"]
        fig = charts.factor_rollups(stats["factors"])
        add(Chart("factor-rollups", "Conversion rate per factor level",
                  f"The model's conversion rate of each level, the other factors averaged over; the best "
                  f"combination so far is {', '.join(best['names'])} at {_pct(best['rate'])}.", fig))
        for n, h in enumerate(stats["heatmaps"][:MAX_HEATMAPS]):
            fig = charts.heatmap(h["rows"], h["cols"], h["rates"], row_label=h["factors"][0], col_label=h["factors"][1])
            add(Chart(f"heatmap-{n + 1}", f"{h['factors'][0]} by {h['factors'][1]}",
                      f"The model's conversion rate for each pair of {h['factors'][0]} and {h['factors'][1]} "
                      f"levels; a blank cell is a combination the constraints do not allow.", fig))
    if not events:
        report.missing.append(("Guardrail and drift events", "none recorded: no guardrail breach, drift, "
                                                             "traffic-mix or sample-ratio alert"))
    return report


def _duration(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} s"
