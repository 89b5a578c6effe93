"""The variants' service names in docker compose and Kubernetes, beside the patterns NGINX's
allowlist admits them by, so a variant added later is proxied to without a re-render and
nothing else is.

    variant-<experiment>-<variant>:8080                                  (compose)
    variant-<experiment>-<variant>.<namespace>.svc.cluster.local:8080    (Kubernetes)
"""

from __future__ import annotations

import hashlib
import re

NAMESPACE = "croupier"
VARIANT_PORT = 8080


def _dns_label(text: str, limit: int = 63) -> str:
    """A DNS-1035 label: Service names must be one. Long names keep a hash so they stay unique."""
    label = re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")
    if len(label) > limit:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        label = f"{label[:limit - 9].rstrip('-')}-{digest}"
    return label


def service_name(experiment: str, variant_id: str) -> str:
    """``variant-<experiment>-<variant>``: the name the allowlist patterns below admit."""
    return _dns_label(f"variant-{experiment}-{variant_id}")


def compose_upstream(experiment: str, variant_id: str) -> str:
    """A variant's upstream on the compose network (Docker's DNS resolves the service name)."""
    return f"{service_name(experiment, variant_id)}:{VARIANT_PORT}"


def upstream(experiment: str, variant_id: str, namespace: str = NAMESPACE, port: int = VARIANT_PORT) -> str:
    """The registry's upstream for a variant in Kubernetes. Fully qualified: NGINX's resolver
    ignores search domains."""
    return f"{service_name(experiment, variant_id)}.{namespace}.svc.cluster.local:{port}"


COMPOSE_UPSTREAM_PATTERN = rf"^variant-[a-z0-9-]+:{VARIANT_PORT}$"
K8S_UPSTREAM_PATTERN = rf"^variant-[a-z0-9-]+\.{NAMESPACE}\.svc\.cluster\.local:{VARIANT_PORT}$"
