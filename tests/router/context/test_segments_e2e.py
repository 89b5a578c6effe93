"""Segmented bandits end to end: NGINX, a router and redis-server, visitors told apart by User-Agent."""

from __future__ import annotations

import pytest

from tests.conftest import Visitor, eventually

IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1")
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def segments(stack) -> dict:
    with stack.admin() as admin:
        response = admin.get("/experiments/demo/stats")
        response.raise_for_status()
        return response.json().get("segments", {})


def totals(rows: list[dict], field: str) -> int:
    return sum(row[field] for row in rows)


def visit(stack, user_agent: str, converts: bool, **headers) -> Visitor:
    visitor = Visitor(stack.config.base_url, user_agent)
    response = visitor.get("/", headers=headers)
    assert response.status_code == 200
    token = visitor.client.cookies.get("croupier_demo")
    assert token and token.startswith("v2."), token  # the segment rides in the signed cookie
    if converts:
        assert visitor.beacon({"experiment": "demo", "type": "convert"}).status_code == 204
    visitor.close()
    return visitor


@pytest.fixture
def segmented(make_stack):
    stack = make_stack()
    with stack.admin() as admin:
        admin.patch("/experiments/demo", json={"segment_keys": ["device"]}).raise_for_status()

    def segmented_cookie():
        v = Visitor(stack.config.base_url)
        v.get("/")
        token = v.client.cookies.get("croupier_demo", "")
        v.close()
        return token.startswith("v2.")

    eventually(segmented_cookie)  # the router's snapshot has the new segment_keys
    # that first segmented visit (a desktop browser) is counted once its batch is written:
    # wait for it, so the tests' "before" figures include it
    eventually(lambda: totals(segments(stack).get("device=desktop", []), "trials") >= 1)
    return stack


def test_conversions_are_credited_to_the_segment_the_visitor_was_assigned_in(segmented):
    before = segments(segmented)
    base = {s: totals(rows, "trials") for s, rows in before.items()}
    for _ in range(12):
        visit(segmented, IPHONE, converts=True)
    for i in range(8):
        visit(segmented, DESKTOP, converts=i % 4 == 0)

    def settled():
        found = segments(segmented)
        mobile, desktop = found.get("device=mobile", []), found.get("device=desktop", [])
        assert totals(mobile, "trials") == 12 + base.get("device=mobile", 0)
        assert totals(desktop, "trials") == 8 + base.get("device=desktop", 0)
        return found

    found = eventually(settled, timeout=10)
    assert totals(found["device=mobile"], "conversions") == 12
    assert totals(found["device=desktop"], "conversions") == 2
    row = found["device=mobile"][0]
    assert set(row) == {"id", "trials", "conversions", "rate", "ci95", "p_best", "share"}
    assert {r["id"] for r in found["device=mobile"]} == {"a", "b", "c"}
    # once the snapshot has a segment's counts, the segment has its own split
    eventually(lambda: abs(sum(r["share"] for r in segments(segmented)["device=mobile"]) - 1.0) < 1e-6)


def test_a_client_cannot_choose_its_country(segmented):
    with segmented.admin() as admin:
        admin.patch("/experiments/demo", json={"segment_keys": ["country", "device"]}).raise_for_status()
    eventually(lambda: visit(segmented, IPHONE, converts=False) and
               "country=none,device=mobile" in segments(segmented), timeout=10)
    # NGINX overwrites the geo header on the decide subrequest: the client's own copy never counts
    before = totals(segments(segmented)["country=none,device=mobile"], "trials")
    for _ in range(3):
        visit(segmented, IPHONE, converts=False, **{"X-Croupier-Geo": "FR;Paris"})
    found = eventually(lambda: totals(segments(segmented)["country=none,device=mobile"], "trials") >= before + 3
                       and segments(segmented), timeout=10)
    assert not any("country=fr" in s for s in found), sorted(found)


def test_a_contextual_policy_learns_from_assignments_and_conversions(make_stack):
    import redis

    from croupier.router.store import parse_linear

    stack = make_stack()
    with stack.admin() as admin:
        admin.patch("/experiments/demo", json={"policy": "linear_thompson",
                                               "policy_params": {"dimensions": 32}}).raise_for_status()
    eventually(lambda: visit(stack, IPHONE, converts=False), timeout=10)  # v2 tokens: the policy is live
    client = redis.Redis(port=stack.config.redis_port, decode_responses=True)
    try:
        for _ in range(5):
            visit(stack, IPHONE, converts=True)

        def learned():
            state = parse_linear(client.hgetall("croupier:{demo}:linear"))
            intercepts = sum(by_variant.get((0, 0), 0) for by_variant in state.values())
            rewards = sum(by_variant.get(0, 0) for by_variant in state.values())
            assert intercepts >= 6 and rewards == 5, (intercepts, rewards)
            return True

        eventually(learned, timeout=10)
    finally:
        client.close()
