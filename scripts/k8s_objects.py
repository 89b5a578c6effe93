"""Kubernetes objects for one landing-page variant, the same as the ones in k8s/base.

Pure functions returning plain dicts (ready for ``kubectl apply -f -`` as JSON),
so the variant script can add a variant to a cluster and tests can check what
it would create without one. The committed k8s/base/variant-*.yaml are exactly
what ``variant_objects`` returns (tests/deploy checks it), so a variant added by
the script and one deployed from the manifests look the same to NGINX's
allowlist, the NetworkPolicies and the security checks.

    python -m croupier.scripts.k8s_objects demo d --image croupier-variant:0.1.0 --params d.json | kubectl apply -f -
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from croupier.nginx.services import NAMESPACE, VARIANT_PORT, service_name

PART_OF = "croupier"
PARAMS_DIR = "/etc/croupier"
# The variant server drains for 5 s (variants/cli.py); the preStop pause lets
# Service endpoints and NGINX stop sending before that starts.
PRESTOP_SECONDS = 5
VARIANT_GRACE_SECONDS = 20
UID = 10001  # the user the project's images run as (router/Dockerfile, variants/Dockerfile)


def pod_security_context(uid: int = UID) -> dict:
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def container_security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]}}


def variant_labels(experiment: str, variant_id: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": service_name(experiment, variant_id),
            "app.kubernetes.io/component": "variant",
            "app.kubernetes.io/part-of": PART_OF,
            "croupier/experiment": experiment,
            "croupier/variant": variant_id}


def params_json(params: dict) -> str:
    return json.dumps(params, indent=2, ensure_ascii=False) + "\n"


def variant_objects(experiment: str, variant_id: str, image: str, params: dict, namespace: str,
                    port: int = VARIANT_PORT, replicas: int = 2, declaration: dict | None = None) -> list[dict]:
    """Deployment, Service and params ConfigMap of one variant; with ``declaration``, of a
    factorial experiment's page server, the ConfigMap holding the experiment's JSON instead."""
    name = service_name(experiment, variant_id)
    labels = variant_labels(experiment, variant_id)
    selector = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}
    file, variable = ("params.json", "VARIANT_PARAMS") if declaration is None else ("experiment.json",
                                                                                  "VARIANT_EXPERIMENT")
    document = params_json(params if declaration is None else declaration)
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap",
        # the same name either way: undeploying finds it without knowing what it held
        "metadata": {"name": f"{name}-params", "namespace": namespace, "labels": labels},
        "data": {file: document},
    }
    container = {
        "name": "variant",
        "image": image,
        "ports": [{"name": "http", "containerPort": port}],
        "env": [{"name": variable, "value": f"{PARAMS_DIR}/{file}"},
                {"name": "VARIANT_HOST", "value": "0.0.0.0"},
                {"name": "VARIANT_PORT", "value": str(port)}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "params", "mountPath": PARAMS_DIR, "readOnly": True}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                # a params change rolls the pods: a mounted ConfigMap alone would not restart them
                "metadata": {"labels": labels,
                             "annotations": {"croupier/params-sha256": hashlib.sha256(document.encode()).hexdigest()}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": VARIANT_GRACE_SECONDS,
                    "securityContext": pod_security_context(),
                    "containers": [container],
                    "volumes": [{"name": "params", "configMap": {"name": f"{name}-params"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"selector": selector, "ports": [{"name": "http", "port": port, "targetPort": "http"}]},
    }
    return [config_map, deployment, service]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a variant's Kubernetes objects as a JSON List.")
    parser.add_argument("experiment")
    parser.add_argument("variant")
    parser.add_argument("--image", required=True)
    parser.add_argument("--params", type=Path, required=True, help="the variant's params JSON file")
    parser.add_argument("--namespace", default=NAMESPACE)
    parser.add_argument("--port", type=int, default=VARIANT_PORT)
    args = parser.parse_args(argv)
    try:
        params = json.loads(args.params.read_text())
    except (OSError, ValueError) as exc:
        print(f"k8s_objects: {args.params}: {exc}", file=sys.stderr)
        return 1
    items = variant_objects(args.experiment, args.variant, args.image, params, args.namespace, args.port)
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
