"""One router at a time delivers (the alerts lease); when it stops, or dies, another takes over
and delivers what it had not finished, without sending again what was acknowledged."""

from __future__ import annotations

import re
import time

import httpx

from croupier.scripts.processes import free_port, start_router
from tests.conftest import eventually
from tests.router.alerts.conftest import AUTH, TOKEN, Router, raise_alert, with_store


def test_one_router_delivers_at_a_time_and_another_takes_over_when_it_stops(redis_url, receiver):
    hook = receiver().up()
    first, second = Router(redis_url), Router(redis_url)
    with first, second:
        first.client.post("/webhooks", json={"id": "ops", "url": hook.url})
        eventually(lambda: first.leading or second.leading)
        for _ in range(20):  # never both, never neither, while both run
            assert first.leading != second.leading
            time.sleep(0.05)
        leader, other = (first, second) if first.leading else (second, first)
        before = [raise_alert(redis_url, experiment_id=f"e{i}") for i in range(5)]
        eventually(lambda: len(hook.got()) == 5)
        assert leader.metric("croupier_alert_deliveries_total", webhook="ops", outcome="delivered") == 5
        assert other.metric("croupier_alert_deliveries_total", webhook="ops", outcome="delivered") == 0
        assert other.metric("croupier_alert_lease_held") == 0 and leader.metric("croupier_alert_lease_held") == 1

        leader.stop()  # a graceful stop gives the lease up: the other takes it at its next round
        eventually(lambda: other.leading, timeout=2)
        after = [raise_alert(redis_url, experiment_id=f"e{i}") for i in range(5, 8)]
        eventually(lambda: len(hook.got()) == 8)
        time.sleep(0.5)
    # each alert exactly once: the new leader did not send again what the first acknowledged
    assert sorted(r.delivery for r in hook.got()) == sorted(before + after)


def test_a_router_stopping_lets_its_requests_in_flight_finish_and_records_them(redis_url, receiver):
    hook = receiver().up()
    hook.delay = 0.8  # a slow receiver: the stop comes while it has the request
    first, second = Router(redis_url), Router(redis_url)
    with first, second:
        first.client.post("/webhooks", json={"id": "slow", "url": hook.url})
        eventually(lambda: first.leading or second.leading)
        leader, other = (first, second) if first.leading else (second, first)
        alert_id = raise_alert(redis_url)
        eventually(hook.got)  # in flight: the receiver has it and has not answered
        leader.stop()
        eventually(lambda: other.leading, timeout=2)
        time.sleep(1.0)
        assert other.metric("croupier_alerts_pending") == 0
    assert [r.delivery for r in hook.got()] == [alert_id]  # answered during the stop, recorded, not sent again


def router_metric(base: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", httpx.get(f"{base}/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_alerts_a_killed_router_had_read_are_delivered_by_the_next_one(redis_url, receiver, tmp_path):
    hook = receiver()  # down: the first router reads the alerts and cannot deliver them
    env = {"CROUPIER_REDIS_URL": redis_url, "CROUPIER_ADMIN_TOKEN": TOKEN, "CROUPIER_SECRET": "s" * 32,
           "CROUPIER_ALERT_POLL_INTERVAL": "0.05", "CROUPIER_ALERT_LEASE_SECONDS": "0.6",
           "CROUPIER_ALERT_RETRY_BASE": "0.05", "CROUPIER_ALERT_RETRY_MAX": "0.2"}
    port = free_port()
    doomed = start_router(tmp_path, port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert httpx.post(f"{base}/api/v1/webhooks", headers=AUTH,
                          json={"id": "ops", "url": hook.url}).status_code == 201
        eventually(lambda: router_metric(base, "croupier_alert_lease_held") == 1)
        ids = [raise_alert(redis_url, experiment_id=f"e{i}") for i in range(3)]
        eventually(lambda: router_metric(base, "croupier_alerts_pending") == 3)
        eventually(lambda: len(re.findall(r'outcome="retried"', httpx.get(f"{base}/metrics").text)))
        doomed.kill()  # SIGKILL: no hand-over, the lease lapses, the alerts stay pending under its name
        assert with_store(redis_url, lambda store: store.alert_backlog()) == 3
        hook.up()
        with Router(redis_url) as survivor:
            eventually(lambda: survivor.leading, timeout=3)
            eventually(lambda: len(hook.got()) >= 3, timeout=5)
            eventually(lambda: survivor.metric("croupier_alerts_pending") == 0)
            time.sleep(0.3)
    finally:
        doomed.stop()
    assert sorted(r.delivery for r in hook.got()) == sorted(ids)  # each once: the receiver was down before
