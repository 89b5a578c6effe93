"""Failures visitors must never see: the router or Redis gone, on real processes."""

from __future__ import annotations

import time

from croupier.router.passes import token_of
from croupier.scripts.processes import start_redis
from tests.conftest import Visitor, eventually, page_variant, variant_stats


def test_router_killed_nginx_still_serves_control(make_stack):
    stack = make_stack()
    visitor = Visitor(stack.config.base_url)
    assert visitor.get("/").status_code == 200
    # a returning visitor whose routing pass has expired needs the router (with a valid
    # pass NGINX keeps them on their variant without it: tests/router/test_passes.py)
    expired = token_of(visitor.client.cookies["croupier_demo"])
    visitor.client.cookies.clear()
    visitor.client.cookies.set("croupier_demo", expired)
    for router in stack.routers:
        router.kill()
    fresh = Visitor(stack.config.base_url)
    for who in (visitor, fresh):
        started = time.monotonic()
        response = who.get("/")
        assert response.status_code == 200
        assert page_variant(response) == "a"  # the control variant
        assert "set-cookie" not in response.headers
        assert time.monotonic() - started < 2.0
    # the beacon cannot be counted without the router, and says so with an error, not a page
    assert visitor.beacon({"experiment": "demo", "type": "view"}).status_code >= 500


def test_router_restarted_visitors_keep_their_variant(make_stack):
    stack = make_stack()
    visitor = Visitor(stack.config.base_url)
    first = visitor.variant()
    stack.routers[0].stop()
    stack.start_router(0, stack.config.router_port)
    assert {visitor.variant() for _ in range(5)} == {first}


def test_redis_stopped_pages_served_beacon_503_then_counting_resumes(make_stack):
    stack = make_stack()
    visitor = Visitor(stack.config.base_url)
    variant = visitor.variant()
    stack.redis.stop()  # SIGTERM: Redis writes its append-only file and exits

    newcomer = Visitor(stack.config.base_url)
    for _ in range(5):
        assert page_variant(newcomer.get("/")) in {"a", "b", "c"}  # decided from the snapshot
    assert visitor.variant() == variant
    down = visitor.beacon({"experiment": "demo", "type": "convert"})
    assert down.status_code == 503
    assert down.headers.get("retry-after") == "1"

    stack.redis = start_redis(stack.config.run_dir, stack.config.redis_port, appendonly=True)
    stack.processes.append(stack.redis)
    eventually(lambda: visitor.beacon({"experiment": "demo", "type": "convert"}).status_code == 204, timeout=10)
    assert variant_stats(stack)[variant]["conversions"] == 1
    # assignments queued while Redis was away are written once it is back
    eventually(lambda: sum(v["trials"] for v in variant_stats(stack).values()) >= 2, timeout=5)


def test_paused_variant_reassigns_its_visitors(make_stack):
    stack = make_stack()
    visitors = [Visitor(stack.config.base_url) for _ in range(30)]
    assigned = {v: v.variant() for v in visitors}
    victim = next(vid for vid in ("b", "c") if vid in assigned.values())
    with stack.admin() as admin:
        admin.patch(f"/experiments/demo/variants/{victim}", json={"status": "paused"}).raise_for_status()
    moved = [v for v, vid in assigned.items() if vid == victim]

    def reassigned():
        return all(v.variant() != victim for v in moved)

    # within the snapshot refresh plus the routing pass (CROUPIER_PASS_SECONDS, 3 s in tests)
    eventually(reassigned, timeout=8, interval=0.5)
    for v, vid in assigned.items():
        if vid != victim:
            assert v.variant() == vid  # everyone else stays put
