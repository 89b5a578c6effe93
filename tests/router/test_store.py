"""One experiment's assignments encoded for record_assignments.lua: pure, no Redis."""

from __future__ import annotations

import json

from croupier.router.store import AssignmentRecord, assignment_batch

HALF = (("a", 0.5), ("b", 0.5))
QUARTER = (("a", 0.25), ("b", 0.75))


def rows(text: str) -> list[list[str]]:
    assert text == "" or text.endswith("\n")
    return [line.split("\t") for line in text.splitlines()]


def test_counters_are_summed_per_field_and_splits_numbered_once():
    batch = assignment_batch([
        AssignmentRecord("demo", "a", "v1", "new", HALF, 60.0),
        AssignmentRecord("demo", "b", "v2", "new", HALF, 61.0, segment="device=mobile", features=(3, 7)),
        AssignmentRecord("demo", "b", "v3", "holdout", QUARTER, 125.5, channel="email"),
    ], bucket_seconds=60)
    assert rows(batch["trials"]) == [["a:trials", "1"], ["b:trials", "2"]]
    assert rows(batch["bucket_trials"]) == [["60:a:trials", "1"], ["60:b:trials", "1"], ["120:b:trials", "1"]]
    assert rows(batch["segment_trials"]) == [["device=mobile|b:trials", "1"]]
    assert rows(batch["feature_pairs"]) == [["b|3|3", "1"], ["b|3|7", "1"], ["b|7|7", "1"]]
    assert {field: float(total) for field, total in rows(batch["expected"])} == {
        "60:a:expected": 1.0, "60:b:expected": 1.0, "120:a:expected": 0.25, "120:b:expected": 0.75}
    assert [json.loads(line) for line in batch["splits"].splitlines()] == [dict(HALF), dict(QUARTER)]
    assert rows(batch["entries"]) == [
        ["a", "v1", "new", "1", "60000", "", ""],
        ["b", "v2", "new", "1", "61000", "device=mobile", ""],
        ["b", "v3", "holdout", "2", "125500", "", "email"],
    ]


def test_device_classes_are_counted_per_bucket_without_a_string_per_visitor():
    batch = assignment_batch([
        AssignmentRecord("demo", "a", "v1", "new", HALF, 60.0, device="mobile"),
        AssignmentRecord("demo", "b", "v2", "new", HALF, 61.0, device="mobile"),
        AssignmentRecord("demo", "a", "v3", "new", HALF, 62.0, device="desktop"),
        AssignmentRecord("demo", "b", "v4", "new", HALF, 63.0),  # the channels API without a context
        AssignmentRecord("demo", "a", "v5", "new", HALF, 64.0, device="smartwatch"),  # a caller's own token
        AssignmentRecord("demo", "a", "v6", "new", HALF, 65.0, device="fridge"),
        AssignmentRecord("demo", "b", "v7", "new", HALF, 125.0, device="mobile"),
    ], bucket_seconds=60)
    assert rows(batch["mix_trials"]) == [["60:device=mobile", "2"], ["60:device=desktop", "1"],
                                         ["60:device=unknown", "1"], ["60:device=other", "2"],
                                         ["120:device=mobile", "1"]]


def test_a_stray_separator_cannot_shift_a_field():
    batch = assignment_batch([AssignmentRecord("demo", "a", "odd\tvisitor\n", "new", HALF, 0.0)], bucket_seconds=60)
    assert rows(batch["entries"]) == [["a", "odd visitor ", "new", "1", "0", "", ""]]
