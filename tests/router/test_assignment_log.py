"""The assignment log as the recorder writes it: one stream entry per assignment, its fields
never shifted, on a real redis-server."""

from __future__ import annotations

import asyncio
import json

from croupier.router.experiments import parse_experiment
from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, Store, parse_mix_buckets

EXPERIMENT = {"id": "demo", "variants": [{"id": v, "upstream": f"127.0.0.1:{9101 + i}"} for i, v in enumerate("ab")]}
SPLIT_1 = (("a", 0.5), ("b", 0.5))
SPLIT_2 = (("a", 0.25), ("b", 0.75))


def test_every_assignment_is_one_entry_with_its_own_split_segment_and_channel_and_counted_by_device(redis_url):
    records = [
        AssignmentRecord("demo", "a", "visitor-1", "new", SPLIT_1, 1000.0, device="desktop"),
        AssignmentRecord("demo", "b", "visitor-2", "holdout", SPLIT_2, 1000.5, segment="device=mobile",
                         device="mobile"),
        AssignmentRecord("demo", "b", "cust-3", "new", SPLIT_1, 1001.0, channel="email"),
        # a separator where none should ever be must not shift the fields of any entry
        AssignmentRecord("demo", "a", "odd\tvisitor\n", "new", SPLIT_2, 1002.0),
    ]

    async def work():
        store = Store(Settings(redis_url=redis_url))
        try:
            await store.create_experiment(parse_experiment(EXPERIMENT))
            await store.record_assignments(records)
            return ([fields for _, fields in await store.events("demo")], await store.counters(["demo"]),
                    (await store.mix_hashes(["demo"]))["demo"])
        finally:
            await store.close()

    entries, counters, mix = asyncio.run(work())
    assigned = [e for e in entries if e["type"] == "assign"]
    assert [(e["variant"], e["visitor"], e["reason"], e["ts"], e["segment"], e.get("channel")) for e in assigned] == [
        ("a", "visitor-1", "new", "1000000", "", None),
        ("b", "visitor-2", "holdout", "1000500", "device=mobile", None),
        ("b", "cust-3", "new", "1001000", "", "email"),
        ("a", "odd visitor ", "new", "1002000", "", None),
    ]
    assert [json.loads(e["probs"]) for e in assigned] == [dict(s) for s in (SPLIT_1, SPLIT_2, SPLIT_1, SPLIT_2)]
    assert counters["demo"]["a"]["trials"] == 2 and counters["demo"]["b"]["trials"] == 2
    # per time bucket (60 s by default) and device class; a record without one is "unknown"
    assert parse_mix_buckets(mix) == {960: {"device": {"desktop": 1.0, "mobile": 1.0, "unknown": 2.0}}}
