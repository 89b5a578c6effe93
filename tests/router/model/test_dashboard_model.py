"""The experiment page's model-accuracy card in headless Chromium, against a real router and
redis-server: per version its validation and live log loss, the current one marked; an
experiment without a model shows no card."""

from __future__ import annotations

import asyncio
from pathlib import Path

from croupier.router.experiments import parse_experiment
from croupier.router.model_update import run_round
from croupier.router.settings import Settings
from croupier.router.store import Store
from tests.browser import signed_in
from tests.conftest import redis_and_router
from tests.router.model.events import write

TOKEN = "model-card-admin-token"
VARIANTS = [{"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}]


def seed(redis_url: str) -> list[dict]:
    async def work() -> list[dict]:
        store = Store(Settings(redis_url=redis_url))
        try:
            await store.create_experiment(parse_experiment(
                {"id": "modelled", "path_prefix": "/m/", "segment_keys": ["device"], "model_weight": 0.5,
                 "variants": VARIANTS}))
            await store.create_experiment(parse_experiment({"id": "plain", "path_prefix": "/p/",
                                                            "variants": VARIANTS}))
            await write(store, "modelled", 3000, seed=1)
            first = await run_round(store, "modelled", trigger="schedule")
            await write(store, "modelled", 6000, seed=2, flipped=True, start=1_700_001_000.0)
            second = await run_round(store, "modelled", trigger="drift")
            return [first, second]
        finally:
            await store.close()
    return asyncio.run(work())


def test_model_card_shows_each_version_and_its_live_figures(tmp_path: Path):
    env = {"CROUPIER_SECRET": "s" * 32, "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_ALERTS": "0",
           "CROUPIER_RETRAIN_INTERVAL": "0", "CROUPIER_REFRESH_INTERVAL": "0.2"}
    with redis_and_router(tmp_path, env) as (url, redis_url):
        first, second = seed(redis_url)
        assert first["current"] and second["current"] and second["live"]["version"] == 1
        with signed_in(url, TOKEN) as browser:
            page = browser.page
            page.goto(f"{url}/dashboard/experiments/modelled")
            page.wait_for_selector("#model-accuracy-table tbody tr[data-version]")
            rows = page.eval_on_selector_all("#model-accuracy-table tbody tr", "trs => trs.map(tr => "
                                             "[...tr.cells].map(td => td.textContent.trim()))")
            assert [r[0] for r in rows] == ["2 (current)", "1"]  # newest first
            assert rows[0][1:3] == ["accepted", "drift"] and rows[1][1:3] == ["accepted", "schedule"]
            assert rows[1][3] == f"{first['validation']['candidate']['log_loss']:.4f}"
            assert rows[1][5].startswith(f"{second['live']['log_loss']:.4f} ({second['live']['rows']} rows)")
            assert rows[0][4] == f"{second['validation']['current']['log_loss']:.4f}" and rows[0][5] == "–"

            page.goto(f"{url}/dashboard/experiments/plain")
            page.wait_for_selector("#variants tbody tr[data-variant]")
            assert page.is_hidden("#model-accuracy")
