"""beacon.js's engagement reports in headless Chromium, against the router stand-in: when it
reports, how often, and what it counts. (Through the whole stack: tests/e2e.)"""

from __future__ import annotations

from tests.browser import chromium  # noqa: F401  (fixture)
from tests.e2e.test_engagement_in_browser import emulate_visibility
from tests.variants.site import BeaconRecorder
# the page served through the router stand-in, as the page's own browser tests have it
from tests.variants.test_page_in_browser import PAGE, open_page, recorder, site, wait_for  # noqa: F401




def reports(recorder: BeaconRecorder) -> list[dict]:
    return recorder.of_type("engagement")


def hide_and_show(page, hidden_ms: int = 0) -> None:
    emulate_visibility(page, "hidden")
    page.wait_for_timeout(hidden_ms)
    emulate_visibility(page, "visible")


def test_one_report_a_second_however_often_the_page_is_hidden(chromium, site, recorder):
    page = open_page(chromium, site)
    wait_for(page, lambda: recorder.of_type("view"), "the view event")
    for step in range(8):  # hidden and shown every 100 ms, scrolling further each time
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(100)
        hide_and_show(page)
    page.wait_for_timeout(1500)
    sent = reports(recorder)
    assert 2 <= len(sent) <= 3, [r["body"] for r in sent]  # the first at once, then one a second
    gaps = [b["at"] - a["at"] for a, b in zip(sent, sent[1:])]
    # arrival times: a request's trip varies by some tens of milliseconds, a hide every 100 ms
    assert all(gap >= 0.7 for gap in gaps), gaps
    assert {r["body"]["id"] for r in sent} == {recorder.of_type("view")[0]["body"]["id"]}
    scrolls = [r["body"]["scroll"] for r in sent]
    assert scrolls == sorted(scrolls) and sent[-1]["body"]["scroll"] == page.evaluate("croupier.engagement().scroll")
    chromium.assert_no_console_errors()


def test_nothing_new_nothing_sent(chromium, site, recorder):
    page = open_page(chromium, site)
    hide_and_show(page, hidden_ms=1200)
    wait_for(page, lambda: len(reports(recorder)) == 1, "the first report")
    page.wait_for_timeout(300)  # less than a second more of active time, nothing else
    hide_and_show(page, hidden_ms=300)
    page.wait_for_timeout(1200)
    assert len(reports(recorder)) == 1
    page.wait_for_timeout(800)  # now more than a second more: worth a report
    emulate_visibility(page, "hidden")
    wait_for(page, lambda: len(reports(recorder)) == 2, "the second report")
    first, second = (r["body"] for r in reports(recorder))
    assert second["active_ms"] - first["active_ms"] >= 1000
    chromium.assert_no_console_errors()


def test_a_failed_report_is_sent_again_and_a_refused_one_ends_reporting(chromium, site, recorder):
    recorder.status = 503
    page = open_page(chromium, site)
    emulate_visibility(page, "hidden")
    wait_for(page, lambda: len(reports(recorder)) == 1, "the first report")
    page.wait_for_timeout(1100)
    emulate_visibility(page, "visible")
    recorder.status = 400
    emulate_visibility(page, "hidden")  # nothing grew, but the router never took the first
    wait_for(page, lambda: len(reports(recorder)) == 2, "the report again")
    page.wait_for_timeout(1100)
    emulate_visibility(page, "visible")
    page.click("h1")
    page.click("h1")
    emulate_visibility(page, "hidden")  # engaged now, but the router refused this page view
    page.wait_for_timeout(1200)
    assert len(reports(recorder)) == 2
    chromium.assert_no_console_errors(ignore=lambda e: "status of 503" in e or "status of 400" in e)


def test_clicks_are_the_visitors_and_a_conversion_makes_the_view_engaged(chromium, site, recorder):
    page = open_page(chromium, site)
    page.evaluate("document.querySelector('h1').click()")  # a script's click: not the visitor's
    page.click("h1")
    assert page.evaluate("croupier.engagement()") | {"id": "", "active_ms": 0, "scroll": 0} == {
        "id": "", "active_ms": 0, "scroll": 0, "clicks": 1, "engaged": False}
    assert page.evaluate("croupier.track('convert', {goal: 'upgrade'})") is True
    assert page.evaluate("croupier.engagement().engaged") is True
    page.goto(site + PAGE + "thanks")  # left: the report goes with keepalive
    wait_for(page, lambda: reports(recorder), "the report")
    [report] = reports(recorder)
    assert report["body"]["clicks"] == 1 and report["body"]["engaged"] is True
    chromium.assert_no_console_errors()
