"""The experiment page's guardrails and alerts in headless Chromium, against a real router and
redis-server: each guardrail in words, every variant's verdict now, a held breach with its
evidence and what it does, cleared from the page; the experiment's recent alerts listed and a
drift marked on the rate chart. An ordinary experiment's page shows none of it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from croupier.router.alerts import Alert, Outbox
from croupier.router.experiments import parse_experiment
from croupier.router.guardrail_check import check
from croupier.router.metrics import Metrics
from croupier.router.settings import Settings
from croupier.router.store import Store, bucket_start, parse_counters
from tests.browser import signed_in
from tests.conftest import eventually, redis_and_router

TOKEN = "guardrails-admin-token"
SECRET = "s" * 32
VARIANTS = [{"id": v, "upstream": f"127.0.0.1:{9101 + i}"} for i, v in enumerate("abc")]
GUARDED = {"id": "guarded", "path_prefix": "/guarded/", "min_share": 0.05, "variants": VARIANTS,
           "guardrails": [{"metric": "bounce_rate", "threshold": 0.05},
                          {"metric": "error_rate", "threshold": 0.01, "min_sample": 100_000, "action": "pause"}]}
PLAIN = {"id": "plain", "path_prefix": "/plain/", "variants": VARIANTS}
OTHER = {"id": "other", "path_prefix": "/other/", "variants": VARIANTS}
# b drives visitors away (bounces 76% against control's 40%); c is as good as control on it
STATS = {"a:trials": 3000, "b:trials": 3000, "c:trials": 3000,
         "a:conv:signup": 150, "b:conv:signup": 300, "c:conv:signup": 150}
ENGAGEMENT = {"a:views": 2500, "a:engaged": 1500, "b:views": 2500, "b:engaged": 600,
              "c:views": 2500, "c:engaged": 1480}
BUCKETS = 10  # minutes of traffic on the charts; c's rate falls from the sixth on
CHANGE = 5


def seed(redis_url: str) -> dict:
    """Counters, a held breach of b with the evidence the check finds, and alerts as the
    monitor raises them (for this experiment and another one). Returns what was raised."""
    async def work() -> dict:
        store = Store(Settings(redis_url=redis_url, secret=SECRET))
        try:
            now = time.time()
            starts = [bucket_start(now - 60 * (BUCKETS - k), 60) for k in range(BUCKETS)]
            buckets = {}
            for k, start in enumerate(starts):
                for v in "abc":
                    buckets[f"{start}:{v}:trials"] = 300
                    buckets[f"{start}:{v}:conv:signup"] = 6 if v == "c" and k >= CHANGE else 15
            await store.redis.hset("croupier:{guarded}:stats", mapping=STATS)
            await store.redis.hset("croupier:{guarded}:buckets", mapping=buckets)
            await store.redis.hset("croupier:{guarded}:engagement", mapping=ENGAGEMENT)
            await store.redis.incr("croupier:{guarded}:revision")
            experiment = parse_experiment(GUARDED)
            (breach,) = check(experiment, parse_counters({k: str(v) for k, v in STATS.items()}),
                              parse_counters({k: str(v) for k, v in ENGAGEMENT.items()}), held={}, now=now - 90)
            assert breach.variant == "b"
            assert await store.record_breach("guarded", "b", breach.doc)
            outbox = Outbox(store, Metrics(), 1000)
            raised = [
                Alert("srm", "guarded", "Sample ratio mismatch in experiment guarded (p = 0.0002)",
                      details={"p_value": 0.0002}, time=now - 120),
                Alert("guardrail", "guarded", "Guardrail breached in experiment guarded: variant b is capped at 5%",
                      variant="b", details={**breach.doc, "state": "breached"}, time=now - 90),
                Alert("drift", "guarded", "Conversion rate of variant c in experiment guarded changed -60%",
                      variant="c", time=now - 30,
                      details={"kind": "rate", "changed_at": starts[CHANGE], "direction": -1, "rate_before": 0.05,
                               "rate_after": 0.02, "relative_change": -0.6, "statistic": 40.0}),
                Alert("srm", "other", "Sample ratio mismatch in experiment other", time=now - 10),
            ]
            for alert in raised:
                assert await outbox.raise_alert(alert)
            return {"breach": breach.doc, "changed_at": starts[CHANGE], "alerts": raised}
        finally:
            await store.close()
    return asyncio.run(work())


class Router:
    def __init__(self, url: str, seeded: dict) -> None:
        self.url = url
        self.seeded = seeded
        self.admin = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def get(self, path: str) -> dict:
        response = self.admin.get(path)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def router(tmp_path_factory) -> Iterator[Router]:
    # no monitor: the breach and the alerts are the ones written here, nothing it might add
    env = {"CROUPIER_SECRET": SECRET, "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_ALERTS": "0",
           "CROUPIER_REFRESH_INTERVAL": "0.2"}
    with redis_and_router(tmp_path_factory.mktemp("guardrails"), env) as (url, redis_url):
        with httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}) as api:
            for body in (GUARDED, PLAIN, OTHER):
                response = api.post("/experiments", json=body)
                assert response.status_code == 201, response.text
        router = Router(url, seed(redis_url))
        try:
            yield router
        finally:
            router.admin.close()


@pytest.fixture(scope="module")
def browser(router) -> Iterator:
    """A signed-in browser; at the end, nothing the pages did may have logged an error."""
    with signed_in(router.url, TOKEN) as browser:
        yield browser


@pytest.fixture
def page(browser):
    return browser.page


def open_experiment(page, router: Router, experiment: str) -> list[str]:
    """Opens the page; returns the list every request it makes from now on is added to."""
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{router.url}/dashboard/experiments/{experiment}")
    page.wait_for_selector("#variants tbody tr[data-variant]")
    return requests


def points(x: float, signed: bool = True) -> str:
    """dashboard.js's amount() for a rate: the difference in percentage points."""
    shown = float(f"{x * 100:.2f}")
    return f"{'+' if signed and shown > 0 else ''}{shown:g} point{'' if abs(shown) == 1 else 's'}"


VERDICTS = """() => Object.fromEntries([...document.querySelectorAll('#guardrails-table tbody tr[data-variant]')]
  .map(tr => [tr.dataset.variant + '/' + tr.dataset.guardrail, Object.fromEntries(
    ['estimate', 'tolerated', 'samples', 'verdict'].map(f => [f, tr.querySelector(`[data-field=${f}]`).textContent]))]))"""


def test_the_card_says_each_guardrail_and_every_verdict(page, router):
    open_experiment(page, router, "guarded")
    page.wait_for_selector("#guardrails-table tbody tr[data-variant]")
    rules = page.locator("#guardrail-rules li")
    assert rules.count() == 2
    assert rules.nth(0).text_content().startswith("bounce rate may rise at most 5 points over control")
    assert "capped at 5% of traffic" in rules.nth(0).text_content()
    assert rules.nth(1).text_content().startswith("error rate may rise at most 1 point over control")
    assert "no new visitors" in rules.nth(1).text_content()

    api = router.get("/experiments/guarded/guardrails")
    shown = page.evaluate(VERDICTS)
    assert set(shown) == {"b/0", "b/1", "c/0", "c/1"}
    for variant in api["variants"]:
        for verdict in variant["verdicts"]:
            row = shown[f"{variant['id']}/{verdict['guardrail']}"]
            assert row["samples"] == f"{verdict['n_control']:,.0f} / {verdict['n_variant']:,.0f}"
            if verdict["guardrail"] == 0:
                assert row["estimate"].startswith(points(verdict["estimate"]))
                assert f"95%: {points(verdict['low'])} to {points(verdict['high'])}" in row["estimate"]
                assert row["tolerated"] == "+5 points"
            else:
                assert row["verdict"] == "waiting for 100,000 visitors per arm"
                assert row["tolerated"] == "+1 point"
    assert shown["b/0"]["verdict"] == "beyond tolerance" and shown["b/0"]["samples"] == "2,500 / 2,500"
    assert shown["c/0"]["verdict"] == "within tolerance"
    tags = page.locator("#variants tbody tr[data-variant] .tag-breach")
    assert tags.count() == 1 and page.locator('#variants tr[data-variant="b"] .tag-breach').is_visible()


def test_a_breach_shows_its_evidence_and_what_it_means(page, router):
    open_experiment(page, router, "guarded")
    box = page.locator('#breaches .breach[data-variant="b"]')
    box.wait_for()
    assert page.locator("#breaches .breach").count() == 1  # c holds none
    assert box.get_attribute("data-state") == "breached"
    assert box.locator('[data-field="state"]').text_content() == "breached"
    doc = router.seeded["breach"]
    effect = box.locator('[data-field="effect"]').text_content()
    assert "is capped at 5% of traffic until the breach is cleared" in effect
    evidence = box.locator('[data-field="evidence"]').text_content()
    assert f"bounce rate {points(doc['estimate'])} against control" in evidence
    assert f"95% interval {points(doc['low'])} to {points(doc['high'])}" in evidence
    assert "tolerated +5 points" in evidence and "2,500 views of control, 2,500 of b" in evidence
    assert box.locator('[data-field="at"]').text_content().startswith("breached 20")
    assert doc["reason"] in box.text_content()
    assert box.locator('[data-action="clear-breach"]').is_enabled()


def test_the_recent_alerts_are_listed_and_a_drift_marked_on_the_rate_chart(page, router):
    found = router.get("/experiments/guarded/alerts")
    assert found["experiment"] == "guarded"
    assert [a["kind"] for a in found["alerts"]] == ["drift", "guardrail", "srm"]  # newest first; not other's
    assert all(set(a) == {"id", "kind", "variant", "time", "summary", "details"} for a in found["alerts"])
    assert found["alerts"][0]["details"]["changed_at"] == router.seeded["changed_at"]
    assert [a["kind"] for a in router.get("/experiments/other/alerts")["alerts"]] == ["srm"]

    open_experiment(page, router, "guarded")
    page.wait_for_selector("#alerts tbody tr[data-alert]")
    rows = page.eval_on_selector_all("#alerts tbody tr", """rows => rows.map(tr => ({
      id: tr.dataset.alert, kind: tr.cells[1].textContent, variant: tr.cells[2].textContent,
      summary: tr.cells[3].textContent}))""")
    assert rows == [{"id": a["id"], "kind": {"srm": "sample ratio"}.get(a["kind"], a["kind"]),
                     "variant": a["variant"] or "–", "summary": a["summary"]} for a in found["alerts"]]

    marker = page.locator("#chart-rate svg g.marker")
    marker.first.wait_for(state="attached")
    assert marker.count() == 1 and marker.get_attribute("data-variant") == "c"
    assert marker.locator("text").text_content() == "c -60%"
    # at the change point: past the fifth bucket's point of c's line, before the sixth's
    xs = page.evaluate("""() => {
      const svg = document.querySelector('#chart-rate svg');
      const line = svg.querySelector('g.marker line');
      return {marker: Number(line.getAttribute('x1')),
              points: [...svg.querySelectorAll('circle')].map(c => Number(c.getAttribute('cx')))};
    }""")
    columns = sorted(set(round(x, 1) for x in xs["points"]))
    assert len(columns) == 10 and columns[4] < xs["marker"] < columns[5]
    assert page.locator("#chart-share svg g.marker").count() == 0  # the rate chart only


def test_clearing_a_breach_from_the_page(page, router):
    open_experiment(page, router, "guarded")
    button = page.locator('#breaches .breach[data-variant="b"] [data-action="clear-breach"]')
    button.click()
    assert page.locator("#confirm-ok").text_content() == "Clear breach"
    page.locator("#confirm button[value=cancel]").click()
    page.wait_for_timeout(300)
    assert router.get("/experiments/guarded/guardrails")["variants"][0]["breach"]["state"] == "breached"

    button.click()
    page.locator("#confirm-ok").click()

    def cleared() -> dict | None:
        breach = next(v for v in router.get("/experiments/guarded/guardrails")["variants"] if v["id"] == "b")["breach"]
        return breach if breach["state"] == "cleared" else None
    breach = eventually(cleared)
    assert breach["estimate"] == router.seeded["breach"]["estimate"]  # the evidence is kept
    box = page.locator('#breaches .breach[data-variant="b"][data-state="cleared"]')
    box.wait_for()
    assert box.locator('[data-field="state"]').text_content() == "cleared"
    assert box.locator('[data-field="effect"]').text_content().startswith("Cleared: variant b competes for traffic again")
    assert box.locator('[data-action="clear-breach"]').count() == 0
    eventually(lambda: page.locator("#variants .tag-breach").count() == 0, timeout=5)
    assert page.locator("#flash").is_hidden()
    # a breach no longer held cannot be cleared again
    assert router.admin.delete("/experiments/guarded/guardrails/b").status_code == 404


def test_an_ordinary_experiments_page_shows_none_of_it(page, router):
    requests = open_experiment(page, router, "plain")
    page.wait_for_selector("#chart-rate svg")
    eventually(lambda: any(url.endswith("/experiments/plain/alerts") for url in requests), timeout=5)
    page.wait_for_timeout(300)  # the answer rendered
    assert page.locator("#guardrails").count() == 0
    assert page.locator("#alerts").is_hidden()
    assert page.locator("svg g.marker").count() == 0
    assert page.locator(".tag-breach").count() == 0
    assert not any("/guardrails" in url for url in requests)


def test_the_alerts_route_is_the_admin_apis(router):
    assert httpx.get(f"{router.url}/api/v1/experiments/guarded/alerts").status_code == 401
    response = router.admin.get("/experiments/nope/alerts")
    assert response.status_code == 404 and "nope" in response.json()["error"]
    assert "/experiments/{id}/alerts" in router.get("/openapi.json")["paths"]
