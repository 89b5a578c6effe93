"""Where a variant's page server runs: a local process, a Docker container or a
Kubernetes Deployment. Each target starts it, waits until it is healthy and says
which upstream (host:port) NGINX must proxy to; and stops what it started.

A target that fails removes what it created before raising ``DeployError``, so the
caller never has to know how far it got.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from croupier.scripts.progress import Progress

TARGETS = ("local", "docker", "k8s")


class DeployError(RuntimeError):
    pass


@dataclass(frozen=True)
class VariantSpec:
    experiment: str
    variant_id: str
    params: dict | None  # None: the image serves its own page (--image-ref without a template)
    params_file: Path | None = None  # where the params were written (the local target serves this file)
    image: str = ""  # docker/k8s: an existing image; empty: build (docker) or the default image (k8s)
    # A factorial experiment's page server renders every arm from the experiment's JSON
    # (``--experiment``, VARIANT_EXPERIMENT) instead of one variant's params.
    declaration: dict | None = None
    declaration_file: Path | None = None  # where it is (the local target serves this file)

    def page_source(self) -> tuple[str, dict] | None:
        """The page server's variable naming its file, and the JSON that file holds; None when
        the image serves its own page."""
        if self.declaration is not None:
            return "VARIANT_EXPERIMENT", self.declaration
        return ("VARIANT_PARAMS", self.params) if self.params else None


@dataclass(frozen=True)
class Deployment:
    upstream: str  # host:port, what the registry and NGINX's allowlist get
    where: str  # for people: "pid 123 on 127.0.0.1:9200", "container variant-demo-d"


class Target(Protocol):
    name: str

    def deploy(self, spec: VariantSpec, progress: Progress, health_timeout: float) -> Deployment: ...

    def undeploy(self, experiment: str, variant_id: str, progress: Progress) -> list[str]:
        """Stop what runs for the variant; returns what was stopped (empty: nothing of ours ran)."""
        ...
