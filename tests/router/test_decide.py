"""The decision logic on an in-memory snapshot: no Redis, no HTTP."""

import random
import re

import numpy as np
import pytest

from croupier.router.assign import Assigner
from croupier.router.decide import BotVerdicts, Decider
from croupier.router.experiments import parse_experiment
from croupier.router.metrics import Metrics
from croupier.router.recorder import AssignmentRecorder
from croupier.router.settings import DEFAULT_BOT_PATTERN, Settings
from croupier.router.snapshot import Snapshot, SnapshotKeeper, compute_arms

UA = "Mozilla/5.0 Chrome/126"
NOW = 1_800_000_000.0


def exp(exp_id, prefix="/", host="", **extra):
    return parse_experiment({"id": exp_id, "path_prefix": prefix, "host": host, "variants": [
        {"id": "a", "upstream": f"{exp_id}-a:80"}, {"id": "b", "upstream": f"{exp_id}-b:80"}], **extra})


@pytest.fixture
def decider():
    settings = Settings(secret="s" * 32, default_upstream="site:80")
    keeper = SnapshotKeeper(store=None, refresh_interval=1, rng=np.random.default_rng(0))
    experiments = [exp("root"), exp("sale", "/sale/"), exp("sale-shop", "/sale/", host="shop.example"),
                   exp("deep", "/sale/summer/"), exp("off", "/off/", status="paused"),
                   exp("done", "/done/", status="ended", winner="b")]
    arms = {e.id: compute_arms(e, {}, np.random.default_rng(0)) for e in experiments if e.status == "running"}
    keeper.current = Snapshot.build(experiments, arms, {}, 1)
    recorder = AssignmentRecorder(store=None, metrics=Metrics(), flush_interval=1, max_pending=3)
    return Decider(settings, Assigner(settings, keeper, recorder, Metrics(), random.Random(1)))


@pytest.mark.parametrize("host, uri, expected", [
    ("example.com", "/", "root"),
    ("example.com", "/sale/x?utm=1", "sale"),
    ("shop.example", "/sale/x", "sale-shop"),
    ("SHOP.example:8080", "/sale/x", "sale-shop"),
    ("shop.example", "/sale/summer/y", "deep"),
    ("example.com", "/salesman", "root"),
])
def test_longest_prefix_and_host_match(decider, host, uri, expected):
    assert decider.decide(host, uri, UA, {}, NOW).experiment == expected


def test_no_experiment_gets_the_default_upstream():
    settings = Settings(secret="s" * 32, default_upstream="site:80")
    keeper = SnapshotKeeper(store=None, refresh_interval=1, rng=np.random.default_rng(0))
    recorder = AssignmentRecorder(store=None, metrics=Metrics(), flush_interval=1, max_pending=10)
    decision = Decider(settings, Assigner(settings, keeper, recorder, Metrics())).decide("x", "/", UA, {}, NOW)
    assert (decision.upstream, decision.reason, decision.cookie) == ("site:80", "no_experiment", "")


def test_new_visitor_is_assigned_recorded_and_signed(decider):
    d = decider.decide("example.com", "/", UA, {}, NOW)
    assert d.reason == "new" and d.variant in ("a", "b") and d.upstream == f"root-{d.variant}:80"
    assert d.cookie.startswith("croupier_root=v1.k1.")
    record = decider.core.recorder.pending[-1]
    assert (record.experiment, record.variant) == ("root", d.variant)
    assert abs(sum(p for _, p in record.probabilities) - 1) < 1e-9


def test_returning_visitor_keeps_variant_without_recording(decider):
    first = decider.decide("example.com", "/", UA, {}, NOW)
    cookie = first.cookie.split(";", 1)[0].split("=", 1)[1]
    queued = len(decider.core.recorder.pending)
    for _ in range(20):
        again = decider.decide("example.com", "/", UA, {"croupier_root": cookie}, NOW + 5)
        assert (again.variant, again.reason, again.cookie) == (first.variant, "returning", "")
    assert len(decider.core.recorder.pending) == queued


def test_paused_and_ended_experiments_and_bots(decider):
    assert decider.decide("x", "/off/", UA, {}, NOW).variant == "a"
    assert decider.decide("x", "/done/", UA, {}, NOW).variant == "b"
    bot = decider.decide("x", "/", "Googlebot/2.1 (+http://www.google.com/bot.html)", {}, NOW)
    assert (bot.variant, bot.reason, bot.cookie) == ("a", "bot", "")


def test_forged_cookie_is_ignored(decider):
    d = decider.decide("x", "/", UA, {"croupier_root": "v1.k1.AAAAAAAAAAAAAAAAAAAAAA.root.b.1.sig"}, NOW)
    assert d.reason == "new" and d.cookie


def test_recorder_queue_is_bounded(decider):
    for _ in range(10):
        decider.decide("x", "/", UA, {}, NOW)
    assert len(decider.core.recorder.pending) == 3


def test_bot_verdicts_are_the_patterns_own_and_bounded():
    verdicts = BotVerdicts(DEFAULT_BOT_PATTERN)
    for ua in (UA, "Googlebot/2.1", "CURL/8.0", UA, "Googlebot/2.1", "x" * 600 + "bot"):
        assert verdicts(ua) is verdicts(ua) is bool(re.search(DEFAULT_BOT_PATTERN, ua, re.I))
    assert "x" * 600 + "bot" not in verdicts.known  # very long values are searched, not kept
    for i in range(BotVerdicts.LIMIT + 10):
        verdicts(f"agent {i}")
    assert len(verdicts.known) <= BotVerdicts.LIMIT
