"""``croupier-simulate`` end to end: the text summary, a self-contained HTML report that opens in
headless Chromium with every chart, and PNGs that a seed reproduces byte for byte."""

import json
import re
from pathlib import Path

import pytest

from croupier.scripts.what_if import main
from tests.browser import launch_chromium

CHARTS = ("traffic-share", "traffic-share-band", "regret", "gain-over-time", "gain")
SMALL = ["--rates", "a=0.02,b=0.06,c=0.03", "--daily-visitors", "800", "--days", "6", "--runs", "6", "--quiet"]
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "scenario.yml"


def test_html_report_opens_with_every_chart_and_nothing_from_outside(tmp_path, capsys):
    out = tmp_path / "sim.html"
    assert main([*SMALL, "--drift", "4:a=0.08", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "conversions gained over an even split: +" in printed
    assert "regret against always showing the best of the moment" in printed
    assert f"report: {out}" in printed
    html = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing to fetch
    with launch_chromium() as browser:
        requests = []
        browser.context.on("request", lambda r: requests.append(r.url))
        page = browser.page
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        shown = page.eval_on_selector_all(
            "figure[data-chart] img", "imgs => imgs.map(i => [i.closest('figure').dataset.chart, i.naturalWidth])")
        assert [name for name, _ in shown] == list(CHARTS)
        assert all(width > 300 for _, width in shown), shown  # each image decoded
        assert "from day 4" in page.inner_text("#variants")  # the drift in the scenario table
        assert page.inner_text("#card-best .value") == "a"
        browser.assert_no_console_errors()
    outside = [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not outside, outside


def test_png_charts_are_identical_for_a_seed_and_differ_for_another(tmp_path):
    def charts(folder, seed):
        assert main([*SMALL, "--format", "png", "--out", str(tmp_path / folder), "--seed", str(seed)]) == 0
        return {p.name: p.read_bytes() for p in sorted((tmp_path / folder).glob("*.png"))}

    one, two, other = charts("one", 5), charts("two", 5), charts("other", 6)
    assert list(one) == [f"{n:02d}-{name}.png" for n, name in enumerate(CHARTS, 1)]
    assert one == two
    assert one["03-regret.png"] != other["03-regret.png"]


def test_example_scenario_file_with_options_over_it(tmp_path, capsys):
    out = str(tmp_path / "e.html")
    assert main([str(EXAMPLE), "--runs", "3", "--daily-visitors", "200", "--quiet", "--out", out]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert "200 visitors a day for 30 days" in first and "3 runs" in first


def test_json_figures_per_run_and_over_time(tmp_path):
    path = tmp_path / "figures.json"
    assert main([*SMALL, "--out", str(tmp_path / "s.html"), "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert data["best"] == "b" and data["scenario"]["runs"] == 6 and len(data["runs"]) == 6
    gains = sorted(run["gain"] for run in data["runs"])
    assert gains[0] <= data["over_time"]["gain"]["median"][-1] <= gains[-1]
    assert all(abs(sum(run["final_share"].values()) - 1) < 1e-3 for run in data["runs"])
    assert len(data["over_time"]["days"]) == len(data["over_time"]["share"]["a"]["median"]) == 6 * 24


def test_json_scenario(tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"variants": [{"id": "a", "rate": 0.04}, {"id": "b", "rate": 0.05}],
                                "daily_visitors": 300, "days": 2, "runs": 2, "policy": "kl_ucb"}))
    assert main([str(path), "--quiet", "--out", str(tmp_path / "s.html")]) == 0
    assert "policy kl_ucb" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    ([], "scenario: give a scenario file, or --rates, --daily-visitors and --days"),
    (["--rates", "a=0.04", "--daily-visitors", "10", "--days", "2"], "variants: must be a list of at least two"),
    ([*SMALL, "--policy", "ucb1", "--policy-params", '{"exploration": 0}'], "policy_params.exploration: must be"),
    ([*SMALL, "--policy-params", "{x"], "--policy-params: not valid JSON"),
    ([*SMALL, "--drift", "9:b=0.1"], "drift.day: must be an integer between 2 and days (6)"),
    (["missing.yml"], "scenario: cannot read missing.yml"),
    ([*SMALL, "--format", "png", "--out", __file__], f"--out {__file__}: --format png writes a folder"),
])
def test_errors_name_the_field_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"croupier-simulate: {message}"), err
