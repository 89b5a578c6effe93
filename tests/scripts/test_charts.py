"""The shared charts: what each figure draws, legends that cover no data, rendering."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from croupier.scripts import charts
from croupier.scripts.charts import Event, Interval, Series

IDS = ["a", "b", "c"]
T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
TIMES = [T0 + timedelta(hours=h) for h in range(24)]


def drawn(fig):
    fig.canvas.draw()
    return fig


def assert_legend_outside(fig, ax=None):
    """The legend exists and its box lies right of the axes' data area: it covers no line."""
    fig = drawn(fig)
    ax = ax or fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None, "no legend"
    renderer = fig.canvas.get_renderer()
    box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 >= area.x1, f"legend {box} overlaps the axes {area}"


def labels(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_colours_are_stable_per_id_and_colour_blind_safe():
    first, second = charts.colours(["a", "b", "c"]), charts.colours(["a", "b", "c", "d"])
    assert all(first[k] == second[k] for k in first)
    assert len(set(first.values())) == 3
    assert set(first.values()) <= set(charts.PALETTE)


def test_styles_stay_distinct_past_the_palette():
    looks = {tuple(charts.style(i).values()) for i in range(20)}
    assert len(looks) == 20


def test_traffic_share_stacks_one_area_per_variant():
    trials = np.tile([10.0, 30.0, 60.0], (24, 1))
    fig = charts.traffic_share(TIMES, trials, IDS, events=[Event(TIMES[5], "guardrail: b capped")])
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    assert labels(ax) == IDS
    assert ax.get_ylabel() == "share of visitors"
    assert any("guardrail" in t.get_text() for t in ax.texts)
    assert_legend_outside(fig)


def test_traffic_share_of_empty_periods_is_zero_not_nan():
    fig = charts.traffic_share(TIMES[:2], np.zeros((2, 3)), IDS)
    for poly in fig.axes[0].collections:
        assert np.isfinite(poly.get_paths()[0].vertices).all()


def test_line_chart_bands_and_colours_follow_the_ids():
    colour_of = charts.colours(IDS)
    series = [Series(v, TIMES, np.full(24, 0.05), np.full(24, 0.04), np.full(24, 0.06)) for v in IDS]
    fig = charts.line_chart(series, title="Conversion rate", x_label="time (UTC)", y_label="rate",
                            colour_of=colour_of, percent=True, events=[Event(TIMES[3], "drift")])
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()[:3]] == IDS
    assert [line.get_color() for line in ax.get_lines()[:3]] == [colour_of[v] for v in IDS]
    assert len(ax.collections) == 3  # one band per series
    assert ax.get_title() == "Conversion rate"
    assert_legend_outside(fig)


def test_posterior_densities_integrate_to_one():
    fig = charts.posterior_densities([5, 20, 9], [95, 80, 91], IDS)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == IDS
    for line in lines:
        x, y = line.get_data()
        assert np.trapezoid(y, x) == pytest.approx(1.0, abs=0.01)
    assert_legend_outside(fig)


def test_gain_vs_even_split_shows_each_estimator_and_zero():
    fig = charts.gain_vs_even_split([Interval("DR", 40, 10, 70), Interval("IPS", 38, 2, 74)])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["DR", "IPS"]
    assert labels(ax) == ["even split"]
    assert_legend_outside(fig)


def test_strategy_comparison_rows_and_observed_line():
    rows = [Interval(n, 0.05 + i / 100, 0.04 + i / 100, 0.06 + i / 100) for i, n in enumerate(["uniform", "thompson", "fixed:b"])]
    fig = charts.strategy_comparison(rows, observed=0.06)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 3
    assert labels(ax) == ["observed"]
    assert_legend_outside(fig)


def test_regret_over_runs_has_a_mean_and_band_per_policy():
    rng = np.random.default_rng(1)
    x = np.arange(1, 101)
    runs = {"thompson": np.cumsum(rng.random((5, 100)), axis=1), "uniform": np.cumsum(rng.random((5, 100)) * 2, axis=1)}
    fig = charts.regret_over_time(x, runs)
    ax = fig.axes[0]
    assert labels(ax) == ["thompson", "uniform"]
    assert len(ax.collections) == 2
    mean = ax.get_lines()[0].get_ydata()
    assert np.allclose(mean, runs["thompson"].mean(axis=0))
    assert_legend_outside(fig)


def test_segment_chart_a_row_per_segment_a_colour_per_variant():
    rate = np.array([[0.05, 0.08, 0.06], [0.04, 0.07, 0.05]])
    fig = charts.segment_chart(["device=mobile", "device=desktop"], IDS, rate, rate - 0.01, rate + 0.01)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["device=mobile", "device=desktop"]
    assert labels(ax) == IDS
    assert_legend_outside(fig)


def test_factor_rollups_and_heatmap():
    factors = [{"name": "headline", "levels": [{"name": "h1", "rate": 0.05, "low": 0.04, "high": 0.06},
                                               {"name": "h2", "rate": 0.07, "low": 0.06, "high": 0.08}]},
               {"name": "button", "levels": [{"name": "red", "rate": 0.06, "low": 0.05, "high": 0.07},
                                             {"name": "blue", "rate": None, "low": None, "high": None}]}]
    fig = charts.factor_rollups(factors)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["headline: h1", "headline: h2", "button: red"]
    assert labels(ax) == ["headline", "button"]
    assert_legend_outside(fig)

    fig = drawn(charts.heatmap(["h1", "h2"], ["red", "blue"], [[0.05, None], [0.07, 0.08]],
                               row_label="headline", col_label="button"))
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["5.0%", "7.0%", "8.0%"]  # the empty cell stays blank
    assert ax.get_xlabel() == "button" and ax.get_ylabel() == "headline"


def test_empty_inputs_say_so():
    fig = charts.line_chart([], title="t", x_label="x", y_label="y")
    assert [t.get_text() for t in fig.axes[0].texts] == ["no data yet"]


def test_png_data_uri_and_svg():
    fig = charts.posterior_densities([2], [8], ["a"])
    data = charts.png(fig)
    assert data.startswith(b"\x89PNG")
    uri = charts.data_uri(fig)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG")
    text = charts.svg(fig)
    assert text.startswith("<svg") and "http://www.w3.org/2000/svg" in text
    assert "href=\"http" not in text  # nothing fetched from outside


def test_traffic_share_in_periods_draws_blocks_even_for_one_period():
    fig = drawn(charts.traffic_share(TIMES[:1], np.array([[1.0, 3.0, 0.0]]), IDS, end=TIMES[1]))
    ax = fig.axes[0]
    widths = [poly.get_paths()[0].get_extents().width for poly in ax.collections]
    assert len(widths) == 3 and all(w > 0 for w in widths)
    assert_legend_outside(fig)


def test_panels_in_a_grid_keep_their_legends_off_every_axes():
    fig, axes = charts.new_figure(12, 7, nrows=2, ncols=2)
    x = np.arange(1, 50)
    for n, ax in enumerate(axes.flat):
        series = [Series(f"policy {k}", x, np.log(x) * (k + 1)) for k in range(4)]
        charts.line_chart(series, title=f"panel {n}", x_label="visitors", y_label="regret", ax=ax, log_x=n % 2 == 1)
    drawn(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_window_extent(renderer) for ax in axes.flat]
    for ax in axes.flat:
        legend = ax.get_legend().get_window_extent(renderer)
        assert not any(legend.overlaps(box) for box in boxes), "a legend covers a panel"


def test_an_interval_without_bounds_draws_its_point():
    fig = drawn(charts.gain_vs_even_split([Interval("DR", 3.0, float("-inf"), float("inf"))]))
    low, high = fig.axes[0].get_xlim()
    assert np.isfinite([low, high]).all() and low <= 3.0 <= high
