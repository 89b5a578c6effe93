"""The archive backlog benchmark runs end to end on a real redis-server (few streams) and prints
every goal. The stall ratio is not checked here: the benchmark itself prints whether it is met."""

from __future__ import annotations

import re

from bench.archive_backlog import main


def test_a_few_streams_print_each_goal(capsys):
    assert main(["--streams", "150", "--looks", "3"]) == 0
    printed = capsys.readouterr().out
    goals = dict(re.findall(r"^goal (\S+): .* (met|not met)$", printed, re.M))
    assert set(goals) == {"archive-look-stall", "archive-look-backlog"}
    assert goals["archive-look-backlog"] == "met"
