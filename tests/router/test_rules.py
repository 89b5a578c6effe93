"""The shared input rules: what each accepts and refuses, and how it says so. Pure."""

from __future__ import annotations

import pytest

from croupier.router import rules


@pytest.mark.parametrize("rule, good, bad", [
    (rules.ID, ["a", "spring-sale_2", "0" * 40], ["", "A", "-a", "a" * 41, "a b", "a.b", "a{b}", 7, None]),
    (rules.LEVEL, ["plain", "buy-now", "5-off", "l" * 24], ["", "Buy", "buy_now", "a.b", "-a", "l" * 25]),
    (rules.ARM, ["a", "spring-sale_2", "0" * 40, "savings_buy-now_none", "a_b", "_".join(["l" * 24] * 8)],
     ["", "_a", "a.b", "savings.buy-now.none", "a_B", "_".join(["l" * 24] * 9), "l" * 25 + "_b" + "c" * 20,
      "a" * 41, None]),
    (rules.GOAL, ["signup", "g" * 32], ["", "Signup", "g" * 33, "conv:x"]),
    (rules.UPSTREAM, ["127.0.0.1:9101", "variant-demo-a:8080", "a.b.svc.cluster.local:80"],
     ["", "host", "http://h:80", "h:80/x", "$host:80", "h:123456", "-h:80"]),
    (rules.CHANNEL, ["email", "sms", "push_2"], ["", "Email", "e" * 33]),
    (rules.CUSTOMER, ["c-1", "user@example.com", "A" * 128], ["", "a b", "{a}", "a" * 129]),
    (rules.EVENT_ID, ["abcdefgh", "A_b-" * 16], ["short", "a" * 65, "abc def gh"]),
    (rules.COOKIE_PREFIX, ["croupier_", "x"], ["", "a.b", "a;b", "a" * 33]),
    (rules.GEO_HEADER, ["X-Croupier-Geo", "X-Croupier-Country"], ["X-Geo", "X-Croupier-", "X-Croupier-a b"]),
    (rules.PASS_KEY, ["k" * 32, "Ab_-" * 32], ["k" * 31, "k" * 129, 'k"' * 20]),
])
def test_each_rule_accepts_and_refuses(rule, good, bad):
    assert all(rule.ok(value) for value in good), [v for v in good if not rule.ok(v)]
    assert not any(rule.ok(value) for value in bad), [v for v in bad if rule.ok(v)]


def test_an_error_names_the_field_then_the_rule():
    assert rules.ID.error("variants[1].id") == f"variants[1].id: {rules.ID.message}"
    assert rules.ID.message.startswith("must be ")


def test_the_defaults_follow_their_rules():
    assert rules.COOKIE_PREFIX.ok(rules.DEFAULT_COOKIE_PREFIX)
    assert rules.GEO_HEADER.ok(rules.DEFAULT_GEO_HEADER)
