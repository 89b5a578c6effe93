"""The k8s target against recording fakes of CoreV1Api and AppsV1Api (no cluster here):
the objects it sends, create-or-update, waiting for readiness, and rolling back."""

from __future__ import annotations

import pytest
from kubernetes.client import (V1Deployment, V1DeploymentSpec, V1DeploymentStatus, V1LabelSelector, V1ObjectMeta,
                               V1PodTemplateSpec)
from kubernetes.client.exceptions import ApiException

from croupier.nginx.services import upstream
from croupier.scripts import k8s_objects
from croupier.scripts.progress import Progress
from croupier.scripts.targets import DeployError, VariantSpec
from croupier.scripts.targets.k8s import K8sTarget

PARAMS = {"id": "d", "experiment": "demo", "headline": "Hello", "cta": "Go"}
QUIET = Progress(quiet=True)


def fake_objects(experiment, variant_id, image, params, namespace, port=8080, declaration=None):
    name = f"variant-{experiment}-{variant_id}"
    meta = {"name": name, "namespace": namespace}
    return [{"kind": "ConfigMap", "metadata": {**meta, "name": f"{name}-params"}, "data": {"params": params}},
            {"kind": "Deployment", "metadata": meta, "spec": {"image": image}},
            {"kind": "Service", "metadata": meta, "spec": {"port": port}}]


def deployment(ready: int, replicas: int = 2, generation: int = 1) -> V1Deployment:
    return V1Deployment(metadata=V1ObjectMeta(name="variant-demo-d", generation=generation),
                        spec=V1DeploymentSpec(replicas=replicas, selector=V1LabelSelector(),
                                              template=V1PodTemplateSpec()),
                        status=V1DeploymentStatus(observed_generation=generation, updated_replicas=ready,
                                                  ready_replicas=ready))


class FakeApi:
    """Both APIs in one: records (method, kwargs); ``existing`` names answer 409 on create."""

    def __init__(self, statuses=None, existing=(), fail_on=None) -> None:
        self.calls: list = []
        self.statuses = list(statuses or [deployment(0), deployment(1), deployment(2)])
        self.existing, self.fail_on = set(existing), fail_on

    def __getattr__(self, method):
        def call(**kwargs):
            self.calls.append((method, kwargs))
            name = kwargs.get("name") or kwargs["body"]["metadata"]["name"]
            if method == self.fail_on:
                raise ApiException(status=403, reason="Forbidden")
            if method.startswith("create") and name in self.existing:
                raise ApiException(status=409, reason="Conflict")
            if method.startswith("delete") and name not in self.created | self.existing:
                raise ApiException(status=404, reason="Not Found")
            if method == "read_namespaced_deployment_status":
                return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return call

    @property
    def created(self) -> set[str]:
        return {kw["body"]["metadata"]["name"] for m, kw in self.calls if m.startswith("create")}


def target(api: FakeApi, **kwargs) -> K8sTarget:
    return K8sTarget(api, api, namespace="shop", image="croupier-variant:0.1.0", objects=fake_objects,
                     poll_interval=0.01, **kwargs)


def test_creates_the_objects_waits_until_ready_and_names_the_service():
    api = FakeApi()
    result = target(api).deploy(VariantSpec("demo", "d", PARAMS), QUIET, health_timeout=10)
    assert result.upstream == "variant-demo-d.shop.svc.cluster.local:8080"
    creates = [(m, kw["namespace"], kw["body"]["metadata"]["name"]) for m, kw in api.calls if m.startswith("create")]
    assert creates == [("create_namespaced_config_map", "shop", "variant-demo-d-params"),
                       ("create_namespaced_deployment", "shop", "variant-demo-d"),
                       ("create_namespaced_service", "shop", "variant-demo-d")]
    sent = {kw["body"]["kind"]: kw["body"] for m, kw in api.calls if m.startswith("create")}
    assert sent["ConfigMap"]["data"]["params"] == PARAMS
    assert sent["Deployment"]["spec"]["image"] == "croupier-variant:0.1.0"
    assert [m for m, _ in api.calls].count("read_namespaced_deployment_status") == 3


def test_existing_objects_are_patched_and_an_image_ref_is_used():
    api = FakeApi(existing={"variant-demo-d-params", "variant-demo-d"})  # all three exist
    target(api).deploy(VariantSpec("demo", "d", PARAMS, image="registry/x:2"), QUIET, health_timeout=10)
    methods = [m for m, _ in api.calls if not m.startswith("read")]
    assert methods == ["create_namespaced_config_map", "patch_namespaced_config_map",
                       "create_namespaced_deployment", "patch_namespaced_deployment",
                       "create_namespaced_service", "patch_namespaced_service"]
    patched = next(kw for m, kw in api.calls if m == "patch_namespaced_deployment")
    assert patched["name"] == "variant-demo-d" and patched["body"]["spec"]["image"] == "registry/x:2"


def test_not_ready_in_time_deletes_only_what_it_created():
    api = FakeApi(statuses=[deployment(1)], existing={"variant-demo-d-params"})
    with pytest.raises(DeployError, match="Deployment shop/variant-demo-d was not ready within 0.2 s"):
        target(api).deploy(VariantSpec("demo", "d", PARAMS), QUIET, health_timeout=0.2)
    deletes = [(m, kw["name"]) for m, kw in api.calls if m.startswith("delete")]
    assert deletes == [("delete_namespaced_service", "variant-demo-d"),
                       ("delete_namespaced_deployment", "variant-demo-d")]  # the ConfigMap existed before


def test_an_api_error_names_the_object_and_rolls_back():
    api = FakeApi(fail_on="create_namespaced_service")
    with pytest.raises(DeployError, match="cannot create Service variant-demo-d: 403 Forbidden"):
        target(api).deploy(VariantSpec("demo", "d", PARAMS), QUIET, health_timeout=1)
    assert [m for m, _ in api.calls if m.startswith("delete")] == ["delete_namespaced_deployment",
                                                                     "delete_namespaced_config_map"]


def test_undeploy_deletes_service_deployment_and_configmap():
    api = FakeApi(existing={"variant-demo-d", "variant-demo-d-params"})
    removed = target(api).undeploy("demo", "d", QUIET)
    assert removed == ["Service variant-demo-d", "Deployment variant-demo-d", "ConfigMap variant-demo-d-params"]


def test_with_the_project_variant_objects():
    api = FakeApi()
    result = K8sTarget(api, api, namespace="croupier", image="croupier-variant:0.1.0", poll_interval=0.01).deploy(
        VariantSpec("demo", "d", PARAMS), QUIET, health_timeout=10)
    sent = [kw["body"] for m, kw in api.calls if m.startswith("create")]
    assert sent == k8s_objects.variant_objects("demo", "d", "croupier-variant:0.1.0", PARAMS, "croupier", port=8080)
    assert result.upstream == upstream("demo", "d", "croupier")


def test_a_factorial_experiments_page_server_gets_the_declaration_in_its_configmap():
    declaration = {"id": "spring", "variants": [{"id": "page", "upstream": "127.0.0.1:9201", "params": PARAMS}],
                   "factors": {"cta": {"go": {}, "buy": {"cta": "Buy now"}}}}
    api = FakeApi()
    result = K8sTarget(api, api, namespace="croupier", image="croupier-variant:0.1.0", poll_interval=0.01).deploy(
        VariantSpec("spring", "page", None, declaration=declaration), QUIET, health_timeout=10)
    sent = {kw["body"]["kind"]: kw["body"] for m, kw in api.calls if m.startswith("create")}
    assert list(sent.values()) == k8s_objects.variant_objects("spring", "page", "croupier-variant:0.1.0", {},
                                                              "croupier", port=8080, declaration=declaration)
    assert sent["ConfigMap"]["metadata"]["name"] == "variant-spring-page-params"  # as undeploy names it
    assert sent["ConfigMap"]["data"] == {"experiment.json": k8s_objects.params_json(declaration)}
    container = sent["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "VARIANT_EXPERIMENT", "value": "/etc/croupier/experiment.json"} in container["env"]
    assert not [e for e in container["env"] if e["name"] == "VARIANT_PARAMS"]
    assert result.upstream == upstream("spring", "page", "croupier")
