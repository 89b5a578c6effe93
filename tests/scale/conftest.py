"""A three-master Redis Cluster on loopback with two routers behind NGINX, and
experiments placed so that every master owns some of them."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import httpx
import pytest

from croupier.scripts.processes import free_port_block, redis_cli
from croupier.scripts.stack import LocalStack, StackConfig
from tests.conftest import FAST

ROUTERS = 2


def cluster_config(run_dir, routers: int = ROUTERS) -> StackConfig:
    # one block for every port, so that no two of them can be handed the same free port, and
    # below the ephemeral range, where the cluster's own connections cannot take them
    base = free_port_block(1 + routers + 3 + 3 + 3 + routers)
    return StackConfig(
        run_dir=run_dir, http_port=base, router_port=base + 1, routers=routers, decide_port=base + 10 + routers,
        redis_port=base + 1 + routers, redis_cluster=True, redis_cluster_bus_port=base + 4 + routers,
        variant_base_port=base + 7 + routers, router_env=dict(FAST))


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory) -> Iterator[LocalStack]:
    stack = LocalStack(cluster_config(tmp_path_factory.mktemp("cluster"))).start()
    yield stack
    stack.stop()


def admin_of(stack: LocalStack, router: int) -> httpx.Client:
    """The admin API of one router, by index (``stack.admin()`` is always the first)."""
    port = stack.config.router_ports[router]
    return httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=5,
                        headers={"Authorization": f"Bearer {stack.config.admin_token}"})


def slot_owners(stack: LocalStack) -> dict[range, int]:
    """Slot range → port of the master serving it, from CLUSTER NODES."""
    owners = {}
    for line in redis_cli(stack.config.redis_ports[0], "cluster", "nodes").splitlines():
        fields = line.split()
        if "master" not in fields[2]:
            continue
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for part in fields[8:]:
            if part.startswith("["):
                continue  # a slot being migrated
            lo, _, hi = part.partition("-")
            owners[range(int(lo), int(hi or lo) + 1)] = port
    return owners


def owner_of(stack: LocalStack, key: str) -> int:
    """The port of the master that owns ``key``, by CLUSTER KEYSLOT and CLUSTER NODES."""
    slot = int(redis_cli(stack.config.redis_ports[0], "cluster", "keyslot", key))
    return next(port for slots, port in slot_owners(stack).items() if slot in slots)


def experiment_key(experiment: str) -> str:
    # key names belong to the store; the tests only need one key that carries the hash tag
    return f"croupier:{{{experiment}}}:stats"


def ids_per_master(stack: LocalStack, prefix: str, per_master: int = 1) -> dict[int, list[str]]:
    """Experiment ids whose hash slots land on each master: port → ids."""
    chosen: dict[int, list[str]] = {port: [] for port in stack.config.redis_ports}
    for i in itertools.count():
        exp_id = f"{prefix}{i}"
        port = owner_of(stack, experiment_key(exp_id))
        if len(chosen[port]) < per_master:
            chosen[port].append(exp_id)
        if all(len(ids) == per_master for ids in chosen.values()):
            return chosen


def experiment_doc(stack: LocalStack, exp_id: str, **extra) -> dict:
    base = stack.config.variant_base_port
    return {"id": exp_id, "path_prefix": f"/{exp_id}/", "goal": "signup", "control": "a",
            "variants": [{"id": "a", "upstream": f"127.0.0.1:{base}"},
                         {"id": "b", "upstream": f"127.0.0.1:{base + 1}"}], **extra}
