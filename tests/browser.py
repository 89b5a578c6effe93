"""Headless Chromium for tests: the system's chromium, driven by Playwright.

Uses the distribution's browser (``/usr/bin/chromium``, or ``CROUPIER_CHROMIUM``)
rather than a Playwright download, with a fresh temporary profile per launch,
and collects console errors and uncaught exceptions of every page.

    from tests.browser import chromium  # noqa: F401  (the fixture)

    def test_page(chromium):
        chromium.page.goto(url)
        chromium.assert_no_console_errors()

Outside pytest fixtures, ``launch_chromium()`` is the same as a context manager.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests often run as root in containers, where the sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",  # no update checks or field trials: tests stay offline
    "--disable-component-update",
    "--no-first-run",
]
INSTALL_HINT = "apt-get install -y chromium"


def chromium_path() -> str:
    """The Chromium binary; fails the test with how to install it when there is none."""
    candidates = [os.environ.get("CROUPIER_CHROMIUM", ""), "/usr/bin/chromium", shutil.which("chromium") or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"Chromium is not installed (looked for /usr/bin/chromium and chromium on PATH); "
                f"install it with `{INSTALL_HINT}`, or point CROUPIER_CHROMIUM at a binary", pytrace=False)


class Chromium:
    """A persistent browser context whose pages report their console errors here."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.console_errors: list[str] = []
        for page in context.pages:
            self._watch(page)
        context.on("page", self._watch)

    def _watch(self, page: Any) -> None:
        def on_console(message: Any) -> None:
            if message.type == "error":
                self.console_errors.append(f"{page.url}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"{page.url}: uncaught {exc}"))

    @property
    def page(self) -> Any:
        """The window the browser opened with."""
        return self.context.pages[0] if self.context.pages else self.context.new_page()

    def assert_no_console_errors(self, ignore: Callable[[str], bool] = lambda _: False) -> None:
        errors = [e for e in self.console_errors if not ignore(e)]
        assert not errors, "console errors:\n" + "\n".join(errors)


@contextmanager
def launch_chromium(**context_options: Any) -> Iterator[Chromium]:
    """Start headless Chromium with a throwaway profile; closes it and removes the profile after.

    ``context_options`` go to Playwright's ``launch_persistent_context``. Reduced motion is
    the default: smooth scrolling would make every click wait for an animation.
    """
    context_options.setdefault("reduced_motion", "reduce")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: `pip install playwright` "
                    "(no `playwright install`: the system's chromium is used)", pytrace=False)
    executable = chromium_path()
    with tempfile.TemporaryDirectory(prefix="croupier-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            **context_options)
        try:
            yield Chromium(context)
        finally:
            context.close()


@contextmanager
def signed_in(base_url: str, token: str) -> Iterator[Chromium]:
    """Chromium signed in to the dashboard at ``base_url`` through its login form, as a
    marketer would; at the end, nothing the pages did may have logged an error."""
    with launch_chromium(viewport={"width": 1360, "height": 900}) as browser:
        page = browser.page
        page.goto(f"{base_url}/dashboard/")
        page.fill("#token", token)
        page.click("form.login-form button[type=submit]")
        page.wait_for_url(f"{base_url}/dashboard/")
        yield browser
        browser.assert_no_console_errors()


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    with launch_chromium() as browser:
        yield browser
