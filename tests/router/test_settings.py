import pytest

from router.settings import Settings, SettingsError, settings_table


def test_defaults_and_environment():
    s = Settings.from_env({"CROUPIER_PORT": "9000", "CROUPIER_SECRET": "x" * 20, "CROUPIER_COOKIE_SECURE": "yes",
                           "CROUPIER_REFRESH_INTERVAL": "0.25"})
    assert (s.port, s.cookie_secure, s.refresh_interval) == (9000, True, 0.25)
    assert s.redis_url == "redis://127.0.0.1:6379/0"


def test_missing_secret_is_generated():
    assert len(Settings.from_env({}).secret) >= 32


@pytest.mark.parametrize("env, name", [
    ({"CROUPIER_PORT": "eighty"}, "CROUPIER_PORT"),
    ({"CROUPIER_PORT": "70000"}, "CROUPIER_PORT"),
    ({"CROUPIER_COOKIE_SECURE": "maybe"}, "CROUPIER_COOKIE_SECURE"),
    ({"CROUPIER_REDIS_URL": "http://x"}, "CROUPIER_REDIS_URL"),
    ({"CROUPIER_REFRESH_INTERVAL": "0"}, "CROUPIER_REFRESH_INTERVAL"),
    ({"CROUPIER_BOT_PATTERN": "(unclosed"}, "CROUPIER_BOT_PATTERN"),
    ({"CROUPIER_SECRET": "short"}, "CROUPIER_SECRET"),
    ({"CROUPIER_OLD_SECRETS": "nocolon"}, "CROUPIER_OLD_SECRETS"),
    ({"CROUPIER_LOG_LEVEL": "loud"}, "CROUPIER_LOG_LEVEL"),
])
def test_a_bad_value_names_the_variable(env, name):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env(env)


def test_signing_keys_keep_retired_keys():
    s = Settings(secret="n" * 20, secret_id="k2", old_secrets="k1:" + "o" * 20)
    assert list(s.signing_keys()) == ["k2", "k1"]


def test_settings_table_lists_every_variable():
    table = settings_table()
    assert "CROUPIER_REDIS_URL" in table and "CROUPIER_ADMIN_TOKEN" in table


def test_bad_setting_stops_python_m_router(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "router"], env={"CROUPIER_PORT": "x", "PATH": "/usr/bin"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "CROUPIER_PORT" in result.stderr
