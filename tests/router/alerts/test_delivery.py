"""An SRM alert raised by the monitor reaches the webhooks: signed, once, through a receiver's
outage, and from whichever router holds the lease."""

from __future__ import annotations

import time

from tests.conftest import eventually
from tests.router.alerts.conftest import SECRET, Router, assign, experiment, raise_alert, verify


def test_an_srm_alert_reaches_the_webhook_once_with_a_valid_signature(redis_url, receiver):
    hook = receiver().up()
    with Router(redis_url) as router:
        assert router.client.post("/webhooks", json={"id": "ops", "url": hook.url, "secret": SECRET}).status_code == 201
        assert router.client.post("/experiments", json=experiment()).status_code == 201
        assign(redis_url, "spring", {"a": 300, "b": 100})  # the policy gave 50/50
        (got,) = eventually(hook.got, timeout=10)
        body = got.json()
        assert body["kind"] == "srm" and body["experiment"] == "spring" and body["tenant"] == ""
        assert set(body) == {"id", "kind", "experiment", "tenant", "variant", "time", "summary", "details"}
        assert body["details"]["observed"] == {"a": 300, "b": 100} and body["details"]["p_value"] < 1e-3
        assert got.delivery == body["id"] and got.headers["Content-Type"] == "application/json"
        assert verify(SECRET, got.headers["X-Croupier-Signature"], got.body)
        assert not verify("another-secret-of-16", got.headers["X-Croupier-Signature"], got.body)
        assert router.metric("croupier_srm_mismatch", experiment="spring") == 1
        # the mismatch persists and more assignments arrive: the episode is open, nothing is raised again
        assign(redis_url, "spring", {"a": 30, "b": 10})
        time.sleep(1.0)
        assert len(hook.got()) == 1
        assert router.metric("croupier_alerts_raised_total", kind="srm") == 1
        assert router.metric("croupier_alert_deliveries_total", webhook="ops", outcome="delivered") == 1
        eventually(lambda: router.metric("croupier_alerts_pending") == 0)


def test_a_receiver_down_then_failing_then_up_gets_the_alert_and_the_others_are_not_held_up(redis_url, receiver):
    healthy, flaky = receiver().up(), receiver()  # flaky refuses connections: nothing listens yet
    with Router(redis_url) as router:
        for hook_id, hook in (("healthy", healthy), ("flaky", flaky)):
            assert router.client.post("/webhooks", json={"id": hook_id, "url": hook.url}).status_code == 201
        alert_id = raise_alert(redis_url)
        eventually(healthy.got)
        time.sleep(0.5)  # connections refused, retried with backoff
        assert router.metric("croupier_alert_deliveries_total", webhook="flaky", outcome="retried") >= 2
        flaky.up(500)
        eventually(lambda: len(flaky.got()) >= 2, timeout=5)  # answered 500: retried
        flaky.status = 200
        eventually(lambda: router.metric("croupier_alert_deliveries_total", webhook="flaky", outcome="delivered"))
        time.sleep(0.5)
        eventually(lambda: router.metric("croupier_alerts_pending") == 0)
    # every attempt carries the alert's id; once one was answered 2xx there are no more: no duplicates
    assert {r.delivery for r in flaky.got()} == {alert_id}
    assert [r.status for r in flaky.got()].count(200) == 1 and flaky.got()[-1].status == 200
    assert [r.status for r in flaky.got()].count(500) >= 2
    assert len(healthy.got()) == 1 and healthy.got()[0].delivery == alert_id


def test_an_alert_too_old_to_deliver_is_dropped_and_counted(redis_url, receiver):
    hook = receiver().up(503)
    with Router(redis_url, alert_max_age=1.0) as router:
        router.client.post("/webhooks", json={"id": "down", "url": hook.url})
        raise_alert(redis_url)
        eventually(lambda: router.metric("croupier_alert_deliveries_total", webhook="down", outcome="dropped") == 1,
                   timeout=5)
        eventually(lambda: router.metric("croupier_alerts_pending") == 0)
        tried = len(hook.got())
        time.sleep(0.5)
        assert len(hook.got()) == tried >= 2  # given up: no more attempts


def test_a_slack_webhook_gets_a_slack_message(redis_url, receiver):
    hook = receiver().up()
    with Router(redis_url) as router:
        router.client.post("/webhooks", json={"id": "chat", "url": hook.url, "format": "slack"})
        alert_id = raise_alert(redis_url, variant="b", details={"p_value": 0.0001})
        (got,) = eventually(hook.got)
    body = got.json()
    assert set(body) == {"text", "blocks"} and body["text"].startswith(":rotating_light: [srm] ")
    assert "variant `b`" in body["blocks"][1]["elements"][0]["text"]
    assert got.delivery == alert_id and "X-Croupier-Signature" not in got.headers  # no secret: unsigned
