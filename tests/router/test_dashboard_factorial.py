"""A factorial experiment's page in headless Chromium, against a real router and redis-server fed
through the channels API: a rollup per factor, the best combination, the heatmap of the pair
the marketer picks, the strongest interactions, and only the top combinations until asked."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.browser import signed_in
from tests.conftest import eventually, redis_and_router

TOKEN = "factorial-admin-token"
SECRET = "s" * 32
API_KEY = "factorial-key-0123456789abcdef"
UPSTREAM = "127.0.0.1:9100"
MVT = {"id": "mvt", "path_prefix": "/mvt/", "policy": "factorial_thompson", "min_share": 0.05,
       "variants": [{"id": "page", "upstream": UPSTREAM, "params": {"headline": "Base", "cta": "Go", "badge": ""}}],
       "factors": {"headline": {"plain": {}, "savings": {"headline": "Save 20%"}},
                   "cta": {"go": {}, "buy": {"cta": "Buy now"}, "try": {"cta": "Try it"}},
                   "offer": {"none": {}, "cashback": {"badge": "5% cashback"}}},
       "constraints": [{"cta": "try", "offer": "cashback"}]}
# 4 x 4 x 3 = 48 combinations: more than the page lists at first
WIDE = {"id": "wide", "path_prefix": "/wide/", "policy": "factorial_thompson",
        "variants": [{"id": "page", "upstream": UPSTREAM, "params": {"layout": "grid", "color": "blue", "size": "s"}}],
        "factors": {"layout": {name: {"layout": name} for name in ("grid", "list", "hero", "split")},
                    "color": {name: {"color": name} for name in ("blue", "green", "red", "black")},
                    "size": {name: {"size": name} for name in ("s", "m", "l")}}}
PLAIN = {"id": "plain", "path_prefix": "/plain/", "variants": [
    {"id": "a", "upstream": UPSTREAM}, {"id": "b", "upstream": "127.0.0.1:9101"}]}
TOP = 20  # dashboard.js's TOP_COMBINATIONS
VARIANT_ROWS = "#variants tbody tr[data-variant]"
# every heatmap cell with what the page's own last stats say it should show, read in one go
# (so a poll cannot land between the two)
HEATMAP = """() => {
  const page = window.croupierDashboard, [rows, cols] = page.pair;
  const stored = page.stats.heatmaps.find(h => h.factors.includes(rows) && h.factors.includes(cols));
  const flipped = stored.factors[0] !== rows;
  const cells = [...document.querySelectorAll('#heatmap-table tbody td')];
  return {pair: [rows, cols],
          head: [...document.querySelectorAll('#heatmap-table thead th[scope=col]')].map(th => th.textContent),
          side: [...document.querySelectorAll('#heatmap-table tbody th[scope=row]')].map(th => th.textContent),
          cells: cells.map(td => {
            const i = (flipped ? stored.cols : stored.rows).indexOf(td.dataset.row);
            const j = (flipped ? stored.rows : stored.cols).indexOf(td.dataset.col);
            const rate = flipped ? stored.rates[j][i] : stored.rates[i][j];
            return {row: td.dataset.row, col: td.dataset.col,
                    text: (td.querySelector('.heat-rate') || td).textContent.split('%')[0],
                    expected: rate === null ? null : (rate * 100).toFixed(2),
                    colour: td.style.backgroundColor};
          })};
}"""


def feed(api_url: str, experiment: str, customers: int, converts) -> int:
    """Decisions for ``customers`` customers through the channels API; those whose combination
    ``converts(arm)`` accepts convert. Returns the number of conversions."""
    with httpx.Client(base_url=api_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30) as channels:
        def decide(i: int) -> httpx.Response:
            return channels.post("/decide", json={"experiment": experiment, "customer_id": f"{experiment}-{i}"})

        def first() -> dict | None:  # waits for the router's refresh to have the new experiment
            response = decide(0)
            return response.json() if response.status_code == 200 else None

        answers = [eventually(first, timeout=10)]
        for i in range(1, customers):
            response = decide(i)
            assert response.status_code == 200, response.text
            answers.append(response.json())
        converted = [a for a in answers if converts(a["variant"])]
        for answer in converted:
            response = channels.post("/conversions", json={"experiment": experiment, "token": answer["token"]})
            assert response.status_code == 202, response.text
    return len(converted)


class Router:
    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    def stats(self, experiment: str) -> dict:
        response = self.admin.get(f"/experiments/{experiment}/stats")
        response.raise_for_status()
        return response.json()

    def counted(self, experiment: str, trials: int, conversions: int) -> None:
        """Waits until every decision and conversion fed has been written."""
        def settled() -> bool:
            rows = self.stats(experiment)["variants"]
            return (sum(v["trials"] for v in rows), sum(v["conversions"] for v in rows)) == (trials, conversions)
        eventually(settled, timeout=15)


@pytest.fixture(scope="module")
def router(tmp_path_factory) -> Iterator[Router]:
    env = {"CROUPIER_SECRET": SECRET, "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_API_KEYS": f"default:{API_KEY}",
           "CROUPIER_REFRESH_INTERVAL": "0.2", "CROUPIER_FLUSH_INTERVAL": "0.05"}
    with redis_and_router(tmp_path_factory.mktemp("factorial"), env) as (url, _):
        router = Router(url)
        try:
            for body in (MVT, WIDE, PLAIN):
                response = router.admin.post("/experiments", json=body)
                assert response.status_code == 201, response.text
            # the savings headline with cashback converts, nothing else does
            converted = feed(f"{router.url}/api/v1", "mvt", 80,
                             lambda arm: arm.startswith("savings_") and arm.endswith("_cashback"))
            assert converted, "no customer got the savings headline with cashback"
            router.counted("mvt", 80, converted)
            wide = feed(f"{router.url}/api/v1", "wide", 150, lambda arm: arm.startswith("hero_"))
            router.counted("wide", 150, wide)
            yield router
        finally:
            router.admin.close()


@pytest.fixture(scope="module")
def page(router) -> Iterator:
    """A signed-in page; at the end, nothing the pages did may have logged an error."""
    with signed_in(router.url, TOKEN) as browser:
        yield browser.page


def open_experiment(page, router: Router, experiment: str) -> None:
    page.goto(f"{router.url}/dashboard/experiments/{experiment}")
    page.wait_for_selector(VARIANT_ROWS)


def rollups(page) -> dict[str, dict[str, dict]]:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#rollups .rollup')].map(r => [
      r.dataset.factor, Object.fromEntries([...r.querySelectorAll('tbody tr')].map(tr => [tr.dataset.level, {
        trials: Number(tr.querySelector('[data-field=trials]').textContent.replace(/,/g, '')),
        rate: tr.querySelector('[data-field=rate]').textContent, leader: tr.classList.contains('leader')}]))]))""")


def test_a_rollup_per_factor_and_the_best_combination(page, router):
    open_experiment(page, router, "mvt")
    page.wait_for_selector("#rollups .rollup")
    stats = router.stats("mvt")
    shown = rollups(page)
    assert list(shown) == ["headline", "cta", "offer"]
    for factor in stats["factors"]:
        levels = shown[factor["name"]]
        assert list(levels) == [level["name"] for level in factor["levels"]]
        assert {name: v["trials"] for name, v in levels.items()} == \
            {level["name"]: level["trials"] for level in factor["levels"]}
        assert all("%" in v["rate"] and "–" in v["rate"] for v in levels.values())  # a rate and its interval
        assert sum(v["leader"] for v in levels.values()) == 1
    # only the savings headline with cashback converted: those levels lead their factors
    assert shown["headline"]["savings"]["leader"] and shown["offer"]["cashback"]["leader"]

    best = page.text_content("#best-arm")
    assert best.startswith("savings_") and best.endswith("_cashback")
    assert page.text_content("#best-names").startswith("headline: savings · cta: ")
    assert page.text_content("#best-rate").endswith("%") and "–" in page.text_content("#best-interval")
    # the combinations table marks it too (read together: a poll may move the best between cta levels)
    assert page.evaluate("() => document.querySelector('#variants .tag-best').closest('tr').dataset.variant"
                         " === document.querySelector('#best-arm').textContent")

    # ten combinations: all listed, no toggle
    assert page.locator(VARIANT_ROWS).count() == len(stats["variants"]) == 10
    assert page.is_hidden("#variants-toggle")
    assert page.text_content("#variants").count("savings_try_cashback") == 0  # the constraint's


def test_the_heatmap_follows_the_chosen_pair(page, router):
    open_experiment(page, router, "mvt")
    page.wait_for_selector("#heatmap-table tbody td")
    factors = ["headline", "cta", "offer"]
    for select in ("#heatmap-rows", "#heatmap-cols"):
        assert page.eval_on_selector(select, "s => [...s.options].map(o => o.value)") == factors

    def shows(rows: str, cols: str, side: list[str], head: list[str], excluded: tuple[str, str] | None) -> None:
        assert page.input_value("#heatmap-rows") == rows and page.input_value("#heatmap-cols") == cols
        heat = page.evaluate(HEATMAP)
        assert heat["pair"] == [rows, cols] and heat["side"] == side and heat["head"] == head
        assert len(heat["cells"]) == len(side) * len(head)
        assert [(c["row"], c["col"]) for c in heat["cells"]] == [(r, c) for r in side for c in head]
        for cell in heat["cells"]:
            if (cell["row"], cell["col"]) == excluded:
                assert cell["text"] == "excluded" and cell["expected"] is None and not cell["colour"]
            else:
                assert cell["text"] == cell["expected"] and cell["colour"].startswith("rgb("), cell

    shows("headline", "cta", ["plain", "savings"], ["go", "buy", "try"], None)  # the first pair
    # offer x cta: the stored cta x offer heatmap, transposed
    page.select_option("#heatmap-rows", "offer")
    shows("offer", "cta", ["none", "cashback"], ["go", "buy", "try"], ("cashback", "try"))
    excluded = page.locator('#heatmap-table td[data-row="cashback"][data-col="try"]')
    assert excluded.text_content() == "excluded"
    # the rows' factor chosen for the columns: the two swap
    page.select_option("#heatmap-cols", "offer")
    shows("cta", "offer", ["go", "buy", "try"], ["none", "cashback"], ("try", "cashback"))
    page.select_option("#heatmap-rows", "headline")
    shows("headline", "offer", ["plain", "savings"], ["none", "cashback"], None)
    # the choice survives the next polls
    page.wait_for_timeout(2500)
    shows("headline", "offer", ["plain", "savings"], ["none", "cashback"], None)
    low, high = page.text_content("#heat-low"), page.text_content("#heat-high")
    assert low.endswith("%") and high.endswith("%") and float(low[:-1]) <= float(high[:-1])


def test_the_strongest_interactions_with_their_intervals(page, router):
    open_experiment(page, router, "mvt")
    rows = page.locator("#interactions-table tbody tr[data-interaction]")
    rows.first.wait_for()
    # two of headline x cta, one of headline x offer, one of cta x offer (try x cashback is excluded)
    assert len(router.stats("mvt")["interactions"]) == 4 == rows.count()
    texts = rows.all_text_contents()
    assert all(" × " in text and " to " in text for text in texts)
    assert not any("try" in text and "cashback" in text for text in texts)


def test_many_combinations_show_the_top_ones_until_asked(page, router):
    open_experiment(page, router, "wide")
    stats = router.stats("wide")
    assert len(stats["variants"]) == 48
    ranked = [v["id"] for v in sorted(stats["variants"], key=lambda v: -v["posterior_mean"])]

    def listed() -> list[str]:
        return page.eval_on_selector_all(VARIANT_ROWS, "rows => rows.map(r => r.dataset.variant)")

    eventually(lambda: listed() == ranked[:TOP], timeout=8)
    assert page.text_content("#variants-shown") == f"top {TOP} of 48 by posterior mean"
    assert page.locator("#srm-table tbody tr").count() <= TOP
    assert page.locator("#legend-share .legend-item").count() <= TOP
    page.click("#variants-toggle")
    assert listed() == ranked
    assert page.text_content("#variants-toggle") == f"Show the top {TOP}"
    page.wait_for_timeout(2500)  # still all after a poll
    assert listed() == ranked
    page.click("#variants-toggle")
    assert listed() == ranked[:TOP] and page.text_content("#variants-toggle") == "Show all 48"
    assert page.locator("#interactions-table tbody tr[data-interaction]").count() == 5
    assert page.locator("#rollups .rollup").count() == 3


def test_an_ordinary_experiment_has_no_factor_section(page, router):
    open_experiment(page, router, "plain")
    assert page.eval_on_selector_all(VARIANT_ROWS, "rows => rows.map(r => r.dataset.variant)") == ["a", "b"]
    for selector in ("#factorial", "#heatmap", "#interactions", "#variants-toggle", "#variants-shown"):
        assert page.locator(selector).count() == 0, selector
    assert page.locator("section.card.flush .card-head h2").first.text_content() == "Variants"


def test_the_pages_hold_no_inline_style_or_script(router):
    with httpx.Client(base_url=router.url, follow_redirects=False) as client:
        client.post("/dashboard/login", data={"token": TOKEN, "next": "/dashboard/"}, headers={"Origin": router.url})
        for experiment in ("mvt", "plain"):
            response = client.get(f"/dashboard/experiments/{experiment}")
            assert response.status_code == 200
            assert "<script>" not in response.text and " style=" not in response.text
            assert ('id="factorial"' in response.text) == (experiment == "mvt")
            assert "default-src 'none'" in response.headers["content-security-policy"]
