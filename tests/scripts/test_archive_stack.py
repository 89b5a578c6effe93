"""The local stack with its archiver (scripts/stack.py --archive): visitors through NGINX end
up in run/archive, and croupier-ope reads them from there."""

from __future__ import annotations

import io
import json

from croupier.router.archive_files import archived_files, read_entries
from croupier.scripts.ope import main as ope_main
from croupier.scripts.simulate import run_simulation
from tests.conftest import eventually, settled_totals


def test_the_stacks_archiver_archives_the_demo(make_stack):
    stack = make_stack(archive=True)
    assert any(p.name == "archiver" for p in stack.processes)
    tally = run_simulation(stack.config.base_url, {"a": 0.04, "b": 0.2, "c": 0.05}, visitors=300, seed=3,
                           concurrency=16)
    assert not tally.errors, tally.errors
    settled_totals(stack, "trials")
    root = stack.config.run_dir / "archive"

    def archived() -> int:
        return sum(1 for _, f in read_entries(root, "demo") if f.get("type") == "assign") \
            if archived_files(root, "demo") else 0

    eventually(lambda: archived() == 300, timeout=40, interval=0.5)
    out = io.StringIO()
    assert ope_main(["--quiet", "--experiment", "demo", "--redis-url", stack.config.redis_url, "--archive", str(root),
                     "--json", "--policy", "fixed:b"], out=out) == 0
    assert json.loads(out.getvalue())["join"]["assignments"] == 300
