"""The experiment's live results as a table for people (``croupier-variant list``)."""

from __future__ import annotations

COLUMNS = ("variant", "status", "trials", "conv", "rate", "95% CI", "P(best)", "share")


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def stats_table(stats: dict) -> str:
    """``stats`` is the admin API's /stats answer."""
    rows = []
    for v in stats["variants"]:
        label = v["id"] + (" (control)" if v.get("control") else "") + (
            " (winner)" if v["id"] == stats.get("winner") else "")
        low, high = v["ci95"]
        rows.append((label, v["status"], str(v["trials"]), str(v["conversions"]), _percent(v["rate"]),
                     f"{_percent(low)}-{_percent(high)}", f"{v['p_best']:.2f}", _percent(v["share"])))
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    # text columns left, numbers right
    align = ["<", "<", ">", ">", ">", ">", ">", ">"]
    lines = ["  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
             for row in [COLUMNS, *rows]]
    header = (f"experiment {stats['experiment']}: {stats['status']}, policy {stats['policy']}, "
              f"goal {stats['goal']}")
    return "\n".join([header, *lines])
