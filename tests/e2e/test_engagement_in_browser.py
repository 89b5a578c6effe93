"""Engagement from a real page in headless Chromium, through the whole stack: NGINX, the
router, redis-server and the variant servers. The page is scrolled and read, then left;
what its beacon.js reported is what the stats endpoint shows.

Headless Chromium keeps every page visible: a tab behind another, a minimized window and
``Page.setWebLifecycleState`` all leave ``document.visibilityState`` at 'visible'. Focus is
real once Playwright's focus emulation is off (another tab in front blurs the page), and
leaving the page is a real navigation (pagehide). A hide-and-show-again in the middle of a
visit is the one thing emulated: ``document.visibilityState`` overridden and a
``visibilitychange`` dispatched, as the browser would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from croupier.router.engagement import scroll_bucket
from tests.browser import Chromium, launch_chromium
from tests.conftest import BROWSER_UA, eventually
from tests.variants.test_page_in_browser import wait_for

VIEWPORT = {"width": 1000, "height": 600}  # shorter than the landing page, so it scrolls
COUNTERS = ("views", "engaged", "bounces", "clicks")


@pytest.fixture
def browser() -> Iterator[Chromium]:
    # HeadlessChrome in the user agent is a bot: control, no cookie, never counted
    with launch_chromium(viewport=VIEWPORT, user_agent=BROWSER_UA) as browser:
        yield browser
        browser.assert_no_console_errors()


def engagement(stack) -> dict[str, dict]:
    with stack.admin() as admin:
        response = admin.get("/experiments/demo/stats")
        response.raise_for_status()
        return {row["id"]: row["engagement"] for row in response.json()["variants"]}


def change(before: dict, after: dict) -> dict:
    """What one page view added to a variant's engagement."""
    total = lambda e: (e["active_seconds_mean"] or 0.0) * e["views"]  # noqa: E731
    return {**{c: after[c] - before[c] for c in COUNTERS},
            "active_seconds": total(after) - total(before),
            "scroll_histogram": [a - b for a, b in zip(after["scroll_histogram"], before["scroll_histogram"])]}


def wait_until(page, expression: str, timeout: float = 5.0) -> None:
    """Polled from here: Playwright's wait_for_function evaluates its predicate in the page,
    which the page's CSP (no 'unsafe-eval') forbids."""
    wait_for(page, lambda: page.evaluate(expression), expression, timeout)


def open_landing_page(browser: Chromium, stack):
    page = browser.page
    page.goto(stack.config.base_url + "/")
    wait_until(page, "Boolean(window.croupier && window.croupier.engagement)")
    variant = page.get_attribute("html", "data-croupier-variant")
    assert page.evaluate("document.visibilityState === 'visible' && document.hasFocus()")
    return page, variant


def scroll_part_way(page) -> int:
    page.mouse.move(500, 300)
    page.mouse.wheel(0, 500)
    wait_until(page, "window.pageYOffset > 0")
    page.wait_for_timeout(200)  # the beacon measures depth at most every 100 ms
    depth = page.evaluate("croupier.engagement().scroll")
    assert 0 < depth < 100, depth
    return depth


def emulate_visibility(page, state: str) -> None:
    page.evaluate("""state => {
      Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
      Object.defineProperty(document, 'hidden', {configurable: true, get: () => state === 'hidden'});
      document.dispatchEvent(new Event('visibilitychange'));
    }""", state)


def test_a_page_scrolled_read_and_left_is_one_engagement_view(stack, browser):
    before = engagement(stack)
    page, variant = open_landing_page(browser, stack)
    depth = scroll_part_way(page)
    page.wait_for_timeout(2500)  # visible and focused: reading
    page_view = page.evaluate("croupier.engagement().id")
    page.goto("about:blank")  # leaving: pagehide sends the report with keepalive

    added = eventually(lambda: (c := change(before[variant], engagement(stack)[variant]))["views"] and c, timeout=10)
    assert {c: added[c] for c in COUNTERS} == {"views": 1, "engaged": 0, "bounces": 1, "clicks": 0}
    assert 2.5 <= added["active_seconds"] < 6, added  # the time read, and no more than the visit
    expected = [0] * len(added["scroll_histogram"])
    expected[scroll_bucket(depth)] = 1
    assert added["scroll_histogram"] == expected

    # the stream has the report with the visitor and the page view; the view event carries the same id
    client = redis.Redis(port=stack.config.redis_port, decode_responses=True)
    entries = [fields for _, fields in client.xrevrange("croupier:{demo}:events", count=200)]
    [report] = [e for e in entries if e["type"] == "engagement" and e["id"] == page_view]
    [view] = [e for e in entries if e["type"] == "view" and e["id"] == page_view]
    assert report["visitor"] == view["visitor"] and report["variant"] == view["variant"] == variant
    assert int(report["scroll"]) == depth and report["engaged"] == "0"


def test_a_page_hidden_and_shown_again_counts_once_and_not_while_in_the_background(stack, browser):
    before = engagement(stack)
    page, variant = open_landing_page(browser, stack)
    # without Playwright's focus emulation the page has the window's real focus, which a
    # headless window gets when its tab is brought to the front
    browser.context.new_cdp_session(page).send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    page.bring_to_front()
    wait_until(page, "document.hasFocus()")
    page.wait_for_timeout(1500)  # read for 1.5 s
    other = browser.context.new_page()
    other.goto("about:blank")
    other.bring_to_front()
    wait_until(page, "!document.hasFocus()")
    page.wait_for_timeout(2000)  # 2 s behind another tab: not counted
    page.bring_to_front()
    wait_until(page, "document.hasFocus()")
    page.wait_for_timeout(1000)
    emulate_visibility(page, "hidden")  # the first report: ~2.5 s, a bounce so far

    first = eventually(lambda: (c := change(before[variant], engagement(stack)[variant]))["views"] and c, timeout=10)
    assert (first["views"], first["bounces"]) == (1, 1)
    assert 2.3 <= first["active_seconds"] < 4.3, first  # 4.5 s or more would count the background

    emulate_visibility(page, "visible")
    page.wait_for_timeout(1200)
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_timeout(300)  # read the end of the page; clicking the headline scrolls back up
    page.click("h1", click_count=1)
    page.click("h1", click_count=1)  # a second interaction: engaged
    page.wait_for_timeout(200)
    assert page.evaluate("croupier.engagement()") | {"id": "", "active_ms": 0} == {
        "id": "", "active_ms": 0, "scroll": 100, "clicks": 2, "engaged": True}
    page.goto("about:blank")  # the second report, at least a second after the first

    def updated():
        c = change(before[variant], engagement(stack)[variant])
        return c["engaged"] and c

    final = eventually(updated, timeout=10)
    assert {c: final[c] for c in COUNTERS} == {"views": 1, "engaged": 1, "bounces": 0, "clicks": 2}
    assert first["active_seconds"] + 1.0 <= final["active_seconds"] < first["active_seconds"] + 3.5, (first, final)
    assert final["scroll_histogram"][-1] == 1 and sum(final["scroll_histogram"]) == 1
    other.close()


def test_the_report_holds_the_fields_the_beacon_checks_and_nothing_else(stack, browser):
    page, _ = open_landing_page(browser, stack)
    answers: list[tuple[dict, int]] = []
    page.on("response", lambda r: answers.append((json.loads(r.request.post_data), r.status))
            if r.url.endswith("/_croupier/beacon") and r.request.method == "POST" else None)
    page.wait_for_timeout(300)
    # hidden, not left: Playwright does not see the keepalive requests of a page being left
    emulate_visibility(page, "hidden")
    wait_for(page, lambda: any(body["type"] == "engagement" for body, _ in answers), "the engagement report")
    [(report, status)] = [(body, status) for body, status in answers if body["type"] == "engagement"]
    assert status == 204
    assert set(report) == {"experiment", "type", "id", "active_ms", "scroll", "clicks", "engaged"}
    assert report["experiment"] == "demo" and report["id"] == page.evaluate("croupier.engagement().id")
    assert isinstance(report["active_ms"], int) and report["engaged"] is False
