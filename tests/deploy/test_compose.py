"""docker-compose.yml: valid against the compose specification, and the stack it
describes starts in order, stays healthy and keeps Redis' data."""

from __future__ import annotations

import importlib.resources
import json
import re

import jsonschema
import pytest
import yaml

from croupier.nginx.deploy import COMPOSE, START_SCRIPT
from croupier.scripts.processes import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ROUTERS = ("router-1", "router-2")
VARIANTS = ("variant-demo-a", "variant-demo-b", "variant-demo-c")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_valid_against_the_compose_specification(compose):
    # the compose-spec schema as vendored by check-jsonschema: no network needed
    schema = json.loads((importlib.resources.files("check_jsonschema") /
                         "builtin_schemas/vendor/compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_services(compose):
    services = compose["services"]
    assert set(services) == {"nginx", "redis", "seed", "archiver", *ROUTERS, *VARIANTS}
    assert services["nginx"]["image"].startswith("nginx:")  # the official image
    for name in ROUTERS:
        router = services[name]
        assert router["build"] == {"context": ".", "dockerfile": "router/Dockerfile"}
        assert router["environment"]["CROUPIER_HOST"] == "0.0.0.0"
        assert router["environment"]["CROUPIER_REDIS_URL"] == "redis://redis:6379/0"
        for variable in ("CROUPIER_SECRET", "CROUPIER_ADMIN_TOKEN"):
            # from .env or the shell, and compose refuses to start without them
            assert re.fullmatch(rf"\$\{{{variable}:\?.+\}}", router["environment"][variable])
    for variant, vid in zip(VARIANTS, "abc"):
        assert services[variant]["build"]["dockerfile"] == "variants/Dockerfile"
        assert services[variant]["environment"]["VARIANT_PARAMS"] == f"/app/croupier/variants/examples/demo/{vid}.json"
        assert (ROOT / "variants" / "examples" / "demo" / f"{vid}.json").exists()


def test_every_long_running_service_has_a_health_check(compose):
    for name, service in compose["services"].items():
        if name == "seed":
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and check.get("interval"), f"{name} has no health check"
    for name in ROUTERS:
        assert "/livez" in " ".join(compose["services"][name]["healthcheck"]["test"])


def test_start_order(compose):
    services = compose["services"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()}

    for name in ROUTERS:
        assert waits_for(name) == {"redis": "service_healthy"}
    assert waits_for("seed") == {"router-1": "service_healthy"}
    nginx = waits_for("nginx")
    assert {dep for dep, condition in nginx.items() if condition == "service_healthy"} == {*ROUTERS, *VARIANTS}
    assert nginx["seed"] == "service_completed_successfully"


def test_redis_is_append_only_on_a_volume(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    volume, _, path = redis["volumes"][0].partition(":")
    assert path == "/data" and volume in compose["volumes"]


def test_nginx_serves_the_committed_compose_configuration(compose):
    nginx = compose["services"]["nginx"]
    source, target, mode = nginx["volumes"][0].split(":")
    assert (ROOT / source).resolve() == COMPOSE.config_path and mode == "ro"
    script_source, script, mode = nginx["volumes"][1].split(":")
    assert (ROOT / script_source).resolve() == START_SCRIPT and mode == "ro"
    # the start script writes the pass key (the routers' own) to the tmpfs, then runs nginx with the rest
    assert nginx["command"][:4] == ["sh", script, "-c", target]
    router_env = compose["services"]["router-1"]["environment"]
    assert nginx["environment"]["CROUPIER_PASS_KEY"] == router_env["CROUPIER_PASS_KEY"]
    assert router_env["CROUPIER_DECIDE_PORT"] == "8001"  # what compose.conf's croupier_decide upstream names
    assert "/var/run" in nginx["tmpfs"]
    assert nginx["ports"] == ["8080:8080"]
    # every upstream the configuration names is a service of this file
    text = COMPOSE.config_path.read_text()
    names = set(re.findall(r"server ([a-z0-9-]+):\d+", text)) | {
        u["upstream"].split(":")[0] for e in json.loads(COMPOSE.experiments_path.read_text()) for u in e["variants"]}
    assert names <= set(compose["services"]), names - set(compose["services"])


def test_seed_creates_the_rendered_experiments(compose):
    seed = compose["services"]["seed"]
    command = seed["command"]
    assert command[:3] == ["python", "-m", "croupier.nginx.seed"]
    assert command[command.index("--experiments") + 1] == "/app/croupier/" + str(COMPOSE.experiments_path.relative_to(ROOT))
    assert seed["restart"] == "no"


def test_containers_are_hardened(compose):
    for name, service in compose["services"].items():
        assert service.get("read_only") is True, name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        if name != "redis":  # its entrypoint starts as root to fix /data's owner, then drops to redis
            assert service.get("cap_drop") == ["ALL"], name


def test_archiver_writes_to_a_volume_beside_the_routers(compose):
    archiver = compose["services"]["archiver"]
    assert archiver["build"] == {"context": ".", "dockerfile": "router/Dockerfile.archiver"}
    command = archiver["command"]
    assert command[:4] == ["python", "-m", "croupier.scripts.archive", "run"]
    heartbeat = command[command.index("--heartbeat") + 1]
    probe = archiver["healthcheck"]["test"]
    assert probe[probe.index("--heartbeat") + 1] == heartbeat and "alive" in probe
    assert heartbeat.startswith("/tmp/") and "/tmp" in archiver["tmpfs"]  # writable on a read-only root
    volume, _, path = archiver["volumes"][0].partition(":")
    assert path == command[command.index("--dir") + 1] and volume in compose["volumes"]
    router_env = compose["services"]["router-1"]["environment"]
    assert archiver["environment"]["CROUPIER_REDIS_URL"] == router_env["CROUPIER_REDIS_URL"]
    assert archiver["environment"]["CROUPIER_ARCHIVE"] == router_env["CROUPIER_ARCHIVE"] == "on"
    assert archiver["depends_on"] == {"redis": {"condition": "service_healthy"}}
