"""The batch benchmark runs end to end on real processes (with a small list) and prints
every goal. Rates are not checked here: the benchmark itself prints whether they are met."""

from __future__ import annotations

import re

from bench.batch import main


def test_a_small_list_prints_each_goal(capsys):
    assert main(["--customers", "3000", "--request", "1000"]) == 0
    printed = capsys.readouterr().out
    goals = dict(re.findall(r"^goal (\S+): .* (met|not met)$", printed, re.M))
    assert set(goals) == {"assign-rate", "memory-per-customer", "same-list-again", "every-trial-counted"}
    assert goals["same-list-again"] == "met" and goals["every-trial-counted"] == "met"
