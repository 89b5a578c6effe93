"""A variant that fails: NGINX serves control, and reports each such page to the router,
which counts it as the variant's failure (the error rate a guardrail can watch)."""

from __future__ import annotations

import json

import httpx

from tests.conftest import BROWSER_UA, eventually, page_variant, variant_stats


def test_a_failing_variants_pages_are_served_control_and_counted(make_stack):
    stack = make_stack()
    stack.variants["b"].stop()
    served = []
    with httpx.Client(headers={"User-Agent": BROWSER_UA}, timeout=10) as client:
        for _ in range(60):
            client.cookies.clear()
            page = client.get(f"{stack.config.base_url}/")
            assert page.status_code == 200
            served.append(page_variant(page))
    # NGINX's fallback log names the variant the router chose for each page served control
    log = (stack.nginx_conf.parent / "fallback.log").read_text().splitlines()
    assigned_b = sum(json.loads(line)["assigned"] == "b" for line in log)
    assert "b" not in served and assigned_b > 0
    eventually(lambda: variant_stats(stack)["b"].get("fallbacks") == assigned_b, timeout=10)
    # only NGINX can report: the router refuses a report without the key it shares with NGINX
    answer = httpx.post(f"{stack.config.admin_url}/_croupier/fallback",
                        headers={"X-Croupier-Experiment": "demo", "X-Croupier-Variant": "c"})
    assert answer.status_code == 403
    assert variant_stats(stack)["c"].get("fallbacks", 0) == 0
