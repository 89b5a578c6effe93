"""Imports point one way inside the router: the request path never pulls in offline analysis,
and no API imports another transport's module for a helper."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROUTER = Path(__file__).resolve().parents[2] / "router"


def module_of(name: str) -> str | None:
    """``croupier.router.snapshot`` (or ``router.snapshot``) → ``snapshot``; None outside the router."""
    parts = name.split(".")
    if parts[0] == "croupier":
        parts = parts[1:]
    return parts[1] if len(parts) > 1 and parts[0] == "router" else None


@cache
def imports(module: str) -> frozenset[str]:
    """The router modules ``module`` imports directly (a package counts as its ``__init__``)."""
    path = ROUTER / f"{module}.py"
    if not path.exists():
        path = ROUTER / module / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(module_of(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(module_of(node.module))
    found.discard(None)
    return frozenset(found)


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for found in imports(todo.pop()):
            if found not in seen:
                seen.add(found)
                todo.append(found)
    return seen


@pytest.mark.parametrize("module, never", [
    ("admin", "dashboard"),  # the session checks both need live in router/session.py
    ("snapshot", "ope"),  # the refresh loop never loads offline analysis
    ("decide", "ope"),
    ("channels", "beacon"),  # request bodies are read by router/request_body.py
    ("channels", "decide"),  # both are adapters of router/assign.py
    ("beacon", "decide"),
    ("assign", "decide"),
])
def test_imports_point_one_way(module, never):
    assert never not in reachable(module), f"router/{module}.py reaches router/{never}.py"


def test_the_rules_import_nothing_of_the_router():
    """The variant server's image copies router/rules.py alone."""
    assert reachable("rules") == set()
