"""k8s/: every kustomization builds, validates against the Kubernetes schemas and
follows the security and availability rules the README promises."""

from __future__ import annotations

import json
import re

import pytest

from croupier.nginx.deploy import START_SCRIPT
from croupier.nginx.render import PASS_KEY_FILE
from tests.deploy.manifests import (K8S, KUSTOMIZATIONS, build, labels_match, load_yaml, name_of, pod_spec,
                                    schema_problems, security_problems)

ROUTER_MAIN = K8S.parent / "router" / "__main__.py"


def generated_names(kustomization: str) -> set[str]:
    return {o["metadata"]["name"] for o in build(kustomization)
            if o["kind"] == "ConfigMap" and re.fullmatch(r"(nginx-conf|seed-experiments)-[a-z0-9]{10}",
                                                         o["metadata"]["name"])}


def objects(kustomization: str, kind: str | None = None, name: str | None = None) -> list[dict]:
    return [o for o in build(kustomization)
            if (kind is None or o["kind"] == kind) and (name is None or o["metadata"]["name"] == name)]


def one(kustomization: str, kind: str, name: str) -> dict:
    found = objects(kustomization, kind, name)
    assert len(found) == 1, f"k8s/{kustomization}: expected one {kind}/{name}, found {len(found)}"
    return found[0]


def container(obj: dict, name: str) -> dict:
    return next(c for c in pod_spec(obj)["containers"] if c["name"] == name)


def drain_seconds() -> int:
    """uvicorn's timeout_graceful_shutdown in router/__main__.py: what the grace period must outlast."""
    match = re.search(r"timeout_graceful_shutdown=(\d+)", ROUTER_MAIN.read_text())
    assert match, "router/__main__.py no longer sets timeout_graceful_shutdown"
    return int(match.group(1))


def prestop_sleep(c: dict) -> int:
    command = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    return int(command[1]) if command[:1] == ["sleep"] else 0


@pytest.fixture(scope="module", autouse=True)
def _kubectl(kubectl_binary):
    return kubectl_binary


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_builds_and_validates_against_kubernetes_schemas(kustomization):
    built = build(kustomization)
    assert len(built) > 20
    problems = [p for obj in built for p in schema_problems(obj)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_pod_is_locked_down(kustomization):
    problems = [p for obj in build(kustomization) for p in security_problems(obj)]
    assert not problems, "\n".join(problems)
    for obj in build(kustomization):
        if pod_spec(obj) is not None:
            assert pod_spec(obj).get("automountServiceAccountToken") is False, name_of(obj)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_everything_is_in_one_namespace_with_shared_labels(kustomization):
    generated = generated_names(kustomization)
    assert len(generated) == 2
    for obj in build(kustomization):
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "croupier", name_of(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == "croupier", name_of(obj)
        # generated ConfigMaps cannot carry their own labels in kustomize v2
        if obj["kind"] != "Namespace" and obj["metadata"]["name"] not in generated:
            assert obj["metadata"]["labels"].get("app.kubernetes.io/component"), name_of(obj)
    namespace = one(kustomization, "Namespace", "croupier")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_router_probes_and_graceful_stop(kustomization):
    router = one(kustomization, "Deployment", "router")
    c = container(router, "router")
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"  # never Redis: an outage must not restart routers
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"name": "CROUPIER_HOST", "value": "0.0.0.0"} in c["env"]
    # the decide listener: a container port, a Service port and the port nginx.conf's croupier_decide names
    assert {"name": "CROUPIER_DECIDE_PORT", "value": "8001"} in c["env"]
    assert {"name": "decide", "containerPort": 8001} in c["ports"]
    service = one(kustomization, "Service", "router")
    assert {"name": "decide", "port": 8001, "targetPort": "decide"} in service["spec"]["ports"]
    grace = pod_spec(router)["terminationGracePeriodSeconds"]
    assert prestop_sleep(c) > 0
    assert grace > prestop_sleep(c) + drain_seconds(), "the kubelet would kill routers while they drain"
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert secrets == {name: {"name": "croupier-secrets", "key": name}
                       for name in ("CROUPIER_SECRET", "CROUPIER_ADMIN_TOKEN", "CROUPIER_PASS_KEY")}
    assert "replicas" not in router["spec"], "the HPA owns the router's replicas"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_router_scales_and_survives_disruptions(kustomization):
    router = one(kustomization, "Deployment", "router")
    hpa = one(kustomization, "HorizontalPodAutoscaler", "router")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "router"}
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pod_labels = router["spec"]["template"]["metadata"]["labels"]
    pdb = one(kustomization, "PodDisruptionBudget", "router")
    assert labels_match(pdb["spec"]["selector"], pod_labels)
    service = one(kustomization, "Service", "router")
    assert labels_match({"matchLabels": service["spec"]["selector"]}, pod_labels)
    # HPA utilisation targets are a share of the request: without one it cannot scale
    assert container(router, "router")["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_redis_is_persistent_and_append_only(kustomization):
    redis = one(kustomization, "StatefulSet", "redis")
    args = container(redis, "redis")["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "everysec"
    assert args[args.index("--dir") + 1] == "/data"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container(redis, "redis")["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == "/data"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_nginx_runs_the_committed_configuration(kustomization):
    nginx = one(kustomization, "Deployment", "nginx")
    c = container(nginx, "nginx")
    # the start script writes the pass key from the routers' Secret, then runs nginx with the rest
    assert c["command"][:4] == ["sh", "/etc/nginx/croupier/nginx-start.sh", "-c", "/etc/nginx/croupier/nginx.conf"]
    assert {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"]} == {
        "CROUPIER_PASS_KEY": {"name": "croupier-secrets", "key": "CROUPIER_PASS_KEY"}}
    volume = next(v for v in pod_spec(nginx)["volumes"] if v["name"] == "config")
    config_map = one(kustomization, "ConfigMap", volume["configMap"]["name"])  # the generated, hashed name
    assert config_map["data"]["nginx.conf"] == (K8S / "base" / "nginx.conf").read_text()
    assert config_map["data"]["nginx-start.sh"] == START_SCRIPT.read_text()
    assert f"include {PASS_KEY_FILE};" in config_map["data"]["nginx.conf"]
    assert "listen 8080;" in config_map["data"]["nginx.conf"]
    assert c["ports"][0]["containerPort"] == 8080
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/cache/nginx", "/var/run"}  # temp files, pass key and pid on a read-only root


def test_overlays_differ_where_they_should():
    assert one("overlays/dev", "HorizontalPodAutoscaler", "router")["spec"]["minReplicas"] == 1
    production = one("overlays/production", "HorizontalPodAutoscaler", "router")
    assert production["spec"]["minReplicas"] >= 3
    images = {c["image"] for o in build("overlays/production") if pod_spec(o) for c in pod_spec(o)["containers"]}
    assert not any(i.endswith((":dev", ":latest")) or ":" not in i for i in images), images
    router = container(one("overlays/production", "Deployment", "router"), "router")
    assert {"name": "CROUPIER_COOKIE_SECURE", "value": "true"} in router["env"]
    assert len([e for e in router["env"] if e["name"] == "CROUPIER_SECRET"]) == 1  # patches merged, not appended


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_archiver_runs_once_on_its_volume_beside_the_routers(kustomization):
    archiver = one(kustomization, "Deployment", "archiver")
    assert archiver["spec"]["replicas"] == 1  # the lease makes more replicas standbys, never writers
    assert archiver["spec"]["strategy"] == {"type": "Recreate"}  # a ReadWriteOnce volume changes hands
    c = container(archiver, "archiver")
    assert c["command"][:4] == ["python", "-m", "croupier.scripts.archive", "run"]
    heartbeat = c["command"][c["command"].index("--heartbeat") + 1]
    probe = c["livenessProbe"]["exec"]["command"]
    assert probe[:4] == ["python", "-m", "croupier.scripts.archive", "alive"]
    assert probe[probe.index("--heartbeat") + 1] == heartbeat
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert heartbeat.startswith("/tmp/") and "/tmp" in mounts  # writable on a read-only root
    archive_dir = c["command"][c["command"].index("--dir") + 1]
    volume = next(v for v in pod_spec(archiver)["volumes"] if v["name"] == mounts[archive_dir])
    claim = one(kustomization, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    # the routers' Redis and CROUPIER_ARCHIVE on both: the routers cap the streams at the
    # safety cap and leave the trimming to the archiver
    env = {e["name"]: e.get("value") for e in c["env"]}
    router = container(one(kustomization, "Deployment", "router"), "router")
    routers = {e["name"]: e.get("value") for e in router["env"]}
    assert env["CROUPIER_REDIS_URL"] == routers["CROUPIER_REDIS_URL"]
    assert env["CROUPIER_ARCHIVE"] == routers["CROUPIER_ARCHIVE"] == "on"
    assert pod_spec(archiver)["terminationGracePeriodSeconds"] >= 30  # it writes what it holds first


def test_seed_job_creates_the_committed_experiments():
    job = one("base", "Job", "seed")
    c = container(job, "seed")
    assert c["command"][:3] == ["python", "-m", "croupier.nginx.seed"]
    volume = next(v for v in pod_spec(job)["volumes"] if v["name"] == "experiments")
    config_map = one("base", "ConfigMap", volume["configMap"]["name"])
    experiments = json.loads(config_map["data"]["experiments.json"])
    assert [e["id"] for e in experiments] == ["demo"]
    services = {o["metadata"]["name"] for o in objects("base", "Service")}
    for variant in experiments[0]["variants"]:
        host = variant["upstream"].split(".")[0]
        assert host in services, f"upstream {variant['upstream']} has no Service"


def test_no_secret_values_are_committed():
    assert not objects("base", "Secret")
    for path in K8S.rglob("*.yaml"):
        for obj in load_yaml(path):
            if obj.get("kind") == "Secret":
                assert all(v.startswith("REPLACE") for v in obj.get("stringData", {}).values()), path
                assert not obj.get("data"), path
    (example,) = load_yaml(K8S / "base" / "secret.example.yaml")
    assert not schema_problems(example)
    assert set(example["stringData"]) == {"CROUPIER_SECRET", "CROUPIER_ADMIN_TOKEN", "CROUPIER_PASS_KEY"}


OUTSIDER = "outsider"


def allowed(policies: list[dict], pods: dict[str, dict], source: str, target: str, port: int) -> bool:
    """Would a connection from pod ``source`` to pod ``target`` on ``port`` pass both ends' policies?"""
    def selecting(pod: str, kind: str) -> list[dict]:
        if pod == OUTSIDER:  # another namespace's pod: our policies do not restrict it
            return []
        return [p for p in policies if kind in p["spec"]["policyTypes"]
                and labels_match(p["spec"]["podSelector"], pods[pod])]

    def rule_allows(rules: list[dict], peer_key: str, peer: str) -> bool:
        for rule in rules:
            ports = [p["port"] for p in rule.get("ports", [])]
            peers = rule.get(peer_key)
            # a podSelector without namespaceSelector only matches pods of this namespace
            peer_ok = peers is None or any("podSelector" in p and "namespaceSelector" not in p and peer != OUTSIDER
                                           and labels_match(p["podSelector"], pods[peer]) for p in peers)
            if peer_ok and (not ports or port in ports):
                return True
        return False

    egress = selecting(source, "Egress")
    ingress = selecting(target, "Ingress")
    return (not egress or any(rule_allows(p["spec"].get("egress", []), "to", target) for p in egress)) and \
        (not ingress or any(rule_allows(p["spec"].get("ingress", []), "from", source) for p in ingress))


def test_network_policies_fence_each_component():
    policies = objects("base", "NetworkPolicy")
    pods = {o["metadata"]["labels"]["app.kubernetes.io/name"]: o["spec"]["template"]["metadata"]["labels"]
            for o in build("base") if pod_spec(o) is not None}
    pods["visitor"] = {"app.kubernetes.io/name": "visitor"}  # some other pod in the namespace
    pods[OUTSIDER] = {"app.kubernetes.io/part-of": "croupier", "app.kubernetes.io/component": "router"}
    variants = [name for name in pods if name.startswith("variant-")]
    assert len(variants) == 3
    allowed_paths = {("nginx", "router", 8000), ("seed", "router", 8000), ("router", "redis", 6379),
                     ("archiver", "redis", 6379),
                     *(("nginx", v, 8080) for v in variants)}
    for source in pods:
        for target, port in [("router", 8000), ("redis", 6379), *((v, 8080) for v in variants)]:
            if source != target:
                expected = (source, target, port) in allowed_paths
                assert allowed(policies, pods, source, target, port) == expected, (source, target, port)
    assert allowed(policies, pods, OUTSIDER, "nginx", 8080)  # visitors
    assert not allowed(policies, pods, "nginx", "redis", 6379)
    assert not allowed(policies, pods, "nginx", "router", 6379)  # the right pod, the wrong port
    nginx_ingress = next(p for p in policies if p["metadata"]["name"] == "nginx")["spec"]["ingress"]
    assert nginx_ingress == [{"ports": [{"protocol": "TCP", "port": 8080}]}]
    dns = next(p for p in policies if p["metadata"]["name"] == "allow-dns-egress")
    assert dns["spec"]["podSelector"] == {} and {p["port"] for p in dns["spec"]["egress"][0]["ports"]} == {53}
    deny = next(p for p in policies if p["metadata"]["name"] == "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
