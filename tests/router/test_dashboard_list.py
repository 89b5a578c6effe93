"""The dashboard's experiments list with 1,200 experiments, in headless Chromium against a real
router and redis-server: one page of rows, next and previous, search, status filter, sorting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from croupier.router.settings import Settings
from croupier.router.store import AssignmentRecord, Store
from croupier.scripts.processes import free_port, start_redis, start_router
from tests.browser import launch_chromium
from tests.conftest import eventually

TOKEN = "list-admin-token"
SECRET = "s" * 32
COUNT = 1200
PAGE = 50
TRIALS = {"exp-1110": 70, "exp-0006": 40, "exp-0099": 25}  # running ones: the snapshot counts them for sure
ROWS = "#experiments tbody tr[data-experiment]"


def body(i: int) -> dict:
    status = ("running", "paused", "ended")[i % 3]
    return {"id": f"exp-{i:04d}", "name": f"Campaign {i}", "path_prefix": f"/c{i}/", "status": status,
            **({"winner": "a"} if status == "ended" else {}),
            "variants": [{"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}]}


async def record_trials(redis_url: str) -> None:
    store = Store(Settings(redis_url=redis_url, secret=SECRET))
    try:
        await store.record_assignments([AssignmentRecord(exp_id, "a", f"visitor-{k}", "new", (("a", .5), ("b", .5)),
                                                         time.time()) for exp_id, n in TRIALS.items()
                                        for k in range(n)])
    finally:
        await store.close()


@pytest.fixture(scope="module")
def router(tmp_path_factory) -> Iterator[str]:
    run_dir: Path = tmp_path_factory.mktemp("list")
    redis_port, port = free_port(), free_port()
    redis = start_redis(run_dir, redis_port)
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    server = None
    try:
        server = start_router(run_dir, port, {"CROUPIER_REDIS_URL": redis_url, "CROUPIER_SECRET": SECRET,
                                              "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_REFRESH_INTERVAL": "0.5"})
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as api:
            with ThreadPoolExecutor(4) as pool:
                statuses = set(pool.map(lambda i: api.post("/experiments", json=body(i)).status_code, range(COUNT)))
            assert statuses == {201}
            asyncio.run(record_trials(redis_url))
            eventually(lambda: [e["id"] for e in api.get("/experiments", params={"sort": "trials", "limit": 3})
                                .json()["experiments"]] == list(TRIALS), timeout=15)
            started = time.perf_counter()
            api.get("/experiments", params={"limit": PAGE, "sort": "trials"}).raise_for_status()
            print(f"\na page of {PAGE} of {COUNT} experiments, sorted by trials: "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms")
        yield url
    finally:
        if server is not None:
            server.stop()
        redis.stop()


def row_ids(page) -> list[str]:
    return page.eval_on_selector_all(ROWS, "rows => rows.map(r => r.dataset.experiment)")


def test_the_list_pages_searches_filters_and_sorts(router):
    with launch_chromium(viewport={"width": 1360, "height": 900}) as browser:
        page, requests = browser.page, []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(f"{router}/dashboard/")
        page.fill("#token", TOKEN)
        page.click("form.login-form button[type=submit]")
        page.wait_for_url(f"{router}/dashboard/")

        page.wait_for_function(f"document.querySelectorAll('{ROWS}').length === {PAGE}")
        assert row_ids(page) == [f"exp-{i:04d}" for i in range(PAGE)]
        assert page.text_content("#list-range") == f"1–{PAGE} of 1,200"
        assert page.is_disabled("#page-prev")
        first = page.locator(f'{ROWS}[data-experiment="exp-0006"]')
        assert first.locator('[data-field="trials"]').text_content() == "40"
        assert first.locator('[data-field="variants"]').text_content() == "2"

        page.click("#page-next")
        eventually(lambda: row_ids(page)[0] == "exp-0050")
        assert len(row_ids(page)) == PAGE and page.text_content("#list-range") == "51–100 of 1,200"
        page.click("#page-next")
        eventually(lambda: row_ids(page)[0] == "exp-0100")
        page.click("#page-prev")
        eventually(lambda: row_ids(page)[0] == "exp-0050")

        page.fill("#search", "campaign 12")  # by name, whatever the case: 12 and 120-129
        eventually(lambda: row_ids(page) == ["exp-0012", *(f"exp-{i:04d}" for i in range(120, 130))])
        assert page.text_content("#list-range") == "1–11 of 11" and page.is_disabled("#page-next")
        assert parse_qs(urlsplit(page.url).query)["q"] == ["campaign 12"]  # a reload keeps the search
        page.select_option("#status-filter", "paused")
        eventually(lambda: row_ids(page) == ["exp-0121", "exp-0124", "exp-0127"])

        page.fill("#search", "")
        page.select_option("#status-filter", "")
        page.click('#experiments th[data-sort="trials"] button')
        eventually(lambda: row_ids(page)[:3] == list(TRIALS))
        assert page.get_attribute('#experiments th[data-sort="trials"]', "aria-sort") == "descending"
        page.click('#experiments th[data-sort="trials"] button')  # again: the least first, ties by id
        eventually(lambda: page.get_attribute('#experiments th[data-sort="trials"]', "aria-sort") == "ascending")
        assert row_ids(page)[:2] == ["exp-0000", "exp-0001"] and "exp-1110" not in row_ids(page)

        browser.assert_no_console_errors()
    listed = [parse_qs(urlsplit(url).query) for url in requests if urlsplit(url).path == "/api/v1/experiments"]
    assert listed and all(query["limit"] == [str(PAGE)] for query in listed)  # never the whole list


def test_the_list_page_itself_holds_no_experiment(router):
    """The HTML is the same frame whatever the registry holds: the rows come from the API."""
    with httpx.Client(base_url=router, follow_redirects=False) as client:
        client.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard/"}, headers={"Origin": router})
        html = client.get("/dashboard/").text
    assert "exp-0000" not in html and len(html) < 10_000
    assert "<script>" not in html and " style=" not in html
