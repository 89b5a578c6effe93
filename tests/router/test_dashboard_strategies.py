"""The strategy comparison through the admin API and on the experiment's page in headless
Chromium, against a real router and redis-server, on events written through the real store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from croupier.router.hybrid import encode
from croupier.router.model import fit_log
from croupier.router.ope import join_log
from croupier.router.settings import Settings
from croupier.router.store import Store
from tests.browser import signed_in
from tests.conftest import redis_and_router
from tests.scripts.archive_traffic import ARMS, write_traffic

TOKEN = "strategies-admin-token"
SECRET = "s" * 32
VARIANTS = [{"id": v, "upstream": f"127.0.0.1:{9201 + i}"} for i, v in enumerate(ARMS)]
WITHOUT_MODEL = ["thompson", "ucb1", "epsilon_greedy", "fixed:a", "fixed:b", "fixed:c", "even"]


def seed(redis_url: str) -> None:
    """3,000 visitors of "logged" (even split), and a model trained on them for "modelled"."""
    async def work() -> None:
        store = Store(Settings(redis_url=redis_url, secret=SECRET))
        try:
            await write_traffic(store, "logged", 3000, seed=1)
            await write_traffic(store, "modelled", 3000, seed=2)
            log, _ = join_log([e async for e in store.iter_events("modelled")], "signup")
            await store.save_model("modelled", encode(fit_log(log), goal="signup", trained_at=time.time(),
                                                      contexts=log.contexts))
        finally:
            await store.close()
    asyncio.run(work())


class Router:
    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)


@pytest.fixture(scope="module")
def router(tmp_path_factory) -> Iterator[Router]:
    env = {"CROUPIER_SECRET": SECRET, "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_ALERTS": "0"}
    with redis_and_router(tmp_path_factory.mktemp("strategies"), env) as (url, redis_url):
        router = Router(url)
        try:
            for exp_id in ("logged", "modelled", "empty"):
                body = {"id": exp_id, "path_prefix": f"/{exp_id}/", "variants": VARIANTS}
                assert router.admin.post("/experiments", json=body).status_code == 201
            seed(redis_url)
            yield router
        finally:
            router.admin.close()


def test_the_api_compares_every_strategy_and_keeps_the_answer(router):
    response = router.admin.get("/experiments/logged/strategies")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["assignments"] == 3000 and doc["model"] is False and doc["cached"] is False
    assert [s["name"] for s in doc["strategies"]] == WITHOUT_MODEL
    for s in doc["strategies"]:
        assert 0 <= s["low"] <= s["value"] <= s["high"] <= 1 and s["n_effective"] > 0
    fixed_b = next(s for s in doc["strategies"] if s["name"] == "fixed:b")
    assert fixed_b["low"] <= 0.15 <= fixed_b["high"]  # write_traffic's true rate of b
    again = router.admin.get("/experiments/logged/strategies").json()
    assert again["cached"] is True and again["strategies"] == doc["strategies"]  # the kept answer
    recent = router.admin.get("/experiments/logged/strategies", params={"events": 500}).json()
    assert recent["events"] == 500 and recent["assignments"] <= 500


def test_the_stored_model_adds_its_personal_choice(router):
    doc = router.admin.get("/experiments/modelled/strategies").json()
    assert doc["model"] is True
    assert [s["name"] for s in doc["strategies"]] == [*WITHOUT_MODEL, "model"]
    assert doc["strategies"][-1]["kind"] == "model"


def test_bad_requests_are_named(router):
    for events in ("0", "50001", "many"):
        response = router.admin.get("/experiments/logged/strategies", params={"events": events})
        assert response.status_code == 400 and "events" in response.json()["error"]
    assert router.admin.get("/experiments/nosuch/strategies").status_code == 404
    assert httpx.get(f"{router.url}/api/v1/experiments/logged/strategies").status_code == 401
    doc = router.admin.get("/experiments/empty/strategies").json()
    assert doc["strategies"] == [] and doc["assignments"] == 0


STRATEGY_ROWS = """() => [...document.querySelectorAll('#strategies-table tbody tr[data-strategy]')].map(tr => ({
  name: tr.dataset.strategy, cells: [...tr.querySelectorAll('td')].map(td => td.textContent)}))"""


def test_the_card_lists_the_strategies_best_first(router):
    api = router.admin.get("/experiments/modelled/strategies").json()
    with signed_in(router.url, TOKEN) as browser:
        page = browser.page
        page.goto(f"{router.url}/dashboard/experiments/modelled")
        page.wait_for_selector("#strategies-table tbody tr[data-strategy]")
        rows = page.evaluate(STRATEGY_ROWS)
        expected = sorted(api["strategies"], key=lambda s: -s["value"])
        assert [r["name"] for r in rows] == [s["name"] for s in expected]
        for row, s in zip(rows, expected):
            assert row["cells"][0] == s["label"] and row["cells"][1] == s["kind"]
            assert row["cells"][2] == f"{s['value'] * 100:.2f}%"
        assert page.locator("#strategies-table svg.interval").count() == len(rows)
        assert page.locator("#strategies-note").text_content().startswith("on the latest 3,000 assignments")
        page.goto(f"{router.url}/dashboard/experiments/empty")
        page.wait_for_selector("#strategies-table tbody td.empty:not(:has-text('Loading'))")
        assert page.locator("#strategies-table tbody tr[data-strategy]").count() == 0
