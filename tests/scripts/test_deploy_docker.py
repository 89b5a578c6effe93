"""The docker target against a recording fake of the docker SDK's client (no engine here),
and the clear error when no engine is reachable."""

from __future__ import annotations

import io
import json
import re
import tarfile

import pytest
from docker.errors import NotFound

from croupier.nginx.services import COMPOSE_UPSTREAM_PATTERN
from croupier.scripts.processes import ROOT
from croupier.scripts.progress import Progress
from croupier.scripts.targets import DeployError, VariantSpec
from croupier.scripts.targets.docker import DockerTarget, connect

PARAMS = {"id": "d", "experiment": "demo", "headline": "Hello", "cta": "Go"}
QUIET = Progress(quiet=True)


class FakeContainer:
    def __init__(self, calls: list, name: str, states: list[dict]) -> None:
        self.calls, self.name, self.states, self.attrs = calls, name, states, {}

    def put_archive(self, path, data):
        self.calls.append(("put_archive", path, data))
        return True

    def start(self):
        self.calls.append(("start",))

    def reload(self):
        self.attrs = {"State": self.states.pop(0) if len(self.states) > 1 else self.states[0]}

    def logs(self, tail):
        return b"variants: something went wrong\n"

    def remove(self, force=False):
        self.calls.append(("remove", self.name, force))


class FakeDocker:
    """Records every call the target makes, in order."""

    def __init__(self, states=None, existing=(), networks=("croupier",)) -> None:
        self.calls: list = []
        self.states = states or [{"Status": "running", "Health": {"Status": "starting"}},
                                 {"Status": "running", "Health": {"Status": "healthy"}}]
        self.existing, self.known_networks = set(existing), set(networks)
        self.images, self.networks, self.containers = self, self, self
        self.container = None

    def build(self, **kwargs):
        self.calls.append(("build", kwargs))

    def get(self, name):  # networks.get and containers.get
        self.calls.append(("get", name))
        if name in self.known_networks:
            return object()
        if name in self.existing:
            return FakeContainer(self.calls, name, self.states)
        raise NotFound(f"{name} not found")

    def create(self, image, **kwargs):
        self.calls.append(("create", image, kwargs))
        self.container = FakeContainer(self.calls, kwargs["name"], self.states)
        return self.container


def archive_files(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() if m.isfile() else b"" for m in tar.getmembers()}


def test_builds_runs_on_the_network_with_params_and_waits_for_health():
    fake = FakeDocker()
    deployment = DockerTarget(fake).deploy(VariantSpec("demo", "d", PARAMS), QUIET, health_timeout=5)
    assert deployment.upstream == "variant-demo-d:8080"
    assert re.fullmatch(COMPOSE_UPSTREAM_PATTERN, deployment.upstream)  # the compose NGINX proxies to it
    names = [c[0] for c in fake.calls]
    assert names == ["get", "get", "build", "create", "put_archive", "start"]
    assert fake.calls[2][1] == {"path": str(ROOT), "dockerfile": "variants/Dockerfile",
                                "tag": "croupier-variant:latest", "rm": True}
    _, image, create = fake.calls[3]
    assert image == "croupier-variant:latest"
    assert create == {"name": "variant-demo-d", "detach": True, "network": "croupier",
                      "environment": {"VARIANT_PARAMS": "/app/params/d.json"},
                      "labels": {"croupier.experiment": "demo", "croupier.variant": "d"},
                      "restart_policy": {"Name": "unless-stopped"}, "healthcheck": {"interval": 2_000_000_000}}
    path, data = fake.calls[4][1:]
    assert path == "/app" and json.loads(archive_files(data)["params/d.json"]) == PARAMS


def test_a_factorial_experiments_declaration_is_copied_in_and_named_by_variant_experiment():
    declaration = {"id": "spring", "variants": [{"id": "page", "upstream": "127.0.0.1:9201", "params": PARAMS}],
                   "factors": {"cta": {"go": {}, "buy": {"cta": "Buy now"}}}}
    fake = FakeDocker()
    deployment = DockerTarget(fake).deploy(VariantSpec("spring", "page", None, declaration=declaration), QUIET,
                                           health_timeout=5)
    assert deployment.upstream == "variant-spring-page:8080"
    assert [c[0] for c in fake.calls] == ["get", "get", "build", "create", "put_archive", "start"]
    assert fake.calls[3][2]["environment"] == {"VARIANT_EXPERIMENT": "/app/params/page.json"}
    path, data = fake.calls[4][1:]
    assert path == "/app" and json.loads(archive_files(data)["params/page.json"]) == declaration


def test_existing_image_runs_as_is():
    fake = FakeDocker(states=[{"Status": "running"}])  # no HEALTHCHECK in that image: running is enough
    target = DockerTarget(fake, network="shop")
    fake.known_networks = {"shop"}
    target.deploy(VariantSpec("demo", "d", None, image="registry.example/landing:7"), QUIET, health_timeout=5)
    assert [c[0] for c in fake.calls] == ["get", "get", "create", "start"]
    assert fake.calls[2][1] == "registry.example/landing:7"
    assert fake.calls[2][2]["environment"] == {} and fake.calls[2][2]["network"] == "shop"


def test_a_container_that_exits_is_removed_and_its_logs_shown():
    fake = FakeDocker(states=[{"Status": "exited", "ExitCode": 1}])
    with pytest.raises(DeployError, match="exited with 1:\nvariants: something went wrong"):
        DockerTarget(fake).deploy(VariantSpec("demo", "d", PARAMS), QUIET, health_timeout=5)
    assert fake.calls[-1] == ("remove", "variant-demo-d", True)


def test_a_container_never_healthy_is_removed_after_the_timeout():
    fake = FakeDocker(states=[{"Status": "running", "Health": {"Status": "starting"}}])
    with pytest.raises(DeployError, match="was not healthy within 0.3 s"):
        DockerTarget(fake).deploy(VariantSpec("demo", "d", PARAMS, image="x:1"), QUIET, health_timeout=0.3)
    assert fake.calls[-1] == ("remove", "variant-demo-d", True)


def test_refuses_a_missing_network_or_an_existing_container():
    with pytest.raises(DeployError, match="docker network 'croupier' not found"):
        DockerTarget(FakeDocker(networks=())).deploy(VariantSpec("demo", "d", PARAMS), QUIET, 5)
    fake = FakeDocker(existing={"variant-demo-d"})
    with pytest.raises(DeployError, match="container 'variant-demo-d' already exists"):
        DockerTarget(fake).deploy(VariantSpec("demo", "d", PARAMS), QUIET, 5)
    assert not [c for c in fake.calls if c[0] in ("build", "create", "remove")]


def test_undeploy_removes_the_container():
    fake = FakeDocker(existing={"variant-demo-d"})
    assert DockerTarget(fake).undeploy("demo", "d", QUIET) == ["container variant-demo-d"]
    assert fake.calls[-1] == ("remove", "variant-demo-d", True)
    assert DockerTarget(FakeDocker()).undeploy("demo", "e", QUIET) == []


def test_no_engine_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(DeployError, match="no Docker engine is reachable .*start Docker or set DOCKER_HOST"):
        connect()
