"""croupier-variant on a real local stack: redis-server, a router, the demo variants and NGINX."""

from __future__ import annotations

from croupier.scripts.processes import pid_alive
from tests.conftest import Visitor, eventually, variant_stats

HEADLINE = "Sunny savings for everyone"


def new_visitor_gets(stack, variant_id: str, tries: int = 60) -> Visitor:
    """A fresh visitor that was assigned ``variant_id`` (the bandit splits new visitors)."""
    def attempt():
        for _ in range(tries):
            visitor = Visitor(stack.config.base_url)
            if visitor.variant() == variant_id:
                return visitor
            visitor.close()
        return None
    return eventually(attempt, timeout=10)


def add_d(cli, *extra: str):
    return cli("add", "d", "--from-template", "--headline", HEADLINE, "--cta", "Count me in",
               "--copy", "No fees, ever", "--copy", "Cancel any time", "--primary", "#123456", *extra)


def test_add_pause_resume_remove_with_the_local_target(variant_cli):
    cli, stack = variant_cli, variant_cli.stack
    added = add_d(cli, "--json", "--prior-rate", "0.05", "--prior-weight", "200")
    assert added.code == 0, added.err
    result = added.json()
    assert result["status"] == "active" and result["upstream"].startswith("127.0.0.1:")
    assert (result["prior_alpha"], result["prior_beta"]) == (10.0, 190.0)
    for step in ("starting variant server", "waiting for", "registering 'd'", "reloading NGINX", "activating"):
        assert step in added.err
    assert cli.params_file("d").exists()
    pid = int((cli.pid_dir / "demo" / "d.pid").read_text().split()[0])
    assert pid_alive(pid)
    assert result["upstream"] in stack.nginx_conf.read_text()  # on NGINX's allowlist

    visitor = new_visitor_gets(stack, "d")
    page = visitor.get("/").text
    assert HEADLINE in page and "Cancel any time" in page and "#123456" in page
    assert "Brightside" in page  # the rest comes from the control's page

    def listed_d() -> dict:
        return {row["id"]: row for row in cli("list", "--json").json()["variants"]}["d"]

    # the visitor who got d was counted (its assignment is written within the flush interval)
    eventually(lambda: listed_d()["trials"] >= 1, timeout=10, interval=0.2)
    assert listed_d()["status"] == "active"
    table = cli("list")
    assert table.code == 0 and "P(best)" in table.out and "\nd " in table.out and "a (control)" in table.out

    paused = cli("pause", "d", "--json")
    assert paused.code == 0 and paused.json()["status"] == "paused"
    # reassigned within the routers' refresh plus the routing pass (3 s in tests, as in tests/faults/test_router_and_redis_down.py)
    eventually(lambda: visitor.variant() != "d", timeout=8, interval=0.5)
    assert variant_stats(stack)["d"]["status"] == "paused"

    assert cli("resume", "d").code == 0
    assert variant_stats(stack)["d"]["status"] == "active"
    new_visitor_gets(stack, "d")

    declined = cli("promote", "d", stdin="n\n")
    assert declined.code == 1 and "not promoted" in declined.err
    assert cli("list", "--json").json()["status"] == "running"

    removed = cli("remove", "d", "--json")
    assert removed.code == 0, removed.err
    assert "d" not in variant_stats(stack)
    assert not pid_alive(pid)
    assert not (cli.pid_dir / "demo" / "d.pid").exists() and not cli.params_file("d").exists()
    assert result["upstream"] not in stack.nginx_conf.read_text()
    assert eventually(lambda: all(Visitor(stack.config.base_url).variant() != "d" for _ in range(10)))


def test_promote_sends_everyone_to_the_winner(variant_cli):
    cli, stack = variant_cli, variant_cli.stack
    assert add_d(cli).code == 0
    promoted = cli("promote", "d", "--yes", "--json")
    assert promoted.code == 0, promoted.err
    assert promoted.json() == {"experiment": "demo", "status": "ended", "winner": "d"}

    def everyone_gets_d():
        return {Visitor(stack.config.base_url).variant() for _ in range(10)} == {"d"}
    eventually(everyone_gets_d, timeout=8, interval=0.5)
    assert HEADLINE in Visitor(stack.config.base_url).get("/").text
