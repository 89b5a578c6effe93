"""scripts/k8s_objects.py: a variant's objects are the committed ones, valid and locked
down, and reachable through the same NetworkPolicies and NGINX allowlist."""

from __future__ import annotations

import json
import re

import pytest

from croupier.nginx.deploy import K8S as K8S_TARGET
from croupier.nginx.services import service_name, upstream
from croupier.scripts.k8s_objects import main, variant_objects
from croupier.scripts.processes import ROOT
from tests.deploy.manifests import K8S, labels_match, load_yaml, schema_problems, security_problems

DEMO = ROOT / "variants" / "examples" / "demo"


def params(vid: str) -> dict:
    return json.loads((DEMO / f"{vid}.json").read_text())


@pytest.mark.parametrize("vid", ["a", "b", "c"])
def test_committed_variant_manifests_are_what_the_function_builds(vid):
    committed = load_yaml(K8S / "base" / f"variant-demo-{vid}.yaml")
    built = variant_objects("demo", vid, "croupier-variant:dev", params(vid), "croupier")
    assert committed == built, (f"k8s/base/variant-demo-{vid}.yaml is stale: regenerate it from "
                                "croupier.scripts.k8s_objects.variant_objects")
    assert json.loads(built[0]["data"]["params.json"]) == params(vid)  # the example's params, unchanged


def test_objects_validate_and_are_locked_down():
    objects = variant_objects("spring_sale", "bold-cta", "registry.example.com/v:1", params("b"), "shop", port=9000)
    assert [o["kind"] for o in objects] == ["ConfigMap", "Deployment", "Service"]
    for obj in objects:
        assert not schema_problems(obj)
        assert not security_problems(obj)
        assert obj["metadata"]["namespace"] == "shop"
    deployment, service = objects[1], objects[2]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels_match({"matchLabels": service["spec"]["selector"]}, pod_labels)
    assert labels_match(deployment["spec"]["selector"], pod_labels)
    assert service["metadata"]["name"] == "variant-spring-sale-bold-cta"
    assert service["spec"]["ports"][0]["port"] == 9000


def test_nginx_and_the_network_policies_let_a_new_variant_in():
    deployment = variant_objects("demo", "d", "croupier-variant:dev", params("a"), "croupier")[1]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    (policy,) = [o for o in load_yaml(K8S / "base" / "variants.yaml") if o["kind"] == "NetworkPolicy"]
    assert labels_match(policy["spec"]["podSelector"], pod_labels)
    (nginx_policy,) = [o for o in load_yaml(K8S / "base" / "nginx.yaml") if o["kind"] == "NetworkPolicy"]
    assert any(labels_match(to["podSelector"], pod_labels) for rule in nginx_policy["spec"]["egress"]
               for to in rule["to"])
    pattern = re.search(r'"~(\^variant-[^"]+)" \$croupier_upstream;', K8S_TARGET.config_path.read_text()).group(1)
    assert re.fullmatch(pattern, upstream("demo", "d"))


def test_names_are_valid_dns_labels_even_for_long_ids():
    long_name = service_name("e" * 40, "v" * 40)
    assert len(long_name) <= 63 and re.fullmatch(r"[a-z]([a-z0-9-]*[a-z0-9])?", long_name)
    assert long_name != service_name("e" * 40, "v" * 39 + "w")  # truncation keeps them distinct
    assert service_name("demo", "b_2") == "variant-demo-b-2"


def test_params_change_rolls_the_pods():
    first = variant_objects("demo", "a", "i", {"id": "a", "headline": "x", "cta": "go"}, "croupier")[1]
    second = variant_objects("demo", "a", "i", {"id": "a", "headline": "y", "cta": "go"}, "croupier")[1]
    annotation = "croupier/params-sha256"
    assert first["spec"]["template"]["metadata"]["annotations"][annotation] != \
        second["spec"]["template"]["metadata"]["annotations"][annotation]


def test_command_line_prints_a_list(tmp_path, capsys):
    source = tmp_path / "d.json"
    source.write_text(json.dumps(params("c")))
    assert main(["demo", "d", "--image", "croupier-variant:1", "--params", str(source)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "List" and [i["kind"] for i in printed["items"]] == ["ConfigMap", "Deployment",
                                                                                     "Service"]
    assert main(["demo", "d", "--image", "x", "--params", str(tmp_path / "missing.json")]) == 1
