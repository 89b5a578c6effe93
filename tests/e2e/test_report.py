"""croupier-report on the real stack: simulated visitors through NGINX to the demo experiment,
the report written from its Redis, then opened in headless Chromium."""

from __future__ import annotations

import asyncio

from croupier.router.settings import Settings
from croupier.router.store import Store
from croupier.scripts.report import main
from croupier.scripts.simulate import run_simulation
from tests.browser import launch_chromium
from tests.conftest import settled_totals

VISITORS = 600
RATES = {"a": 0.03, "b": 0.12, "c": 0.05}
# the charts every report of a running experiment has (no segments, not factorial)
CHARTS = {"traffic-share", "conversion-rate", "posteriors", "gain-vs-even-split", "strategies"}


async def breach(redis_url: str) -> None:
    store = Store(Settings(redis_url=redis_url))
    try:
        await store.record_breach("demo", "c", {"action": "cap", "guardrail": 0})
    finally:
        await store.close()


def test_demo_report_opens_offline_with_every_chart(make_stack, tmp_path):
    stack = make_stack(router_env={"CROUPIER_BUCKET_SECONDS": "1"})  # many periods from a short run
    tally = run_simulation(f"http://127.0.0.1:{stack.config.http_port}", RATES, visitors=VISITORS, seed=7,
                           concurrency=4)
    assert not tally.errors
    assert settled_totals(stack, "trials") == VISITORS
    asyncio.run(breach(stack.config.redis_url))
    out = tmp_path / "report.html"

    assert main(["--experiment", "demo", "--redis-url", stack.config.redis_url, "--out", str(out), "--quiet",
                 "--seed", "1", "--no-archive"]) == 0

    html = out.read_text()
    assert "http://" not in html and "https://" not in html  # not even a link to follow
    with launch_chromium(viewport={"width": 1100, "height": 900}) as browser:
        page = browser.page
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        figures = page.eval_on_selector_all(
            "figure", "fs => fs.map(f => ({id: f.id, w: f.querySelector('img').naturalWidth, "
                      "src: f.querySelector('img').getAttribute('src').slice(0, 22), "
                      "caption: f.querySelector('figcaption').textContent}))")
        summary = page.inner_text("#summary")
        events = page.inner_text("#events")
        browser.assert_no_console_errors()
    assert CHARTS <= {f["id"] for f in figures}, figures
    for f in figures:
        assert f["w"] > 0, f"{f['id']}: the image did not decode"
        assert f["src"] == "data:image/png;base64,"
        assert len(f["caption"]) > 40
    outside = [url for url in requests if not url.startswith(("data:", out.as_uri()))]
    assert not outside, f"the report loaded {outside}"
    assert "Winner so far" in summary and "Conversions gained over an even split" in summary
    assert f"{VISITORS:,}" in summary
    assert "guardrail: c breached" in events


def test_png_format_writes_each_chart(make_stack, tmp_path):
    stack = make_stack()
    run_simulation(f"http://127.0.0.1:{stack.config.http_port}", RATES, visitors=200, seed=3, concurrency=4)
    settled_totals(stack, "trials")
    out = tmp_path / "charts"
    assert main(["--experiment", "demo", "--redis-url", stack.config.redis_url, "--format", "png",
                 "--out", str(out), "--quiet", "--no-archive"]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert {name.split("-", 1)[1].removesuffix(".png") for name in written} == CHARTS
    assert all((out / name).read_bytes().startswith(b"\x89PNG") for name in written)
