"""The Redis connection: one Redis, a master behind Sentinel, or Redis Cluster, from
``CROUPIER_REDIS_URL``, and the workarounds redis-py's cluster client needs to ride
out a node failure. Key names and commands belong to the store (``router/store.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import redis.asyncio as redis
from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisClusterException, TimeoutError

from croupier.router.settings import Settings

Client = redis.Redis | RedisCluster


def connect(settings: Settings) -> tuple[Client, list]:
    """The client for ``CROUPIER_REDIS_URL``, and what else must be closed with it."""
    target = settings.redis_target()
    timeouts = {"socket_timeout": settings.redis_timeout, "socket_connect_timeout": settings.redis_timeout}
    if target.mode == "single":
        return redis.from_url(target.url, decode_responses=True, health_check_interval=10, **timeouts), []
    auth = {"username": target.username, "password": target.password}
    if target.mode == "cluster":
        # A few quick retries: a moved slot or a restarting node is retried, but a
        # beacon still gets its answer (or a 503) well within a second.
        cluster = RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes], decode_responses=True,
            require_full_coverage=False, ssl=target.tls, health_check_interval=10,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=3), **auth, **timeouts)
        cluster.commands_parser = _CommandTable(cluster)
        return cluster, []
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs={"ssl": target.tls, **timeouts})
    client = sentinel.master_for(target.service, db=target.db, decode_responses=True, ssl=target.tls,
                                 health_check_interval=10, **auth, **timeouts)
    return client, list(sentinel.sentinels)


class _CommandTable(AsyncCommandsParser):
    """redis-py (8.1) reads the COMMAND table from the cluster's default node each time it
    re-reads the topology, so while that node is down every command fails, even for slots
    the other masters serve. The table never changes: read it once, from any node that answers."""

    def __init__(self, cluster: RedisCluster) -> None:
        super().__init__()
        self.cluster = cluster

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if self.commands:
            return
        candidates = [n for n in (node, *self.cluster.get_primaries()) if n is not None]
        failure: Exception = RedisClusterException("no Redis Cluster node to read the COMMAND table from")
        for candidate in candidates:
            try:
                return await super().initialize(candidate)
            except (ConnectionError, TimeoutError) as exc:
                failure = exc
        raise failure


def translated(method):
    """Report redis-py's own failures as Redis failures.

    Under a node failure redis-py's cluster client closes every node's connections
    while other commands are still using them, and those commands fail with
    AttributeError or RuntimeError from inside redis-py. They are Redis being away
    (a 503 for a beacon, a retry for the recorder), not a bug of the caller."""
    @functools.wraps(method)
    async def wrapper(*args, **kwargs):
        try:
            return await method(*args, **kwargs)
        except (AttributeError, RuntimeError) as exc:
            if not _raised_in_redis_client(exc):
                raise
            raise ConnectionError(f"Redis connection closed under the command: {exc}") from exc
    return wrapper


_REDIS_PACKAGE = str(Path(redis.__file__).parent.parent)


def _raised_in_redis_client(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if _REDIS_PACKAGE in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False
