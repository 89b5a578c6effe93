"""The lines a benchmark ends with, one per goal: ``goal <name>: <figure> (<target>) met``
or ``not met`` (tests/bench read them)."""

from __future__ import annotations

from collections.abc import Iterable


def print_goals(goals: Iterable[tuple[str, str, str, bool]]) -> None:
    """``goals``: (name, the measured figure in words, the target, whether it is met)."""
    for name, figure, target, ok in goals:
        print(f"goal {name}: {figure} ({target}) {'met' if ok else 'not met'}")
