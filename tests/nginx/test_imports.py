"""Imports point one way: scripts/ uses nginx/, never the reverse."""

from __future__ import annotations

import ast
from pathlib import Path

NGINX = Path(__file__).resolve().parents[2] / "nginx"


def test_nginx_imports_nothing_from_scripts():
    offending = []
    for source in sorted(NGINX.glob("*.py")):
        for node in ast.walk(ast.parse(source.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offending += [f"{source.name}: {n}" for n in names if n.split(".")[:2] == ["croupier", "scripts"]]
    assert not offending, f"nginx/ must not import scripts/ (scripts/ imports nginx/): {offending}"
