"""The dashboard in headless Chromium against the whole local stack, after simulated visitors."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from croupier.router.session import CSRF_HEADER, SESSION_COOKIE
from croupier.scripts.simulate import run_simulation
from tests.browser import Chromium, launch_chromium
from tests.conftest import eventually, settled_totals, variant_stats

RATES = {"a": 0.04, "b": 0.12, "c": 0.05}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# the numbers the page shows, read from the DOM in one go
PAGE_NUMBERS = """() => Object.fromEntries([...document.querySelectorAll('#variants tbody tr[data-variant]')].map(tr => {
  const f = name => tr.querySelector(`[data-field="${name}"]`).textContent;
  return [tr.dataset.variant, {trials: Number(f('trials').replace(/,/g, '')),
                               conversions: Number(f('conversions').replace(/,/g, '')), status: f('status')}];
}))"""


def send_visitors(stack, visitors: int, seed: int) -> None:
    # in a thread of its own: Playwright's sync API keeps an event loop running in this one
    with ThreadPoolExecutor(1) as pool:
        tally = pool.submit(run_simulation, stack.config.base_url, RATES, visitors=visitors, concurrency=16,
                            seed=seed).result()
    assert not tally.errors, tally.errors
    settled_totals(stack, "trials")  # queued assignments written: the API's numbers stop moving


def api_numbers(stack, experiment: str = "demo") -> dict[str, dict]:
    return {vid: {"trials": v["trials"], "conversions": v["conversions"], "status": v["status"]}
            for vid, v in variant_stats(stack, experiment).items()}


class Session:
    """A signed-in browser that records every request its pages make."""

    def __init__(self, browser: Chromium, admin_url: str) -> None:
        self.browser = browser
        self.admin_url = admin_url
        self.page = browser.page
        self.requests: list[str] = []
        self.navigations = 0
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("framenavigated", self._count_navigation)

    def _count_navigation(self, frame) -> None:
        if frame == self.page.main_frame:
            self.navigations += 1

    def open_experiment(self, experiment: str = "demo") -> None:
        self.page.goto(f"{self.admin_url}/dashboard/experiments/{experiment}")
        self.page.wait_for_selector("#variants tbody tr[data-variant]")

    def numbers(self) -> dict[str, dict]:
        return self.page.evaluate(PAGE_NUMBERS)

    def button(self, variant: str, action: str):
        return self.page.locator(f'#variants tr[data-variant="{variant}"] [data-action="{action}"]')


@pytest.fixture(scope="module")
def traffic(stack):
    send_visitors(stack, 300, seed=5)
    return stack


@pytest.fixture(scope="module")
def session(traffic) -> Iterator[Session]:
    """Signs in through the login form, as a marketer would."""
    with launch_chromium(viewport={"width": 1360, "height": 900}) as browser:
        session = Session(browser, traffic.config.admin_url)
        page = session.page
        page.goto(f"{session.admin_url}/dashboard/")
        assert urlsplit(page.url).path == "/dashboard/login"
        page.fill("#token", traffic.config.admin_token)
        page.click("form.login-form button[type=submit]")
        page.wait_for_url(f"{session.admin_url}/dashboard/")
        yield session
        browser.assert_no_console_errors()
        assert any("/api/v1/experiments/demo/stats" in url for url in session.requests)  # the recording works
        strangers = [url for url in session.requests if urlsplit(url).hostname not in LOOPBACK]
        assert not strangers, f"requests left the stack: {strangers}"


def test_unauthenticated_dashboard_redirects_to_login(stack):
    response = httpx.get(f"{stack.config.admin_url}/dashboard/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=/dashboard/"


def test_experiments_list_shows_the_demo_totals(session, traffic):
    totals = api_numbers(traffic)
    row = session.page.locator('#experiments tr[data-experiment="demo"]')
    # the list's numbers are the router's snapshot, refreshed within a fraction of a second;
    # the page asks again every few seconds
    expected = f"{sum(v['trials'] for v in totals.values()):,}"
    eventually(lambda: row.locator('[data-field="trials"]').text_content() == expected, timeout=8)
    assert row.locator('[data-field="variants"]').text_content() == "3"


def test_experiment_page_shows_the_apis_numbers(session, traffic):
    session.open_experiment()
    expected = api_numbers(traffic)
    assert sum(v["trials"] for v in expected.values()) >= 250
    eventually(lambda: session.numbers() == expected, timeout=8)
    page = session.page
    assert page.locator("#chart-share svg path").count() == 3
    assert page.locator("#chart-rate svg path").count() == 3
    assert page.locator("#variants svg.interval").count() == 3
    assert page.locator("#srm-p").text_content() != "–"
    assert page.locator("#lift-table tbody tr[data-variant]").count() == 3
    assert page.locator("#segments").is_hidden()  # the API has no segments yet


def test_pause_and_resume_from_the_page(session, traffic):
    session.open_experiment()
    session.button("c", "toggle").click()
    eventually(lambda: variant_stats(traffic)["c"]["status"] == "paused")
    eventually(lambda: session.numbers()["c"]["status"] == "paused", timeout=8)
    assert session.button("c", "toggle").text_content() == "Resume"
    session.button("c", "toggle").click()
    eventually(lambda: variant_stats(traffic)["c"]["status"] == "active")
    eventually(lambda: session.button("c", "toggle").text_content() == "Pause", timeout=8)


def test_live_refresh_shows_new_traffic_without_a_reload(session, traffic):
    session.open_experiment()
    page = session.page
    page.evaluate("window.stillTheSamePage = true")
    navigations, before = session.navigations, api_numbers(traffic)
    send_visitors(traffic, 150, seed=6)
    after = api_numbers(traffic)
    assert sum(v["trials"] for v in after.values()) > sum(v["trials"] for v in before.values())
    eventually(lambda: session.numbers() == after, timeout=8)
    assert page.evaluate("window.stillTheSamePage") is True
    assert session.navigations == navigations


def test_a_write_with_the_cookie_but_without_csrf_is_refused(session, traffic):
    cookie = next(c for c in session.browser.context.cookies() if c["name"] == SESSION_COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    url = f"{session.admin_url}/api/v1/experiments/demo/variants/b"
    with httpx.Client(cookies={SESSION_COOKIE: cookie["value"]}) as client:
        assert client.get(f"{session.admin_url}/api/v1/experiments/demo/stats").status_code == 200
        response = client.patch(url, json={"status": "paused"}, headers={"Origin": session.admin_url})
        assert response.status_code == 403 and CSRF_HEADER in response.json()["error"]
        csrf = session.page.locator('meta[name="croupier-csrf"]').get_attribute("content")
        response = client.patch(url, json={"status": "paused"},
                                headers={CSRF_HEADER: csrf, "Origin": "http://evil.example"})
        assert response.status_code == 403
    assert variant_stats(traffic)["b"]["status"] == "active"


def test_promote_asks_first_then_ends_the_experiment(session, traffic):
    port = traffic.config.variant_base_port
    experiment = {"id": "promo", "name": "Promote me", "path_prefix": "/promo/", "variants": [
        {"id": "a", "upstream": f"127.0.0.1:{port}"}, {"id": "b", "upstream": f"127.0.0.1:{port + 1}"}]}
    with traffic.admin() as admin:
        assert admin.post("/experiments", json=experiment).status_code == 201
    session.open_experiment("promo")
    page = session.page
    session.button("b", "promote").click()
    page.locator("#confirm button[value=cancel]").click()
    page.wait_for_timeout(300)
    with traffic.admin() as admin:
        assert admin.get("/experiments/promo").json()["status"] == "running"
    session.button("b", "promote").click()
    page.locator("#confirm-ok").click()
    with traffic.admin() as admin:
        eventually(lambda: admin.get("/experiments/promo").json()["status"] == "ended")
        assert admin.get("/experiments/promo").json()["winner"] == "b"
    page.locator("#winner-note").wait_for(state="visible")
    assert "variant b" in page.locator("#winner-note").text_content()
    assert session.button("a", "promote").is_disabled()
