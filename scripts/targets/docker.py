"""The docker target: the variant's page server as a container on the stack's network.

The image is built from ``variants/Dockerfile`` (or is an existing one, ``--image-ref``);
the params (or a factorial experiment's declaration) are copied into the container before
it starts, so nothing needs to be mounted from the machine the command runs on (the
engine may be remote). NGINX reaches the container by name on the shared network:
upstream ``<name>:8080``.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

from croupier.nginx.services import compose_upstream, service_name
from croupier.scripts.processes import ROOT
from croupier.scripts.progress import Progress
from croupier.scripts.targets import Deployment, DeployError, VariantSpec

DEFAULT_IMAGE = "croupier-variant:latest"
DEFAULT_NETWORK = "croupier"
PARAMS_DIR = "/app/params"
# The image's HEALTHCHECK probes every 10 s; a deploy should not wait that long for the first probe.
HEALTH_INTERVAL_NS = 2_000_000_000


def container_name(experiment: str, variant_id: str) -> str:
    """The compose service name a variant would have (``variant-<experiment>-<variant>``): on the
    compose network its upstream is this name, which the compose NGINX's allowlist admits."""
    return service_name(experiment, variant_id)


def params_archive(variant_id: str, params: dict) -> bytes:
    """A tar with ``params/<id>.json`` (the params, or the declaration), for ``put_archive``
    into /app (which creates params/)."""
    data = json.dumps(params, indent=2, ensure_ascii=False).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("params")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(folder)
        member = tarfile.TarInfo(f"params/{variant_id}.json")
        member.size, member.mode = len(data), 0o644
        tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def connect() -> Any:
    """The Docker engine from the environment (DOCKER_HOST or the local socket)."""
    try:
        import docker
    except ImportError:
        raise DeployError("the docker target needs the docker package: pip install 'croupier[deploy]'") from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise DeployError(f"no Docker engine is reachable ({exc}); start Docker or set DOCKER_HOST") from None
    return client


class DockerTarget:
    name = "docker"

    def __init__(self, client: Any, *, network: str = DEFAULT_NETWORK, build_tag: str = DEFAULT_IMAGE) -> None:
        self.client = client
        self.network = network
        self.build_tag = build_tag

    def image(self, spec: VariantSpec, progress: Progress) -> str:
        if spec.image:
            return spec.image
        progress.step(f"building {self.build_tag} from variants/Dockerfile")
        self.client.images.build(path=str(ROOT), dockerfile="variants/Dockerfile", tag=self.build_tag, rm=True)
        return self.build_tag

    def deploy(self, spec: VariantSpec, progress: Progress, health_timeout: float) -> Deployment:
        from docker.errors import DockerException, NotFound

        name = container_name(spec.experiment, spec.variant_id)
        try:
            self.client.networks.get(self.network)
        except NotFound:
            raise DeployError(f"docker network {self.network!r} not found: start the stack's compose project "
                              f"or pass --network") from None
        try:
            self.client.containers.get(name)
            raise DeployError(f"container {name!r} already exists; remove it first (remove --target docker)")
        except NotFound:
            pass
        try:
            image = self.image(spec, progress)
            progress.step(f"starting container {name} ({image}) on network {self.network}")
            source = spec.page_source()
            environment = {source[0]: f"{PARAMS_DIR}/{spec.variant_id}.json"} if source else {}
            container = self.client.containers.create(
                image, name=name, detach=True, network=self.network, environment=environment,
                labels={"croupier.experiment": spec.experiment, "croupier.variant": spec.variant_id},
                restart_policy={"Name": "unless-stopped"}, healthcheck={"interval": HEALTH_INTERVAL_NS})
        except DockerException as exc:
            raise DeployError(f"docker: {exc}") from None
        try:
            if source:
                container.put_archive("/app", params_archive(spec.variant_id, source[1]))
            container.start()
            if not progress.wait(f"waiting for container {name} to be healthy",
                                 lambda: self._healthy(container), health_timeout, interval=0.5):
                raise DeployError(f"container {name} was not healthy within {health_timeout:g} s:\n"
                                  f"{self._logs(container)}")
        except BaseException as exc:
            container.remove(force=True)
            if isinstance(exc, DockerException):
                raise DeployError(f"docker: {exc}") from None
            raise
        return Deployment(upstream=compose_upstream(spec.experiment, spec.variant_id), where=f"container {name}")

    def _healthy(self, container: Any) -> bool:
        container.reload()
        state = container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            raise DeployError(f"container {container.name} exited with {state.get('ExitCode')}:\n"
                              f"{self._logs(container)}")
        health = state.get("Health")
        # An --image-ref image without a HEALTHCHECK: running is all Docker can tell.
        return health["Status"] == "healthy" if health else state.get("Status") == "running"

    @staticmethod
    def _logs(container: Any) -> str:
        try:
            return container.logs(tail=15).decode(errors="replace")
        except Exception:  # the logs only decorate the message; never hide the real error
            return ""

    def undeploy(self, experiment: str, variant_id: str, progress: Progress) -> list[str]:
        from docker.errors import NotFound

        name = container_name(experiment, variant_id)
        try:
            container = self.client.containers.get(name)
        except NotFound:
            return []
        progress.step(f"removing container {name}")
        container.remove(force=True)
        return [f"container {name}"]
