"""Which experiments the retrainer trains, decided without servers."""

from __future__ import annotations

from croupier.router.retrainer import Due, drift_alerts, due_rounds
from croupier.router.store import ModelHead


def head(*, version=1, through="5-0", attempted=1000.0, drift="", last="9-0") -> ModelHead:
    return ModelHead(version, through, attempted, drift, last)


def test_schedule_needs_new_events_and_the_interval():
    heads = {"never": head(version=0, through="", attempted=0.0), "due": head(attempted=0.5),
             "recent": head(attempted=1000.0), "nothing_new": head(through="9-0", attempted=0.5),
             "empty": head(version=0, through="", attempted=0.0, last="")}
    assert due_rounds(heads, {}, interval=600, now=1100.0) == [Due("never", "schedule"), Due("due", "schedule")]


def test_an_open_drift_alert_not_acted_on_comes_first_and_only_once():
    heads = {"a": head(attempted=0.5), "b": head(attempted=1000.0), "c": head(attempted=1000.0, drift="x1")}
    drift = drift_alerts({"drift|b|v1": "x2", "drift|b|v2": "x1", "drift|c|v1": "x1", "mix|a|": "x9",
                          "srm|a|": "x8"})
    assert drift == {"b": "x1,x2", "c": "x1"}
    assert due_rounds(heads, drift, interval=600, now=1100.0) == [Due("b", "drift", "x1,x2"), Due("a", "schedule")]
    # a drift alert with no new events since the last round: nothing to learn from yet
    assert due_rounds({"b": head(through="9-0")}, drift, interval=600, now=1100.0) == []


def test_a_drift_round_starts_at_the_earliest_change_its_alerts_date():
    from croupier.router.retrainer import change_start
    alerts = [{"details": {"changed_at": 1_700_000_600}}, None, {"details": {"changed_at": 1_700_000_060}},
              {"details": {"kind": "rate"}}]
    assert change_start(alerts) == 1_700_000_060_000
    assert change_start([None, {"details": {}}]) is None
