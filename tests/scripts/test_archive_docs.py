"""docs/archive.md's DuckDB queries, run against a generated archive: they parse, and they
answer what the page says they do."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest

from croupier.router.archive_files import entry_day, write_entries

PAGE = Path(__file__).resolve().parents[2] / "docs" / "archive.md"
DAY_MS = 86_400_000
RATES = {"a": 0.05, "b": 0.2}


def queries() -> list[str]:
    section = PAGE.read_text().split("## DuckDB queries", 1)[1]
    return re.findall(r"```sql\n(.*?)```", section, re.DOTALL)


def stream(seed: int, start_ms: int, visitors: int) -> list[tuple[str, dict[str, str]]]:
    """Assignments over two days (the split moves from even to 30/70), a conversion for some."""
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(visitors):
        ms = start_ms + i * (2 * DAY_MS // visitors)
        split = {"a": 0.5, "b": 0.5} if ms < start_ms + DAY_MS else {"a": 0.3, "b": 0.7}
        variant = "a" if rng.random() < split["a"] else "b"
        entries.append((f"{ms}-0", {"type": "assign", "variant": variant, "visitor": f"v{i}", "reason": "new",
                                    "probs": json.dumps(split), "ts": str(ms), "segment": ""}))
        if rng.random() < RATES[variant]:
            entries.append((f"{ms}-1", {"type": "convert", "variant": variant, "visitor": f"v{i}", "goal": "signup",
                                        "value": "" if i % 2 else "12.5", "ts": str(ms), "id": "", "segment": ""}))
    return entries


@pytest.fixture
def archive(tmp_path, monkeypatch) -> dict[str, list]:
    start = 1_700_000_000_000 // DAY_MS * DAY_MS
    written = {"demo": stream(1, start, 4000), "other": stream(2, start, 500)}
    for experiment, entries in written.items():
        for part in range(0, len(entries), 1000):  # several files a day, as the archiver writes them
            write_entries(tmp_path / "run" / "archive", experiment, entries[part:part + 1000])
    monkeypatch.chdir(tmp_path)
    return written


def test_every_documented_query_runs_and_answers_right(archive):
    found = queries()
    assert len(found) == 5
    counts, rates, mix, hourly = (duckdb.sql(query).fetchall() for query in found[:4])

    expected = Counter((exp, entry_day(i), f["type"]) for exp, entries in archive.items() for i, f in entries)
    assert {(exp, str(day), kind): n for exp, day, kind, n in counts} == dict(expected)

    demo = archive["demo"]
    first = {}
    for entry_id, f in demo:
        if f["type"] == "assign":
            first.setdefault(f["visitor"], (entry_day(entry_id), f["variant"]))
    converted = {f["visitor"] for _, f in demo if f["type"] == "convert"}
    visitors, conversions = defaultdict(int), defaultdict(int)
    for visitor, key in first.items():
        visitors[key] += 1
        conversions[key] += visitor in converted
    assert len(rates) == 4
    for day, variant, n, conv, rate in rates:
        key = (str(day), variant)
        assert (n, conv) == (visitors[key], conversions[key])
        assert rate == pytest.approx(conv / n, abs=1e-4)
    assert sum(n for _, _, n, _, _ in rates) == 4000

    shares = defaultdict(float)
    for day, variant, n, share, propensity in mix:
        shares[day] += share
        assert propensity == (0.5 if day == min(d for d, *_ in mix) else {"a": 0.3, "b": 0.7}[variant])
    assert all(total == pytest.approx(1.0, abs=1e-3) for total in shares.values())

    assert sum(n for _, n, _ in hourly) == len(converted)
    revenue = sum(12.5 for _, f in demo if f["type"] == "convert" and f["value"])
    assert sum(r or 0 for _, _, r in hourly) == pytest.approx(revenue)

    duckdb.sql(found[4])
    with open("demo-events.csv") as rows:
        exported = list(csv.DictReader(rows))
    assert [row["entry_id"] for row in exported] == [entry_id for entry_id, _ in demo]
    assert "day" in exported[0] and "experiment" not in exported[0]
