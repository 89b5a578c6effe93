"""The store: every command the router sends Redis, and the only place key names live.

The connection is ``router/redis_client.py``; the scripts, in ``router/lua/``, are called
by the names their headers give their inputs (``router/lua_script.py``); assignment
batches are applied once by the ledger (``router/ledger.py``).

Every key of one experiment shares the hash tag ``{<experiment>}`` so that the
Lua scripts touching several of them work on Redis Cluster; each script gets
all of its keys in ``KEYS``. One Redis, a master behind Sentinel and Redis
Cluster (``CROUPIER_REDIS_URL``) run the same code: every multi-key command stays
within one experiment's hash slot, and pipelines over several experiments are
split by node (redis-py's cluster pipeline, never a transaction).

Keys:
- ``croupier:experiments``           set of experiment ids (the registry index)
- ``croupier:registry-version``      counter bumped on every registry change
- ``{croupier:registry-version}:changes``  sorted set experiment id → the version of its latest change
                                     (the change log, ``lua/registry_changed.lua``; its hash tag is the
                                     version key's name, so both share a slot on Redis Cluster)
- ``{croupier:registry-version}:epoch``  a random token set with the registry's first change: a new one
                                     tells routers the registry was written again from scratch
- ``croupier:{exp}:experiment``      the experiment as JSON (variants included)
- ``croupier:{exp}:stats``           hash ``<variant>:<counter>`` → total
- ``croupier:{exp}:buckets``         hash ``<bucket>:<variant>:<counter>`` → total per time bucket
- ``croupier:{exp}:mixbuckets``      hash ``<bucket>:device=<device class>`` → assignments per time bucket:
                                     the traffic's mix, for the monitor's mix check
- ``croupier:{exp}:devbuckets``      hash ``<bucket>:<device class>|<variant>:<counter>`` → ``trials`` and
                                     ``conv:<goal>`` per time bucket, arm and device class (a conversion's
                                     class from the beacon's User-Agent; ``unknown`` when the channels API
                                     cannot tell): the strata of the monitor's rate-drift check, which
                                     drops the buckets before its window as it reads them
- ``croupier:{exp}:events``          capped stream of assignments and beacon events; the archiver reads
                                     it through the consumer group ``archive`` (``router/archive.py``)
- ``croupier:{exp}:writers``         hash router id → last assignment write applied (writes apply once)
- ``croupier:{exp}:segstats``        hash ``<segment>|<variant>:<counter>`` → total per segment
- ``croupier:{exp}:revision``        counter both recording scripts bump with every change of the
                                     counters (stats, buckets, segstats, linear): a reader reads the
                                     hashes again only when it moved
- ``croupier:{exp}:linear``          hash ``<variant>|<i>|<j>`` → sum of ``x_i x_j`` over assignments and
                                     ``<variant>|b|<i>`` → conversions with feature ``i`` (contextual policies)
- ``croupier:{exp}:model``           hash: ``doc`` the trained conversion model (JSON, ``croupier.router.hybrid``),
                                     ``version`` its version, ``seq`` the last version handed out,
                                     ``through`` the last event the latest training round read, ``attempted``
                                     when it ran, ``drift`` the drift alert a round was last started for
- ``croupier:{exp}:modelversions``   hash version → its record as JSON (figures, verdict, trigger, data range;
                                     ``router/model_training.py``), accepted and rejected, the latest 100
- ``croupier:{exp}:modeldocs``       hash version → the document of an accepted version, the latest 10 (rollback)
- ``croupier:{exp}:modellive``       hash version → its live figures as JSON (on events after its data)
- ``croupier:{exp}:conv:<visitor>:<goal>`` / ``croupier:{exp}:eid:<id>``  dedupe markers (expire)
- ``croupier:{exp}:custs:<n>``      hash customer → their assignment, ``variant|visitor|issued|propensity|
                                     segment|features`` (``CustomerAssignment``), for the channels API and
                                     the batch assignment of customer lists; ``n`` is one of
                                     ``CUSTOMER_BUCKETS`` (``customer_bucket``), so each hash stays small
                                     and compact (listpack). A bucket expires ``cookie_max_age`` after its
                                     latest claim.
- ``croupier:{exp}:cust:<customer>``  a customer's assignment as JSON, as the channels API stored it before
                                     the buckets: still read (``customer_assignment``), never written
- ``croupier:{exp}:capacity``        hash ``<variant>`` → units of its capacity used; ``lease|<variant>|<router>``
                                     → ``units|expires (unix ms)`` a router reserved (``router/capacity.py``)
- ``croupier:{exp}:job:<job>``       hash: a batch job's figures (``router/batch_jobs.py``); ``...:in`` its
                                     input and ``...:out`` its results, lists of chunks of JSON lines;
                                     ``...:lease`` the router processing it. All expire ``JOB_TTL`` after
                                     the upload.
- ``croupier:{exp}:engagement``      hash ``<variant>:<counter>`` → engagement total (``router/engagement.py``)
- ``croupier:{exp}:segengagement``   hash ``<segment>|<variant>:<counter>`` → engagement total per segment
- ``croupier:{exp}:engbuckets``      hash ``<bucket>:<variant>:<counter>`` → engagement total per time bucket
- ``croupier:{exp}:pv:<visitor>:<page view>``  hash: a page view's last engagement report (expires)
- ``croupier:{exp}:breaches``        hash ``<variant>`` → its guardrail breach as JSON (breached or cleared);
                                     the stats hash's ``<variant>:guardrail`` tells the allocation (1 cap,
                                     2 pause, -1 cleared)

- ``{croupier:alerts}:outbox``       stream of raised alerts (``id``, ``alert``: the alert as JSON), capped;
                                     the delivering router reads it through the consumer group ``delivery``
- ``{croupier:alerts}:open``         hash episode ``<kind>|<experiment>|<variant>`` → the id of the alert that
                                     opened it (``lua/raise_alert.lua``): an episode is alerted once until it clears
- ``{croupier:alerts}:experiment:<exp>``  list of the outbox entry ids of the experiment's alerts, newest
                                     first, the latest ``EXPERIMENT_ALERTS_KEEP`` (``lua/raise_alert.lua``):
                                     what ``GET /api/v1/experiments/{id}/alerts`` reads
- ``{croupier:alerts}:sent:<alert>`` hash webhook id → ``delivered`` | ``dropped``: the receivers an alert is
                                     done with, so a new delivering router sends it to the others only (expires)
- ``{croupier:alerts}:lease``        the token of the router delivering alerts and running the monitor
                                     (``lua/hold_lease.lua``: SET NX PX, renewed)
- ``{croupier:retrain}:lease``       the token of the router retraining the models (``router/retrainer.py``)
- ``croupier:webhooks``              hash webhook id → the webhook as JSON, its secret included
- ``croupier:archive-lease``         the token of the archiver writing the Parquet archive (``lua/hold_lease.lua``)

The engagement hashes are apart from the bandit's counters: the decision path never reads
them. A report that changed them counts in the stats hash (``<variant>:engagement``) and bumps
``revision`` like any event, so routers and the monitor look at the experiment again.

Counters: ``trials``, ``expected`` (sum of the propensities the policy gave the
arm: the expected number of trials, for the sample-ratio check), ``view``,
``click``, ``conv:<goal>``, ``value:<goal>``, ``value2:<goal>``; in the stats hash
also ``engagement`` (engagement reports that changed something).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from croupier.router.context import DEVICES
from croupier.router.engagement import SCROLL_BUCKETS, Engagement
from croupier.router.experiments import Experiment, parse_experiment
from croupier.router.ledger import AssignmentLedger
from croupier.router.lua_script import LuaScript
from croupier.router.redis_client import Client, connect, translated
from croupier.router.settings import Settings

REGISTRY = "croupier:experiments"
REGISTRY_VERSION = "croupier:registry-version"
REGISTRY_CHANGES = "{croupier:registry-version}:changes"
REGISTRY_EPOCH = "{croupier:registry-version}:epoch"
# Alerts (router/alerts.py): one hash tag, so the scripts touching several of these keys
# work on Redis Cluster.
ALERT_OUTBOX = "{croupier:alerts}:outbox"
ALERT_OPEN = "{croupier:alerts}:open"
ALERT_LEASE = "{croupier:alerts}:lease"
ALERT_GROUP = "delivery"
# one router at a time does each of these jobs, under its own lease (lua/hold_lease.lua)
LEASES = {"alerts": ALERT_LEASE, "retrain": "{croupier:retrain}:lease"}
WEBHOOKS = "croupier:webhooks"
EXPERIMENT_ALERTS_KEEP = 100  # entries of an experiment's index of its alerts
ARCHIVE_GROUP = "archive"  # the event streams' consumer group of the archiver (router/archive.py)
ARCHIVE_LEASE = "croupier:archive-lease"
CHANGE_LOG_KEEP = 10_000  # a router further behind than this many experiments' changes reloads all
# Commands per pipeline when reading many experiments: one round trip per batch, and the
# replies of one batch are parsed before the next is sent, so the event loop that answers
# decisions is never held for a whole registry's worth of replies.
BATCH = 250
# Revisions are small integers: a larger batch keeps a refresh of 10,000 experiments to a few
# round trips, each of which waits its turn on an event loop busy answering decisions.
REVISION_BATCH = 5000
# A page view's engagement state lives this long after its latest report; beacon.js stops
# reporting 4 h after the page loaded, so a view's reports always find its state. About 230
# bytes a view: at a million page views a day, some 60 MB live at a time.
PAGE_VIEW_TTL = 6 * 3600
# Buckets of an experiment's customer assignments: a million customers make ~15 a bucket,
# eight million ~120, under Redis's hash-max-listpack-entries (128); past that a bucket
# becomes a plain hash, still correct, some 3x the memory. Fixed: a customer's bucket must
# not move.
CUSTOMER_BUCKETS = 65536
JOB_TTL = 7 * 86400  # a batch job's input and results are kept this long after the upload
MODEL_MAX_BYTES = 2_000_000  # a stored model is read by every router when it changes: keep it small
MODEL_DOCS_KEEP = 10  # accepted versions' documents kept for rollback (up to 2 MB each)
MODEL_RECORDS_KEEP = 100  # versions' records (a couple of KB each) kept for the history
_LUA = Path(__file__).with_name("lua")

# What callers catch: any Redis failure. A cluster whose slots are not all served
# raises RedisClusterException, which is not a RedisError.
StoreUnavailable = (RedisError, RedisClusterException)


def _k(experiment_id: str, suffix: str) -> str:
    return f"croupier:{{{experiment_id}}}:{suffix}"


def customer_bucket(customer: str) -> int:
    """The bucket (``custs:<n>``) holding a customer's assignment: stable across processes."""
    return zlib.crc32(customer.encode()) % CUSTOMER_BUCKETS


def _bucket_key(experiment_id: str, bucket: int) -> str:
    return _k(experiment_id, f"custs:{bucket:x}")


def _counter_keys(experiment_id: str) -> dict[str, str]:
    """The keys both recording scripts update, by the names their headers give them."""
    return {name: _k(experiment_id, name) for name in ("stats", "buckets", "events", "segstats", "linear", "revision")}


@dataclass(frozen=True)
class RegistryChanges:
    """What changed in the registry since a version: ``changed`` the ids created, updated or
    removed since then, or None when the log cannot tell (reload the whole registry)."""

    version: int
    changed: frozenset[str] | None
    epoch: str = ""


def _batches(ids: Sequence[str], size: int = BATCH) -> Iterable[Sequence[str]]:
    return (ids[i:i + size] for i in range(0, len(ids), size))


@dataclass(frozen=True)
class ModelHead:
    """What the retrainer needs to know of an experiment's model (``Store.model_heads``)."""

    version: int  # the current model's (0: none)
    through: str  # the last event id the latest training round read ('' none yet)
    attempted: float  # when the latest round ran (0: never)
    drift: str  # the drift alert the latest round was started for
    last_event: str  # the stream's last entry id ('' empty)


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
    device: str = ""  # the visitor's device class (``context.DEVICES``; '' not known)


@dataclass(frozen=True, slots=True)
class CustomerAssignment:
    """What one customer of the channels API or of a batch was given, kept for the life of
    the experiment. Stored compact, ``variant|visitor|issued|propensity|segment|features``
    (some 50 bytes): every arm's probability is in the assignment's stream entry, not here."""

    variant: str
    visitor: str  # the visitor id the customer's tokens and conversions carry
    issued: int
    propensity: float
    probabilities: tuple[tuple[str, float], ...] = ()  # when drawn now; () when read back
    segment: str = ""  # where the customer's context placed them, credited with their conversions
    features: tuple[int, ...] = ()
    raw: str = ""  # the stored value, which a reassignment must find unchanged to replace

    def encode(self) -> str:
        return (f"{self.variant}|{self.visitor}|{self.issued}|{self.propensity:.6g}|{self.segment}|"
                f"{','.join(map(str, self.features))}")

    @classmethod
    def decode(cls, raw: str) -> CustomerAssignment:
        if raw.startswith("{"):  # the JSON the channels API stored before the buckets
            doc = json.loads(raw)
            return cls(doc["variant"], doc["visitor"], int(doc["issued"]), float(doc["propensity"]),
                       tuple((k, float(v)) for k, v in doc["probabilities"].items()), doc.get("segment", ""),
                       tuple(doc.get("features", ())), raw)
        variant, visitor, issued, propensity, rest = raw.split("|", 4)
        segment, _, features = rest.rpartition("|")  # a segment may hold '|', features never do
        return cls(variant, visitor, int(issued), float(propensity), (), segment,
                   tuple(int(f) for f in features.split(",") if f), raw)


class CapacityFull(Exception):
    """A claim's drawn variant has no capacity left."""


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
    device: str = ""  # the device class of the request that reported it ('' not known)


def parse_counters(raw: dict[str, str]) -> dict[str, dict[str, float]]:
    """``{"b:trials": "3"}`` → ``{"b": {"trials": 3.0}}``."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for field, value in raw.items():
        variant, _, counter = field.partition(":")
        out[variant][counter] = float(value)
    return dict(out)


K = TypeVar("K")
V = TypeVar("V")


def _grouped_counters(raw: dict[str, str], separator: str, key: Callable[[str], K],
                      parse: Callable[[dict[str, str]], V] = parse_counters) -> dict[K, V]:
    """``{"<group><separator><variant>:<counter>": "3"}`` → ``{group: {variant: {counter: 3.0}}}``
    (each group's rest read by ``parse``)."""
    groups: dict[K, dict[str, str]] = defaultdict(dict)
    for field, value in raw.items():
        group, _, rest = field.partition(separator)
        groups[key(group)][rest] = value
    return {group: parse(fields) for group, fields in groups.items()}


def parse_segment_counters(raw: dict[str, str]) -> dict[str, dict[str, dict[str, float]]]:
    """``{"device=mobile|b:trials": "3"}`` → ``{"device=mobile": {"b": {"trials": 3.0}}}``."""
    return _grouped_counters(raw, "|", str)


def parse_linear(raw: dict[str, str]) -> dict[str, dict[tuple[int, int] | int, float]]:
    """``{"b|3|7": "2", "b|b|3": "1"}`` → ``{"b": {(3, 7): 2.0, 3: 1.0}}``: pair counts and reward sums."""
    out: dict[str, dict[tuple[int, int] | int, float]] = defaultdict(dict)
    for field, value in raw.items():
        variant, _, rest = field.partition("|")
        first, _, second = rest.partition("|")
        out[variant][int(second) if first == "b" else (int(first), int(second))] = float(value)
    return dict(out)


def parse_breaches(raw: dict[str, str]) -> dict[str, dict]:
    """Variant → its breach (``record_breach``); an unreadable entry is skipped, not fatal."""
    out = {}
    for variant, doc in raw.items():
        try:
            parsed = json.loads(doc)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            out[variant] = parsed
    return out


def parse_buckets(raw: dict[str, str]) -> dict[int, dict[str, dict[str, float]]]:
    """``{"1700000040:b:trials": "3"}`` → ``{1700000040: {"b": {"trials": 3.0}}}``, oldest bucket first."""
    return dict(sorted(_grouped_counters(raw, ":", int).items()))


def parse_mix_buckets(raw: dict[str, str]) -> dict[int, dict[str, dict[str, float]]]:
    """``{"1700000040:device=mobile": "3"}`` → ``{1700000040: {"device": {"mobile": 3.0}}}``, oldest bucket first."""
    out: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    for field, value in raw.items():
        bucket, _, rest = field.partition(":")
        name, _, category = rest.partition("=")
        out[int(bucket)][name][category] = float(value)
    return {bucket: dict(out[bucket]) for bucket in sorted(out)}


def parse_device_buckets(raw: dict[str, str]) -> dict[int, dict[str, dict[str, dict[str, float]]]]:
    """``{"1700000040:mobile|b:trials": "3"}`` → ``{1700000040: {"mobile": {"b": {"trials": 3.0}}}}``, oldest
    bucket first."""
    return dict(sorted(_grouped_counters(raw, ":", int, parse_segment_counters).items()))


def older_buckets(raw: dict[str, str], keep: int) -> list[str]:
    """The fields of a bucketed hash (``<bucket>:...``) older than its latest ``keep`` buckets;
    none until it holds ``keep`` and a tenth more (so a trim is a batch, not one per look)."""
    starts = sorted({int(field.partition(":")[0]) for field in raw})
    if len(starts) <= keep + max(10, keep // 10):
        return []
    first_kept = starts[-keep]
    return [field for field in raw if int(field.partition(":")[0]) < first_kept]


def bucket_start(ts: float, width: int) -> int:
    """The start of the time bucket (``width`` seconds) that ``ts`` falls in."""
    return int(ts // width) * width


def assignment_batch(records: Sequence[AssignmentRecord], bucket_seconds: int) -> dict[str, str]:
    """One experiment's assignments as record_assignments.lua takes them (its ARGV from
    ``trials`` on): counters summed per field, so a busy router issues a handful of
    increments per flush instead of one per visitor, and one stream entry per assignment."""
    trials: Counter[str] = Counter()
    # (bucket, variant, device): the buckets' trials and, per device class, the rate-drift strata
    arm_trials: Counter[tuple[int, str, str]] = Counter()
    segment_trials: Counter[str] = Counter()
    feature_pairs: Counter[str] = Counter()
    expected: defaultdict[str, float] = defaultdict(float)
    entries: list[tuple] = []
    # every assignment of one snapshot shares its probabilities: encode and sum them
    # once per (bucket, split), not once per visitor; the stream entries name a split
    # by its number. The device classes ride in the same key: counted by the increment
    # the split needs anyway, named once per bucket and class below.
    splits: Counter[tuple[int, tuple[tuple[str, float], ...], str]] = Counter()
    numbered: dict[tuple[tuple[str, float], ...], int] = {}
    for r in records:
        bucket = bucket_start(r.ts, bucket_seconds)
        trials[f"{r.variant}:trials"] += 1
        arm_trials[(bucket, r.variant, r.device)] += 1
        splits[(bucket, r.probabilities, r.device)] += 1
        split = numbered.get(r.probabilities)
        if split is None:
            split = numbered[r.probabilities] = len(numbered) + 1
        entries.append((r.variant, r.visitor, r.reason, split, int(r.ts * 1000), r.segment, r.channel))
        if r.segment:
            segment_trials[f"{r.segment}|{r.variant}:trials"] += 1
        # the upper triangle of x x^T (x binary): a contextual policy's precision grows at assignment
        for a, i in enumerate(r.features):
            for j in r.features[a:]:
                feature_pairs[f"{r.variant}|{i}|{j}"] += 1
    mix_trials: Counter[str] = Counter()
    for (bucket, split, device), n in splits.items():
        for variant, p in split:
            expected[f"{bucket}:{variant}:expected"] += n * p
        mix_trials[f"{bucket}:device={_device_category(device)}"] += n
    bucket_trials: Counter[str] = Counter()
    device_trials: Counter[str] = Counter()
    for (bucket, variant, device), n in arm_trials.items():
        bucket_trials[f"{bucket}:{variant}:trials"] += n
        device_trials[f"{bucket}:{_device_category(device)}|{variant}:trials"] += n
    return {"trials": _lines(trials.items(), 2), "bucket_trials": _lines(bucket_trials.items(), 2),
            "device_trials": _lines(device_trials.items(), 2),
            "segment_trials": _lines(segment_trials.items(), 2), "feature_pairs": _lines(feature_pairs.items(), 2),
            "expected": _lines(expected.items(), 2), "mix_trials": _lines(mix_trials.items(), 2),
            "splits": "".join(json.dumps(dict(split), separators=(",", ":")) + "\n" for split in numbered),
            "entries": _lines(entries, 7)}


_DEVICES = frozenset(DEVICES)


def _device_category(device: str) -> str:
    # the channels API takes any token as a device: anything else is "other", so a caller
    # cannot add fields to the mix hash at will
    return device if device in _DEVICES else "other" if device else "unknown"


_SEPARATORS = str.maketrans("\t\n", "  ")


def _lines(rows: Iterable[tuple], width: int) -> str:
    """Rows of ``width`` fields as tab-separated lines, each ending with a newline: the batch
    format of record_assignments.lua. The router's own ids, visitors and segments never hold
    a tab or newline; still, a stray one becomes a space, so it cannot shift a field."""
    rows = list(rows)
    line = "\t".join(["%s"] * width) + "\n"
    text = "".join([line % row for row in rows])
    if text.count("\n") != len(rows) or text.count("\t") != (width - 1) * len(rows):
        text = "".join([line % tuple(str(field).translate(_SEPARATORS) for field in row) for row in rows])
    return text


class Store:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        # With the archive on, the archiver trims each stream past what it archived; the
        # scripts' own cap is then a far larger safety net (docs/archive.md).
        self.stream_cap = settings.archive_maxlen if settings.archive else settings.stream_maxlen
        self.redis, self._also_close = (client, []) if client else connect(settings)
        self._record_event = LuaScript(self.redis, _LUA / "record_event.lua")
        self._record_breach = LuaScript(self.redis, _LUA / "record_breach.lua")
        self._record_assignments = LuaScript(self.redis, _LUA / "record_assignments.lua")
        self._update_experiment = LuaScript(self.redis, _LUA / "update_experiment.lua")
        self._registry_changed_script = LuaScript(self.redis, _LUA / "registry_changed.lua")
        self._claim_customer = LuaScript(self.redis, _LUA / "claim_customer.lua")
        self._claim_customers = LuaScript(self.redis, _LUA / "claim_customers.lua")
        self._reserve_capacity = LuaScript(self.redis, _LUA / "reserve_capacity.lua")
        self._job_chunk_done = LuaScript(self.redis, _LUA / "job_chunk_done.lua")
        self._record_engagement = LuaScript(self.redis, _LUA / "record_engagement.lua")
        self._raise_alert = LuaScript(self.redis, _LUA / "raise_alert.lua")
        self._hold_lease = LuaScript(self.redis, _LUA / "hold_lease.lua")
        self._release_lease = LuaScript(self.redis, _LUA / "release_lease.lua")
        self._save_model_version = LuaScript(self.redis, _LUA / "save_model_version.lua")
        self._ledger: AssignmentLedger[AssignmentRecord] = AssignmentLedger()
        self._packed_mget: dict[tuple[str, ...], list[bytes]] = {}

    async def close(self) -> None:
        await self.redis.aclose()
        for client in self._also_close:
            await client.aclose()

    @translated
    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    def _bucket(self, ts: float) -> int:
        return bucket_start(ts, self.settings.bucket_seconds)

    # -- registry ---------------------------------------------------------

    @translated
    async def registry_version(self) -> int:
        return int(await self.redis.get(REGISTRY_VERSION) or 0)

    @translated
    async def registry_changes(self, since: int, epoch: str = "") -> RegistryChanges:
        """The experiments whose registry entry changed after version ``since`` (-1: none known yet).

        Every change bumps the version and logs the experiment in one script, so the log
        read after the version covers it; a log that cannot cover ``since`` (trimmed past
        it, a version bumped without it, a version that went back or another ``epoch``: a
        Redis that lost its data) answers ``changed=None``."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(REGISTRY_VERSION)
            pipe.zrangebyscore(REGISTRY_CHANGES, f"({since}", "+inf", withscores=True)
            pipe.get(REGISTRY_EPOCH)
            raw_version, entries, current_epoch = await pipe.execute()
        version = int(raw_version or 0)
        logged = {member: int(score) for member, score in entries}
        latest = max(logged.values(), default=since)
        current_epoch = current_epoch or ""
        if since < 0 or version < since or "" in logged or latest < version or current_epoch != epoch:
            return RegistryChanges(max(version, latest), None, current_epoch)
        return RegistryChanges(latest, frozenset(logged), current_epoch)

    @translated
    async def experiment_ids(self) -> list[str]:
        return sorted(await self.redis.smembers(REGISTRY))

    @translated
    async def experiment_docs(self, experiment_ids: Iterable[str]) -> dict[str, str | None]:
        """Each experiment's registry entry as stored (JSON), None when it was removed; in
        pipelined batches. The raw text lets a reader skip parsing what it already holds."""
        ids = list(experiment_ids)
        docs: dict[str, str | None] = {}
        for batch in _batches(ids):
            async with self.redis.pipeline(transaction=False) as pipe:
                for exp_id in batch:
                    pipe.get(_k(exp_id, "experiment"))
                docs.update(zip(batch, await pipe.execute()))
        return docs

    @translated
    async def list_experiments(self) -> list[Experiment]:
        docs = await self.experiment_docs(await self.experiment_ids())
        return [parse_experiment(json.loads(doc)) for doc in docs.values() if doc]

    @translated
    async def get_experiment(self, experiment_id: str) -> Experiment | None:
        doc = await self.redis.get(_k(experiment_id, "experiment"))
        return parse_experiment(json.loads(doc)) if doc else None

    @translated
    async def _registry_changed(self, experiment_id: str) -> None:
        await self._registry_changed_script(
            keys={"version": REGISTRY_VERSION, "changes": REGISTRY_CHANGES, "epoch": REGISTRY_EPOCH},
            args={"experiment": experiment_id, "keep": CHANGE_LOG_KEEP, "token": secrets.token_hex(8)})

    @translated
    async def create_experiment(self, experiment: Experiment) -> None:
        created = await self.redis.set(_k(experiment.id, "experiment"), json.dumps(experiment.to_dict()), nx=True)
        if not created:
            raise ExperimentExists(experiment.id)
        await self.redis.sadd(REGISTRY, experiment.id)
        await self._registry_changed(experiment.id)

    @translated
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
            replaced = await self._update_experiment(
                keys={"experiment": key}, args={"expected": doc, "replacement": json.dumps(updated.to_dict())})
            if replaced == -1:
                raise ExperimentNotFound(experiment_id)
            if replaced == 1:
                break
        await self._registry_changed(experiment_id)
        return updated

    @translated
    async def delete_experiment(self, experiment_id: str) -> None:
        """Remove an experiment from the registry; its statistics and events stay for analysis."""
        removed = await self.redis.delete(_k(experiment_id, "experiment"))
        await self.redis.srem(REGISTRY, experiment_id)
        if not removed:
            raise ExperimentNotFound(experiment_id)
        await self._registry_changed(experiment_id)

    # -- statistics -------------------------------------------------------

    async def _hashes(self, experiment_ids: Iterable[str], suffix: str) -> dict[str, dict[str, str]]:
        """One hash of each experiment, for many experiments: one round trip per ``BATCH``."""
        ids = list(experiment_ids)
        found: dict[str, dict[str, str]] = {}
        for batch in _batches(ids):
            async with self.redis.pipeline(transaction=False) as pipe:
                for exp_id in batch:
                    pipe.hgetall(_k(exp_id, suffix))
                found.update(zip(batch, await pipe.execute()))
        return found

    @translated
    async def revisions(self, experiment_ids: Iterable[str]) -> dict[str, str | None]:
        """Each experiment's counters revision as stored (None: never written since revisions
        exist; compared, never computed with, so not parsed): the cheap check that tells a
        router whose counters to read again. One MGET per ``REVISION_BATCH``; on Redis
        Cluster the keys of a batch are spread over slots, so one GET each, pipelined per node."""
        ids = list(experiment_ids)
        found: dict[str, str | None] = {}
        for batch in _batches(ids, REVISION_BATCH):
            if isinstance(self.redis, RedisCluster):
                values = await self.redis.mget_nonatomic([_k(exp_id, "revision") for exp_id in batch])
            else:
                values = await self._mget_packed(tuple(batch))
            found.update(zip(batch, values))
        return found

    async def _mget_packed(self, batch: tuple[str, ...]) -> list:
        """The revisions of ``batch`` by an MGET packed once per list of experiments: a refresh
        asks for the same keys every half second, and redis-py packs each argument in Python
        (30 ms for 10,000 keys, on the loop that answers decisions); sending the held bytes
        costs a fraction of a millisecond."""
        pool = self.redis.connection_pool
        connection = await pool.get_connection()
        try:
            packed = self._packed_mget.get(batch)
            if packed is None:
                if len(self._packed_mget) >= 16:  # the registry changed: the old lists are gone
                    self._packed_mget.clear()
                packed = self._packed_mget[batch] = connection.pack_command(
                    "MGET", *(_k(exp_id, "revision") for exp_id in batch))
            await connection.send_packed_command(packed)
            return await connection.read_response()
        except BaseException:
            await connection.disconnect()  # a reply may be half read: never reuse the connection
            raise
        finally:
            await pool.release(connection)

    # The raw hashes, for a reader that compares them with what it holds before parsing
    # (router/refresh.py); parse with parse_counters, parse_segment_counters, parse_buckets
    # and parse_linear.

    @translated
    async def stats_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        return await self._hashes(experiment_ids, "stats")

    @translated
    async def segment_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        return await self._hashes(experiment_ids, "segstats")

    @translated
    async def bucket_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        return await self._hashes(experiment_ids, "buckets")

    @translated
    async def mix_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Assignments per time bucket and device class (parse with parse_mix_buckets)."""
        return await self._hashes(experiment_ids, "mixbuckets")

    @translated
    async def device_bucket_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Trials and conversions per time bucket, device class and variant (parse with
        parse_device_buckets), the latest ``CROUPIER_DRIFT_WINDOW`` buckets: older ones are
        dropped as they are read. Only the rate-drift check reads them, that far back; kept
        whole, the hash would grow with the experiment's age and be read whole at every look."""
        found = await self._hashes(experiment_ids, "devbuckets")
        keep = self.settings.drift_window
        old = {exp_id: fields for exp_id, raw in found.items() if (fields := older_buckets(raw, keep))}
        if old:
            async with self.redis.pipeline(transaction=False) as pipe:
                for exp_id, fields in old.items():
                    pipe.hdel(_k(exp_id, "devbuckets"), *fields)
                await pipe.execute()
            for exp_id, fields in old.items():
                raw = found[exp_id]
                for field in fields:
                    del raw[field]
        return found

    @translated
    async def engagement_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Per variant engagement totals (parse with parse_counters): for an experiment whose
        reward counts engaged views."""
        return await self._hashes(experiment_ids, "engagement")

    @translated
    async def linear_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        return await self._hashes(experiment_ids, "linear")

    @translated
    async def counters(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, dict[str, float]]]:
        """Experiment → variant → counter → total, for many experiments in one round trip."""
        return {exp_id: parse_counters(r) for exp_id, r in (await self._hashes(experiment_ids, "stats")).items()}

    @translated
    async def segment_counters(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """Experiment → segment → variant → counter → total, in one round trip."""
        return {exp_id: parse_segment_counters(r)
                for exp_id, r in (await self._hashes(experiment_ids, "segstats")).items()}

    @translated
    async def linear_state(self, experiment_id: str) -> dict[str, dict[tuple[int, int] | int, float]]:
        """A contextual policy's sufficient statistics: variant → {(i, j): sum x_i x_j, i: sum r x_i}."""
        return parse_linear(await self.redis.hgetall(_k(experiment_id, "linear")))

    @translated
    async def buckets(self, experiment_id: str) -> dict[int, dict[str, dict[str, float]]]:
        return parse_buckets(await self.redis.hgetall(_k(experiment_id, "buckets")))

    # -- the conversion model ---------------------------------------------

    @translated
    async def save_model(self, experiment_id: str, doc: dict) -> int:
        """Store an experiment's trained model (replacing the last one, no gate); returns its version.

        The document and its version are written by one HSET, so a reader never sees a
        version with another version's document."""
        record = {"status": "accepted", "reason": "stored without validation", "trigger": "manual",
                  "trained_at": doc.get("trained_at")}
        version, _ = await self.save_model_version(experiment_id, doc, record, accept=True)
        return version

    @translated
    async def save_model_version(self, experiment_id: str, doc: dict | None, record: dict, *, accept: bool,
                                 expected: int | None = None, through: str = "",
                                 attempted: float | None = None) -> tuple[int, bool]:
        """Store a trained version (``lua/save_model_version.lua``): its record always, and, when
        ``accept``, its document as the current model, provided the current version is still
        ``expected`` (0: none; None: no check). Returns (version, accepted); version -1 when the
        current model changed meanwhile (nothing stored: judge again)."""
        body = json.dumps(doc, separators=(",", ":")) if accept and doc is not None else ""
        if len(body) > MODEL_MAX_BYTES:
            raise ValueError(f"model: {len(body)} bytes, more than the {MODEL_MAX_BYTES} a stored model may have")
        version, code = await self._save_model_version(
            keys={"model": _k(experiment_id, "model"), "versions": _k(experiment_id, "modelversions"),
                  "docs": _k(experiment_id, "modeldocs")},
            args={"doc": body, "record": json.dumps(record, separators=(",", ":")), "accept": int(bool(accept)),
                  "expected": "*" if expected is None else int(expected), "through": through,
                  "attempted": repr(float(time.time() if attempted is None else attempted)),
                  "keep_docs": MODEL_DOCS_KEEP, "keep_records": MODEL_RECORDS_KEEP})
        return (-1, False) if int(version) == -1 else (int(version), int(code) == 1)

    @translated
    async def model_records(self, experiment_id: str) -> list[dict]:
        """Every kept version's record, oldest first, with ``version``, ``current``, ``rollback``
        (its document is kept) and ``live`` (its latest live figures, or None)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(_k(experiment_id, "modelversions"))
            pipe.hkeys(_k(experiment_id, "modeldocs"))
            pipe.hgetall(_k(experiment_id, "modellive"))
            pipe.hget(_k(experiment_id, "model"), "version")
            records, kept, live, current = await pipe.execute()
        kept, current = set(kept), int(current or 0)
        out = []
        for version in sorted(records, key=int):
            try:
                record = json.loads(records[version])
                figures = json.loads(live[version]) if version in live else None
            except ValueError:
                continue  # an unreadable record is left out, not fatal
            out.append({**record, "version": int(version), "current": int(version) == current,
                        "rollback": version in kept, "live": figures})
        return out

    @translated
    async def model_doc(self, experiment_id: str, version: int) -> dict | None:
        """The document of an accepted version still kept, or None."""
        body = await self.redis.hget(_k(experiment_id, "modeldocs"), str(version))
        return json.loads(body) if body else None

    @translated
    async def rollback_model(self, experiment_id: str, version: int) -> bool:
        """Make a kept accepted version current again (routers load it at their next refresh,
        as any model change); False when its document is not kept. Its version number stays."""
        body = await self.redis.hget(_k(experiment_id, "modeldocs"), str(version))
        if not body:
            return False
        await self.redis.hset(_k(experiment_id, "model"), mapping={"doc": body, "version": int(version),
                                                                   "rolled_back": repr(time.time())})
        return True

    @translated
    async def record_live_figures(self, experiment_id: str, version: int, figures: dict) -> None:
        await self.redis.hset(_k(experiment_id, "modellive"), str(version),
                              json.dumps(figures, separators=(",", ":")))

    @translated
    async def model_heads(self, experiment_ids: Iterable[str]) -> dict[str, ModelHead]:
        """Per experiment: its current model version, the latest training round's last event and
        time, the drift alert last acted on, and the stream's last event id; pipelined in batches."""
        ids = list(experiment_ids)
        heads: dict[str, ModelHead] = {}
        for batch in _batches(ids):
            async with self.redis.pipeline(transaction=False) as pipe:
                for exp_id in batch:
                    pipe.hmget(_k(exp_id, "model"), ["version", "through", "attempted", "drift"])
                    pipe.xrevrange(_k(exp_id, "events"), count=1)
                replies = await pipe.execute()
            for exp_id, (version, through, attempted, drift), last in zip(batch, replies[::2], replies[1::2]):
                heads[exp_id] = ModelHead(int(version or 0), through or "", float(attempted or 0.0), drift or "",
                                          last[0][0] if last else "")
        return heads

    @translated
    async def mark_model_attempt(self, experiment_id: str, through: str) -> None:
        """A training round that stored nothing (too little data): the next waits for new events
        and the schedule, as after a stored one."""
        await self.redis.hset(_k(experiment_id, "model"), mapping={"through": through, "attempted": repr(time.time())})

    @translated
    async def mark_model_drift(self, experiment_id: str, alert_id: str) -> None:
        """The drift alert a training round was started for: not acted on again."""
        await self.redis.hset(_k(experiment_id, "model"), "drift", alert_id)

    @translated
    async def load_model(self, experiment_id: str) -> tuple[int, dict] | None:
        """The stored model's version and document, or None when none was trained."""
        version, body = await self.redis.hmget(_k(experiment_id, "model"), ["version", "doc"])
        return (int(version), json.loads(body)) if version and body else None

    @translated
    async def model_versions(self, experiment_ids: Iterable[str]) -> dict[str, int]:
        """Each experiment's stored model version (0: none), in one round trip: the cheap check
        that tells a router whether to load a model again."""
        ids = list(experiment_ids)
        versions: dict[str, int] = {}
        for batch in _batches(ids):
            async with self.redis.pipeline(transaction=False) as pipe:
                for exp_id in batch:
                    pipe.hget(_k(exp_id, "model"), "version")
                versions.update((exp_id, int(v or 0)) for exp_id, v in zip(batch, await pipe.execute()))
        return versions

    @translated
    async def delete_model(self, experiment_id: str) -> bool:
        # ``seq`` stays: a later model must not reuse a version a router may still hold
        return bool(await self.redis.hdel(_k(experiment_id, "model"), "doc", "version"))

    async def record_assignments(self, records: list[AssignmentRecord]) -> None:
        """Write a batch of assignments: one script call per experiment, all at once.

        Each experiment's write is atomic, lands on the node owning its slot, and is applied
        once (``router/ledger.py``), so the recorder may hand back a batch that failed
        part-way, or whose reply was lost, without a trial being counted twice.
        """
        await self._ledger.apply(records, self._write_assignments)

    @translated
    async def _write_assignments(self, experiment_id: str, writer: str, seq: int,
                                 records: list[AssignmentRecord]) -> int:
        """One experiment's group of a batch; -1 when Redis had applied this (writer, seq) before."""
        return await self._record_assignments(
            keys={**_counter_keys(experiment_id), "writers": _k(experiment_id, "writers"),
                  "mixbuckets": _k(experiment_id, "mixbuckets"), "devbuckets": _k(experiment_id, "devbuckets")},
            args={"writer": writer, "seq": seq, "maxlen": self.stream_cap,
                  **assignment_batch(records, self.settings.bucket_seconds)})

    async def record_event(self, event: BeaconEvent) -> bool:
        """Count one beacon event; False when it was a duplicate. Raises when Redis did not take it."""
        keys = {**_counter_keys(event.experiment), "devbuckets": _k(event.experiment, "devbuckets")}
        ttl = self.settings.cookie_max_age
        if event.type == "convert":
            # a visitor converts at most once per goal, however often the beacon is sent
            keys["dedupe"] = _k(event.experiment, f"conv:{event.visitor}:{event.goal}")
        elif event.event_id:
            keys["dedupe"] = _k(event.experiment, f"eid:{event.event_id}")
            ttl = 86400
        ts = event.ts or time.time()
        args = {"kind": event.type, "variant": event.variant, "goal": event.goal,
                "value": "" if event.value is None else repr(float(event.value)), "visitor": event.visitor,
                "ttl": ttl, "bucket": self._bucket(ts), "maxlen": self.stream_cap,
                "ts": int(ts * 1000), "event_id": event.event_id, "segment": event.segment,
                "features": ",".join(map(str, event.features)), "device": _device_category(event.device)}
        try:
            counted = await self._count_event(keys, args)
        except StoreUnavailable:
            if "dedupe" not in keys:
                raise  # without a dedupe key, a second try could count the event twice
            # Deduplicated, so safe to send again: a cluster client re-reading the topology
            # after a node failure fails commands to healthy nodes too, once.
            await asyncio.sleep(0.05)
            counted = await self._count_event(keys, args)
        return counted == 1

    @translated
    async def _count_event(self, keys: dict[str, str], args: dict) -> int:
        return await self._record_event(keys=keys, args=args)

    @translated
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

    @translated
    async def event_count(self, experiment_id: str) -> int:
        """How many entries the experiment's stream holds now."""
        return int(await self.redis.xlen(_k(experiment_id, "events")))

    @translated
    async def recent_events(self, experiment_id: str, count: int, page: int = 2000) -> list[tuple[str, dict]]:
        """The stream's latest ``count`` entries, oldest first; read newest first ``page`` at a
        time, so a router's event loop parses one page's reply between other work."""
        key, found, start = _k(experiment_id, "events"), [], "+"
        while len(found) < count:
            want = min(page, count - len(found))
            got = await self.redis.xrevrange(key, max=start, count=want)
            found.extend(got)
            if len(got) < want:
                break
            start = f"({got[-1][0]}"
        found.reverse()
        return found

    # -- the event archive (router/archive.py) -----------------------------

    @translated
    async def ensure_archive_group(self, experiment_id: str) -> None:
        """The stream's archive consumer group, created (with the stream) unless it exists; from the
        stream's start, so what was logged before the archive was turned on is archived too."""
        try:
            await self.redis.xgroup_create(_k(experiment_id, "events"), ARCHIVE_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @translated
    async def read_for_archive(self, experiment_id: str, consumer: str, count: int) -> list[tuple[str, dict]]:
        """Up to ``count`` entries the archive group has not read yet, oldest first, now pending for ``consumer``."""
        replies = await self.redis.xreadgroup(ARCHIVE_GROUP, consumer, {_k(experiment_id, "events"): ">"},
                                              count=count)
        return [entry for _, entries in replies or [] for entry in entries]

    @translated
    async def claim_for_archive(self, experiment_id: str, consumer: str, start: str,
                                count: int) -> tuple[str, list[tuple[str, dict]], list[str]]:
        """Entries read but never acknowledged (an archiver died), from ``start`` on, made ``consumer``'s
        (XAUTOCLAIM): the next start ('0-0' once all were walked), the entries, and the ids of pending
        entries the stream lost before they were archived."""
        reply = await self.redis.xautoclaim(_k(experiment_id, "events"), ARCHIVE_GROUP, consumer, 0,
                                            start_id=start, count=count)
        deleted = list(reply[2]) if len(reply) > 2 else []
        return reply[0], [(entry_id, fields) for entry_id, fields in reply[1] if fields], deleted

    @translated
    async def ack_archived(self, experiment_id: str, entry_ids: Sequence[str]) -> None:
        if entry_ids:
            await self.redis.xack(_k(experiment_id, "events"), ARCHIVE_GROUP, *entry_ids)

    @translated
    async def trim_archived(self, experiment_id: str, below: str) -> int:
        """Drop the stream's entries with ids below ``below`` (XTRIM MINID ~: whole nodes only, so a
        few may stay, and at most 100 nodes a call); returns how many went."""
        return int(await self.redis.xtrim(_k(experiment_id, "events"), minid=below, approximate=True))

    @translated
    async def archive_backlog(self, experiment_id: str) -> tuple[int, int, str]:
        """The archive group's unread and unacknowledged entries, and the stream's first id ('' empty)."""
        key = _k(experiment_id, "events")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xinfo_groups(key)
            pipe.xrange(key, count=1)
            try:
                groups, first = await pipe.execute()
            except ResponseError:  # no stream yet
                return 0, 0, ""
        for group in groups:
            if group["name"] == ARCHIVE_GROUP:
                lag = group.get("lag")
                return int(lag if lag is not None else 0), int(group["pending"]), first[0][0] if first else ""
        return int(await self.redis.xlen(key)), 0, first[0][0] if first else ""

    @translated
    async def archive_lags(self, experiment_ids: Sequence[str]) -> dict[str, tuple[int, str]]:
        """For many experiments at once (two pipelined round trips): the entries of each stream the
        archive has not acknowledged (unread and pending) and the oldest one's id ('' none). A
        stream the archiver has not met yet (no group) counts whole; one with no stream, as 0.
        Where Redis cannot say the group's lag (it was set past a gap), the stream's length is
        counted: an upper bound."""
        keys = [_k(exp_id, "events") for exp_id in experiment_ids]
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.xinfo_groups(key)
            infos = await pipe.execute(raise_on_error=False)
        found: dict[str, tuple[int, str]] = {}
        asks: list[tuple[str, int, str]] = []  # (experiment, entries, what the second trip reads)
        async with self.redis.pipeline(transaction=False) as pipe:
            for exp_id, key, groups in zip(experiment_ids, keys, infos):
                if isinstance(groups, Exception):  # no stream: nothing logged
                    found[exp_id] = (0, "")
                    continue
                group = next((g for g in groups if g["name"] == ARCHIVE_GROUP), None)
                if group is None:
                    pipe.xlen(key)
                    pipe.xrange(key, count=1)
                    asks.append((exp_id, -1, "whole"))
                elif int(group["pending"]):  # read, not yet written: the oldest pending entry is the oldest
                    unread = group.get("lag")
                    pipe.xpending(key, ARCHIVE_GROUP)
                    asks.append((exp_id, int(group["pending"]) + int(unread or 0), "pending"))
                elif group.get("lag") is None or int(group["lag"]):
                    pipe.xrange(key, min=f"({group['last-delivered-id']}", count=1)
                    if group.get("lag") is None:
                        pipe.xlen(key)
                    asks.append((exp_id, -1 if group.get("lag") is None else int(group["lag"]), "unread"))
                else:
                    found[exp_id] = (0, "")
            replies = iter(await pipe.execute()) if asks else iter(())
        for exp_id, entries, what in asks:
            if what == "whole":
                length, first = next(replies), next(replies)
                found[exp_id] = (int(length), first[0][0] if first else "")
            elif what == "pending":
                found[exp_id] = (entries, next(replies)["min"] or "")
            else:
                after = next(replies)
                if entries < 0:
                    entries = int(next(replies))
                found[exp_id] = (entries if after else 0, after[0][0] if after else "")
        return found

    @translated
    async def prune_archive_consumers(self, experiment_id: str, keep: str) -> None:
        """Forget the archive group's consumers other than ``keep`` that hold no pending entry
        (each archiver process reads under a name of its own)."""
        key = _k(experiment_id, "events")
        for consumer in await self.redis.xinfo_consumers(key, ARCHIVE_GROUP):
            if consumer["name"] != keep and not consumer["pending"]:
                await self.redis.xgroup_delconsumer(key, ARCHIVE_GROUP, consumer["name"])

    @translated
    async def hold_archive_lease(self, token: str, ttl_ms: int) -> bool:
        """Take the archiver's lease, or renew it when ``token`` holds it: one archiver at a time."""
        return bool(await self._hold_lease(keys={"lease": ARCHIVE_LEASE}, args={"token": token, "ttl": ttl_ms}))

    @translated
    async def release_archive_lease(self, token: str) -> bool:
        return bool(await self._release_lease(keys={"lease": ARCHIVE_LEASE}, args={"token": token}))

    # -- engagement (router/engagement.py) --------------------------------

    async def record_engagement(self, event: BeaconEvent, engagement: Engagement) -> int:
        """Fold one page view's cumulative report in: 1 a new view counted, 2 a known view's
        figures grew, 0 nothing new. Raises when Redis did not take it."""
        exp = event.experiment
        ts = event.ts or time.time()
        keys = {"engagement": _k(exp, "engagement"), "segengagement": _k(exp, "segengagement"),
                "engbuckets": _k(exp, "engbuckets"), "events": _k(exp, "events"),
                "pageview": _k(exp, f"pv:{event.visitor}:{engagement.page_view}"),
                "stats": _k(exp, "stats"), "revision": _k(exp, "revision")}
        args = {"variant": event.variant, "segment": event.segment, "visitor": event.visitor,
                "page_view": engagement.page_view, "active_ms": engagement.active_ms, "scroll": engagement.scroll,
                "clicks": engagement.clicks, "engaged": int(engagement.engaged), "scroll_buckets": SCROLL_BUCKETS,
                "bucket": self._bucket(ts), "ttl": PAGE_VIEW_TTL, "maxlen": self.stream_cap,
                "ts": int(ts * 1000)}
        try:
            return await self._fold_engagement(keys, args)
        except StoreUnavailable:
            # a report is folded in once however often it is sent: safe to send again (see record_event)
            await asyncio.sleep(0.05)
            return await self._fold_engagement(keys, args)

    @translated
    async def _fold_engagement(self, keys: dict[str, str], args: dict) -> int:
        return int(await self._record_engagement(keys=keys, args=args))

    @translated
    async def engagement_counters(self, experiment_id: str) -> tuple[dict[str, dict[str, float]],
                                                                     dict[str, dict[str, dict[str, float]]]]:
        """Variant → counter → total, and segment → variant → counter → total, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(_k(experiment_id, "engagement"))
            pipe.hgetall(_k(experiment_id, "segengagement"))
            by_variant, by_segment = await pipe.execute()
        return parse_counters(by_variant), parse_segment_counters(by_segment)

    @translated
    async def engagement_buckets(self, experiment_id: str) -> dict[int, dict[str, dict[str, float]]]:
        """Bucket start → variant → views, engaged, active_ms, clicks (by each view's first report)."""
        return parse_buckets(await self.redis.hgetall(_k(experiment_id, "engbuckets")))

    # -- guardrail breaches (router/guardrail_check.py) --------------------

    @translated
    async def breach_hashes(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """Variant → its breach as JSON (``"state"``: breached or cleared), per experiment."""
        return await self._hashes(experiment_ids, "breaches")

    @translated
    async def record_breach(self, experiment_id: str, variant: str, doc: dict, *, cleared: bool = False) -> bool:
        """Record a breach once (or clear a held one); False when the state did not change."""
        ts = int(time.time() * 1000)
        state = "cleared" if cleared else "breached"
        doc = {**doc, "state": state}
        changed = await self._record_breach(
            keys={"breaches": _k(experiment_id, "breaches"), "revision": _k(experiment_id, "revision"),
                  "events": _k(experiment_id, "events"), "stats": _k(experiment_id, "stats")},
            args={"variant": variant, "doc": json.dumps(doc, separators=(",", ":"), sort_keys=True),
                  "state": state, "maxlen": self.stream_cap, "ts": ts,
                  "code": -1 if cleared else (2 if doc.get("action") == "pause" else 1)})
        return bool(int(changed))

    @translated
    async def forget_evidence(self, experiment_id: str, variant: str, before: dict[str, float]) -> None:
        """Set aside ``variant``'s counts from before a detected change (``before``: counter →
        its total then), in the stats hash the routers read: ``<variant>:forgot:<counter>``,
        subtracted from the lifetime total by ``snapshot.arm_stats``. Absolute values, so a
        repeat changes nothing; the revision moves so every router recomputes the split."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(_k(experiment_id, "stats"), mapping={f"{variant}:forgot:{name}": total
                                                           for name, total in before.items()})
            pipe.incr(_k(experiment_id, "revision"))
            await pipe.execute()

    @translated
    async def record_fallback(self, experiment_id: str, variant: str) -> None:
        """A page of ``variant`` NGINX served control instead of (router/fallback_report.py).
        The revision is not bumped: the count changes no split, only the error rate the
        guardrails read, and the page views that come with it move the revision anyway."""
        await self.redis.hincrby(_k(experiment_id, "stats"), f"{variant}:fallback", 1)

    # -- customers of the channels API ------------------------------------

    @translated
    async def customer_assignment(self, experiment_id: str, customer: str) -> CustomerAssignment | None:
        """The customer's assignment; one stored in the older JSON key is read too (and
        replaced by the bucket's at its next claim)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hget(_bucket_key(experiment_id, customer_bucket(customer)), customer)
            pipe.get(_k(experiment_id, f"cust:{customer}"))
            held, old = await pipe.execute()
        raw = held or old
        return CustomerAssignment.decode(raw) if raw else None

    @translated
    async def claim_customer_assignment(self, experiment_id: str, customer: str, drawn: CustomerAssignment,
                                        replacing: CustomerAssignment | None) -> tuple[CustomerAssignment, bool]:
        """Store ``drawn`` unless another call stored an assignment first (or changed the one
        being replaced). Returns the assignment that holds, and whether it is ``drawn``."""
        expected = replacing.raw if replacing and not replacing.raw.startswith("{") else ""
        won, held = await self._claim_customer(
            keys={"bucket": _bucket_key(experiment_id, customer_bucket(customer))},
            args={"customer": customer, "expected": expected, "drawn": drawn.encode(),
                  "ttl": self.settings.cookie_max_age})
        if won == 1:
            return replace(drawn, raw=held), True
        return CustomerAssignment.decode(held), False

    @translated
    async def claim_customers(self, experiment_id: str, claims: Sequence[tuple[str, CustomerAssignment]],
                              capacities: dict[str, int]) -> list[CustomerAssignment | None | type[CapacityFull]]:
        """Claim each (customer, drawn) unless the customer has an assignment, in one script
        call; a capped variant's unit is taken with its claim. Per claim, in order: None the
        drawn assignment holds now, ``CapacityFull`` its variant had no unit left (nothing
        claimed), or the assignment the customer already had."""
        if not claims:
            return []
        buckets: dict[int, int] = {}
        lines = []
        for customer, drawn in claims:
            index = buckets.setdefault(customer_bucket(customer), len(buckets) + 1)
            lines.append(f"{customer}\t{index}\t{drawn.encode()}\n")
        keys = [_bucket_key(experiment_id, b) for b in buckets]
        replies = await self._claim_customers(
            keys={"capacity": _k(experiment_id, "capacity"), "buckets": keys[0]}, more_keys=keys[1:],
            args={"ttl": self.settings.cookie_max_age, "now": int(time.time() * 1000),
                  "caps": "".join(f"{v}\t{n}\n" for v, n in capacities.items()), "claims": "".join(lines)})
        return [None if r == "" else CapacityFull if r == "!" else CustomerAssignment.decode(r) for r in replies]

    # -- capacity (router/capacity.py) --------------------------------------

    @translated
    async def reserve_capacity(self, experiment_id: str, router: str, variant: str, cap: int, used: int,
                               want: int, ttl_ms: int) -> int:
        """Report ``used`` units of this router's reservation and ask to hold ``want`` from now
        on; returns the change of the reservation (``lua/reserve_capacity.lua``)."""
        return int(await self._reserve_capacity(
            keys={"capacity": _k(experiment_id, "capacity")},
            args={"router": router, "variant": variant, "cap": cap, "used": used, "want": want,
                  "now": int(time.time() * 1000), "ttl": ttl_ms}))

    @translated
    async def capacity_used(self, experiment_id: str) -> dict[str, int]:
        """Variant → units of its capacity used (routers' unused reservations not included)."""
        raw = await self.redis.hgetall(_k(experiment_id, "capacity"))
        return {field: int(value) for field, value in raw.items() if not field.startswith("lease|")}

    @translated
    async def capacity_held(self, experiment_ids: Iterable[str]) -> dict[str, dict[str, tuple[int, int]]]:
        """Per experiment, variant → (units used, units routers reserved and have not used yet:
        their unexpired reservations, as ``lua/reserve_capacity.lua`` keeps them), one pipelined
        read. A router's decisions since its last report still count as reserved."""
        now = int(time.time() * 1000)
        held: dict[str, dict[str, tuple[int, int]]] = {}
        for exp_id, raw in (await self._hashes(experiment_ids, "capacity")).items():
            used: dict[str, int] = {}
            reserved: dict[str, int] = {}
            for name, value in raw.items():
                if not name.startswith("lease|"):
                    used[name] = int(value)
                    continue
                variant = name[len("lease|"):].rpartition("|")[0]
                units, _, expires = value.partition("|")
                if expires.isdigit() and int(expires) >= now:
                    reserved[variant] = reserved.get(variant, 0) + max(int(units), 0)
            held[exp_id] = {v: (used.get(v, 0), reserved.get(v, 0)) for v in used.keys() | reserved.keys()}
        return held

    # -- batch jobs (router/batch_jobs.py) ----------------------------------

    @translated
    async def create_job(self, experiment_id: str, job: str, figures: dict[str, str | int],
                         chunks: Sequence[str]) -> None:
        base = _k(experiment_id, f"job:{job}")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(base, mapping=figures)
            if chunks:
                pipe.rpush(f"{base}:in", *chunks)
            for key in (base, f"{base}:in", f"{base}:out"):
                pipe.expire(key, JOB_TTL)
            await pipe.execute()

    @translated
    async def job(self, experiment_id: str, job: str) -> tuple[dict[str, str], int] | None:
        """A job's figures and how many of its chunks are done; None when unknown or expired."""
        base = _k(experiment_id, f"job:{job}")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(base)
            pipe.llen(f"{base}:out")
            figures, done = await pipe.execute()
        return (figures, int(done)) if figures else None

    @translated
    async def job_chunk(self, experiment_id: str, job: str, index: int) -> str | None:
        return await self.redis.lindex(_k(experiment_id, f"job:{job}:in"), index)

    @translated
    async def job_chunk_done(self, experiment_id: str, job: str, index: int, results: str,
                             increments: dict[str, int]) -> bool:
        base = _k(experiment_id, f"job:{job}")
        out = await self._job_chunk_done(
            keys={"job": base, "output": f"{base}:out"},
            args={"index": index, "results": results,
                  "increments": "".join(f"{k}\t{v}\n" for k, v in increments.items() if v)})
        if out:
            await self.redis.expire(f"{base}:out", JOB_TTL)
        return bool(out)

    @translated
    async def job_results(self, experiment_id: str, job: str, start: int, count: int) -> list[str]:
        return await self.redis.lrange(_k(experiment_id, f"job:{job}:out"), start, start + count - 1)

    @translated
    async def finish_job(self, experiment_id: str, job: str, status: str) -> None:
        """Mark the job finished and drop its input (its results stay until they expire)."""
        base = _k(experiment_id, f"job:{job}")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(base, "status", status)
            pipe.delete(f"{base}:in")
            await pipe.execute()

    @translated
    async def fail_job(self, experiment_id: str, job: str, error: str) -> None:
        await self.redis.hset(_k(experiment_id, f"job:{job}"), mapping={"status": "failed", "error": error})

    @translated
    async def hold_job_lease(self, experiment_id: str, job: str, token: str, ttl_ms: int) -> bool:
        """Take or renew the lease of processing a job (``lua/hold_lease.lua``)."""
        return bool(await self._hold_lease(keys={"lease": _k(experiment_id, f"job:{job}:lease")},
                                           args={"token": token, "ttl": ttl_ms}))

    # -- alerts and webhooks (router/alerts.py, router/monitor.py, router/webhooks.py) ------

    @translated
    async def raise_alert(self, alert_id: str, doc: str, episode: str, maxlen: int, experiment: str = "") -> bool:
        """Append an alert to the outbox (and to ``experiment``'s index of its alerts, unless '');
        False when its episode ('' none) was already open."""
        keys = {"outbox": ALERT_OUTBOX, "open": ALERT_OPEN}
        args = {"id": alert_id, "alert": doc, "episode": episode, "maxlen": maxlen}
        if experiment:
            keys["index"], args["keep"] = _alert_index(experiment), EXPERIMENT_ALERTS_KEEP
        return bool(await self._raise_alert(keys=keys, args=args))

    @translated
    async def experiment_alerts(self, experiment_id: str, count: int) -> list[dict]:
        """The experiment's latest ``count`` alerts, newest first (as JSON documents), from its
        index; those the outbox's cap has trimmed since are gone."""
        entries = await self.redis.lrange(_alert_index(experiment_id), 0, count - 1)
        if not entries:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.xrange(ALERT_OUTBOX, min=entry, max=entry, count=1)
            found = await pipe.execute()
        return [json.loads(fields["alert"]) for reply in found for _, fields in reply]

    @translated
    async def open_alerts(self) -> dict[str, str]:
        """Episode → the id of the alert that opened it, for every episode not cleared."""
        return await self.redis.hgetall(ALERT_OPEN)

    @translated
    async def close_alerts(self, episodes: Iterable[str]) -> None:
        """The episodes' conditions cleared: their next occurrence raises a new alert."""
        episodes = list(episodes)
        if episodes:
            await self.redis.hdel(ALERT_OPEN, *episodes)

    @translated
    async def hold_lease(self, token: str, ttl_ms: int, lease: str = "alerts") -> bool:
        """Take a lease (``LEASES``: alerts, retrain), or renew it when ``token`` holds it; False when
        another holds it."""
        return bool(await self._hold_lease(keys={"lease": LEASES[lease]}, args={"token": token, "ttl": ttl_ms}))

    @translated
    async def release_lease(self, token: str, lease: str = "alerts") -> bool:
        return bool(await self._release_lease(keys={"lease": LEASES[lease]}, args={"token": token}))

    @translated
    async def ensure_alert_group(self) -> None:
        """The outbox's consumer group, created (with the stream) unless it exists. From the
        stream's start: alerts raised before any router delivered are delivered too."""
        try:
            await self.redis.xgroup_create(ALERT_OUTBOX, ALERT_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @translated
    async def read_alerts(self, consumer: str, count: int) -> list[tuple[str, dict[str, str]]]:
        """Up to ``count`` alerts no consumer has read yet, now pending for ``consumer``: (entry id, fields)."""
        replies = await self.redis.xreadgroup(ALERT_GROUP, consumer, {ALERT_OUTBOX: ">"}, count=count)
        return [entry for _, entries in replies or [] for entry in entries]

    @translated
    async def claim_alerts(self, consumer: str, start: str,
                           count: int) -> tuple[str, list[tuple[str, dict[str, str]]], list[str]]:
        """Pending alerts from ``start`` on, whoever read them, made ``consumer``'s (XAUTOCLAIM):
        the next start ('0-0' once the whole list was walked), the entries, and the ids of
        pending entries the stream's cap removed."""
        reply = await self.redis.xautoclaim(ALERT_OUTBOX, ALERT_GROUP, consumer, 0, start_id=start, count=count)
        following, entries = reply[0], reply[1]
        deleted = list(reply[2]) if len(reply) > 2 else []
        return following, [(entry_id, fields) for entry_id, fields in entries if fields], deleted

    @translated
    async def prune_alert_consumers(self, keep: str) -> None:
        """Forget the group's consumers other than ``keep`` that hold no pending alert (each
        router process reads under a name of its own, so restarts would pile them up)."""
        for consumer in await self.redis.xinfo_consumers(ALERT_OUTBOX, ALERT_GROUP):
            if consumer["name"] != keep and not consumer["pending"]:
                await self.redis.xgroup_delconsumer(ALERT_OUTBOX, ALERT_GROUP, consumer["name"])

    @translated
    async def alert_deliveries(self, alert_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Alert id → webhook id → ``delivered`` or ``dropped``: the receivers each alert is done with."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id in alert_ids:
                pipe.hgetall(_alert_sent(alert_id))
            return dict(zip(alert_ids, await pipe.execute()))

    @translated
    async def record_deliveries(self, outcomes: dict[str, dict[str, str]], ttl: int) -> None:
        """Write what each alert's receivers got (alert id → webhook id → outcome); kept ``ttl``
        seconds, past the age at which an alert is given up."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id, done in outcomes.items():
                pipe.hset(_alert_sent(alert_id), mapping=done)
                pipe.expire(_alert_sent(alert_id), ttl)
            await pipe.execute()

    @translated
    async def finish_alerts(self, finished: Sequence[tuple[str, str]]) -> None:
        """Acknowledge (entry id, alert id) pairs: every receiver is done with them."""
        if not finished:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(ALERT_OUTBOX, ALERT_GROUP, *(entry_id for entry_id, _ in finished))
            pipe.delete(*(_alert_sent(alert_id) for _, alert_id in finished if alert_id))
            await pipe.execute()

    @translated
    async def alert_backlog(self) -> int:
        """Alerts not yet delivered to every receiver: read but unacknowledged, plus unread."""
        for group in await self.redis.xinfo_groups(ALERT_OUTBOX):
            if group["name"] == ALERT_GROUP:
                return int(group["pending"]) + int(group.get("lag") or 0)
        return int(await self.redis.xlen(ALERT_OUTBOX))

    @translated
    async def recent_alerts(self, count: int = 100) -> list[dict]:
        """The latest alerts raised, newest first (as JSON documents)."""
        return [json.loads(fields["alert"]) for _, fields in await self.redis.xrevrange(ALERT_OUTBOX, count=count)]

    @translated
    async def add_webhook(self, webhook_id: str, doc: str, limit: int) -> bool:
        """Store a new webhook; False when the id is taken. ``WebhookLimit`` past ``limit`` webhooks."""
        if await self.redis.hlen(WEBHOOKS) >= limit:
            raise WebhookLimit(limit)
        return bool(await self.redis.hsetnx(WEBHOOKS, webhook_id, doc))

    @translated
    async def webhooks(self) -> dict[str, str]:
        """Webhook id → the webhook as JSON."""
        return await self.redis.hgetall(WEBHOOKS)

    @translated
    async def delete_webhook(self, webhook_id: str) -> bool:
        return bool(await self.redis.hdel(WEBHOOKS, webhook_id))


def _alert_sent(alert_id: str) -> str:
    return f"{{croupier:alerts}}:sent:{alert_id}"


def _alert_index(experiment_id: str) -> str:
    return f"{{croupier:alerts}}:experiment:{experiment_id}"


class WebhookLimit(Exception):
    pass
