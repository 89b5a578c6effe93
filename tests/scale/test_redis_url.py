"""CROUPIER_REDIS_URL: which Redis, and errors that name the variable."""

from __future__ import annotations

import pytest

from croupier.router.settings import RedisTarget, Settings, SettingsError, parse_redis_url


@pytest.mark.parametrize("url, target", [
    ("redis://127.0.0.1:6379/0", RedisTarget("single", "redis://127.0.0.1:6379/0")),
    ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001, 10.0.0.3",
     RedisTarget("cluster", "redis+cluster://10.0.0.1:7000,10.0.0.2:7001, 10.0.0.3",
                 (("10.0.0.1", 7000), ("10.0.0.2", 7001), ("10.0.0.3", 6379)))),
    ("rediss+cluster://app:pw@[::1]:7000",
     RedisTarget("cluster", "rediss+cluster://app:pw@[::1]:7000", (("::1", 7000),), username="app",
                 password="pw", tls=True)),
    ("redis+sentinel://:pw@s1:26380,s2/main/2",
     RedisTarget("sentinel", "redis+sentinel://:pw@s1:26380,s2/main/2", (("s1", 26380), ("s2", 26379)),
                 "main", 2, password="pw")),
])
def test_urls_name_the_mode_nodes_and_credentials(url, target):
    assert parse_redis_url(url) == target
    assert Settings(redis_url=url).redis_target() == target


@pytest.mark.parametrize("url, says", [
    ("http://127.0.0.1:6379", "must start with redis://"),
    ("redis+cluster://a:1/3", "only database 0"),
    ("redis+cluster://a:1,:2", "empty host"),
    ("redis+cluster://a:99999", "bad port"),
    ("redis+sentinel://s1:26379", "must name the master"),
    ("redis+sentinel://s1/main/x", "must be a number"),
    ("redis+cluster://a:1?timeout=1", "query options"),
])
def test_bad_urls_are_refused_naming_the_variable(url, says):
    with pytest.raises(SettingsError, match="CROUPIER_REDIS_URL") as error:
        Settings(redis_url=url)
    assert says in str(error.value)


def test_a_password_is_never_echoed():
    with pytest.raises(SettingsError) as error:
        Settings(redis_url="redis+cluster://app:hunter2@a:x")
    assert "hunter2" not in str(error.value)
