"""``croupier-variant list``: a capped variant's used/capacity column."""

from __future__ import annotations

from croupier.scripts.variant_table import stats_table


def row(variant: str, capacity: dict | None = None) -> dict:
    return {"id": variant, "control": variant == "a", "status": "active", "trials": 10, "conversions": 1,
            "rate": 0.1, "ci95": [0.0, 0.3], "p_best": 0.5, "share": 0.5, "capacity": capacity}


def stats(*variants: dict) -> dict:
    return {"experiment": "offer", "status": "running", "policy": "thompson", "goal": "signup",
            "variants": list(variants)}


def test_capped_variants_show_used_over_capacity_and_full():
    lines = stats_table(stats(
        row("a"), row("cashback", {"capacity": 500, "used": 120, "reserved": 7, "remaining": 373, "full": False}),
        row("gift", {"capacity": 10, "used": 12, "reserved": 0, "remaining": 0, "full": True}))).splitlines()
    assert lines[1].split()[-1] == "used/capacity"
    assert lines[2].split()[-1] == "-"
    assert lines[3].split()[-1] == "120/500"
    assert lines[4].split()[-2:] == ["12/10", "full"]


def test_no_column_without_a_capped_variant():
    assert "capacity" not in stats_table(stats(row("a"), row("b")))
