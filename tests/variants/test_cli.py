import pytest

from croupier.variants.cli import ConfigError, ServerConfig, parse_config


def test_environment_is_the_fallback():
    env = {"VARIANT_PARAMS": "/p/a.json", "VARIANT_HOST": "0.0.0.0", "VARIANT_PORT": "8080"}
    assert parse_config([], env) == ServerConfig("/p/a.json", "0.0.0.0", 8080)


def test_flags_win_over_the_environment():
    env = {"VARIANT_PARAMS": "/p/a.json", "VARIANT_HOST": "0.0.0.0", "VARIANT_PORT": "8080"}
    config = parse_config(["--params", "b.json", "--host", "127.0.0.1", "--port", "9101"], env)
    assert config == ServerConfig("b.json", "127.0.0.1", 9101)


def test_defaults():
    assert parse_config(["--params", "a.json"], {}) == ServerConfig("a.json", "127.0.0.1", 8080, "info")


def test_params_are_required():
    with pytest.raises(ConfigError, match=r"--params \(or VARIANT_PARAMS\) is required"):
        parse_config([], {})


@pytest.mark.parametrize(("argv", "env", "named"), [
    (["--port", "http"], {}, "--port"),
    ([], {"VARIANT_PORT": "70000"}, "VARIANT_PORT"),
    ([], {"VARIANT_PORT": "-1"}, "VARIANT_PORT"),
])
def test_bad_port_names_where_it_came_from(argv, env, named):
    with pytest.raises(ConfigError, match=f"^{named}: must be a port number"):
        parse_config(["--params", "a.json", *argv], env)


def test_bad_log_level():
    with pytest.raises(ConfigError, match="VARIANT_LOG_LEVEL: unknown level 'loud'"):
        parse_config(["--params", "a.json"], {"VARIANT_LOG_LEVEL": "loud"})
