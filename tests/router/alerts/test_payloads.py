"""What a receiver gets, without servers: the generic and Slack bodies, the signature, which
webhooks an alert goes to, and the retry schedule."""

from __future__ import annotations

import json
import random

import pytest

from croupier.router.alerts import Alert, backoff
from croupier.router.webhooks import Webhook, generic_body, parse_webhook, request, signature, slack_body
from tests.router.alerts.conftest import SECRET, verify

ALERT = Alert("srm", "spring", "Sample-ratio mismatch in experiment spring <b>", tenant="acme",
              details={"p_value": 1.234e-7, "observed": {"a": 300, "b": 100}}, id="abc123",
              time=1_700_000_000.5).to_dict()


def test_the_generic_body_has_the_documented_fields():
    assert generic_body(ALERT) == {"id": "abc123", "kind": "srm", "experiment": "spring", "tenant": "acme",
                                   "variant": "", "time": "2023-11-14T22:13:20Z",
                                   "summary": "Sample-ratio mismatch in experiment spring <b>",
                                   "details": {"p_value": 1.234e-7, "observed": {"a": 300, "b": 100}}}


def test_the_slack_body_has_text_and_blocks_escaped():
    body = slack_body(ALERT)
    assert body["text"] == ":rotating_light: [srm] Sample-ratio mismatch in experiment spring &lt;b&gt;"
    section, context, details = body["blocks"]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}
    assert "experiment `spring`" in context["elements"][0]["text"] and "alert abc123" in context["elements"][0]["text"]
    assert [f["text"] for f in details["fields"]] == ["*p_value*\n1.234e-07", '*observed*\n{"a":300,"b":100}']
    many = {**ALERT, "details": {f"k{i}": i for i in range(30)}}
    assert len(slack_body(many)["blocks"][2]["fields"]) == 10  # Slack's limit per section


def test_a_signed_request_verifies_as_the_docs_say_and_an_unsigned_one_has_no_signature():
    hook = parse_webhook({"id": "ops", "url": "http://127.0.0.1:9/", "secret": SECRET})
    body, headers = request(ALERT, hook, now=1_700_000_100)
    assert json.loads(body) == generic_body(ALERT)
    assert headers["X-Croupier-Delivery"] == "abc123" and headers["X-Croupier-Alert-Kind"] == "srm"
    assert headers["X-Croupier-Signature"] == f"t=1700000100,v1={signature(SECRET, 1_700_000_100, body)}"
    assert verify(SECRET, headers["X-Croupier-Signature"], body, tolerance=float("inf"))
    assert not verify(SECRET, headers["X-Croupier-Signature"], body + b" ", tolerance=float("inf"))
    assert not verify(SECRET, headers["X-Croupier-Signature"], body)  # too old for the default tolerance
    slack, slack_headers = request(ALERT, Webhook("chat", "http://127.0.0.1:9/", "slack"))
    assert json.loads(slack) == slack_body(ALERT) and "X-Croupier-Signature" not in slack_headers


@pytest.mark.parametrize("hook, goes", [
    ({}, False),  # the default tenant's webhook; the alert is tenant acme's
    ({"tenant": "acme"}, True),
    ({"tenant": "*"}, True),
    ({"tenant": "acme", "experiment": "spring"}, True),
    ({"tenant": "acme", "experiment": "autumn"}, False),
    ({"tenant": "*", "kinds": ["guardrail", "srm"]}, True),
    ({"tenant": "*", "kinds": ["drift"]}, False),
])
def test_which_webhooks_an_alert_goes_to(hook, goes):
    assert parse_webhook({"id": "w", "url": "http://127.0.0.1:9/", **hook}).matches(ALERT) is goes


def test_retries_double_up_to_the_cap_less_up_to_half_at_random():
    rng = random.Random(1)
    for attempts, full in ((1, 1.0), (2, 2.0), (5, 16.0), (9, 60.0), (500, 60.0)):
        waits = [backoff(attempts, 1.0, 60.0, rng) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert max(waits) - min(waits) > full / 4  # jittered: receivers coming back are not hit at once
