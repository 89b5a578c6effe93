"""nginx/services.py: the names a variant gets in compose and Kubernetes are the ones NGINX's allowlist admits."""

from __future__ import annotations

import re

import pytest

from croupier.nginx.services import (COMPOSE_UPSTREAM_PATTERN, K8S_UPSTREAM_PATTERN, compose_upstream, service_name,
                            upstream)
from croupier.router.rules import UPSTREAM

IDS = [("demo", "a"), ("spring-sale", "b_2"), ("e" * 40, "v" * 40)]


@pytest.mark.parametrize("experiment, variant", IDS)
def test_the_allowlist_admits_every_variant_name(experiment, variant):
    assert re.fullmatch(COMPOSE_UPSTREAM_PATTERN, compose_upstream(experiment, variant))
    assert re.fullmatch(K8S_UPSTREAM_PATTERN, upstream(experiment, variant))
    assert UPSTREAM.ok(compose_upstream(experiment, variant)) and UPSTREAM.ok(upstream(experiment, variant))


@pytest.mark.parametrize("address", ["redis:6379", "router-1:8000", "variant-demo-a:80", "169.254.169.254:80",
                                     "variant-demo-a.other.svc.cluster.local:8080", "variant-x:8080/evil"])
def test_the_allowlist_admits_nothing_else(address):
    assert not re.fullmatch(COMPOSE_UPSTREAM_PATTERN, address)
    assert not re.fullmatch(K8S_UPSTREAM_PATTERN, address)


def test_long_names_stay_distinct_dns_labels():
    long_name = service_name("e" * 40, "v" * 40)
    assert len(long_name) <= 63 and re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", long_name)
    assert long_name != service_name("e" * 40, "v" * 39 + "w")
    assert service_name("demo", "b_2") == "variant-demo-b-2"
