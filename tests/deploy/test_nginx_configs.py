"""The committed NGINX configurations for compose and Kubernetes: current, and accepted by nginx -t."""

from __future__ import annotations

import re

import pytest

from nginx.deploy import COMPOSE, K8S, TARGETS, stale_files
from scripts.processes import ROOT, check_nginx_config


def test_committed_files_are_what_the_renderer_renders_today():
    stale = [str(p.relative_to(ROOT)) for p in stale_files()]
    assert not stale, f"{', '.join(stale)} differ from a fresh render: run python -m nginx.deploy and commit"


def for_this_machine(text: str, tmp_path) -> str:
    """What only exists where the file is deployed, pointed at this machine: the router
    names in the upstream block (NGINX resolves them at load), the resolver (its
    name too) and the image's cache directory. Everything else is checked as committed."""
    text, routers = re.subn(r"(?m)^(\s*server )[A-Za-z0-9.-]+:(\d+)( max_fails=0;)$", r"\g<1>127.0.0.1:\2\3", text)
    assert routers >= 1
    text, resolvers = re.subn(r"(?m)^(\s*resolver )\S+", r"\g<1>127.0.0.1", text)
    assert resolvers == 1
    return text.replace("/var/cache/nginx/", f"{tmp_path}/cache/")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_nginx_accepts_the_committed_configuration(tmp_path, target):
    (tmp_path / "cache").mkdir()  # the image's /var/cache/nginx (an emptyDir or tmpfs there)
    conf = tmp_path / "nginx.conf"
    conf.write_text(for_this_machine(TARGETS[target].config_path.read_text(), tmp_path))
    check_nginx_config(conf, tmp_path)


def test_compose_config_lists_both_routers_and_the_compose_resolver():
    text = COMPOSE.config_path.read_text()
    upstream = text.split("upstream croupier_router {")[1].split("}")[0]
    assert re.findall(r"server (\S+) ", upstream) == ["router-1:8000", "router-2:8000"]
    assert "resolver 127.0.0.11 " in text  # Docker's embedded DNS
    assert "listen 8080;" in text


def test_k8s_config_allowlists_only_variant_services():
    text = K8S.config_path.read_text()
    assert "server router.croupier.svc.cluster.local:8000 " in text
    pattern = re.search(r'"~(\^variant-[^"]+)" \$croupier_upstream;', text).group(1)
    assert re.fullmatch(pattern, "variant-demo-d.croupier.svc.cluster.local:8080")
    for forbidden in ("redis.croupier.svc.cluster.local:6379", "router.croupier.svc.cluster.local:8000",
                      "169.254.169.254:80", "variant-x.evil.example:8080"):
        assert not re.fullmatch(pattern, forbidden), forbidden
