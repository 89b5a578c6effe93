"""Routing passes: NGINX routes a returning visitor by itself while their pass is valid,
and asks the router for anything else (no pass, expired, forged, another visitor's, a
variant it does not know). Pure checks first, then a real stack."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from croupier.nginx.render import Options, RenderError, pass_key_conf, render
from croupier.router.passes import SEPARATOR, token_of, with_pass
from croupier.router.settings import Settings, SettingsError
from tests.conftest import BROWSER_UA, Visitor, eventually, page_variant, settled_totals
from tests.nginx.test_render import EXPERIMENTS

KEY = "k" * 32
TOKEN = "v1.k1.visitor.demo.b.1.mac"


def pass_valid(cookie_value: str, key: str, now: int) -> bool:
    """What NGINX's secure_link decides for a cookie's pass (NGINX does the routing)."""
    token, _, carried = cookie_value.partition(SEPARATOR)
    expires = carried.split(".", 1)[0]
    return expires.isdigit() and int(expires) >= now and cookie_value == with_pass(token, int(expires), key)


def test_a_pass_binds_its_expiry_the_token_and_the_key():
    value = with_pass(TOKEN, 2_000, KEY)
    assert token_of(value) == TOKEN and token_of(TOKEN) == TOKEN
    expires, tag = value.split("~")[1].split(".")
    assert expires == "2000" and re.fullmatch(r"[A-Za-z0-9_-]{22}", tag)  # what the NGINX map accepts
    assert pass_valid(value, KEY, now=1_999)
    assert not pass_valid(value, KEY, now=2_001)  # expired
    assert not pass_valid(value.replace(".demo.b.", ".demo.c."), KEY, now=1_999)  # another token
    assert not pass_valid(value, "j" * 32, now=1_999)  # another key
    assert not pass_valid(value.replace("~2000.", "~3000."), KEY, now=1_999)  # expiry moved
    assert not pass_valid(TOKEN, KEY, now=1_999)  # no pass


def test_the_pass_key_is_checked_and_never_echoed():
    with pytest.raises(SettingsError, match="CROUPIER_PASS_KEY") as caught:
        Settings(secret="s" * 32, pass_key="short-key")
    assert "short-key" not in str(caught.value)
    with pytest.raises(RenderError, match="pass key"):
        pass_key_conf('x" ; include /etc/passwd; "' + "x" * 32)
    assert pass_key_conf(KEY) == f'map $host $croupier_pass_key {{ default "{KEY}"; }}\n'


def test_only_registry_variants_are_routed_by_a_pass():
    text = render(EXPERIMENTS, Options(resolver="127.0.0.1"))
    routes = text.split("$croupier_pass_target {")[1].split("}")[0]
    assert re.findall(r'"1\|([a-z0-9_-]+\|[a-z0-9_-]+)"', routes) == [
        f"{exp['id']}|{v['id']}" for exp in EXPERIMENTS for v in exp["variants"]]
    with pytest.raises(RenderError, match="id"):
        render([{**EXPERIMENTS[0], "id": 'x"; return 200 "'}], Options(resolver="127.0.0.1"))


def returning_decisions(stack) -> float:
    text = httpx.get(f"{stack.config.admin_url}/metrics").text
    return sum(float(v) for v in re.findall(r'croupier_decisions_total\{[^}]*reason="returning"[^}]*\} (\S+)', text))


def assignment_cookie(response: httpx.Response) -> str | None:
    values = [c.split(";", 1)[0] for c in response.headers.get_list("set-cookie")]
    assert len(values) <= 1, values
    return values[0].split("=", 1)[1] if values else None


def visit(stack, cookie: str) -> httpx.Response:
    response = httpx.get(stack.config.base_url + "/", headers={"User-Agent": BROWSER_UA, "Cookie": cookie})
    assert response.status_code == 200
    return response


def test_a_pass_routes_return_visits_without_the_router(stack, visitor: Visitor):
    first = visitor.get("/")
    issued = assignment_cookie(first)
    assert pass_valid(issued, stack.config.pass_key, int(time.time()))
    trials = settled_totals(stack, "trials")
    # the same pass with a minute to run (this stack's passes last 3 s; a loaded machine
    # may take that long to settle the counts above)
    visitor.client.cookies.clear()
    lasting = with_pass(token_of(issued), int(time.time()) + 60, stack.config.pass_key)
    visitor.client.cookies.set("croupier_demo", lasting)
    before = returning_decisions(stack)
    for _ in range(10):
        again = visitor.get("/")
        assert page_variant(again) == page_variant(first)  # sticky
        assert assignment_cookie(again) is None  # NGINX answered alone: nothing to renew
    assert returning_decisions(stack) == before  # the router was not asked
    assert settled_totals(stack, "trials") == trials  # and nothing was counted twice


def test_anything_but_a_valid_pass_asks_the_router(stack, visitor: Visitor):
    issued = assignment_cookie(visitor.get("/"))
    token = token_of(issued)
    expires, tag = issued.split("~")[1].split(".")
    other = assignment_cookie(Visitor(stack.config.base_url).get("/"))
    key = stack.config.pass_key
    now = int(time.time())
    attempts = {
        "no pass": token,
        "tag altered": f"{token}~{expires}.{tag[::-1]}",
        "expiry extended": f"{token}~{int(expires) + 3600}.{tag}",
        "expired": with_pass(token, now - 1, key),
        "another visitor's pass": token + "~" + other.split("~")[1],
        "signed with another key": with_pass(token, now + 60, "j" * 32),
    }
    for name, value in attempts.items():
        before = returning_decisions(stack)
        renewed = assignment_cookie(visit(stack, f"croupier_demo={value}"))
        assert returning_decisions(stack) == before + 1, name  # the router answered
        assert token_of(renewed) == token, name  # the same assignment, with a fresh pass
        assert pass_valid(renewed, key, now), name


def test_a_pass_routes_only_to_the_experiments_registry_variants(stack, visitor: Visitor):
    """Even a pass made with the real key (which no visitor has) routes only to a variant the
    registry gave NGINX for this experiment: a token naming anything else goes to the router,
    which refuses the token and assigns afresh."""
    key, now = stack.config.pass_key, int(time.time())
    for forged in ("v1.k1.AAAAAAAAAAAAAAAAAAAAAA.demo.zz.1.mac",
                   "v1.k1.AAAAAAAAAAAAAAAAAAAAAA.demo.169_254_169_254.1.mac",
                   "v1.k1.AAAAAAAAAAAAAAAAAAAAAA.other.a.1.mac"):
        before = returning_decisions(stack)
        response = visit(stack, f"croupier_demo={with_pass(forged, now + 60, key)}")
        fresh = assignment_cookie(response)
        assert returning_decisions(stack) == before and token_of(fresh) != forged
        assert page_variant(response) == fresh.split(".")[4]


def test_a_pass_outlives_neither_its_lifetime_nor_a_pause(make_stack):
    stack = make_stack(router_env={"CROUPIER_PASS_SECONDS": "1", "CROUPIER_REFRESH_INTERVAL": "0.1"})
    visitors = [Visitor(stack.config.base_url) for _ in range(20)]
    on_b = [v for v in visitors if v.variant() == "b"]
    assert on_b, "no visitor was assigned b"
    with stack.admin() as admin:
        admin.patch("/experiments/demo/variants/b", json={"status": "paused"}).raise_for_status()
    paused = time.monotonic()
    # the routers' refresh, plus passes still valid (one second, counted in whole seconds)
    eventually(lambda: all(v.variant() != "b" for v in on_b), timeout=6, interval=0.2)
    assert time.monotonic() - paused < 3.5
    for v in visitors:
        v.close()


def test_returning_visitors_keep_their_variant_while_the_router_is_down(make_stack):
    """A valid pass needs no router: a returning visitor keeps their own variant (not
    control) through a router outage, for as long as the pass lasts."""
    stack = make_stack(router_env={"CROUPIER_PASS_SECONDS": "30"})
    visitors = [Visitor(stack.config.base_url) for _ in range(20)]
    assigned = {v: v.variant() for v in visitors}
    assert set(assigned.values()) - {"a"}, "everyone got control"
    for router in stack.routers:
        router.kill()
    assert {v: v.variant() for v in visitors} == assigned
    newcomer = Visitor(stack.config.base_url)
    assert newcomer.variant() == "a"  # no pass: the router is asked, fails, control serves
    for v in [*visitors, newcomer]:
        v.close()
