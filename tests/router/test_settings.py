import re
from dataclasses import fields

import pytest

from croupier.router.settings import Settings, SettingsError

FIELDS = {f.name: f for f in fields(Settings)}

# Per setting: a valid value other than the default, as the environment gives it, and what it becomes.
VALID = {
    "redis_url": ("redis+cluster://10.0.0.5:7000,10.0.0.6:7000", "redis+cluster://10.0.0.5:7000,10.0.0.6:7000"),
    "host": ("0.0.0.0", "0.0.0.0"),
    "port": ("9000", 9000),
    "workers": ("4", 4),
    "secret": ("s" * 20, "s" * 20),
    "secret_id": ("k2", "k2"),
    "old_secrets": ("k1:" + "o" * 20, "k1:" + "o" * 20),
    "admin_token": ("an-admin-token", "an-admin-token"),
    "cookie_prefix": ("cx_", "cx_"),
    "cookie_max_age": ("3600", 3600),
    "cookie_secure": ("yes", True),
    "default_upstream": ("site:80", "site:80"),
    "decide_port": ("9001", 9001),
    "pass_key": ("p" * 32, "p" * 32),
    "pass_seconds": ("60", 60),
    "refresh_interval": ("0.25", 0.25),
    "flush_interval": ("0.1", 0.1),
    "max_pending": ("500", 500),
    "capacity_block": ("50", 50),
    "capacity_idle": ("2.5", 2.5),
    "capacity_ttl": ("60", 60.0),
    "stream_maxlen": ("5000", 5000),
    "archive": ("on", True),
    "archive_maxlen": ("6000000", 6_000_000),
    "archive_keep_seconds": ("600", 600),
    "archive_dir": ("/var/lib/croupier/archive", "/var/lib/croupier/archive"),
    "bucket_seconds": ("300", 300),
    "beacon_max_bytes": ("8192", 8192),
    "beacon_rate": ("5.5", 5.5),
    "beacon_burst": ("10", 10),
    "bot_pattern": ("bot|spider", "bot|spider"),
    "redis_timeout": ("1.5", 1.5),
    "log_level": ("debug", "debug"),
    "geo_header": ("X-Croupier-Country", "X-Croupier-Country"),
    "context_utc_offset": ("-300", -300),
    "max_segments": ("20", 20),
    "api_keys": ("acme:" + "a" * 24, "acme:" + "a" * 24),
    "alerts": ("off", False),
    "monitor_interval": ("2.5", 2.5),
    "drift_window": ("120", 120),
    "drift_threshold": ("12.5", 12.5),
    "drift_min_count": ("20", 20.0),
    "mix_recent": ("30", 30),
    "mix_reference": ("720", 720),
    "mix_threshold": ("0.25", 0.25),
    "mix_min_views": ("500", 500),
    "alert_poll_interval": ("0.5", 0.5),
    "alert_lease_seconds": ("30", 30.0),
    "alert_timeout": ("2", 2.0),
    "alert_retry_base": ("0.5", 0.5),
    "alert_retry_max": ("60", 60.0),
    "alert_max_age": ("3600", 3600.0),
    "alert_concurrency": ("4", 4),
    "alert_max_inflight": ("200", 200),
    "alert_stream_maxlen": ("5000", 5000),
    "retrain_interval": ("0", 0.0),
    "retrain_max_events": ("5000", 5000),
    "retrain_holdout": ("0.3", 0.3),
}

# Per setting: values the router must refuse to start with (an empty variable means the default).
BAD = {
    "redis_url": ["http://x", "redis+sentinel://h:26379"],
    "port": ["eighty", "70000", "-1"],
    "workers": ["0"],
    "secret": ["short"],
    "secret_id": ["has space", "k" * 17],
    "old_secrets": ["nocolon", "k1:short"],
    "cookie_prefix": ["bad prefix", "p" * 33],
    "cookie_max_age": ["0"],
    "cookie_secure": ["maybe"],
    "default_upstream": ["http://site/", "site"],
    "decide_port": ["8000", "70000"],  # 8000: the app's own port
    "pass_key": ["too-short"],
    "pass_seconds": ["3601", "-1"],
    "refresh_interval": ["0", "61"],
    "flush_interval": ["0", "61"],
    "max_pending": ["0"],
    "capacity_block": ["0", "1000001", "2.5"],
    "capacity_idle": ["0", "3601"],
    "capacity_ttl": ["0.5", "3601", "1"],  # 1: under 3 x the default refresh interval
    "stream_maxlen": ["99"],
    "archive": ["sometimes"],
    "archive_maxlen": ["999999"],  # under the default CROUPIER_STREAM_MAXLEN
    "archive_keep_seconds": ["-1", "2592001"],
    "bucket_seconds": ["0"],
    "beacon_max_bytes": ["63", "1048577"],
    "beacon_rate": ["-1", "fast"],
    "beacon_burst": ["0"],
    "bot_pattern": ["(unclosed"],
    "redis_timeout": ["0", "31"],
    "log_level": ["loud"],
    "geo_header": ["X-Forwarded-For", "X-Croupier-"],
    "context_utc_offset": ["841", "-841"],
    "max_segments": ["0", "10001"],
    "api_keys": ["Acme:" + "a" * 24, "acme:short", "nocolon"],
    "alerts": ["sometimes"],
    "monitor_interval": ["0", "3601"],
    "drift_window": ["1", "100001"],
    "drift_threshold": ["0", "1001"],
    "drift_min_count": ["0.5", "1000001"],
    "mix_recent": ["0", "100001"],
    "mix_reference": ["0", "100001"],
    "mix_threshold": ["0", "10.5"],
    "mix_min_views": ["0", "100000001"],
    "alert_poll_interval": ["0", "61"],
    "alert_lease_seconds": ["0.1", "601", "2"],  # 2: under 3 x the default poll interval
    "alert_timeout": ["0", "61"],
    "alert_retry_base": ["0", "3601"],
    "alert_retry_max": ["0.5", "86401"],  # 0.5: under the default retry base
    "alert_max_age": ["0.5", "2592001"],
    "alert_concurrency": ["0", "257"],
    "alert_max_inflight": ["0", "100001"],
    "alert_stream_maxlen": ["99"],
    "retrain_interval": ["0.5", "-1", "2592001"],
    "retrain_max_events": ["999", "10000001"],
    "retrain_holdout": ["0", "0.6"],
}
ANY_TEXT = {"host", "admin_token", "archive_dir"}  # taken as given: there is no value to refuse


def env(name: str) -> str:
    return FIELDS[name].metadata["env"]


def test_every_setting_has_a_variable_a_help_and_cases_here():
    assert set(VALID) == set(FIELDS), "give each setting a valid non-default value in VALID"
    assert set(BAD) | ANY_TEXT == set(FIELDS) and not set(BAD) & ANY_TEXT, \
        "give each setting values to refuse in BAD, or say in ANY_TEXT why it has none"
    names = [f.metadata["env"] for f in FIELDS.values()]
    assert all(re.fullmatch(r"CROUPIER_[A-Z0-9_]+", n) for n in names) and len(set(names)) == len(names)
    assert all(f.metadata["help"] for f in FIELDS.values())


def test_every_setting_is_read_from_its_variable():
    settings = Settings.from_env({env(name): raw for name, (raw, _) in VALID.items()})
    for name, (_, expected) in VALID.items():
        assert getattr(settings, name) == expected, env(name)
        assert expected != FIELDS[name].default, f"{name}: pick a value other than the default"


def test_defaults_apply_when_a_variable_is_unset_or_empty():
    settings = Settings.from_env({env(name): "" for name in FIELDS})
    for name, f in FIELDS.items():
        if name != "secret":  # generated, below
            assert getattr(settings, name) == f.default, env(name)


def test_missing_secret_is_generated():
    assert len(Settings.from_env({}).secret) >= 32


@pytest.mark.parametrize("name, raw", [(name, raw) for name, values in BAD.items() for raw in values]
                         + [(name, "not-a-number") for name, f in FIELDS.items()
                            if type(f.default) in (int, float, bool)])
def test_a_bad_value_names_the_variable(name, raw):
    with pytest.raises(SettingsError, match=env(name)):
        Settings.from_env({env(name): raw})


@pytest.mark.parametrize("name, raw, secret", [
    ("secret", "short-secret", "short-secret"),
    ("old_secrets", "k1:short-key", "short-key"),
    ("pass_key", "p" * 20, "p" * 20),
    ("api_keys", "acme:short-key", "short-key"),
    ("redis_url", "redis+cluster://user:hunter2-secret@h:99999", "hunter2-secret"),
])
def test_a_refused_secret_is_not_echoed(name, raw, secret):
    with pytest.raises(SettingsError, match=env(name)) as caught:
        Settings.from_env({env(name): raw})
    assert secret not in str(caught.value)


def test_signing_keys_keep_retired_keys():
    s = Settings(secret="n" * 20, secret_id="k2", old_secrets="k1:" + "o" * 20)
    assert list(s.signing_keys()) == ["k2", "k1"]


def test_bad_setting_stops_python_m_router(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "croupier.router"], env={"CROUPIER_PORT": "x", "PATH": "/usr/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "CROUPIER_PORT" in result.stderr
