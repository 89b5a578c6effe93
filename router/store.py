"""The store: the only module that talks to Redis, and the only place key names live.

Every key of one experiment shares the hash tag ``{<experiment>}`` so that the
Lua scripts touching several of them work on Redis Cluster; each script gets
all of its keys in ``KEYS``.

Keys:
- ``croupier:experiments``           set of experiment ids (the registry index)
- ``croupier:registry-version``      counter bumped on every registry change
- ``croupier:{exp}:experiment``      the experiment as JSON (variants included)
- ``croupier:{exp}:stats``           hash ``<variant>:<counter>`` → total
- ``croupier:{exp}:buckets``         hash ``<bucket>:<variant>:<counter>`` → total per time bucket
- ``croupier:{exp}:events``          capped stream of assignments and beacon events
- ``croupier:{exp}:conv:<visitor>:<goal>`` / ``croupier:{exp}:eid:<id>``  dedupe markers (expire)

Counters: ``trials``, ``expected`` (sum of the propensities the policy gave the
arm: the expected number of trials, for the sample-ratio check), ``view``,
``click``, ``conv:<goal>``, ``value:<goal>``, ``value2:<goal>``.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as redis
from redis.exceptions import RedisError, WatchError

from router.experiments import Experiment, parse_experiment
from router.settings import Settings

REGISTRY = "croupier:experiments"
REGISTRY_VERSION = "croupier:registry-version"
_LUA = Path(__file__).with_name("lua")

StoreUnavailable = RedisError  # what callers catch: any Redis failure


def _k(experiment_id: str, suffix: str) -> str:
    return f"croupier:{{{experiment_id}}}:{suffix}"


class ExperimentExists(Exception):
    pass


class ExperimentNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """One decision to write: who got which arm, and with what probabilities."""

    experiment: str
    variant: str
    visitor: str
    reason: str
    probabilities: tuple[tuple[str, float], ...]
    ts: float


@dataclass(frozen=True, slots=True)
class BeaconEvent:
    experiment: str
    variant: str
    visitor: str
    type: str  # view | click | convert
    goal: str = ""
    value: float | None = None
    event_id: str = ""
    ts: float = 0.0


def parse_counters(raw: dict[str, str]) -> dict[str, dict[str, float]]:
    """``{"b:trials": "3"}`` → ``{"b": {"trials": 3.0}}``."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for field, value in raw.items():
        variant, _, counter = field.partition(":")
        out[variant][counter] = float(value)
    return dict(out)


def parse_buckets(raw: dict[str, str]) -> dict[int, dict[str, dict[str, float]]]:
    """``{"1700000040:b:trials": "3"}`` → ``{1700000040: {"b": {"trials": 3.0}}}``."""
    out: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for field, value in raw.items():
        bucket, _, rest = field.partition(":")
        variant, _, counter = rest.partition(":")
        out[int(bucket)][variant][counter] = float(value)
    return {b: dict(v) for b, v in sorted(out.items())}


class Store:
    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = client or redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            health_check_interval=10,
        )
        self._record_event = self.redis.register_script((_LUA / "record_event.lua").read_text())

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    def _bucket(self, ts: float) -> int:
        width = self.settings.bucket_seconds
        return int(ts // width) * width

    # -- registry ---------------------------------------------------------

    async def registry_version(self) -> int:
        return int(await self.redis.get(REGISTRY_VERSION) or 0)

    async def list_experiments(self) -> list[Experiment]:
        ids = sorted(await self.redis.smembers(REGISTRY))
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for exp_id in ids:
                pipe.get(_k(exp_id, "experiment"))
            docs = await pipe.execute()
        return [parse_experiment(json.loads(doc)) for doc in docs if doc]

    async def get_experiment(self, experiment_id: str) -> Experiment | None:
        doc = await self.redis.get(_k(experiment_id, "experiment"))
        return parse_experiment(json.loads(doc)) if doc else None

    async def _registry_changed(self) -> None:
        await self.redis.incr(REGISTRY_VERSION)

    async def create_experiment(self, experiment: Experiment) -> None:
        created = await self.redis.set(_k(experiment.id, "experiment"), json.dumps(experiment.to_dict()), nx=True)
        if not created:
            raise ExperimentExists(experiment.id)
        await self.redis.sadd(REGISTRY, experiment.id)
        await self._registry_changed()

    async def update_experiment(self, experiment_id: str,
                                change: Callable[[Experiment], Experiment]) -> Experiment:
        """Apply ``change`` under optimistic locking, so concurrent admin calls lose nothing."""
        key = _k(experiment_id, "experiment")
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    doc = await pipe.get(key)
                    if doc is None:
                        raise ExperimentNotFound(experiment_id)
                    updated = change(parse_experiment(json.loads(doc)))
                    pipe.multi()
                    pipe.set(key, json.dumps(updated.to_dict()))
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        await self._registry_changed()
        return updated

    async def delete_experiment(self, experiment_id: str) -> None:
        """Remove an experiment from the registry; its statistics and events stay for analysis."""
        removed = await self.redis.delete(_k(experiment_id, "experiment"))
        await self.redis.srem(REGISTRY, experiment_id)
        if not removed:
            raise ExperimentNotFound(experiment_id)
        await self._registry_changed()

    # -- statistics -------------------------------------------------------

    async def counters(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, dict[str, float]]]:
        """Experiment → variant → counter → total, for many experiments in one round trip."""
        ids = list(experiment_ids)
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for exp_id in ids:
                pipe.hgetall(_k(exp_id, "stats"))
            raw = await pipe.execute()
        return {exp_id: parse_counters(r) for exp_id, r in zip(ids, raw)}

    async def buckets(self, experiment_id: str) -> dict[int, dict[str, dict[str, float]]]:
        return parse_buckets(await self.redis.hgetall(_k(experiment_id, "buckets")))

    async def record_assignments(self, records: list[AssignmentRecord]) -> None:
        """Write a batch of assignments in one pipelined round trip.

        Counters are summed per batch first, so a busy router issues a handful of
        increments per flush instead of one per visitor.
        """
        if not records:
            return
        trials: Counter[tuple[str, str]] = Counter()
        bucket_counts: Counter[tuple[str, str]] = Counter()
        expected: defaultdict[tuple[str, str], float] = defaultdict(float)
        maxlen = self.settings.stream_maxlen
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in records:
                bucket = self._bucket(r.ts)
                trials[(r.experiment, r.variant)] += 1
                bucket_counts[(r.experiment, f"{bucket}:{r.variant}:trials")] += 1
                for variant, p in r.probabilities:
                    expected[(r.experiment, f"{bucket}:{variant}:expected")] += p
                pipe.xadd(_k(r.experiment, "events"), {
                    "type": "assign", "variant": r.variant, "visitor": r.visitor, "reason": r.reason,
                    "probs": json.dumps(dict(r.probabilities), separators=(",", ":")),
                    "ts": str(int(r.ts * 1000)),
                }, maxlen=maxlen, approximate=True)
            for (exp_id, variant), n in trials.items():
                pipe.hincrby(_k(exp_id, "stats"), f"{variant}:trials", n)
            for (exp_id, field), n in bucket_counts.items():
                pipe.hincrby(_k(exp_id, "buckets"), field, n)
            for (exp_id, field), total in expected.items():
                pipe.hincrbyfloat(_k(exp_id, "buckets"), field, total)
            await pipe.execute()

    async def record_event(self, event: BeaconEvent) -> bool:
        """Count one beacon event; False when it was a duplicate. Raises when Redis did not take it."""
        keys = [_k(event.experiment, "stats"), _k(event.experiment, "buckets"), _k(event.experiment, "events")]
        ttl = self.settings.cookie_max_age
        if event.type == "convert":
            # a visitor converts at most once per goal, however often the beacon is sent
            keys.append(_k(event.experiment, f"conv:{event.visitor}:{event.goal}"))
        elif event.event_id:
            keys.append(_k(event.experiment, f"eid:{event.event_id}"))
            ttl = 86400
        ts = event.ts or time.time()
        counted = await self._record_event(keys=keys, args=[
            event.type, event.variant, event.goal,
            "" if event.value is None else repr(float(event.value)),
            event.visitor, ttl, self._bucket(ts), self.settings.stream_maxlen, int(ts * 1000),
            event.event_id,
        ])
        return counted == 1

    async def events(self, experiment_id: str, count: int = 1000, after: str = "-") -> list[tuple[str, dict]]:
        """Stream entries oldest first (for analysis, replays and tests)."""
        return await self.redis.xrange(_k(experiment_id, "events"), min=after, count=count)
