"""Shared by the deploy tests: building the kustomizations, Kubernetes schema
validation and the security rules every pod of the project follows."""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import yaml

from croupier.scripts.processes import ROOT

K8S = ROOT / "k8s"
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/production")
# The oldest Kubernetes the manifests promise to work on (autoscaling/v2 and
# policy/v1 PodDisruptionBudget are GA well before it).
KUBERNETES_VERSION = "1.30.0"
KUBECTL_HINT = "apt-get install -y kubernetes-client (or run scripts/setup.sh)"


class MissingKubectl(RuntimeError):
    pass


def kubectl() -> str:
    """The kubectl to build with: $CROUPIER_KUBECTL (to try another version), else the one on PATH."""
    chosen = os.environ.get("CROUPIER_KUBECTL") or shutil.which("kubectl") or (
        "/usr/bin/kubectl" if os.access("/usr/bin/kubectl", os.X_OK) else "")
    if not chosen or not os.access(chosen, os.X_OK):
        raise MissingKubectl(f"kubectl is not installed; install it with: {KUBECTL_HINT}")
    return chosen


@cache
def build(kustomization: str) -> tuple[dict, ...]:
    result = subprocess.run([kubectl(), "kustomize", str(K8S / kustomization)],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize k8s/{kustomization} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def load_yaml(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_spec(obj: dict) -> dict | None:
    kind = obj["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        return obj["spec"]["template"]["spec"]
    if kind == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return obj["spec"]
    return None


def security_problems(obj: dict) -> list[str]:
    """What breaks the project's rules for running a pod: non-root, read-only root,
    no privilege escalation, no capabilities, the runtime's seccomp profile, resources."""
    spec = pod_spec(obj)
    if spec is None:
        return []
    where = name_of(obj)
    problems = []
    pod = spec.get("securityContext", {})
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: pod seccompProfile is not RuntimeDefault")
    if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
        problems.append(f"{where}: shares a host namespace")
    for c in spec.get("initContainers", []) + spec["containers"]:
        at = f"{where} container {c['name']}"
        sc = c.get("securityContext", {})
        non_root = sc.get("runAsNonRoot", pod.get("runAsNonRoot"))
        uid = sc.get("runAsUser", pod.get("runAsUser"))
        if non_root is not True:
            problems.append(f"{at}: runAsNonRoot is not true")
        if uid is None or uid == 0:
            problems.append(f"{at}: runAsUser is not a non-zero uid")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: root filesystem is not read-only")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        if sc.get("privileged"):
            problems.append(f"{at}: privileged")
        if sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
            problems.append(f"{at}: capabilities are not drop [ALL]")
        resources = c.get("resources", {})
        if not resources.get("requests", {}).get("cpu") or not resources.get("requests", {}).get("memory"):
            problems.append(f"{at}: no cpu and memory requests")
        if not resources.get("limits", {}).get("memory"):
            problems.append(f"{at}: no memory limit")
    return problems


def schema_problems(obj: dict) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return [f"{name_of(obj)}: {path}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{name_of(obj)}: {exc.message}"]
    return []


def labels_match(selector: dict, labels: dict) -> bool:
    """A LabelSelector with matchLabels only (the only kind these manifests use)."""
    assert set(selector) <= {"matchLabels"}, f"unexpected selector {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
