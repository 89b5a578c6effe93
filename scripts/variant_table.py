"""The experiment's live results as tables for people (``croupier-variant list``): one row per
variant, or for a factorial experiment one table per factor, a row per level."""

from __future__ import annotations

COLUMNS = ("variant", "status", "trials", "conv", "rate", "95% CI", "P(best)", "share")
LEVEL_COLUMNS = ("trials", "rate", "95% CI", "P(best)")


def _percent(x: float) -> str:
    return f"{100 * x:.1f}%"


def _interval(low: float, high: float) -> str:
    return f"{_percent(low)}-{_percent(high)}"


def _table(columns: tuple[str, ...], rows: list[tuple[str, ...]], align: str) -> list[str]:
    """Aligned lines, ``align`` one character per column (``<`` text, ``>`` numbers)."""
    widths = [max(len(r[i]) for r in [columns, *rows]) for i in range(len(columns))]
    return ["  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
            for row in [columns, *rows]]


def _heading(stats: dict) -> str:
    return (f"experiment {stats['experiment']}: {stats['status']}, policy {stats['policy']}, "
            f"goal {stats['goal']}")


def stats_table(stats: dict) -> str:
    """``stats`` is the admin API's /stats answer; with ``factors`` in it, ``factor_tables``."""
    if stats.get("factors"):
        return factor_tables(stats)
    rows = []
    for v in stats["variants"]:
        label = v["id"] + (" (control)" if v.get("control") else "") + (
            " (winner)" if v["id"] == stats.get("winner") else "")
        low, high = v["ci95"]
        rows.append((label, v["status"], str(v["trials"]), str(v["conversions"]), _percent(v["rate"]),
                     _interval(low, high), f"{v['p_best']:.2f}", _percent(v["share"])))
    if any(v.get("capacity") for v in stats["variants"]):  # a column only where some variant is capped
        rows = [(*row, _capacity(v.get("capacity"))) for row, v in zip(rows, stats["variants"])]
        return "\n".join([_heading(stats), *_table((*COLUMNS, "used/capacity"), rows, "<<>>>>>>>")])
    return "\n".join([_heading(stats), *_table(COLUMNS, rows, "<<>>>>>>")])


def _capacity(figures: dict | None) -> str:
    """``used/capacity`` of a capped variant, ``full`` once every unit is used; ``-`` uncapped."""
    if not figures:
        return "-"
    return f"{figures['used']}/{figures['capacity']}" + (" full" if figures["full"] else "")


def factor_tables(stats: dict) -> str:
    """A factorial experiment's rollup: the best combination, then per factor each level's
    trials, rate with its 95% interval and probability to be the factor's best level. The
    first level of a factor is its control level."""
    lines = [_heading(stats)]
    best = stats.get("best")
    if best:
        lines.append(f"best combination: {best['arm']}, rate {_percent(best['rate'])} "
                     f"({_interval(best['low'], best['high'])})")
    for factor in stats["factors"]:
        rows = [(level["name"] + (" (control)" if i == 0 else ""), str(level["trials"]), _percent(level["rate"]),
                 _interval(level["low"], level["high"]), f"{level['p_best']:.2f}")
                for i, level in enumerate(factor["levels"])]
        lines += ["", *_table((factor["name"], *LEVEL_COLUMNS), rows, "<>>>>")]
    return "\n".join(lines)
