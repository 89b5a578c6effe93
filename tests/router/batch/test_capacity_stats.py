"""What a capped variant's capacity holds, as the stats and the dashboard show it (used,
reserved by routers, remaining, full), against a real redis-server and router process
started with the capacity settings; and a capacity changed while the experiment runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import time

import httpx
import pytest
import redis as redis_py

from croupier.router.app import create_app
from croupier.router.capacity import capacity_figures
from croupier.router.settings import Settings
from croupier.router.store import Store
from croupier.scripts.processes import free_port, start_redis, start_router
from croupier.scripts.variant_table import stats_table
from tests.browser import signed_in
from tests.conftest import BROWSER_UA, eventually
from tests.router.batch.conftest import KEYS, customers, key

ADMIN = {"Authorization": "Bearer test-admin-token"}
CARD = """() => Object.fromEntries([...document.querySelectorAll('#capacity-table tbody tr[data-variant]')]
  .map(tr => [tr.dataset.variant, Object.fromEntries([...tr.querySelectorAll('[data-field]')]
    .map(n => [n.dataset.field, n.textContent]))]))"""


def test_figures_add_up_and_a_lowered_capacity_reads_full():
    assert capacity_figures(100, 30, 20) == {"capacity": 100, "used": 30, "reserved": 20, "remaining": 50,
                                             "full": False}
    # the last units held by routers: nothing free, yet not full
    assert capacity_figures(100, 90, 10) == {"capacity": 100, "used": 90, "reserved": 10, "remaining": 0,
                                             "full": False}
    # lowered below what routers hold and below what is used: full, nothing negative; routers
    # hold their units until they learn the new cap
    assert capacity_figures(95, 90, 10)["remaining"] == 0
    assert capacity_figures(50, 90, 10) == {"capacity": 50, "used": 90, "reserved": 10, "remaining": 0,
                                            "full": True}
    assert capacity_figures(90, 90, 0)["full"]


class Router:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30)

    def create(self, exp: str, cap: int) -> None:
        self.client.post("/api/v1/experiments", headers=ADMIN, json={
            "id": exp, "path_prefix": f"/{exp}/", "variants": [
                {"id": "plain", "upstream": "127.0.0.1:9101"},
                {"id": "cashback", "upstream": "127.0.0.1:9102", "capacity": cap}]}).raise_for_status()
        eventually(lambda: self.client.post("/api/v1/batches/assign", params={"experiment": exp}, content=b"",
                                            headers=key("")).status_code == 200, timeout=10)

    def batch(self, exp: str, n: int, prefix: str) -> int:
        """Assigns ``n`` new customers; how many got cashback."""
        response = self.client.post("/api/v1/batches/assign", params={"experiment": exp},
                                    content=customers(n, prefix), headers=key(""))
        response.raise_for_status()
        rows = [json.loads(line) for line in response.text.splitlines()]
        assert all(r.get("variant") for r in rows), rows  # plain has no cap: everyone gets a variant
        return sum(r["variant"] == "cashback" for r in rows)

    def decide(self, exp: str) -> str:
        """One new visitor's decision (no error, whatever the capacity); the variant."""
        response = self.client.get("/_croupier/decide", headers={"X-Original-URI": f"/{exp}/",
                                                                  "User-Agent": BROWSER_UA})
        assert response.status_code == 200
        self.client.cookies.clear()  # the next decision is another new visitor's
        return response.headers["X-Croupier-Variant"]

    def web(self, exp: str, n: int) -> int:
        """``n`` new visitors' decisions; how many got cashback."""
        return sum(self.decide(exp) == "cashback" for _ in range(n))

    def cashback(self, exp: str) -> dict:
        """The cashback row of the stats; its figures never negative, the plain row without any."""
        stats = self.client.get(f"/api/v1/experiments/{exp}/stats", headers=ADMIN)
        stats.raise_for_status()
        rows = {v["id"]: v for v in stats.json()["variants"]}
        assert rows["plain"]["capacity"] is None
        figures = rows["cashback"]["capacity"]
        assert min(figures["used"], figures["reserved"], figures["remaining"]) >= 0, figures
        return {**figures, "trials": rows["cashback"]["trials"]}

    def patch(self, exp: str, cap: int) -> None:
        self.client.patch(f"/api/v1/experiments/{exp}/variants/cashback", headers=ADMIN,
                          json={"capacity": cap}).raise_for_status()


@pytest.fixture(scope="module")
def router(tmp_path_factory):
    run = tmp_path_factory.mktemp("capacity-stats")
    redis_port = free_port()
    redis = start_redis(run, redis_port)
    # small reservations given back soon: the settings reach the router's reservations
    env = {"CROUPIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0", "CROUPIER_SECRET": "s" * 32,
           "CROUPIER_ADMIN_TOKEN": "test-admin-token", "CROUPIER_REFRESH_INTERVAL": "0.1",
           "CROUPIER_FLUSH_INTERVAL": "0.05", "CROUPIER_API_KEYS": f"default:{KEYS['']}",
           "CROUPIER_CAPACITY_BLOCK": "7", "CROUPIER_CAPACITY_IDLE": "0.5", "CROUPIER_CAPACITY_TTL": "5"}
    process = None
    try:
        port = free_port()
        process = start_router(run, port, env)
        router = Router(f"http://127.0.0.1:{port}")
        yield router
        router.client.close()
    finally:
        if process is not None:
            process.stop()
        redis.stop()


def web_until_cashback(router: Router, exp: str, wanted: int, most: int = 2000) -> int:
    """Decisions until ``wanted`` visitors got cashback (a router reserves units only once its
    decisions want the variant); how many did."""
    got = 0
    for _ in range(most):
        got += router.decide(exp) == "cashback"
        if got >= wanted:
            return got
    raise AssertionError(f"{most} decisions gave cashback to only {got} visitors")


def test_batch_and_web_units_add_up_in_the_stats(router):
    cap = 60
    router.create("tally", cap)
    assert router.cashback("tally") == {"capacity": cap, "used": 0, "reserved": 0, "remaining": cap,
                                        "full": False, "trials": 0}
    by_batch = router.batch("tally", 30, "t")
    by_web = web_until_cashback(router, "tally", 5)
    by_web += router.web("tally", 10)
    taken = by_batch + by_web
    assert by_batch > 0 and taken < cap

    def held_now() -> dict:
        figures = router.cashback("tally")
        # while a router holds a reservation: its units are reserved, not remaining
        assert figures["used"] + figures["reserved"] + figures["remaining"] == cap, figures
        return figures

    # the reservation is topped up to CROUPIER_CAPACITY_BLOCK while decisions want it
    assert 0 < held_now()["reserved"] <= 7
    # every decision reported, and the reservation given back after CROUPIER_CAPACITY_IDLE
    settled = eventually(lambda: (f := held_now())["reserved"] == 0 and f["used"] == taken and f, timeout=10)
    assert settled == {"capacity": cap, "used": taken, "reserved": 0, "remaining": cap - taken, "full": False,
                       "trials": taken}
    table = stats_table(router.client.get("/api/v1/experiments/tally/stats", headers=ADMIN).json())
    assert table.splitlines()[-1].split()[-1] == f"{taken}/{cap}"  # croupier-variant list


def test_a_capacity_lowered_below_its_use_is_full_and_raised_is_offered_again(router):
    router.create("change", 200)
    router.batch("change", 40, "c")
    web_until_cashback(router, "change", 3)  # this router holds a reservation now
    used = eventually(lambda: router.cashback("change")["used"], timeout=10)
    assert used >= 3

    router.patch("change", 2)  # below what is used
    # visitors go on getting pages at once; the router gives its reservation back at its next top-up
    router.web("change", 30)
    full = eventually(lambda: (f := router.cashback("change"))["full"] and f["reserved"] == 0 and f, timeout=10)
    assert full["capacity"] == 2 and full["remaining"] == 0
    # once the router knows the new cap, nobody gets cashback: not the web, not a batch
    eventually(lambda: router.web("change", 20) == 0, timeout=10)
    assert router.web("change", 50) == 0
    assert router.batch("change", 30, "after-lowered") == 0
    # every unit used is an assignment recorded, and the count stays where the lowered cap left it
    stopped = eventually(lambda: (f := router.cashback("change"))["reserved"] == 0 and f["used"] == f["trials"]
                         and f, timeout=10)
    final_used = stopped["used"]
    assert router.web("change", 20) == 0 and router.cashback("change")["used"] == final_used

    router.patch("change", final_used + 12)  # raised: offered again, up to the new cap
    assert eventually(lambda: router.web("change", 20) > 0, timeout=10)
    assert router.batch("change", 40, "after-raised") > 0
    for i in range(3):  # past the new cap if it were not held
        router.batch("change", 40, f"more-{i}-")
        router.web("change", 40)
    late = itertools.count()

    def reached():  # the router gives its last units back when idle; a batch takes them
        router.batch("change", 40, f"late-{next(late)}-")
        return (f := router.cashback("change"))["full"] and f["reserved"] == 0 and f

    settled = eventually(reached, timeout=20, interval=0.5)
    assert settled["used"] == final_used + 12 and settled["remaining"] == 0
    assert eventually(lambda: router.cashback("change")["trials"] == final_used + 12)


def test_the_dashboard_capacity_card_shows_the_stats(router):
    router.create("card", 40)
    router.batch("card", 20, "k")
    figures = eventually(lambda: (f := router.cashback("card"))["used"] > 0 and f, timeout=10)
    router.client.post("/api/v1/experiments", headers=ADMIN, json={
        "id": "uncapped", "path_prefix": "/uncapped/", "variants": [
            {"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}]}
                       ).raise_for_status()
    with signed_in(router.url, "test-admin-token") as browser:
        page = browser.page
        page.goto(f"{router.url}/dashboard/experiments/card")
        page.wait_for_selector("#capacity-table tbody tr[data-variant]")
        shown = page.evaluate(CARD)
        assert shown == {"cashback": {"used": str(figures["used"]), "reserved": "0",
                                      "remaining": str(40 - figures["used"]), "capacity": "40",
                                      "state": "open"}}
        page.goto(f"{router.url}/dashboard/experiments/uncapped")
        page.wait_for_selector("#variants tbody tr")
        assert page.query_selector("#capacity") is None


def test_the_capacity_settings_reach_the_routers_reservations():
    settings = Settings.from_env({"CROUPIER_SECRET": "s" * 32, "CROUPIER_CAPACITY_BLOCK": "3",
                                  "CROUPIER_CAPACITY_IDLE": "1.5", "CROUPIER_CAPACITY_TTL": "12"})
    leases = create_app(settings).decider.core.capacity
    assert (leases.block, leases.idle, leases.ttl) == (3, 1.5, 12.0)


def test_the_store_counts_live_reservations_only(redis_url):
    now = int(time.time() * 1000)
    redis_py.Redis.from_url(redis_url).hset("croupier:{held}:capacity", mapping={
        "gift": 12, "lease|gift|r1": f"5|{now + 60_000}", "lease|gift|r2": f"4|{now - 1}",  # r2 stopped
        "lease|fresh|r1": f"2|{now + 60_000}"})  # reserved before anything was used

    async def held():
        store = Store(Settings(redis_url=redis_url))
        try:
            return await store.capacity_held(["held", "none"])
        finally:
            await store.close()

    assert asyncio.run(held()) == {"held": {"gift": (12, 5), "fresh": (0, 2)}, "none": {}}
