"""Thousands of running experiments on one router: every decision is still the bandit's.

A real stack with 2,000 experiments besides the demo, written straight into the registry
(as bench/experiments.py does, in seconds). New visitors spread over ~3 s, many
snapshot refreshes, must each get the bandit's answer (its assignment cookie), none the
control fallback (a page without the cookie, and a line in NGINX's fallback log)."""

from __future__ import annotations

import asyncio
import random
import time

import httpx

from bench.experiments import Trickle, create_experiments, fallback_lines, wait_for_pickup
from bench.nginx_scale import experiment
from croupier.router.settings import Settings
from tests.conftest import BROWSER_UA

EXPERIMENTS = 2000
VISITORS = 240
SPREAD_S = 3.0


def test_every_new_visitor_gets_the_bandits_answer_with_2000_experiments(make_stack, figure):
    stack = make_stack()
    base = stack.config.variant_base_port
    upstreams = [f"127.0.0.1:{base + i}" for i in range(3)]
    docs = [experiment(i, upstreams) for i in range(EXPERIMENTS)]
    started = time.monotonic()
    asyncio.run(create_experiments(Settings.from_env(stack.router_env()), docs))
    created_s = time.monotonic() - started
    assert created_s < 30, f"creating {EXPERIMENTS} experiments took {created_s:.1f} s"
    stack.reload_nginx()
    conf = stack.nginx_conf.read_text()
    assert all(f'"|{d["path_prefix"]}" {d["id"]};' in conf for d in docs)  # NGINX's fail-open knows them all
    wait_for_pickup(stack.config.base_url, docs[-1]["id"], docs[-1]["path_prefix"], timeout=60)

    log = stack.nginx_conf.parent / "fallback.log"
    logged_before = fallback_lines(log)
    visitors = Trickle(stack.config.base_url, docs, rate=VISITORS / SPREAD_S)
    rand = random.Random(3)
    started = time.monotonic()
    with httpx.Client(headers={"User-Agent": BROWSER_UA}, timeout=5) as client:
        for i in range(VISITORS):
            time.sleep(max(0.0, started + i * SPREAD_S / VISITORS - time.monotonic()))
            visitors.visit(client, rand.choice(docs))
            client.cookies.clear()
    took = time.monotonic() - started
    served_control = fallback_lines(log) - logged_before
    figure(f"{EXPERIMENTS} experiments created in {created_s:.1f} s; {VISITORS} new visitors over {took:.1f} s: "
           f"{visitors.fallbacks} without the bandit's cookie, {served_control} in the fallback log")
    assert visitors.fallbacks == 0
    assert served_control == 0
