"""The beacon's per-address token buckets, as pure logic (no servers)."""

from __future__ import annotations

import pytest

from croupier.router.ratelimit import TokenBuckets, client_key, retry_after
from croupier.router.settings import Settings, SettingsError


def test_a_burst_is_allowed_then_refused_with_the_wait_until_the_next_token():
    buckets = TokenBuckets(rate=2, burst=3)
    assert [buckets.take("10.0.0.1", now=100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("10.0.0.1", now=100.0) == pytest.approx(0.5)
    assert buckets.take("10.0.0.1", now=100.25) == pytest.approx(0.25)
    assert buckets.take("10.0.0.1", now=100.5) == 0.0  # one token refilled


def test_one_address_flooding_leaves_the_others_their_own_burst():
    buckets = TokenBuckets(rate=1, burst=5)
    refused = sum(buckets.take("10.0.0.1", now=0.0) > 0 for _ in range(1000))
    assert refused == 995
    assert all(buckets.take(f"10.0.0.{i}", now=0.0) == 0.0 for i in range(2, 50))


def test_a_sustained_flood_gets_exactly_the_rate():
    buckets = TokenBuckets(rate=10, burst=20)
    allowed = sum(buckets.take("x", now=t / 1000) == 0.0 for t in range(10_000))  # 1,000/s for 10 s
    assert allowed == 20 + 10 * 10 - 1 or allowed == 20 + 10 * 10  # the burst, then 10 per second


def test_idle_buckets_are_evicted_so_memory_stays_bounded():
    buckets = TokenBuckets(rate=10, burst=20)  # full again after 2 s idle
    for i in range(10_000):  # 10,000 addresses, 1,000 per second
        buckets.take(f"a{i}", now=i / 1000)
    assert len(buckets) <= 2 * 1000 + 1
    buckets.take("late", now=1000.0)
    assert len(buckets) == 1


def test_the_client_cap_holds_even_when_no_bucket_is_idle():
    buckets = TokenBuckets(rate=1, burst=5, max_clients=100)
    for i in range(1000):
        buckets.take(f"a{i}", now=0.0)
    assert len(buckets) == 100


@pytest.mark.parametrize("kwargs, field", [({"rate": 0, "burst": 1}, "rate"), ({"rate": 1, "burst": 0}, "burst"),
                                           ({"rate": 1, "burst": 1, "max_clients": 0}, "max_clients")])
def test_bad_parameters_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"^{field}:"):
        TokenBuckets(**kwargs)


@pytest.mark.parametrize("real_ip, peer, key", [
    ("203.0.113.7", "127.0.0.1", "203.0.113.7"),  # NGINX's $remote_addr wins over its own socket address
    (None, "198.51.100.2", "198.51.100.2"),  # reached directly: the socket peer
    ("not-an-ip, 1.2.3.4", "198.51.100.2", "198.51.100.2"),  # a list or junk is not NGINX's value
    ("2001:db8:1:2:aaaa::1", None, "2001:db8:1:2::/64"),  # one IPv6 client holds a /64
    ("2001:db8:1:2:bbbb::9", None, "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.1", None, "192.0.2.1"),
    (None, "testclient", "unknown"),
])
def test_client_key(real_ip, peer, key):
    assert client_key(real_ip, peer) == key


def test_retry_after_is_whole_seconds_and_at_least_one():
    assert [retry_after(w) for w in (0.01, 1.0, 1.2)] == ["1", "1", "2"]


@pytest.mark.parametrize("env, variable", [({"CROUPIER_BEACON_RATE": "-1"}, "CROUPIER_BEACON_RATE"),
                                           ({"CROUPIER_BEACON_RATE": "nan"}, "CROUPIER_BEACON_RATE"),
                                           ({"CROUPIER_BEACON_RATE": "fast"}, "CROUPIER_BEACON_RATE"),
                                           ({"CROUPIER_BEACON_BURST": "0"}, "CROUPIER_BEACON_BURST"),
                                           ({"CROUPIER_BEACON_BURST": "1.5"}, "CROUPIER_BEACON_BURST")])
def test_bad_limit_settings_name_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({"CROUPIER_SECRET": "s" * 32, **env})


def test_limit_settings_are_read():
    settings = Settings.from_env({"CROUPIER_SECRET": "s" * 32, "CROUPIER_BEACON_RATE": "2.5",
                                  "CROUPIER_BEACON_BURST": "7"})
    assert (settings.beacon_rate, settings.beacon_burst) == (2.5, 7)
