"""The load benchmark runs end to end on real processes (briefly) and reports every goal.
Timings are not checked here: the benchmark itself prints whether they are met."""

from __future__ import annotations

import json
import re

from bench.load import CONFIGS, main, parse_wrk

WRK_OUTPUT = """Running 3s test @ http://127.0.0.1:1/
  1 threads and 32 connections
  Latency Distribution
     50%  662.00us
     75%    0.90ms
     90%    1.10ms
     99%    1.28ms
  139155 requests in 3.00s, 1.70GB read
  Non-2xx or 3xx responses: 2
  Socket errors: connect 0, read 1, write 0, timeout 0
Requests/sec:  46385.12
"""


def test_parse_wrk_reads_rate_latency_and_errors():
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed["rps"] == 46385.12 and parsed["requests"] == 139155
    assert parsed["p50_ms"] == 0.662 and parsed["p99_ms"] == 1.28
    assert parsed["errors"] == 3  # non-2xx and socket errors both count


def test_a_short_run_measures_every_configuration_and_prints_each_goal(tmp_path, capsys):
    out = tmp_path / "load.json"
    assert main(["--rounds", "1", "--duration", "1", "--latency-duration", "1", "--returning-pool", "20",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    goals = dict(re.findall(r"^goal (\S+): .* (met|not met)$", printed, re.M))
    assert set(goals) == {"new-vs-null", "returning-vs-plain", "added-p50-returning", "added-p50-new",
                          "keepalive", "no-errors"}
    assert goals["no-errors"] == "met" and goals["keepalive"] == "met"
    figures = json.loads(out.read_text())
    assert set(figures["results"]) == set(CONFIGS)
    assert all(r["rps"] > 0 and r["requests"] > 0 for r in figures["results"].values())
    # every new visitor of the run was recorded, none lost on the way to Redis
    assert figures["meta"]["trials_recorded"] >= figures["results"]["new"]["requests"]
