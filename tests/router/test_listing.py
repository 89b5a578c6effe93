"""The experiments list's query, order and cursor, without servers."""

from __future__ import annotations

import base64
import json

import pytest

from croupier.router.experiments import InvalidExperiment, parse_experiment
from croupier.router.listing import (MAX_LIMIT, SORTS, Totals, decode_cursor, encode_cursor, parse_query, select,
                            totals)


def experiment(exp_id: str, **extra):
    return parse_experiment({"id": exp_id, "variants": [{"id": "a", "upstream": "h:1"}, {"id": "b", "upstream": "h:2"}],
                             **extra})


EXPERIMENTS = [experiment(f"e{i:02d}", name=f"Sale {i % 3}", updated_at=1000 + (i * 7) % 10,
                          status=("running", "paused")[i % 2]) for i in range(10)]
# trials and conversions chosen so that trials and rate order differently, with ties
LIVE = {e.id: Totals(trials=(i % 4) * 10, conversions=i % 3) for i, e in enumerate(EXPERIMENTS)}


def live(e) -> Totals:
    return LIVE.get(e.id, Totals())


def params(**given) -> dict[str, list[str]]:
    return {k: [str(v)] for k, v in given.items()}


def walk(experiments, **given) -> list[str]:
    """Every page in turn, following next_cursor: the ids in the order served."""
    query, seen = parse_query(params(**given)), []
    while True:
        page = select(experiments, query, live)
        seen += [e.id for e in page.experiments]
        if page.next_cursor is None:
            return seen
        query = parse_query(params(cursor=page.next_cursor, limit=given.get("limit", 50)))


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pages_serve_every_experiment_once_in_order(sort, order):
    key = {"id": lambda e: e.id, "updated": lambda e: e.updated_at, "trials": lambda e: LIVE[e.id].trials,
           "rate": lambda e: LIVE[e.id].rate}[sort]
    expected = [e.id for e in sorted(EXPERIMENTS, key=lambda e: (key(e), e.id), reverse=order == "desc")]
    assert walk(EXPERIMENTS, sort=sort, order=order, limit=3) == expected


def test_default_orders_and_the_whole_list_without_a_limit():
    page = select(EXPERIMENTS, parse_query({}), live)
    assert [e.id for e in page.experiments] == sorted(e.id for e in EXPERIMENTS)
    assert page.next_cursor is None and page.total == 10
    busiest = select(EXPERIMENTS, parse_query(params(sort="trials", limit=1)), live).experiments[0]
    assert LIVE[busiest.id].trials == 30  # desc unless asked otherwise
    assert parse_query(params(cursor=encode_cursor("id", "asc", "e01", "e01"))).limit == 50


def test_a_cursor_stays_valid_when_experiments_come_and_go():
    query = parse_query(params(limit=4))
    first = select(EXPERIMENTS, query, live)
    assert [e.id for e in first.experiments] == ["e00", "e01", "e02", "e03"]
    # the last row served is removed, one before and one after the position are added
    changed = [e for e in EXPERIMENTS if e.id != "e03"] + [experiment("e00a"), experiment("e05a")]
    rest = walk_from(changed, first.next_cursor)
    assert rest == ["e04", "e05", "e05a", "e06", "e07", "e08", "e09"]


def walk_from(experiments, cursor: str) -> list[str]:
    seen = []
    while cursor:
        page = select(experiments, parse_query(params(cursor=cursor, limit=4)), live)
        seen += [e.id for e in page.experiments]
        cursor = page.next_cursor
    return seen


def test_filters_and_prefix_search_and_total():
    page = select(EXPERIMENTS, parse_query(params(status="paused", q="SALE 1")), live)
    assert [e.id for e in page.experiments] == ["e01", "e07"] and page.total == 2
    assert [e.id for e in select(EXPERIMENTS, parse_query(params(q="e0")), live).experiments][:2] == \
        ["e00", "e01"]
    assert select(EXPERIMENTS, parse_query(params(q="ale")), live).total == 0  # a prefix, not a substring
    tenants = [experiment("t1", tenant="acme"), experiment("t2")]
    assert [e.id for e in select(tenants, parse_query(params(tenant="acme")), live).experiments] == ["t1"]
    assert [e.id for e in select(tenants, parse_query(params(tenant="default")), live).experiments] == ["t2"]


def test_live_totals_are_read_only_where_the_order_needs_them():
    asked = []

    def recorded(e):
        asked.append(e.id)
        return live(e)

    select(EXPERIMENTS, parse_query(params(limit=2)), recorded)
    assert asked == []
    select(EXPERIMENTS, parse_query(params(sort="rate", status="running")), recorded)
    assert sorted(asked) == [e.id for e in EXPERIMENTS if e.status == "running"]


def test_totals_sum_the_experiments_variants_and_its_goal_only():
    e = experiment("x", goal="buy")
    counters = {"a": {"trials": 10.0, "conv:buy": 2.0, "conv:signup": 9.0}, "b": {"trials": 30.0, "conv:buy": 6.0},
                "gone": {"trials": 500.0, "conv:buy": 500.0}}
    assert totals(e, counters) == Totals(40, 8) and totals(e, counters).rate == 0.2
    assert totals(e, {}) == Totals(0, 0) and Totals().rate == 0.0


def test_cursor_round_trip_and_tampering():
    cursor = encode_cursor("rate", "desc", 0.123456789, "spring")
    assert decode_cursor(cursor) == ("rate", "desc", 0.123456789, "spring")
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    forged = [json.dumps(doc).encode() for doc in (["rate", "desc", "high", "x"], ["id", "asc", 3, "x"],
                                                   ["size", "asc", 1, "x"], {"id": "x"}, ["id", "asc", "x"])]
    for text in ["", "!!", "e30", "x" * 2000, *(base64.urlsafe_b64encode(f).decode() for f in forged)]:
        with pytest.raises(InvalidExperiment, match="^cursor: "):
            parse_query({"cursor": [text]})


@pytest.mark.parametrize("given, name", [
    ({"limit": ["0"]}, "limit"), ({"limit": [str(MAX_LIMIT + 1)]}, "limit"), ({"limit": ["ten"]}, "limit"),
    ({"limit": ["-1"]}, "limit"), ({"limit": ["٣"]}, "limit"),
    ({"sort": ["name"]}, "sort"), ({"order": ["up"]}, "order"), ({"status": ["live"]}, "status"),
    ({"tenant": ["Acme"]}, "tenant"), ({"q": ["x" * 201]}, "q"), ({"pge": ["2"]}, "pge"),
    ({"status": ["running", "paused"]}, "status"),
    ({"cursor": [encode_cursor("trials", "desc", 3, "x")], "sort": ["id"]}, "cursor"),
    ({"cursor": [encode_cursor("trials", "desc", 3, "x")], "order": ["asc"]}, "cursor"),
])
def test_bad_parameters_are_named(given, name):
    with pytest.raises(InvalidExperiment, match=f"^{name}: "):
        parse_query(given)
