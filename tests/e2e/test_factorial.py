"""A factorial experiment on the real stack: NGINX, the router, Redis and one page server
rendering every combination.

Simulated visitors whose conversion depends on the combination they see (a known best):
the page each one gets carries the levels the router chose for them (the merged copy, and
the arm its cookie names), their conversions are credited to that combination and its
levels, and by the end most new visitors get the best combination."""

from __future__ import annotations

import html
import json
import math
import random
import secrets
import sys
import time
from collections import Counter

import httpx

from bench.experiments import wait_for_pickup
from croupier.router.experiments import parse_experiment
from croupier.router.settings import Settings
from croupier.router.token import verify
from croupier.scripts.processes import Process, free_port, http_ok
from tests.conftest import BROWSER_UA, page_variant, settled_totals, variant_stats

VISITORS = 700
LATE = 150  # the last visitors, where the bandit should have settled on the best

FACTORS = {"headline": {"plain": {}, "savings": {"headline": "Save 20% this spring"}},
           "cta": {"go": {}, "buy": {"cta": "Buy now"}, "try": {"cta": "Try it free"}},
           "offer": {"none": {}, "cashback": {"badge": "5% cashback"}}}
# the truth, on the logit scale: additive effects, best = savings_buy_cashback (55%)
EFFECTS = {"savings": 1.2, "buy": 1.0, "try": 0.3, "cashback": 1.0}
BASE_LOGIT = -3.0


def true_rate(arm: str) -> float:
    logit = BASE_LOGIT + sum(EFFECTS.get(level, 0.0) for level in arm.split("_"))
    return 1.0 / (1.0 + math.exp(-logit))


def test_visitors_see_their_combination_are_credited_and_traffic_moves_to_the_best(make_stack, tmp_path, figure):
    stack = make_stack()
    port = free_port()
    doc = {"id": "mvt", "path_prefix": "/mvt/", "policy": "factorial_thompson",
           "variants": [{"id": "page", "upstream": f"127.0.0.1:{port}",
                         "params": {"id": "page", "headline": "Spring sale", "cta": "Go"}}],
           "factors": FACTORS, "constraints": [{"cta": "try", "offer": "cashback"}]}
    declaration = tmp_path / "mvt.json"
    declaration.write_text(json.dumps(doc))
    server = Process("variant-mvt", [sys.executable, "-m", "croupier.variants", "--experiment", str(declaration),
                                     "--host", "127.0.0.1", "--port", str(port)], tmp_path / "variant-mvt.log",
                     ready=lambda: http_ok(f"http://127.0.0.1:{port}/healthz")).start().wait_until()
    try:
        run(stack, doc, figure)
    finally:
        server.stop()


def counts(stack) -> dict[str, tuple[int, int]]:
    """Each combination's (trials, conversions), once the router has written what it queued."""
    settled_totals(stack, "trials", "mvt")
    return {a: (r["trials"], r["conversions"]) for a, r in variant_stats(stack, "mvt").items()}


def run(stack, doc: dict, figure) -> None:
    with stack.admin() as admin:
        assert admin.post("/experiments", json=doc).status_code == 201
    stack.reload_nginx()
    experiment = parse_experiment(doc)
    arms = {v.id: v for v in experiment.variants}
    best = max(arms, key=true_rate)
    assert best == "savings_buy_cashback"
    keys = Settings.from_env(stack.router_env()).signing_keys()
    rand = random.Random(7)
    shown: list[str] = []
    converted: Counter[str] = Counter()
    base = stack.config.base_url
    wait_for_pickup(base, "mvt", "/mvt/", timeout=30)
    before = counts(stack)  # the pickup's polls were visitors too

    started = time.monotonic()
    with httpx.Client(headers={"User-Agent": BROWSER_UA}, timeout=10) as client:
        for _ in range(VISITORS):
            client.cookies.clear()  # a new visitor each time
            # what a client sends as X-Croupier-Variant is not what the page server reads: NGINX
            # sets it from the router's answer
            page = client.get(f"{base}/mvt/", headers={"X-Croupier-Variant": "plain_go_none"})
            assert page.status_code == 200
            arm = page_variant(page)
            assert arm in arms, arm
            token = client.cookies["croupier_mvt"].split("~", 1)[0]
            assert verify(token, keys, now=int(time.time()), max_age=10**8).variant == arm
            params = arms[arm].params  # the base params with the arm's levels merged
            text = html.unescape(page.text)
            assert params["headline"] in text and params["cta"] in text
            assert ("5% cashback" in text) == arm.endswith("_cashback")
            shown.append(arm)
            if rand.random() < true_rate(arm):
                answer = client.post(f"{base}/_croupier/beacon", headers={"Origin": base}, json={
                    "experiment": "mvt", "type": "convert", "goal": "signup", "id": secrets.token_hex(8)})
                assert answer.status_code in (202, 204), answer.text
                converted[arm] += 1
    took = time.monotonic() - started

    after = counts(stack)
    gained = {a: (after[a][0] - before.get(a, (0, 0))[0], after[a][1] - before.get(a, (0, 0))[1]) for a in after}
    # each visitor is the combination's they were shown, each conversion too
    assert {a: t for a, (t, _) in gained.items() if t} == dict(Counter(shown))
    assert {a: c for a, (_, c) in gained.items() if c} == dict(converted)
    with stack.admin() as admin:
        stats = admin.get("/experiments/mvt/stats").json()
    # ... and so their levels'
    for f, factor in enumerate(stats["factors"]):
        for level in factor["levels"]:
            holding = [a for a in after if a.split("_")[f] == level["name"]]
            assert level["trials"] == sum(after[a][0] for a in holding)
            assert level["conversions"] == sum(after[a][1] for a in holding)
    late = Counter(shown[-LATE:])
    figure(f"factorial e2e: {VISITORS} visitors in {took:.1f} s; the last {LATE}: {late[best]} on the best "
           f"combination ({best}), most served {late.most_common(1)[0]}; the model's best {stats['best']['arm']}")
    assert late[best] > LATE / 2
    assert stats["best"]["arm"] == best
