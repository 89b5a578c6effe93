"""The experiment page's engagement table in headless Chromium, against the whole local stack:
visitors' engagement reports through NGINX, the page's figures the same as the API's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser import signed_in
from tests.conftest import Visitor, eventually

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1"
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
# (user agent, active ms, deepest scroll %, clicks, engaged by the page)
REPORTS = [(IPHONE, 2_000, 30, 0, False), (IPHONE, 25_000, 100, 1, False), (IPHONE, 4_000, 60, 2, True),
           (DESKTOP, 1_000, 15, 0, False), (DESKTOP, 65_000, 80, 3, False), (DESKTOP, 500, 10, 0, False)]
TABLE = """() => Object.fromEntries([...document.querySelectorAll('#engagement-table tbody tr[data-variant]')]
  .map(tr => [tr.dataset.variant, [...tr.cells].slice(1).map(td => td.textContent)]))"""


def stats(stack, experiment: str) -> dict:
    with stack.admin() as admin:
        response = admin.get(f"/experiments/{experiment}/stats")
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def seeded(stack):
    """An experiment with segments whose visitors reported engagement, through NGINX."""
    port = stack.config.variant_base_port
    with stack.admin() as admin:
        admin.post("/experiments", json={"id": "engage", "path_prefix": "/engage/", "segment_keys": ["device"],
                                         "variants": [{"id": "a", "upstream": f"127.0.0.1:{port}"},
                                                      {"id": "b", "upstream": f"127.0.0.1:{port + 1}"}]
                                         }).raise_for_status()

    def assigned(user_agent: str) -> Visitor:
        visitor = Visitor(stack.config.base_url, user_agent)
        assert visitor.get("/engage/").status_code == 200
        assert visitor.client.cookies.get("croupier_engage", "").startswith("v2.")  # the segment rides in it
        return visitor

    eventually(lambda: assigned(DESKTOP), timeout=10)  # the routers know the experiment
    for i, (user_agent, active_ms, scroll, clicks, engaged) in enumerate(REPORTS):
        visitor = assigned(user_agent)
        response = visitor.beacon({"experiment": "engage", "type": "engagement", "id": f"dashboard-view-{i:03d}",
                                   "active_ms": active_ms, "scroll": scroll, "clicks": clicks, "engaged": engaged})
        assert response.status_code == 204, response.text
        visitor.close()
    # the segments shown are the ones the bandit runs, chosen by trials: wait for the assignments
    eventually(lambda: len(stats(stack, "engage").get("engagement_segments", {})) == 2, timeout=10)
    return stack


@pytest.fixture(scope="module")
def page(seeded) -> Iterator:
    with signed_in(seeded.config.admin_url, seeded.config.admin_token) as browser:
        yield browser.page


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def test_the_engagement_table_shows_the_apis_figures(page, seeded):
    found = stats(seeded, "engage")
    page.goto(f"{seeded.config.admin_url}/dashboard/experiments/engage")
    page.wait_for_selector("#engagement-table tbody tr[data-variant]")
    shown = page.evaluate(TABLE)
    assert set(shown) == {"a", "b"}
    assert sum(v["engagement"]["views"] for v in found["variants"]) == len(REPORTS)
    for row in found["variants"]:
        e, cells = row["engagement"], shown[row["id"]]
        assert cells[0] == f"{e['views']:,}"
        assert cells[1].startswith(pct(e["engaged_rate"])) and cells[2].startswith(pct(e["bounce_rate"]))
        if e["views"]:
            assert cells[3].split(" s")[0].split(" min")[0]  # a duration, not a dash
            assert f"median {round(e['scroll_median'])}%" in cells[4]
            assert cells[5] == f"{e['clicks_per_view']:.2f}"
    bars = page.locator("#engagement-table svg.scroll-strip rect.scroll-bar")
    assert bars.count() == 2 * 10
    note = page.locator("#engagement-note").text_content()
    assert "10 s active" in note and "30 min" in note


def test_engagement_by_segment_is_shown_when_segments_are_on(page, seeded):
    found = stats(seeded, "engage")["engagement_segments"]
    page.goto(f"{seeded.config.admin_url}/dashboard/experiments/engage")
    page.wait_for_selector("#engagement-segments-table tbody tr[data-segment]")
    assert page.locator("#engagement-segments").is_visible()
    rows = page.eval_on_selector_all("#engagement-segments-table tbody tr", """rows => rows.map(tr =>
      [tr.dataset.segment, tr.dataset.variant, tr.cells[2].textContent])""")
    assert rows == [[segment, e["id"], f"{e['views']:,}"] for segment in sorted(found) for e in found[segment]]


def test_a_page_without_reports_says_so(page, seeded):
    page.goto(f"{seeded.config.admin_url}/dashboard/experiments/demo")
    page.wait_for_selector("#variants tbody tr[data-variant]")
    eventually(lambda: "No engagement reported yet" in page.locator("#engagement-table tbody").text_content())
    assert page.locator("#engagement-segments").is_hidden()
