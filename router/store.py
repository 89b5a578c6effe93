"""The store: the only module that talks to Redis, and the only place key names live.

Every key of one experiment shares the hash tag ``{<experiment>}`` so that the
Lua scripts touching several of them work on Redis Cluster; each script gets
all of its keys in ``KEYS``. One Redis, a master behind Sentinel and Redis
Cluster (``CROUPIER_REDIS_URL``) run the same code: every multi-key command stays
within one experiment's hash slot, and pipelines over several experiments are
split by node (redis-py's cluster pipeline, never a transaction).

Keys:
- ``croupier:experiments``           set of experiment ids (the registry index)
- ``croupier:registry-version``      counter bumped on every registry change
- ``croupier:{exp}:experiment``      the experiment as JSON (variants included)
- ``croupier:{exp}:stats``           hash ``<variant>:<counter>`` → total
- ``croupier:{exp}:buckets``         hash ``<bucket>:<variant>:<counter>`` → total per time bucket
- ``croupier:{exp}:events``          capped stream of assignments and beacon events
- ``croupier:{exp}:writers``         hash router id → last assignment write applied (writes apply once)
- ``croupier:{exp}:segstats``        hash ``<segment>|<variant>:<counter>`` → total per segment
- ``croupier:{exp}:linear``          hash ``<variant>|<i>|<j>`` → sum of ``x_i x_j`` over assignments and
                                     ``<variant>|b|<i>`` → conversions with feature ``i`` (contextual policies)
- ``croupier:{exp}:model``           hash: ``doc`` the trained conversion model (JSON, ``router.hybrid``),
                                     ``version`` its version, ``seq`` the last version handed out
- ``croupier:{exp}:conv:<visitor>:<goal>`` / ``croupier:{exp}:eid:<id>``  dedupe markers (expire)
- ``croupier:{exp}:cust:<customer>``  the channels API's assignment of one customer, JSON (expires)

Counters: ``trials``, ``expected`` (sum of the propensities the policy gave the
arm: the expected number of trials, for the sample-ratio check), ``view``,
``click``, ``conv:<goal>``, ``value:<goal>``, ``value2:<goal>``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import secrets
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis._parsers.commands import AsyncCommandsParser
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisClusterException, RedisError, TimeoutError

from router.experiments import Experiment, parse_experiment
from router.settings import Settings

REGISTRY = "croupier:experiments"
REGISTRY_VERSION = "croupier:registry-version"
MODEL_MAX_BYTES = 2_000_000  # a stored model is read by every router when it changes: keep it small
_LUA = Path(__file__).with_name("lua")

# What callers catch: any Redis failure. A cluster whose slots are not all served
# raises RedisClusterException, which is not a RedisError.
StoreUnavailable = (RedisError, RedisClusterException)


def _translated(method):
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


def _raised_in_redis_client(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if _REDIS_PACKAGE in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


_REDIS_PACKAGE = str(Path(redis.__file__).parent.parent)


def _k(experiment_id: str, suffix: str) -> str:
    return f"croupier:{{{experiment_id}}}:{suffix}"


def _entry(variant: str, visitor: str, reason: str, split: int, ts_ms: int, segment: str, channel: str) -> str:
    """One assignment's line in the entries argument of record_assignments.lua."""
    return f"{variant}\t{visitor}\t{reason}\t{split}\t{ts_ms}\t{segment}\t{channel}\n"


_ENTRY_TABS = _entry("", "", "", 0, 0, "", "").count("\t")  # separators in a well-formed line


_SEPARATORS = str.maketrans("\t\n", "  ")


def connect(settings: Settings) -> tuple[redis.Redis | RedisCluster, list]:
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


class _AssignmentLedger:
    """What this router wrote of the batches the recorder may hand back.

    A batch spans experiments, so on a cluster it can fail part-way (one node away),
    and a reply can be lost after Redis applied the write (redis-py's cluster client
    closes every connection when it re-reads the topology). Each experiment's write
    carries this router's id and a sequence number, and the script applies a number
    only once; a write whose outcome is unknown is retried as it was, before anything
    newer of its experiment. Records known written are skipped when handed back.
    """

    def __init__(self) -> None:
        self.writer = secrets.token_hex(8)
        self._seq = itertools.count(1)
        self.unsettled: dict[str, tuple[int, list[AssignmentRecord]]] = {}
        # groups written whose batch may still come back; kept as the lists they were written
        # as, so a flush that went through never hashes its records (a record's hash is not
        # cached and covers every field: hashing each four times cost ~1.5 µs a decision)
        self._written: list[list[AssignmentRecord]] = []
        self._written_count = 0

    def next_seq(self) -> int:
        return next(self._seq)

    def new_records(self, records: list[AssignmentRecord]) -> list[AssignmentRecord]:
        if not self._written and not self.unsettled:  # nothing in doubt: every record is new
            return records
        skip = {r for group in self._written for r in group}
        skip.update(r for _, group in self.unsettled.values() for r in group)
        return [r for r in records if r not in skip]

    def written(self, experiment_id: str, records: list[AssignmentRecord]) -> None:
        self.unsettled.pop(experiment_id, None)
        if self._written_count > 200_000:  # records the recorder dropped never come back
            self._written, self._written_count = [], 0
        self._written.append(records)
        self._written_count += len(records)

    def batch_done(self, records: list[AssignmentRecord], groups: list[list[AssignmentRecord]]) -> None:
        """The recorder drops a batch once this returned: nothing of it comes back.
        ``groups``: the lists of the batch's records written by this flush."""
        mine = {id(group) for group in groups}  # alive in the caller: their ids are theirs
        rest = [group for group in self._written if id(group) not in mine]
        if rest:  # records of an earlier batch written on a retry: drop those that came back in this one
            done = set(records)
            rest = [kept for group in rest if (kept := [r for r in group if r not in done])]
        self._written, self._written_count = rest, sum(map(len, rest))


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
    segment: str = ""  # the segment the visitor was assigned in ('' none)
    features: tuple[int, ...] = ()  # a contextual policy's hashed features of the visitor
    channel: str = ""  # the channels API's channel (email, sms, ...); '' for a page view


@dataclass(frozen=True, slots=True)
class CustomerAssignment:
    """What one customer of the channels API was given, kept for the life of the experiment."""

    variant: str
    visitor: str  # the visitor id the customer's tokens and conversions carry
    issued: int
    propensity: float
    probabilities: tuple[tuple[str, float], ...]
    segment: str = ""  # where the customer's context placed them, credited with their conversions
    features: tuple[int, ...] = ()
    raw: str = ""  # the stored JSON, which a reassignment must find unchanged to replace

    def encode(self) -> str:
        return json.dumps({"variant": self.variant, "visitor": self.visitor, "issued": self.issued,
                           "propensity": self.propensity, "probabilities": dict(self.probabilities),
                           "segment": self.segment, "features": list(self.features)}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str) -> CustomerAssignment:
        doc = json.loads(raw)
        return cls(doc["variant"], doc["visitor"], int(doc["issued"]), float(doc["propensity"]),
                   tuple((k, float(v)) for k, v in doc["probabilities"].items()), doc.get("segment", ""),
                   tuple(doc.get("features", ())), raw)


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
    segment: str = ""  # from the assignment token: credited to the segment the visitor was assigned in
    features: tuple[int, ...] = ()  # likewise; a conversion of the experiment's goal adds them to b


def parse_counters(raw: dict[str, str]) -> dict[str, dict[str, float]]:
    """``{"b:trials": "3"}`` → ``{"b": {"trials": 3.0}}``."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for field, value in raw.items():
        variant, _, counter = field.partition(":")
        out[variant][counter] = float(value)
    return dict(out)


def parse_segment_counters(raw: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """``{"device=mobile|b:trials": "3"}`` → ``{"device=mobile": {"b": {"trials": 3.0}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for field, value in raw.items():
        segment, _, rest = field.partition("|")
        variant, _, counter = rest.partition(":")
        out[segment][variant][counter] = float(value)
    return {s: dict(v) for s, v in out.items()}


def parse_linear(raw: dict[str, str]) -> dict[str, dict[tuple[int, int] | int, float]]:
    """``{"b|3|7": "2", "b|b|3": "1"}`` → ``{"b": {(3, 7): 2.0, 3: 1.0}}``: pair counts and reward sums."""
    out: dict[str, dict[tuple[int, int] | int, float]] = defaultdict(dict)
    for field, value in raw.items():
        variant, _, rest = field.partition("|")
        first, _, second = rest.partition("|")
        out[variant][int(second) if first == "b" else (int(first), int(second))] = float(value)
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
    def __init__(self, settings: Settings, client: redis.Redis | RedisCluster | None = None) -> None:
        self.settings = settings
        self.redis, self._also_close = (client, []) if client else connect(settings)
        # EVALSHA, loading the script again when a restarted (or failed-over) node answers NOSCRIPT
        self._record_event = self.redis.register_script((_LUA / "record_event.lua").read_text())
        self._record_assignments = self.redis.register_script((_LUA / "record_assignments.lua").read_text())
        self._update_experiment = self.redis.register_script((_LUA / "update_experiment.lua").read_text())
        self._claim_customer = self.redis.register_script((_LUA / "claim_customer.lua").read_text())
        self._ledger = _AssignmentLedger()

    async def close(self) -> None:
        await self.redis.aclose()
        for client in self._also_close:
            await client.aclose()

    @_translated
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    def _bucket(self, ts: float) -> int:
        width = self.settings.bucket_seconds
        return int(ts // width) * width

    # -- registry ---------------------------------------------------------

    @_translated
    async def registry_version(self) -> int:
        return int(await self.redis.get(REGISTRY_VERSION) or 0)

    @_translated
    async def list_experiments(self) -> list[Experiment]:
        ids = sorted(await self.redis.smembers(REGISTRY))
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for exp_id in ids:
                pipe.get(_k(exp_id, "experiment"))
            docs = await pipe.execute()
        return [parse_experiment(json.loads(doc)) for doc in docs if doc]

    @_translated
    async def get_experiment(self, experiment_id: str) -> Experiment | None:
        doc = await self.redis.get(_k(experiment_id, "experiment"))
        return parse_experiment(json.loads(doc)) if doc else None

    @_translated
    async def _registry_changed(self) -> None:
        await self.redis.incr(REGISTRY_VERSION)

    @_translated
    async def create_experiment(self, experiment: Experiment) -> None:
        created = await self.redis.set(_k(experiment.id, "experiment"), json.dumps(experiment.to_dict()), nx=True)
        if not created:
            raise ExperimentExists(experiment.id)
        await self.redis.sadd(REGISTRY, experiment.id)
        await self._registry_changed()

    @_translated
    async def update_experiment(self, experiment_id: str,
                                change: Callable[[Experiment], Experiment]) -> Experiment:
        """Apply ``change`` under optimistic locking (compare-and-set), so concurrent admin calls
        lose nothing: when another call changed the document in between, read it and apply again."""
        key = _k(experiment_id, "experiment")
        while True:
            doc = await self.redis.get(key)
            if doc is None:
                raise ExperimentNotFound(experiment_id)
            updated = change(parse_experiment(json.loads(doc)))
            replaced = await self._update_experiment(keys=[key], args=[doc, json.dumps(updated.to_dict())])
            if replaced == -1:
                raise ExperimentNotFound(experiment_id)
            if replaced == 1:
                break
        await self._registry_changed()
        return updated

    @_translated
    async def delete_experiment(self, experiment_id: str) -> None:
        """Remove an experiment from the registry; its statistics and events stay for analysis."""
        removed = await self.redis.delete(_k(experiment_id, "experiment"))
        await self.redis.srem(REGISTRY, experiment_id)
        if not removed:
            raise ExperimentNotFound(experiment_id)
        await self._registry_changed()

    # -- statistics -------------------------------------------------------

    async def _hashes(self, experiment_ids: Iterable[str], suffix: str) -> dict[str, dict[str, str]]:
        """One hash of each experiment, for many experiments in one round trip."""
        ids = list(experiment_ids)
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for exp_id in ids:
                pipe.hgetall(_k(exp_id, suffix))
            raw = await pipe.execute()
        return dict(zip(ids, raw))

    @_translated
    async def counters(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, dict[str, float]]]:
        """Experiment → variant → counter → total, for many experiments in one round trip."""
        return {exp_id: parse_counters(r) for exp_id, r in (await self._hashes(experiment_ids, "stats")).items()}

    @_translated
    async def segment_counters(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """Experiment → segment → variant → counter → total, in one round trip."""
        return {exp_id: parse_segment_counters(r)
                for exp_id, r in (await self._hashes(experiment_ids, "segstats")).items()}

    @_translated
    async def linear_state(self, experiment_id: str) -> dict[str, dict[tuple[int, int] | int, float]]:
        """A contextual policy's sufficient statistics: variant → {(i, j): sum x_i x_j, i: sum r x_i}."""
        return parse_linear(await self.redis.hgetall(_k(experiment_id, "linear")))

    @_translated
    async def buckets(self, experiment_id: str) -> dict[int, dict[str, dict[str, float]]]:
        return parse_buckets(await self.redis.hgetall(_k(experiment_id, "buckets")))

    # -- the conversion model ---------------------------------------------

    @_translated
    async def save_model(self, experiment_id: str, doc: dict) -> int:
        """Store an experiment's trained model (replacing the last one); returns its version.

        The document and its version are written by one HSET, so a reader never sees a
        version with another version's document."""
        body = json.dumps(doc, separators=(",", ":"))
        if len(body) > MODEL_MAX_BYTES:
            raise ValueError(f"model: {len(body)} bytes, more than the {MODEL_MAX_BYTES} a stored model may have")
        key = _k(experiment_id, "model")
        version = int(await self.redis.hincrby(key, "seq", 1))
        await self.redis.hset(key, mapping={"doc": body, "version": version})
        return version

    @_translated
    async def load_model(self, experiment_id: str) -> tuple[int, dict] | None:
        """The stored model's version and document, or None when none was trained."""
        version, body = await self.redis.hmget(_k(experiment_id, "model"), ["version", "doc"])
        return (int(version), json.loads(body)) if version and body else None

    @_translated
    async def model_versions(self, experiment_ids: Iterable[str]) -> dict[str, int]:
        """Each experiment's stored model version (0: none), in one round trip: the cheap check
        that tells a router whether to load a model again."""
        ids = list(experiment_ids)
        if not ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for exp_id in ids:
                pipe.hget(_k(exp_id, "model"), "version")
            raw = await pipe.execute()
        return {exp_id: int(v or 0) for exp_id, v in zip(ids, raw)}

    @_translated
    async def delete_model(self, experiment_id: str) -> bool:
        # ``seq`` stays: a later model must not reuse a version a router may still hold
        return bool(await self.redis.hdel(_k(experiment_id, "model"), "doc", "version"))

    async def record_assignments(self, records: list[AssignmentRecord]) -> None:
        """Write a batch of assignments: one script call per experiment, all at once.

        Counters are summed per experiment first, so a busy router issues a handful of
        increments per flush instead of one per visitor. Each experiment's write is atomic,
        lands on the node owning its slot, and is applied at most once (see
        ``_AssignmentLedger``), so the recorder may hand back a batch that failed part-way,
        or whose reply was lost, without a trial being counted twice.
        """
        ledger = self._ledger
        # writes whose outcome is unknown go first, as they were, so each is applied once
        retried = list(ledger.unsettled.items())
        outcomes = await asyncio.gather(*(self._write_group(exp_id, seq, group) for exp_id, (seq, group) in retried),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        blocked = {exp_id for (exp_id, _), o in zip(retried, outcomes) if isinstance(o, BaseException)}
        fresh = ledger.new_records(records)
        by_experiment: defaultdict[str, list[AssignmentRecord]] = defaultdict(list)
        for r in fresh:
            by_experiment[r.experiment].append(r)
        if blocked & by_experiment.keys():
            # an older write of the experiment is still unsettled: a newer one must wait for it
            failures.append(ConnectionError(f"assignments of {sorted(blocked)} wait for an earlier write"))
        groups = [(exp_id, ledger.next_seq(), group) for exp_id, group in by_experiment.items()
                  if exp_id not in blocked]
        outcomes = await asyncio.gather(*(self._write_group(*g) for g in groups), return_exceptions=True)
        failures += [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            raise failures[0]
        ledger.batch_done(records, [group for _, _, group in groups])

    async def _write_group(self, experiment_id: str, seq: int, records: list[AssignmentRecord]) -> None:
        self._ledger.unsettled[experiment_id] = (seq, records)  # before the call: it may be cancelled
        await self._write_assignments(experiment_id, seq, records)
        self._ledger.written(experiment_id, records)

    @_translated
    async def _write_assignments(self, experiment_id: str, seq: int, records: list[AssignmentRecord]) -> None:
        trials: Counter[str] = Counter()
        bucket_counts: Counter[str] = Counter()
        expected: defaultdict[str, float] = defaultdict(float)
        lines: list[str] = []
        # every assignment of one snapshot shares its probabilities: encode and sum them
        # once per (bucket, split), not once per visitor; the stream entries name a split
        # by its number (see record_assignments.lua)
        splits: Counter[tuple[int, tuple[tuple[str, float], ...]]] = Counter()
        numbered: dict[tuple[tuple[str, float], ...], int] = {}
        segment_trials: Counter[str] = Counter()
        gram: Counter[str] = Counter()
        for r in records:
            bucket = self._bucket(r.ts)
            trials[f"{r.variant}:trials"] += 1
            bucket_counts[f"{bucket}:{r.variant}:trials"] += 1
            splits[(bucket, r.probabilities)] += 1
            split = numbered.get(r.probabilities)
            if split is None:
                split = numbered[r.probabilities] = len(numbered) + 1
            lines.append(_entry(r.variant, r.visitor, r.reason, split, int(r.ts * 1000), r.segment, r.channel))
            if r.segment:
                segment_trials[f"{r.segment}|{r.variant}:trials"] += 1
            # the upper triangle of x x^T (x binary): a contextual policy's precision grows at assignment
            for a, i in enumerate(r.features):
                for j in r.features[a:]:
                    gram[f"{r.variant}|{i}|{j}"] += 1
        entries = "".join(lines)
        if entries.count("\n") != len(records) or entries.count("\t") != _ENTRY_TABS * len(records):
            # never with the router's own ids, visitors and segments; still, a stray
            # separator must not shift an entry's fields
            entries = "".join(_entry(*(str(x).translate(_SEPARATORS) for x in (
                r.variant, r.visitor, r.reason, numbered[r.probabilities], int(r.ts * 1000), r.segment, r.channel)))
                for r in records)
        for (bucket, split), n in splits.items():
            for variant, p in split:
                expected[f"{bucket}:{variant}:expected"] += n * p
        args: list[str | int | float] = [self._ledger.writer, seq, self.settings.stream_maxlen,
                                         len(trials) + len(bucket_counts) + len(segment_trials) + len(gram)]
        for field, n in trials.items():
            args += [1, field, n]
        for field, n in bucket_counts.items():
            args += [2, field, n]
        for field, n in segment_trials.items():
            args += [5, field, n]
        for field, n in gram.items():
            args += [6, field, n]
        args.append(len(expected))
        for field, total in expected.items():
            args += [field, repr(total)]
        args.append(len(numbered))
        args += [json.dumps(dict(split), separators=(",", ":")) for split in numbered]
        args.append(entries)
        keys = [_k(experiment_id, "stats"), _k(experiment_id, "buckets"), _k(experiment_id, "events"),
                _k(experiment_id, "writers"), _k(experiment_id, "segstats"), _k(experiment_id, "linear")]
        await self._record_assignments(keys=keys, args=args)

    async def record_event(self, event: BeaconEvent) -> bool:
        """Count one beacon event; False when it was a duplicate. Raises when Redis did not take it."""
        keys = [_k(event.experiment, "stats"), _k(event.experiment, "buckets"), _k(event.experiment, "events"),
                _k(event.experiment, "segstats"), _k(event.experiment, "linear")]
        ttl = self.settings.cookie_max_age
        if event.type == "convert":
            # a visitor converts at most once per goal, however often the beacon is sent
            keys.append(_k(event.experiment, f"conv:{event.visitor}:{event.goal}"))
        elif event.event_id:
            keys.append(_k(event.experiment, f"eid:{event.event_id}"))
            ttl = 86400
        ts = event.ts or time.time()
        args = [event.type, event.variant, event.goal, "" if event.value is None else repr(float(event.value)),
                event.visitor, ttl, self._bucket(ts), self.settings.stream_maxlen, int(ts * 1000),
                event.event_id, event.segment, ",".join(map(str, event.features))]
        try:
            counted = await self._count_event(keys, args)
        except StoreUnavailable:
            if len(keys) < 6:
                raise  # without a dedupe key, a second try could count the event twice
            # Deduplicated, so safe to send again: a cluster client re-reading the topology
            # after a node failure fails commands to healthy nodes too, once.
            await asyncio.sleep(0.05)
            counted = await self._count_event(keys, args)
        return counted == 1

    @_translated
    async def _count_event(self, keys: list[str], args: list) -> int:
        return await self._record_event(keys=keys, args=args)

    @_translated
    async def events(self, experiment_id: str, count: int = 1000, after: str = "-") -> list[tuple[str, dict]]:
        """Stream entries oldest first (for analysis, replays and tests)."""
        return await self.redis.xrange(_k(experiment_id, "events"), min=after, count=count)

    async def iter_events(self, experiment_id: str, batch: int = 1000,
                          after: str = "-") -> AsyncIterator[tuple[str, dict]]:
        """Every stream entry after the id ``after`` (exclusive; ``-``: from the start), oldest
        first, read ``batch`` at a time, so a long stream is never held in one reply."""
        start = after if after == "-" else f"({after}"
        while True:
            page = await self.events(experiment_id, batch, start)
            for entry in page:
                yield entry
            if len(page) < batch:
                return
            start = f"({page[-1][0]}"

    @_translated
    async def event_count(self, experiment_id: str) -> int:
        """How many entries the experiment's stream holds now."""
        return int(await self.redis.xlen(_k(experiment_id, "events")))

    # -- customers of the channels API ------------------------------------

    @_translated
    async def customer_assignment(self, experiment_id: str, customer: str) -> CustomerAssignment | None:
        raw = await self.redis.get(_k(experiment_id, f"cust:{customer}"))
        return CustomerAssignment.decode(raw) if raw else None

    @_translated
    async def claim_customer_assignment(self, experiment_id: str, customer: str, drawn: CustomerAssignment,
                                        replacing: CustomerAssignment | None) -> tuple[CustomerAssignment, bool]:
        """Store ``drawn`` unless another call stored an assignment first (or changed the one
        being replaced). Returns the assignment that holds, and whether it is ``drawn``."""
        won, held = await self._claim_customer(keys=[_k(experiment_id, f"cust:{customer}")],
                                               args=[replacing.raw if replacing else "", drawn.encode(),
                                                     self.settings.cookie_max_age])
        return CustomerAssignment.decode(held), won == 1
