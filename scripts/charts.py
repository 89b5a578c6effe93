"""The charts of reports, the what-if simulator and the benchmarks: one look for all of them.

Every function takes plain data (lists, numpy arrays, dicts of numbers) and returns a
matplotlib ``Figure``; ``png``, ``data_uri`` and ``svg`` render one. Nothing here reads
Redis or files. The look is shared: the Okabe-Ito palette (distinguishable with the
common colour-vision deficiencies), one colour per variant id for every chart of a
report (``colours``), legends outside the plotted area (right of the axes), labelled
axes with units, a title, and events (guardrail breaches, drift) as labelled vertical
markers on the time charts.

Figures are built without pyplot, on the Agg canvas: no display, no global state, safe in
threads. matplotlib is the ``report`` extra; the router never imports this module.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

try:
    from matplotlib.axes import Axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter
except ImportError as exc:  # pragma: no cover - the extra is installed with the tests
    raise ImportError("charts need matplotlib: pip install 'croupier[report]'") from exc

# Okabe & Ito (2008), "Color Universal Design": eight colours told apart with the common
# colour-vision deficiencies; yellow last, it is faint on white.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442")
# Past eight series, colours repeat with another line style so that lines stay distinct.
LINE_STYLES = ("-", "--", ":", "-.")
EVENT_COLOUR = "#555555"
WIDTH, HEIGHT = 8.0, 3.6  # inches; at 100 dpi an 800 px wide chart, the width of a report's column
DPI = 100
BAND_ALPHA = 0.18


@dataclass(frozen=True)
class Series:
    """One line: ``y`` over ``x``, optionally with a band ``low``..``high`` (an interval)."""

    label: str
    x: Sequence
    y: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None


@dataclass(frozen=True)
class Event:
    """Something that happened at ``x`` (a guardrail breach, drift): a labelled marker."""

    x: object
    label: str


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval, one row of a point-and-interval chart."""

    label: str
    value: float
    low: float
    high: float


# -- the look ---------------------------------------------------------------

def colours(ids: Iterable[str]) -> dict[str, str]:
    """A colour per id, in order: pass a report's variant ids once and every chart agrees."""
    return {i: PALETTE[n % len(PALETTE)] for n, i in enumerate(ids)}


def style(index: int) -> dict:
    """Colour and line style of the ``index``-th series: distinct for 32 series."""
    return {"color": PALETTE[index % len(PALETTE)], "linestyle": LINE_STYLES[(index // len(PALETTE)) % len(LINE_STYLES)]}


def styles(labels: Iterable[str]) -> dict[str, dict]:
    """``style(i)`` per label, in order: pass every label of a multi-panel figure once, and a
    series looks the same in each panel it appears in (``line_chart``'s ``style_of``)."""
    return {label: style(n) for n, label in enumerate(labels)}


def new_figure(width: float = WIDTH, height: float = HEIGHT, *, nrows: int = 1, ncols: int = 1) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    return fig, axes


def legend_outside(ax: Axes, **kwargs) -> None:
    """The legend right of the axes, where it covers no data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                  frameon=False, **kwargs)


def _dates(x: Sequence) -> bool:
    return len(x) > 0 and isinstance(x[0], (datetime, np.datetime64))


def _time_axis(ax: Axes, x: Sequence) -> None:
    if _dates(x):
        locator = AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _percent(ax: Axes, axis: str = "y") -> None:
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0, decimals=None))


def mark_events(ax: Axes, events: Sequence[Event]) -> None:
    """A dashed vertical line per event, its label written along it at the top of the axes."""
    for event in events:
        ax.axvline(event.x, color=EVENT_COLOUR, linestyle="--", linewidth=1.0, zorder=3)
        ax.annotate(event.label, xy=(event.x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -3),
                    textcoords="offset points", rotation=90, va="top", ha="left", fontsize=7,
                    color=EVENT_COLOUR, annotation_clip=False,
                    bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 1.0})


def _no_data(ax: Axes, message: str = "no data yet") -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", color=EVENT_COLOUR)


# -- rendering --------------------------------------------------------------

def png(fig: Figure, dpi: int = DPI) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return out.getvalue()


def data_uri(fig: Figure, dpi: int = DPI) -> str:
    """``data:image/png;base64,...``: an image an HTML file carries inside itself."""
    return "data:image/png;base64," + base64.b64encode(png(fig, dpi)).decode("ascii")


def svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element (text kept as paths, so no font is fetched)."""
    out = io.StringIO()
    fig.savefig(out, format="svg", bbox_inches="tight", facecolor="white", metadata={"Date": None})
    text = out.getvalue()
    return text[text.index("<svg"):]


# -- charts -----------------------------------------------------------------

def line_chart(series: Sequence[Series], *, title: str, x_label: str, y_label: str,
               colour_of: Mapping[str, str] | None = None, events: Sequence[Event] = (), percent: bool = False,
               log_x: bool = False, y_max: float | None = None, ax: Axes | None = None,
               style_of: Mapping[str, dict] | None = None) -> Figure:
    """Lines (with their bands) over a common x: the base of every time chart.

    ``colour_of``: label → colour (``colours``), else the series take ``style(i)`` in order.
    ``style_of``: label → colour and line style (``styles``), before either.
    ``y_max`` clips the y axis, so one line far above the rest does not flatten them."""
    fig, axes = (ax.figure, None) if ax is not None else new_figure()
    ax = ax if ax is not None else axes[0, 0]
    for i, s in enumerate(series):
        if style_of and s.label in style_of:
            look = dict(style_of[s.label])
        else:
            look = {"color": colour_of[s.label], "linestyle": "-"} if colour_of and s.label in colour_of else style(i)
        ax.plot(s.x, s.y, label=s.label, linewidth=1.6, **look)
        if s.low is not None and s.high is not None:
            ax.fill_between(s.x, s.low, s.high, color=look["color"], alpha=BAND_ALPHA, linewidth=0)
    if not series:
        _no_data(ax)
    if log_x:
        ax.set_xscale("log")
    if y_max is not None:
        ax.set_ylim(top=y_max)
    if series:
        _time_axis(ax, series[0].x)
    if percent:
        _percent(ax)
    mark_events(ax, events)
    ax.set(title=title, xlabel=x_label, ylabel=y_label)
    legend_outside(ax)
    return fig


def traffic_share(x: Sequence, trials: np.ndarray, variant_ids: Sequence[str], *, end: object = None,
                  colour_of: Mapping[str, str] | None = None, events: Sequence[Event] = (),
                  title: str = "Traffic share per variant", x_label: str = "time (UTC)") -> Figure:
    """Stacked areas: each variant's share of the visitors of each period (``trials``: ``(T, K)``).

    ``end``: where the last period ends; then ``x`` are the periods' starts and each period is
    drawn as a flat block (a single period too), else the shares are joined by straight lines."""
    trials = np.asarray(trials, dtype=np.float64).reshape(len(x), len(variant_ids))
    totals = trials.sum(axis=1, keepdims=True)
    shares = np.divide(trials, totals, out=np.zeros_like(trials), where=totals > 0)
    fig, axes = new_figure()
    ax = axes[0, 0]
    colour_of = colour_of or colours(variant_ids)
    if len(x):
        steps = {}
        if end is not None:
            x, shares, steps = [*x, end], np.vstack([shares, shares[-1:]]), {"step": "post"}
        ax.stackplot(x, shares.T, labels=list(variant_ids), colors=[colour_of[v] for v in variant_ids],
                     alpha=0.85, linewidth=0, **steps)
        _time_axis(ax, x)
        if len(x) > 1:
            ax.set_xlim(x[0], x[-1])
    else:
        _no_data(ax)
    ax.set_ylim(0, 1)
    _percent(ax)
    mark_events(ax, events)
    ax.set(title=title, xlabel=x_label, ylabel="share of visitors")
    legend_outside(ax)
    return fig


def posterior_densities(alpha: Sequence[float], beta: Sequence[float], variant_ids: Sequence[str], *,
                        colour_of: Mapping[str, str] | None = None,
                        title: str = "What each variant's conversion rate may be") -> Figure:
    """Each variant's Beta(alpha, beta) posterior density of its conversion rate."""
    alpha, beta = np.asarray(alpha, dtype=np.float64), np.asarray(beta, dtype=np.float64)
    colour_of = colour_of or colours(variant_ids)
    mean = alpha / (alpha + beta)
    sd = np.sqrt(alpha * beta / ((alpha + beta) ** 2 * (alpha + beta + 1)))
    # the grid covers every variant's mass (6 sd around its mean), not the whole [0, 1]
    lo, hi = max(0.0, float((mean - 6 * sd).min())), min(1.0, float((mean + 6 * sd).max()))
    grid = np.linspace(lo, hi, 600)[1:-1] if hi > lo else np.linspace(0.0, 1.0, 600)[1:-1]
    fig, axes = new_figure()
    ax = axes[0, 0]
    for a, b, vid in zip(alpha, beta, variant_ids):
        log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
        density = np.exp(log_norm + (a - 1) * np.log(grid) + (b - 1) * np.log1p(-grid))
        ax.plot(grid, density, color=colour_of[vid], label=vid, linewidth=1.6)
        ax.fill_between(grid, 0, density, color=colour_of[vid], alpha=BAND_ALPHA, linewidth=0)
    ax.set_ylim(bottom=0)
    _percent(ax, "x")
    ax.set(title=title, xlabel="conversion rate", ylabel="probability density")
    legend_outside(ax)
    return fig


def intervals(rows: Sequence[Interval], *, title: str, x_label: str, reference: float | None = None,
              reference_label: str = "", percent: bool = False, colour_of: Mapping[str, str] | None = None) -> Figure:
    """One point with its interval per row, rows top to bottom; ``reference`` a vertical line
    (zero for a gain, the observed rate for strategies)."""
    height = max(1.6, 0.9 + 0.38 * len(rows))
    fig, axes = new_figure(height=height)
    ax = axes[0, 0]
    y = np.arange(len(rows))[::-1]
    for i, (row, at) in enumerate(zip(rows, y)):
        colour = (colour_of or {}).get(row.label, PALETTE[0])
        # an interval without bounds (one sample) is drawn as its point alone
        below = row.value - row.low if math.isfinite(row.low) else 0.0
        above = row.high - row.value if math.isfinite(row.high) else 0.0
        ax.errorbar(row.value, at, xerr=[[max(below, 0.0)], [max(above, 0.0)]],
                    fmt="o", color=colour, ecolor=colour, elinewidth=2.2, capsize=4, markersize=6)
    if reference is not None:
        ax.axvline(reference, color=EVENT_COLOUR, linestyle="--", linewidth=1.0, label=reference_label or None)
    ax.set_yticks(y, [r.label for r in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    if not rows:
        _no_data(ax)
    if percent:
        _percent(ax, "x")
    ax.set(title=title, xlabel=x_label)
    legend_outside(ax)
    return fig


def gain_vs_even_split(rows: Sequence[Interval], *, title: str = "Conversions gained over an even split") -> Figure:
    """Conversions gained (or lost, below zero) against an even split over the same visitors,
    one row per estimator, with its interval."""
    return intervals(rows, title=title, x_label="conversions gained (negative: lost)", reference=0.0,
                     reference_label="even split")


def strategy_comparison(rows: Sequence[Interval], *, observed: float | None = None,
                        title: str = "Estimated conversion rate per strategy") -> Figure:
    """What each strategy would have converted at, estimated from the log, with its interval."""
    return intervals(rows, title=title, x_label="conversion rate", reference=observed,
                     reference_label="observed" if observed is not None else "", percent=True)


def runs_band(x: Sequence, runs: Mapping[str, np.ndarray], *, title: str, x_label: str, y_label: str,
              band: tuple[float, float] = (0.05, 0.95), percent: bool = False, log_x: bool = False,
              colour_of: Mapping[str, str] | None = None, events: Sequence[Event] = ()) -> Figure:
    """Per name, the mean over seeded runs (``(R, T)``) with the runs' ``band`` quantiles."""
    series = []
    for name, values in runs.items():
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        low, high = np.quantile(values, band, axis=0)
        series.append(Series(name, x, values.mean(axis=0), low, high))
    return line_chart(series, title=title, x_label=x_label, y_label=y_label, percent=percent, log_x=log_x,
                      colour_of=colour_of, events=events)


def regret_over_time(x: Sequence, runs: Mapping[str, np.ndarray], *, x_label: str = "visitors",
                     title: str = "Regret: conversions lost to always showing the best",
                     colour_of: Mapping[str, str] | None = None) -> Figure:
    """Cumulative regret per policy: the mean over runs, the 5%-95% band of the runs."""
    return runs_band(x, runs, title=title, x_label=x_label, y_label="cumulative regret (conversions)",
                     colour_of=colour_of)


def segment_chart(segments: Sequence[str], variant_ids: Sequence[str], rate: np.ndarray, low: np.ndarray,
                  high: np.ndarray, *, colour_of: Mapping[str, str] | None = None,
                  title: str = "Conversion rate per segment") -> Figure:
    """A row per segment, a point and interval per variant in it (``rate``, ``low``, ``high``: ``(S, K)``);
    a segment's variants sit side by side around its row."""
    rate, low, high = (np.asarray(a, dtype=np.float64).reshape(len(segments), len(variant_ids))
                       for a in (rate, low, high))
    colour_of = colour_of or colours(variant_ids)
    k = len(variant_ids)
    fig, axes = new_figure(height=max(1.8, 1.0 + 0.3 * len(segments) * max(k, 2) / 2))
    ax = axes[0, 0]
    y = np.arange(len(segments))[::-1].astype(np.float64)
    offsets = (np.arange(k) - (k - 1) / 2) * (0.7 / max(k, 1))
    for j, vid in enumerate(variant_ids):
        at = y - offsets[j]
        ax.errorbar(rate[:, j], at, xerr=[np.maximum(rate[:, j] - low[:, j], 0), np.maximum(high[:, j] - rate[:, j], 0)],
                    fmt="o", color=colour_of[vid], label=vid, capsize=2, markersize=4, elinewidth=1.4)
    ax.set_yticks(y, list(segments))
    ax.set_ylim(-0.6, len(segments) - 0.4)
    if not len(segments):
        _no_data(ax, "no segments")
    _percent(ax, "x")
    ax.set(title=title, xlabel="conversion rate (95% interval)")
    legend_outside(ax)
    return fig


def factor_rollups(factors: Sequence[Mapping], *, title: str = "Conversion rate per factor level") -> Figure:
    """Each factor's levels with the model's rate and 95% interval, one colour per factor.

    ``factors``: ``[{"name", "levels": [{"name", "rate", "low", "high"}]}]``, the shape of
    ``croupier.router.factorial_stats.rollups``' ``factors`` (levels without a rate are left out)."""
    rows, colour_of = [], {}
    for f, factor in enumerate(factors):
        for level in factor["levels"]:
            if level.get("rate") is None:
                continue
            label = f"{factor['name']}: {level['name']}"
            rows.append(Interval(label, level["rate"], level["low"], level["high"]))
            colour_of[label] = PALETTE[f % len(PALETTE)]
    fig = intervals(rows, title=title, x_label="conversion rate (model, 95% interval)", percent=True,
                    colour_of=colour_of)
    ax = fig.axes[0]
    for f, factor in enumerate(factors):  # a legend of factors, so the colours mean something
        ax.plot([], [], "o", color=PALETTE[f % len(PALETTE)], label=factor["name"])
    legend_outside(ax, title="factor")
    return fig


def heatmap(rows: Sequence[str], cols: Sequence[str], rates: Sequence[Sequence[float | None]], *,
            row_label: str, col_label: str, title: str | None = None) -> Figure:
    """Predicted conversion rate for each pair of levels of two factors; empty cells (no allowed
    combination) are blank. Viridis, readable in grey and with colour-vision deficiencies."""
    grid = np.array([[np.nan if v is None else float(v) for v in row] for row in rates], dtype=np.float64)
    grid = grid.reshape(len(rows), len(cols))
    fig, axes = new_figure(width=max(4.5, 2.2 + 1.1 * len(cols)), height=max(2.4, 1.4 + 0.55 * len(rows)))
    ax = axes[0, 0]
    ax.grid(False)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto")
    finite = grid[np.isfinite(grid)]
    middle = float(finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.1%}", ha="center", va="center", fontsize=8,
                    color="black" if value > middle else "white")
    ax.set_xticks(range(len(cols)), list(cols))
    ax.set_yticks(range(len(rows)), list(rows))
    colourbar = fig.colorbar(image, ax=ax, format=PercentFormatter(1.0, decimals=1))
    colourbar.set_label("conversion rate (model)")
    ax.set(title=title or f"Conversion rate by {row_label} and {col_label}", xlabel=col_label, ylabel=row_label)
    return fig
