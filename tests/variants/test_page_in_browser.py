"""The demo page and the real beacon.js in headless Chromium, against a router stand-in."""

import re
import time
from pathlib import Path

import pytest

from tests.browser import chromium  # noqa: F401  (fixture)
from tests.variants.site import BeaconRecorder, router_stand_in, serve
from croupier.variants.app import create_app
from croupier.variants.params import load_params

EXAMPLE = Path(__file__).resolve().parents[2] / "variants" / "examples" / "demo" / "a.json"
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{16,32}")
PAGE = "/spring-sale/"


@pytest.fixture
def recorder():
    return BeaconRecorder()


@pytest.fixture
def site(recorder):
    with serve(router_stand_in(create_app(load_params(EXAMPLE)), recorder)) as url:
        yield url
        recorder.convert_delay = 0  # let a held beacon answer, so the server stops at once


def wait_for(page, condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        page.wait_for_timeout(20)  # keeps Playwright's event loop turning, unlike time.sleep


def open_page(chromium, site):
    # Stands in for the assignment cookie NGINX relays from the router's decision.
    chromium.context.add_cookies([{"name": "croupier_demo", "value": "signed-token", "url": site}])
    page = chromium.page
    page.goto(site + PAGE)
    return page


def submit_signup(page) -> None:
    page.fill("form[data-croupier-convert] input[type=email]", "ada@example.com")
    page.click("form[data-croupier-convert] button[type=submit]")


def test_view_click_and_convert_reach_the_beacon(chromium, site, recorder):
    page = open_page(chromium, site)
    wait_for(page, lambda: recorder.of_type("view"), "the view event")
    [view] = recorder.of_type("view")
    assert set(view["body"]) == {"experiment", "type", "id"}
    assert view["body"]["experiment"] == "demo" and EVENT_ID.fullmatch(view["body"]["id"])
    assert view["content_type"] == "application/json"
    assert view["cookies"] == {"croupier_demo": "signed-token"}

    page.click("[data-croupier-event=click]")
    wait_for(page, lambda: recorder.of_type("click"), "the click event")
    assert page.url.endswith(PAGE + "#signup")

    submit_signup(page)
    page.wait_for_url(f"{site}{PAGE}thanks", timeout=5000)
    [convert] = recorder.of_type("convert")
    assert convert["body"]["goal"] == "signup" and convert["cookies"] == {"croupier_demo": "signed-token"}
    assert len({e["body"]["id"] for e in recorder.events}) == 3, "event ids must be unique"
    assert "You're in" in page.inner_text("h1")

    # Everything the page needs is inline: only the page, the script and the beacon were requested.
    assert set(recorder.paths) == {PAGE, "/_croupier/beacon.js", "/_croupier/beacon", PAGE + "thanks"}
    assert recorder.paths.count(PAGE + "thanks") == 2  # the POST and the GET after the redirect
    chromium.assert_no_console_errors()


def test_form_reaches_thanks_when_the_beacon_fails(chromium, site, recorder):
    recorder.status = 503
    page = open_page(chromium, site)
    wait_for(page, lambda: len(recorder.of_type("view")) == 2, "the view event and its retry")
    submit_signup(page)
    page.wait_for_url(f"{site}{PAGE}thanks", timeout=5000)
    attempts = recorder.of_type("convert")
    assert len(attempts) == 2 and attempts[0]["body"] == attempts[1]["body"], "one retry, same event id"
    # The browser itself logs the failed requests; the script must add nothing of its own.
    chromium.assert_no_console_errors(ignore=lambda e: "status of 503" in e)


def test_a_slow_beacon_does_not_hold_the_visitor(chromium, site, recorder):
    recorder.convert_delay = 5.0
    page = open_page(chromium, site)
    wait_for(page, lambda: recorder.of_type("view"), "the view event")
    submit_signup(page)
    page.wait_for_url(f"{site}{PAGE}thanks", timeout=5000)
    [convert] = recorder.of_type("convert")
    # Measured from the convert's arrival, not the click: Playwright's click has its own waits.
    assert 1.2 < time.monotonic() - convert["at"] < 3.0
    chromium.assert_no_console_errors()


def test_form_reaches_thanks_without_beacon_js(chromium, site, recorder):
    recorder.serve_script = False
    page = open_page(chromium, site)
    submit_signup(page)
    page.wait_for_url(f"{site}{PAGE}thanks", timeout=5000)
    assert recorder.events == []
    chromium.assert_no_console_errors(ignore=lambda e: "status of 404" in e)


def test_track_api(chromium, site, recorder):
    page = open_page(chromium, site)
    wait_for(page, lambda: recorder.of_type("view"), "the view event")
    assert page.evaluate("croupier.track('convert', {goal: 'upgrade', value: 9.5})") is True
    assert recorder.events[-1]["body"] | {"id": ""} == {
        "experiment": "demo", "type": "convert", "goal": "upgrade", "value": 9.5, "id": ""}
    assert page.evaluate("croupier.track('click', {value: 3})") is True
    assert "value" not in recorder.events[-1]["body"]  # the router takes a value on conversions only
    assert page.evaluate("croupier.track('purchase')") is False
    recorder.status = 400
    before = len(recorder.events)
    assert page.evaluate("croupier.track('view')") is False
    assert len(recorder.events) == before + 1, "a refusal is not retried"
    page.evaluate("document.documentElement.removeAttribute('data-croupier-experiment')")
    assert page.evaluate("croupier.track('view')") is False
    assert len(recorder.events) == before + 1, "no experiment, nothing sent"
    chromium.assert_no_console_errors(ignore=lambda e: "status of 400" in e)
