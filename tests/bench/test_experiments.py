"""The many-experiments benchmark runs end to end on real processes (tiny sizes, briefly)
and prints every figure and goal line. The goals' values are not checked here."""

from __future__ import annotations

import json
import re

from bench.experiments import main, quantile

GOALS = {"throughput", "p99", "no-fallback", "snapshot-age", "idle-cpu"}


def test_quantile_of_what_a_histogram_observed_between_two_scrapes():
    before = {0.01: 5.0, 0.1: 10.0, float("inf"): 10.0}
    after = {0.01: 5.0, 0.1: 19.0, float("inf"): 20.0}
    assert quantile(before, after, 0.5) == 0.1  # 9 of the 10 new observations took <= 0.1 s
    assert quantile(before, after, 0.99) == float("inf")
    assert quantile(None, None, 0.5) is None  # the router has no such metric (yet): "n/a"
    assert quantile(after, after, 0.5) is None  # nothing observed in between


def test_a_tiny_run_prints_every_line_and_goal(tmp_path, capsys):
    out = tmp_path / "experiments.json"
    assert main(["--sizes", "1,20", "--duration", "1", "--rounds", "1", "--idle-seconds", "1",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = re.findall(r"^\s+(1|20) +\d+ +[\d.]+ +[\d.]+ +\d+ +\d+ +(?:[\d.]+|n/a|inf) +(?:[\d.]+|n/a|inf) "
                      r"+(?:[\d.]+|n/a) +(?:[\d.]+|n/a|inf) +[\d.]+% +[\d.]+$", printed, re.M)
    assert rows == ["1", "20"], printed
    nginx_rows = re.findall(r"^\s+(1|20) +[\d.]+ +[\d.]+ +\d+ +[\d.]+ +[\d.]+ +\d+$", printed, re.M)
    assert nginx_rows == ["1", "20"], printed
    assert re.search(r"^Redis memory: \d+ B per idle experiment .* B each\)$", printed, re.M), printed
    goals = dict(re.findall(r"^goal (\S+): .* (met|not met)$", printed, re.M))
    assert set(goals) == GOALS
    figures = json.loads(out.read_text())
    assert [s["experiments"] for s in figures["sizes"]] == [1, 20]
