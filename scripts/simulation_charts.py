"""The what-if simulator's charts, drawn with the reports' plotting code (``croupier.scripts.charts``)."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

from croupier.scripts import charts
from croupier.scripts.simulation_summary import BAND, Outcome, band

BAND_LABEL = f"{BAND[0]:.0%}-{BAND[1]:.0%} of runs"
X_LABEL = "days since the start"


@dataclass(frozen=True)
class Chart:
    name: str  # the PNG's file name, without .png
    title: str
    caption: str
    figure: Figure


def _events(outcome: Outcome) -> list[charts.Event]:
    drift = outcome.scenario.drift
    if drift is None:
        return []
    changes = ", ".join(f"{vid} {outcome.scenario.rates[outcome.variants.index(vid)]:.1%} → {rate:.1%}"
                        for vid, rate in drift.rates.items())
    return [charts.Event(float(drift.day - 1), f"day {drift.day}: {changes}")]


def simulation_charts(outcome: Outcome) -> list[Chart]:
    sc, x = outcome.scenario, outcome.days
    colour_of = charts.colours(sc.variants)
    events = _events(outcome)
    out = []

    mean_share = outcome.share.mean(axis=0)  # (C, K): the runs' average share of each interval
    starts = [0.0, *x[:-1]]  # each interval drawn as a block from its start to the next checkpoint
    out.append(Chart("traffic-share", "Traffic share, average of the runs",
                     "Each variant's share of the visitors over time, averaged over the simulated runs.",
                     charts.traffic_share(starts, mean_share, sc.variants, end=float(x[-1]), colour_of=colour_of,
                                          events=events,
                                          title=f"Traffic share per variant: {sc.policy}, average of {sc.runs} runs",
                                          x_label=X_LABEL)))

    series = []
    for k, vid in enumerate(sc.variants):
        b = band(outcome.share[:, :, k])
        series.append(charts.Series(vid, x, b.median, b.low, b.high))
    out.append(Chart("traffic-share-band", "Traffic share with its spread over runs",
                     f"Each variant's median share over the runs; the band holds {BAND_LABEL}.",
                     charts.line_chart(series, title=f"Traffic share per variant (median, band: {BAND_LABEL})",
                                       x_label=X_LABEL, y_label="share of visitors", percent=True,
                                       colour_of=colour_of, events=events)))

    regret = band(outcome.regret)
    best = f" ({sc.variants[outcome.best]})" if sc.drift is None else " of the moment"
    out.append(Chart("regret", "Regret", f"Expected conversions lost to always showing the best variant "
                     f"(median over the runs, the band holds {BAND_LABEL}); the even split's for comparison.",
                     charts.line_chart([charts.Series(sc.policy, x, regret.median, regret.low, regret.high),
                                        charts.Series("even split", x, outcome.even_regret)],
                                       title=f"Regret: conversions lost to always showing the best{best}",
                                       x_label=X_LABEL, y_label="cumulative regret (conversions)", events=events)))

    gain = band(outcome.gain)
    out.append(Chart("gain-over-time", "Conversions gained over an even split",
                     f"Expected conversions gained over an even split of the same visitors (median, band: "
                     f"{BAND_LABEL}).",
                     charts.line_chart([charts.Series(sc.policy, x, gain.median, gain.low, gain.high)],
                                       title="Conversions gained over an even split", x_label=X_LABEL,
                                       y_label="conversions gained", events=events)))

    final = outcome.final(outcome.gain)
    rows = [charts.Interval(f"{sc.policy}, {sc.days} days", float(final.median), float(final.low),
                            float(final.high))]
    out.append(Chart("gain", "Gain at the end", f"Over the whole scenario: the median over the runs and {BAND_LABEL}.",
                     charts.gain_vs_even_split(rows)))
    return out

