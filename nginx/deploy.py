"""NGINX configurations and seed experiments for docker compose and Kubernetes.

Both deploy targets serve the demo experiment (``croupier.nginx.demo``), with the
variants' service names (``croupier.nginx.services``) as upstreams. NGINX's image has no Python to render its configuration at start-up,
so the results are committed; tests check they are what this module renders,
so they cannot drift from the template:

    nginx/compose.conf  nginx/compose-experiments.json    (docker-compose.yml)
    k8s/base/nginx.conf k8s/base/experiments.json          (kustomize configMapGenerator)
    k8s/base/nginx-start.sh                                (a copy of nginx/start.sh: kustomize
                                                            reads files under its own directory only)

    python -m croupier.nginx.deploy            # rewrite them
    python -m croupier.nginx.deploy --check    # exit 1 when one is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from croupier.nginx import services
from croupier.nginx.demo import demo_experiment
from croupier.nginx.render import Options, render

ROOT = Path(__file__).resolve().parent.parent
START_SCRIPT = ROOT / "nginx" / "start.sh"  # writes the pass key from CROUPIER_PASS_KEY, then runs nginx


@dataclass(frozen=True)
class Target:
    name: str
    upstream: Callable[[str, str], str]  # (experiment, variant) -> host:port
    options: Options
    config_path: Path
    experiments_path: Path
    start_script_path: Path | None = None  # where this target needs its own copy of nginx/start.sh

    def experiments(self) -> list[dict]:
        return [demo_experiment(self.upstream)]

    def files(self) -> dict[Path, str]:
        experiments = self.experiments()
        files = {self.experiments_path: json.dumps(experiments, indent=2, ensure_ascii=False) + "\n",
                 self.config_path: render(experiments, self.options)}
        if self.start_script_path:
            files[self.start_script_path] = START_SCRIPT.read_text()
        return files


COMPOSE = Target(
    name="compose",
    upstream=services.compose_upstream,
    options=Options(
        target="compose", listen="8080",
        # two named router services: each gets its own line in the keepalive upstream block
        routers=["router-1:8000", "router-2:8000"],
        decide_routers=["router-1:8001", "router-2:8001"],  # their decide listeners (CROUPIER_DECIDE_PORT)
        resolver="127.0.0.11",  # Docker's embedded DNS, for the variants' service names
        # a variant service added later (variant-<experiment>-<id>) is served without a re-render
        upstream_pattern=services.COMPOSE_UPSTREAM_PATTERN),
    config_path=ROOT / "nginx" / "compose.conf",
    experiments_path=ROOT / "nginx" / "compose-experiments.json",
)

K8S = Target(
    name="k8s",
    upstream=services.upstream,
    options=Options(
        target="k8s", listen="8080",
        # the router Service's cluster IP; kube-proxy spreads connections over the pods
        routers=[f"router.{services.NAMESPACE}.svc.cluster.local:8000"],
        decide_routers=[f"router.{services.NAMESPACE}.svc.cluster.local:8001"],
        # NGINX resolves the resolver's own name once at start-up, through the pod's resolv.conf
        resolver="kube-dns.kube-system.svc.cluster.local",
        upstream_pattern=services.K8S_UPSTREAM_PATTERN),
    config_path=ROOT / "k8s" / "base" / "nginx.conf",
    experiments_path=ROOT / "k8s" / "base" / "experiments.json",
    start_script_path=ROOT / "k8s" / "base" / "nginx-start.sh",
)

TARGETS = {t.name: t for t in (COMPOSE, K8S)}


def stale_files() -> list[Path]:
    return [path for target in TARGETS.values() for path, text in target.files().items()
            if not path.exists() or path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report files that differ from a fresh render")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            print(f"croupier.nginx.deploy: {path.relative_to(ROOT)} is stale; run python -m croupier.nginx.deploy", file=sys.stderr)
        return 1 if stale else 0
    for target in TARGETS.values():
        for path, text in target.files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
