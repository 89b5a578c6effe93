"""The live rate-drift check is stratified by device, against a real redis-server and router
process: visitors come through the decide endpoint with a phone's or a desktop's User-Agent and
convert through the beacon. When the mix shifts (mobile 20% -> 80%) and every device converts as
before, the monitor raises mix drift and no rate drift, although the arms' overall rates fell by
more than half; a real drop of one arm's rate on every device still raises rate drift."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from croupier.router.drift import rate_drift
from croupier.router.monitor_checks import device_arrays
from croupier.router.settings import Settings
from croupier.router.store import BeaconEvent, Store, parse_device_buckets
from tests.conftest import eventually, redis_and_router
from tests.router.test_beacon import DESKTOP, IPHONE

TOKEN = "drift-admin-token"
BUCKET = 2  # seconds: the phases fall in buckets of their own
VISITORS = 800  # per phase and experiment
UNIFORM = 10_000_000  # a burn-in never reached: the split stays even, so the changed arm keeps its visitors
MOBILE_SHARE = {"mixshift": (0.2, 0.8), "ratechange": (0.5, 0.5)}
# (experiment, phase) -> variant -> device -> conversion rate
RATES = {
    ("mixshift", 0): {v: {"mobile": 0.02, "desktop": 0.5} for v in "ab"},
    ("mixshift", 1): {v: {"mobile": 0.02, "desktop": 0.5} for v in "ab"},
    ("ratechange", 0): {v: {"mobile": 0.2, "desktop": 0.4} for v in "ab"},
    ("ratechange", 1): {"a": {"mobile": 0.2, "desktop": 0.4}, "b": {"mobile": 0.05, "desktop": 0.1}},
}


class Traffic:
    """Visitors of both experiments, converting at exactly their device's rate (every n-th)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=10)
        self.seen: Counter[tuple[str, str, str, int]] = Counter()  # (experiment, variant, device, phase)
        self.trials: Counter[tuple[str, str, str]] = Counter()
        self.conversions: Counter[tuple[str, str, str]] = Counter()

    def visit(self, exp_id: str, device: str, phase: int) -> None:
        agent = IPHONE if device == "mobile" else DESKTOP
        self.client.cookies.clear()  # a new visitor
        answer = self.client.get("/_croupier/decide", headers={"X-Original-URI": f"/{exp_id}/", "User-Agent": agent})
        assert answer.status_code == 200
        variant = answer.headers["x-croupier-variant"]
        cookie = answer.headers["set-cookie"].split(";", 1)[0]
        self.trials[exp_id, variant, device] += 1
        key = (exp_id, variant, device, phase)
        i = self.seen[key]
        self.seen[key] += 1
        rate = RATES[exp_id, phase][variant][device]
        if int((i + 1) * rate) > int(i * rate):
            self.client.cookies.clear()  # only this visitor's cookie
            sent = self.client.post("/_croupier/beacon", json={"experiment": exp_id, "type": "convert"},
                                    headers={"Origin": self.url, "Cookie": cookie, "User-Agent": agent})
            assert sent.status_code == 204, sent.text
            self.conversions[exp_id, variant, device] += 1

    def warm_up(self, exp_id: str) -> bool:
        """Whether the router knows the experiment yet: it assigns a visitor (counted, like any)."""
        self.client.cookies.clear()
        answer = self.client.get("/_croupier/decide", headers={"X-Original-URI": f"/{exp_id}/", "User-Agent": DESKTOP})
        if "set-cookie" not in answer.headers:
            return False
        self.trials[exp_id, answer.headers["x-croupier-variant"], "desktop"] += 1
        return True

    def phase(self, phase: int) -> None:
        rng = np.random.default_rng(phase)
        for i in range(VISITORS):
            for exp_id, shares in MOBILE_SHARE.items():
                self.visit(exp_id, "mobile" if rng.random() < shares[phase] else "desktop", phase)


def alerts(api: httpx.Client, exp_id: str) -> list[dict]:
    response = api.get(f"/experiments/{exp_id}/alerts")
    response.raise_for_status()
    return response.json()["alerts"]


def device_buckets(redis_url: str, exp_id: str) -> dict:
    async def read() -> dict:
        store = Store(Settings(redis_url=redis_url))
        try:
            return parse_device_buckets((await store.device_bucket_hashes([exp_id]))[exp_id])
        finally:
            await store.close()
    return asyncio.run(read())


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[dict]:
    env = {"CROUPIER_SECRET": "s" * 32, "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_BUCKET_SECONDS": str(BUCKET),
           "CROUPIER_REFRESH_INTERVAL": "0.1", "CROUPIER_FLUSH_INTERVAL": "0.05", "CROUPIER_MONITOR_INTERVAL": "0.3",
           "CROUPIER_BEACON_RATE": "0", "CROUPIER_DRIFT_WINDOW": "1000", "CROUPIER_MIX_RECENT": "1",
           "CROUPIER_MIX_REFERENCE": "1000", "CROUPIER_MIX_MIN_VIEWS": "50"}
    with redis_and_router(tmp_path_factory.mktemp("drift"), env) as (url, redis_url):
        api = httpx.Client(base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        traffic = Traffic(url)
        try:
            for exp_id in MOBILE_SHARE:
                body = {"id": exp_id, "path_prefix": f"/{exp_id}/", "burn_in": UNIFORM, "variants": [
                    {"id": "a", "upstream": "127.0.0.1:9101"}, {"id": "b", "upstream": "127.0.0.1:9102"}]}
                assert api.post("/experiments", json=body).status_code == 201
            eventually(lambda: all([traffic.warm_up(exp_id) for exp_id in MOBILE_SHARE]), timeout=10)
            time.sleep(BUCKET)  # the warm-up's few assignments get a bucket of their own
            traffic.phase(0)
            time.sleep(BUCKET)  # the phases never share a bucket
            traffic.phase(1)
            # the real change is found once the second phase is in
            eventually(lambda: [a for a in alerts(api, "ratechange") if a["kind"] == "drift"], timeout=20)
            time.sleep(1.0)  # a few more looks at the final counters
            yield {"api": api, "redis_url": redis_url, "traffic": traffic}
        finally:
            traffic.client.close()
            api.close()


def test_the_beacon_counts_each_conversion_under_its_device(live):
    buckets = device_buckets(live["redis_url"], "mixshift")
    found: Counter[tuple[str, str]] = Counter()
    for by_device in buckets.values():
        for device, by_variant in by_device.items():
            for variant, counts in by_variant.items():
                found[variant, device] += counts.get("conv:signup", 0)
    sent = {(v, d): n for (e, v, d), n in live["traffic"].conversions.items() if e == "mixshift"}
    assert found == sent and sum(sent.values()) > 200
    trials: Counter[tuple[str, str]] = Counter()  # and each assignment under the device it was decided for
    for by_device in buckets.values():
        for device, by_variant in by_device.items():
            for variant, counts in by_variant.items():
                trials[variant, device] += counts.get("trials", 0)
    assert trials == {(v, d): n for (e, v, d), n in live["traffic"].trials.items() if e == "mixshift"}


def test_a_conversion_without_a_device_counts_as_unknown(redis_url):
    async def work() -> dict:
        store = Store(Settings(redis_url=redis_url))
        try:
            for device in ("", "mobile", "made-up"):  # the channels API's, a beacon's, anything else
                assert await store.record_event(BeaconEvent("spring", "b", f"v-{device}", "convert", "signup",
                                                             ts=120.0, device=device))
            return parse_device_buckets((await store.device_bucket_hashes(["spring"]))["spring"])
        finally:
            await store.close()
    assert asyncio.run(work()) == {120: {"unknown": {"b": {"conv:signup": 1.0}}, "mobile": {"b": {"conv:signup": 1.0}},
                                         "other": {"b": {"conv:signup": 1.0}}}}


def test_a_mix_shift_with_unchanged_device_rates_is_mix_drift_not_rate_drift(live):
    raised = alerts(live["api"], "mixshift")
    kinds = [a["kind"] for a in raised]
    assert "mix" in kinds and "drift" not in kinds, raised
    # one per episode: a last bucket with too few views to compare ends one, the next starts another
    assert all(a["details"]["recent"]["mobile"] > 0.6 for a in raised if a["kind"] == "mix")
    # the same counts, not stratified, would have read as a rate change: the test can tell the two apart
    starts, arrays = device_arrays(device_buckets(live["redis_url"], "mixshift"), ["a", "b"],
                                   ["trials", "conv:signup"], 1000)
    trials, conversions = arrays["trials"], arrays["conv:signup"]
    assert not rate_drift(trials, conversions, stratified=True).detected.any()
    plain = rate_drift(trials.sum(axis=1), conversions.sum(axis=1))
    assert plain.detected.all() and (plain.direction < 0).all()


def test_a_real_drop_of_one_arm_on_every_device_is_rate_drift(live):
    raised = alerts(live["api"], "ratechange")
    drifts = [a for a in raised if a["kind"] == "drift"]
    # b only (an episode found early in the second phase, near the threshold, may end and return)
    assert drifts and {a["variant"] for a in drifts} == {"b"}, raised
    for details in (a["details"] for a in drifts):
        assert details["direction"] == -1 and details["relative_change"] < -0.3
        assert details["stratified_by"] == "device"
    assert "mix" not in [a["kind"] for a in raised]  # its visitors stayed half on phones


def test_the_settings_configure_the_drift_checks():
    from croupier.router.monitor import default_checks
    from croupier.router.monitor_checks import DriftCheck, MixDriftCheck
    checks = {type(c): c for c in default_checks(None, Settings(
        drift_window=120, drift_threshold=12.0, drift_min_count=20.0, mix_recent=30, mix_reference=600,
        mix_threshold=0.3, mix_min_views=500))}
    drift, mix = checks[DriftCheck], checks[MixDriftCheck]
    assert (drift.window, drift.threshold, drift.min_count) == (120, 12.0, 20.0)
    assert (mix.recent, mix.reference, mix.threshold, mix.min_views) == (30, 600, 0.3, 500)
    defaults = {type(c): c for c in default_checks(None)}
    assert defaults[DriftCheck].window == 360 and defaults[MixDriftCheck].reference == 1440


def test_reading_the_device_buckets_drops_those_before_the_drift_window(redis_url):
    async def work() -> tuple:
        store = Store(Settings(redis_url=redis_url, drift_window=100))
        try:
            fields = {f"{60 * t}:{d}|a:trials": 5 for t in range(105) for d in ("mobile", "desktop")}
            await store.redis.hset("croupier:{spring}:devbuckets", mapping=fields)
            few = await store.device_bucket_hashes(["spring"])  # within the slack: nothing dropped yet
            fields = {f"{60 * t}:{d}|a:{c}": 5 for t in range(105, 500) for d in ("mobile", "desktop")
                      for c in ("trials", "conv:signup")}
            await store.redis.hset("croupier:{spring}:devbuckets", mapping=fields)
            many = await store.device_bucket_hashes(["spring"])
            return few, many, await store.redis.hgetall("croupier:{spring}:devbuckets")
        finally:
            await store.close()
    few, many, stored = asyncio.run(work())
    assert len(few["spring"]) == 210
    kept = parse_device_buckets(many["spring"])
    assert list(kept) == [60 * t for t in range(400, 500)]
    assert stored == many["spring"] and len(stored) == 400
