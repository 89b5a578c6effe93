"""The k8s target: the variant as a Deployment, Service and params ConfigMap (a factorial
experiment's page server: its declaration in that ConfigMap).

The objects come from ``croupier.scripts.k8s_objects.variant_objects`` (the same ones as the
manifests in k8s/), are created or, when they exist, patched, and the command waits
until the Deployment's pods are ready. NGINX reaches the variant through its Service
by fully qualified name: ``<service>.<namespace>.svc.cluster.local:8080``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from croupier.nginx.services import NAMESPACE as DEFAULT_NAMESPACE, VARIANT_PORT as PORT, upstream
from croupier.scripts.progress import Progress
from croupier.scripts.targets import Deployment, DeployError, VariantSpec

DEFAULT_IMAGE = "croupier-variant:latest"
Objects = Callable[..., list[dict]]


def default_objects() -> Objects:
    try:
        from croupier.scripts.k8s_objects import variant_objects
    except ImportError as exc:
        raise DeployError(f"the k8s target needs scripts/k8s_objects.py ({exc})") from None
    return variant_objects


def connect(context: str | None = None) -> tuple[Any, Any]:
    """CoreV1Api and AppsV1Api from the kubeconfig (or the pod's service account)."""
    try:
        from kubernetes import client, config
    except ImportError:
        raise DeployError("the k8s target needs the kubernetes package: pip install 'croupier[deploy]'") from None
    try:
        config.load_kube_config(context=context)
    except Exception as kube_error:  # no kubeconfig: maybe we run inside the cluster
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise DeployError(f"no Kubernetes configuration found ({kube_error}); set KUBECONFIG or "
                              f"pass --kube-context") from None
    return client.CoreV1Api(), client.AppsV1Api()


def _api_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    try:
        return json.loads(body)["message"]
    except (TypeError, ValueError, KeyError):
        return f"{getattr(exc, 'status', '')} {getattr(exc, 'reason', exc)}".strip()


class K8sTarget:
    name = "k8s"

    def __init__(self, core: Any, apps: Any, *, namespace: str = DEFAULT_NAMESPACE, image: str = DEFAULT_IMAGE,
                 objects: Objects | None = None, poll_interval: float = 1.0) -> None:
        self.core = core
        self.apps = apps
        self.namespace = namespace
        self.image = image
        self.objects = objects or default_objects()
        self.poll_interval = poll_interval

    def _calls(self, kind: str) -> tuple[Callable, Callable, Callable]:
        """create, patch and delete for one kind of object."""
        if kind == "ConfigMap":
            c = self.core
            return (c.create_namespaced_config_map, c.patch_namespaced_config_map, c.delete_namespaced_config_map)
        if kind == "Service":
            c = self.core
            return c.create_namespaced_service, c.patch_namespaced_service, c.delete_namespaced_service
        if kind == "Deployment":
            a = self.apps
            return a.create_namespaced_deployment, a.patch_namespaced_deployment, a.delete_namespaced_deployment
        raise DeployError(f"k8s_objects returned a {kind}, which this target does not know how to apply")

    def _apply(self, obj: dict) -> bool:
        """Create ``obj``, or patch it when it exists; True when this call created it."""
        from kubernetes.client.exceptions import ApiException

        create, patch, _ = self._calls(obj["kind"])
        name = obj["metadata"]["name"]
        try:
            create(namespace=self.namespace, body=obj)
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise DeployError(f"kubernetes: cannot create {obj['kind']} {name}: {_api_message(exc)}") from None
        try:
            patch(name=name, namespace=self.namespace, body=obj)
        except ApiException as exc:
            raise DeployError(f"kubernetes: cannot update {obj['kind']} {name}: {_api_message(exc)}") from None
        return False

    def _delete(self, kind: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self._calls(kind)[2](name=name, namespace=self.namespace)
            return True
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise DeployError(f"kubernetes: cannot delete {kind} {name}: {_api_message(exc)}") from None

    def deploy(self, spec: VariantSpec, progress: Progress, health_timeout: float) -> Deployment:
        objects = self.objects(spec.experiment, spec.variant_id, spec.image or self.image, spec.params or {},
                               self.namespace, port=PORT, declaration=spec.declaration)
        by_kind = {o["kind"]: o["metadata"]["name"] for o in objects}
        missing = {"Deployment", "Service"} - set(by_kind)
        if missing:
            raise DeployError(f"k8s_objects returned no {', '.join(sorted(missing))}")
        created: list[dict] = []
        try:
            for obj in objects:
                progress.step(f"applying {obj['kind']} {self.namespace}/{obj['metadata']['name']}")
                if self._apply(obj):
                    created.append(obj)
                else:
                    progress.note(f"{obj['kind']} {obj['metadata']['name']} existed: updated")
            deployment = by_kind["Deployment"]
            if not progress.wait(f"waiting for Deployment {deployment} to be ready",
                                 lambda: self._ready(deployment), health_timeout, interval=self.poll_interval,
                                 every=5.0):
                raise DeployError(f"Deployment {self.namespace}/{deployment} was not ready within "
                                  f"{health_timeout:g} s (kubectl -n {self.namespace} describe deployment "
                                  f"{deployment})")
        except BaseException:
            # only what this run created: an object that existed before stays (updated)
            for obj in reversed(created):
                self._delete(obj["kind"], obj["metadata"]["name"])
            raise
        return Deployment(upstream=upstream(spec.experiment, spec.variant_id, self.namespace, PORT),
                          where=f"Deployment {self.namespace}/{deployment}")

    def _ready(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            d = self.apps.read_namespaced_deployment_status(name=name, namespace=self.namespace)
        except ApiException as exc:
            raise DeployError(f"kubernetes: cannot read Deployment {name}: {_api_message(exc)}") from None
        wanted = d.spec.replicas if d.spec.replicas is not None else 1
        status = d.status
        return ((status.observed_generation or 0) >= (d.metadata.generation or 0)
                and (status.updated_replicas or 0) >= wanted and (status.ready_replicas or 0) >= wanted)

    def undeploy(self, experiment: str, variant_id: str, progress: Progress) -> list[str]:
        # The names do not depend on the image or the params.
        objects = self.objects(experiment, variant_id, self.image, {}, self.namespace, port=PORT)
        removed = []
        for obj in reversed(objects):
            kind, name = obj["kind"], obj["metadata"]["name"]
            progress.step(f"deleting {kind} {self.namespace}/{name}")
            if self._delete(kind, name):
                removed.append(f"{kind} {name}")
        return removed
