"""The router's settings: one frozen object read once from ``CROUPIER_*`` variables.

Everything else receives a ``Settings`` as an argument; tests build one directly.
A bad value stops start-up with a ``SettingsError`` that names the variable.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from croupier.router.capacity_leases import BLOCK, IDLE, TTL
from croupier.router.drift import DEFAULT_MIN_COUNT, DEFAULT_THRESHOLD, MIN_MIX_VIEWS, PSI_SIGNIFICANT
from croupier.router.rules import COOKIE_PREFIX, DEFAULT_COOKIE_PREFIX, DEFAULT_GEO_HEADER, GEO_HEADER, ID, PASS_KEY, UPSTREAM

log = logging.getLogger("croupier.settings")

# Crawlers, link previewers, monitors and headless tools: they get control and
# are never counted, so they cannot skew the bandit.
DEFAULT_BOT_PATTERN = (
    r"bot|crawl|spider|slurp|bingpreview|facebookexternalhit|embedly|"
    r"quora link preview|outbrain|pinterest|vkshare|w3c_validator|"
    r"headlesschrome|phantomjs|lighthouse|pingdom|uptimerobot|statuscake|"
    r"curl/|wget/|python-requests|go-http-client|apache-httpclient|okhttp"
)


class SettingsError(ValueError):
    """A ``CROUPIER_*`` variable has a value the router cannot run with."""


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: one server, a Redis Cluster, or a master found through Sentinel."""

    mode: str  # single | cluster | sentinel
    url: str  # single: the URL as redis-py reads it
    nodes: tuple[tuple[str, int], ...] = ()  # cluster: startup nodes; sentinel: the sentinels
    service: str = ""  # sentinel: the monitored master's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


_REDIS_SCHEMES = {"redis": "single", "rediss": "single", "unix": "single", "redis+cluster": "cluster",
                  "rediss+cluster": "cluster", "redis+sentinel": "sentinel", "rediss+sentinel": "sentinel"}


def parse_redis_url(url: str) -> RedisTarget:
    """``redis+cluster://[user:pass@]host:port,host:port`` and
    ``redis+sentinel://[user:pass@]host:port,host:port/service[/db]`` besides redis-py's own URLs.
    Credentials are the Redis servers' (sentinels are assumed to need none)."""
    def bad(why: str) -> SettingsError:
        shown = re.sub(r"//[^/]*@", "//***@", url)  # never echo a password into logs
        return SettingsError(f"CROUPIER_REDIS_URL={shown!r} {why}")

    scheme, sep, rest = url.partition("://")
    mode = _REDIS_SCHEMES.get(scheme.lower()) if sep else None
    if mode is None:
        raise bad("must start with redis://, rediss://, unix://, redis+cluster:// or redis+sentinel://")
    if mode == "single":
        return RedisTarget("single", url)
    tls = scheme.lower().startswith("rediss")
    if "?" in rest or "#" in rest:
        raise bad(f"cannot take query options in {scheme}:// URLs")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username, password = (user or None, secret) if colon else (None, user)
    default_port = 6379 if mode == "cluster" else 26379
    nodes = tuple(_host_port(part.strip(), default_port, bad) for part in hosts.split(","))
    if mode == "cluster":
        if path.strip("/"):
            raise bad("cannot name a database: Redis Cluster has only database 0")
        return RedisTarget("cluster", url, nodes, username=username, password=password, tls=tls)
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise bad("must name the master after the sentinels: redis+sentinel://host:port/<service>[/<db>]")
    if db and not db.isdigit():
        raise bad(f"has database {db!r}; it must be a number")
    return RedisTarget("sentinel", url, nodes, service, int(db or 0), username, password, tls)


def _host_port(text: str, default_port: int, bad) -> tuple[str, int]:
    if text.startswith("["):  # [::1]:6379
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise bad(f"has an empty host in {text!r}; list nodes as host:port,host:port")
    if port and not (port.isdigit() and 0 < int(port) <= 65535):
        raise bad(f"has a bad port in {text!r}")
    return host, int(port or default_port)


def _meta(env: str, help: str) -> dict[str, str]:
    return {"env": env, "help": help}


@dataclass(frozen=True)
class Settings:
    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata=_meta(
        "CROUPIER_REDIS_URL", "Redis holding the registry, the bandit statistics and the event streams: "
        "`redis://` or `rediss://` (one server), `redis+cluster://host:port,host:port` (Redis Cluster), "
        "`redis+sentinel://host:port,host:port/service[/db]` (Sentinel)."))
    host: str = field(default="127.0.0.1", metadata=_meta(
        "CROUPIER_HOST", "Address the router listens on."))
    port: int = field(default=8000, metadata=_meta(
        "CROUPIER_PORT", "Port the router listens on."))
    workers: int = field(default=1, metadata=_meta(
        "CROUPIER_WORKERS", "Router worker processes (uvicorn workers)."))
    secret: str = field(default="", metadata=_meta(
        "CROUPIER_SECRET", "HMAC key for assignment cookies; every router of a site must share it. "
        "Generated (and logged as a warning) when unset."))
    secret_id: str = field(default="k1", metadata=_meta(
        "CROUPIER_SECRET_ID", "Key id written into new cookies, so keys can be rotated."))
    old_secrets: str = field(default="", metadata=_meta(
        "CROUPIER_OLD_SECRETS", "Retired keys still accepted, as 'id:key,id:key'."))
    admin_token: str = field(default="", metadata=_meta(
        "CROUPIER_ADMIN_TOKEN", "Bearer token for /api/v1 and the dashboard; unset disables them."))
    cookie_prefix: str = field(default=DEFAULT_COOKIE_PREFIX, metadata=_meta(
        "CROUPIER_COOKIE_PREFIX", "Assignment cookies are named prefix + experiment id."))
    cookie_max_age: int = field(default=90 * 86400, metadata=_meta(
        "CROUPIER_COOKIE_MAX_AGE", "Seconds an assignment stays valid."))
    cookie_secure: bool = field(default=False, metadata=_meta(
        "CROUPIER_COOKIE_SECURE", "Mark cookies Secure (set it when the site is served over HTTPS)."))
    default_upstream: str = field(default="", metadata=_meta(
        "CROUPIER_DEFAULT_UPSTREAM", "Upstream for paths no experiment owns (empty: NGINX's default)."))
    decide_port: int = field(default=0, metadata=_meta(
        "CROUPIER_DECIDE_PORT", "Port of the decide listener, a lean HTTP/1.1 endpoint for NGINX's decide "
        "subrequests beside the app, on CROUPIER_HOST (render NGINX with these ports as its decide routers); "
        "0: off, decide is answered on CROUPIER_PORT."))
    pass_key: str = field(default="", metadata=_meta(
        "CROUPIER_PASS_KEY", "Key shared with NGINX (32-128 letters, digits, '_' or '-') for the routing passes "
        "that let NGINX send a returning visitor to their variant without asking the router; NGINX reads it "
        "from the file croupier.nginx.render includes (Options.pass_key_file). Unset: no passes, every page view asks "
        "the router."))
    pass_seconds: int = field(default=30, metadata=_meta(
        "CROUPIER_PASS_SECONDS", "Seconds a routing pass is valid (0: issue none). Pausing or ending a variant "
        "reaches its returning visitors within this plus the refresh interval."))
    refresh_interval: float = field(default=0.5, metadata=_meta(
        "CROUPIER_REFRESH_INTERVAL", "Seconds between background refreshes of the in-memory snapshot."))
    flush_interval: float = field(default=0.2, metadata=_meta(
        "CROUPIER_FLUSH_INTERVAL", "Seconds between pipelined writes of recorded assignments."))
    max_pending: int = field(default=100_000, metadata=_meta(
        "CROUPIER_MAX_PENDING", "Assignments kept in memory while Redis is away; older ones are dropped."))
    # per-variant capacity (router/capacity_leases.py): what each router reserves of a capped variant
    capacity_block: int = field(default=BLOCK, metadata=_meta(
        "CROUPIER_CAPACITY_BLOCK", "Units of a capped variant's capacity a router reserves at a time for its web and "
        "channels decisions. Larger: fewer refusals under heavy traffic; smaller: fewer units held back from "
        "batches and other routers as the cap nears."))
    capacity_idle: float = field(default=IDLE, metadata=_meta(
        "CROUPIER_CAPACITY_IDLE", "Seconds without a decision wanting a capped variant after which a router gives "
        "its reservation back."))
    capacity_ttl: float = field(default=TTL, metadata=_meta(
        "CROUPIER_CAPACITY_TTL", "Seconds a router's reservation lives in Redis unless renewed (every "
        "CROUPIER_REFRESH_INTERVAL): the units a stopped router held are free again after it."))
    stream_maxlen: int = field(default=1_000_000, metadata=_meta(
        "CROUPIER_STREAM_MAXLEN", "Approximate length each experiment's event stream is capped at."))
    # the event archive (croupier-archive, router/archive.py): with it on, the archiver trims the
    # streams past what it archived, and the routers' own cap is only a safety net
    archive: bool = field(default=False, metadata=_meta(
        "CROUPIER_ARCHIVE", "on: an archiver (croupier-archive) writes the event streams to Parquet and trims "
        "them past what it archived; the routers then cap each stream at CROUPIER_ARCHIVE_MAXLEN instead of "
        "CROUPIER_STREAM_MAXLEN, and the router holding the alerts lease exports the archive's backlog "
        "(croupier_archive_backlog_entries). Set it on every router and the archiver alike."))
    archive_maxlen: int = field(default=5_000_000, metadata=_meta(
        "CROUPIER_ARCHIVE_MAXLEN", "With CROUPIER_ARCHIVE on: the approximate length past which the routers trim "
        "a stream even if the archiver has not archived it (the archiver down that long): entries trimmed "
        "unarchived are lost to the archive. At least CROUPIER_STREAM_MAXLEN."))
    archive_keep_seconds: int = field(default=3600, metadata=_meta(
        "CROUPIER_ARCHIVE_KEEP_SECONDS", "Seconds archived entries stay in the stream before the archiver trims "
        "them (readers of the stream alone see this far back)."))
    archive_dir: str = field(default="", metadata=_meta(
        "CROUPIER_ARCHIVE_DIR", "Directory of the Parquet archive, for croupier-archive, croupier-ope and "
        "croupier-model; empty: run/archive of the local stack."))
    bucket_seconds: int = field(default=60, metadata=_meta(
        "CROUPIER_BUCKET_SECONDS", "Width of the time buckets that charts and period statistics read."))
    beacon_max_bytes: int = field(default=4096, metadata=_meta(
        "CROUPIER_BEACON_MAX_BYTES", "Largest beacon body accepted."))
    beacon_rate: float = field(default=20.0, metadata=_meta(
        "CROUPIER_BEACON_RATE", "Beacon events per second one client address may send to one router process "
        "(each worker and router keeps its own count; more get 429); "
        "0 turns the limit off. Raise it when many visitors share an address (carrier NAT, offices)."))
    beacon_burst: int = field(default=60, metadata=_meta(
        "CROUPIER_BEACON_BURST", "Beacon events one client address may send at once before "
        "CROUPIER_BEACON_RATE applies."))
    bot_pattern: str = field(default=DEFAULT_BOT_PATTERN, metadata=_meta(
        "CROUPIER_BOT_PATTERN", "Case-insensitive regular expression matched against User-Agent."))
    redis_timeout: float = field(default=0.5, metadata=_meta(
        "CROUPIER_REDIS_TIMEOUT", "Seconds a Redis call may take before it counts as failed."))
    log_level: str = field(default="info", metadata=_meta(
        "CROUPIER_LOG_LEVEL", "debug, info, warning or error."))
    geo_header: str = field(default=DEFAULT_GEO_HEADER, metadata=_meta(
        "CROUPIER_GEO_HEADER", "Header carrying the visitor's '<country>;<city>' from the edge. NGINX's decide "
        "location overwrites it on every request from $croupier_geo_country/$croupier_geo_city (empty unless "
        "the deployment sets them from a trusted source), so a client's own copy never counts; render NGINX "
        "with the same name (croupier.nginx.render Options.geo_header)."))
    context_utc_offset: int = field(default=0, metadata=_meta(
        "CROUPIER_CONTEXT_UTC_OFFSET", "Minutes added to UTC for the hour-of-day and weekday of a visitor's "
        "context (e.g. 60 for CET)."))
    max_segments: int = field(default=50, metadata=_meta(
        "CROUPIER_MAX_SEGMENTS", "Segments per experiment that get a bandit of their own (the busiest); "
        "visitors of any other segment get the experiment-wide bandit."))
    api_keys: str = field(default="", metadata=_meta(
        "CROUPIER_API_KEYS", "Keys for the channels API (/api/v1/decide, /api/v1/conversions), as "
        "'tenant:key,tenant:key'; a key acts only on its tenant's experiments ('default' is the experiments "
        "without a tenant). Keys of 24+ characters; unset disables the channels API."))
    # alerts (router/alerts.py, router/monitor.py): one router at a time runs the monitor and
    # delivers to the webhooks, under a lease in Redis
    alerts: bool = field(default=True, metadata=_meta(
        "CROUPIER_ALERTS", "Whether this router may run the monitor and deliver alerts to the webhooks (one "
        "router at a time does, under a lease in Redis). Off: it never takes the lease; the webhooks API "
        "still answers."))
    monitor_interval: float = field(default=10.0, metadata=_meta(
        "CROUPIER_MONITOR_INTERVAL", "Seconds between the monitor's looks at the running experiments whose "
        "counters changed (sample-ratio mismatch and the other checks)."))
    # the monitor's drift checks (router/monitor_checks.py, router/drift.py), in time buckets
    # of CROUPIER_BUCKET_SECONDS
    drift_window: int = field(default=360, metadata=_meta(
        "CROUPIER_DRIFT_WINDOW", "Time buckets the rate-drift check looks back over (360: six hours of "
        "60-second buckets); a change older than this is no longer reported."))
    drift_threshold: float = field(default=DEFAULT_THRESHOLD, metadata=_meta(
        "CROUPIER_DRIFT_THRESHOLD", "Log-likelihood ratio above which the rate-drift check reports a change "
        "(16 gave no false alarm in 2 million stationary reruns; lower detects sooner and alarms more)."))
    drift_min_count: float = field(default=DEFAULT_MIN_COUNT, metadata=_meta(
        "CROUPIER_DRIFT_MIN_COUNT", "Conversions (and non-conversions) both sides of a candidate change must "
        "expect before the rate-drift check weighs it."))
    mix_recent: int = field(default=60, metadata=_meta(
        "CROUPIER_MIX_RECENT", "Time buckets whose traffic mix (the device classes' shares of the assignments) "
        "the mix check compares ..."))
    mix_reference: int = field(default=1440, metadata=_meta(
        "CROUPIER_MIX_REFERENCE", "... with that of up to this many time buckets before them."))
    mix_threshold: float = field(default=PSI_SIGNIFICANT, metadata=_meta(
        "CROUPIER_MIX_THRESHOLD", "Population stability index (PSI) above which the mix check reports a shift "
        "(0.2: the usual 'significant')."))
    mix_min_views: int = field(default=MIN_MIX_VIEWS, metadata=_meta(
        "CROUPIER_MIX_MIN_VIEWS", "Assignments each mix window needs before the mix check compares them."))
    alert_poll_interval: float = field(default=1.0, metadata=_meta(
        "CROUPIER_ALERT_POLL_INTERVAL", "Seconds between the delivering router's reads of the alert outbox "
        "(and renewals of its lease)."))
    alert_lease_seconds: float = field(default=15.0, metadata=_meta(
        "CROUPIER_ALERT_LEASE_SECONDS", "Seconds the alerts lease lasts unless renewed: how long alerts wait "
        "after the delivering router dies before another takes over (at least 3 x "
        "CROUPIER_ALERT_POLL_INTERVAL). A router stopped gracefully gives it up at once."))
    alert_timeout: float = field(default=5.0, metadata=_meta(
        "CROUPIER_ALERT_TIMEOUT", "Seconds a webhook may take to connect and to answer each read before the "
        "attempt counts as failed."))
    alert_retry_base: float = field(default=1.0, metadata=_meta(
        "CROUPIER_ALERT_RETRY_BASE", "Seconds before the first retry of a failed delivery; each retry waits "
        "twice as long as the one before, up to CROUPIER_ALERT_RETRY_MAX, less up to half at random."))
    alert_retry_max: float = field(default=300.0, metadata=_meta(
        "CROUPIER_ALERT_RETRY_MAX", "The longest wait between two attempts to deliver an alert to one webhook."))
    alert_max_age: float = field(default=86_400.0, metadata=_meta(
        "CROUPIER_ALERT_MAX_AGE", "Seconds after an alert was raised when a webhook that has not taken it is "
        "given up on (counted as dropped and logged)."))
    alert_concurrency: int = field(default=8, metadata=_meta(
        "CROUPIER_ALERT_CONCURRENCY", "Webhook requests in flight at once."))
    alert_max_inflight: int = field(default=1000, metadata=_meta(
        "CROUPIER_ALERT_MAX_INFLIGHT", "Alerts the delivering router holds in memory at once; the rest wait "
        "in Redis."))
    alert_stream_maxlen: int = field(default=10_000, metadata=_meta(
        "CROUPIER_ALERT_STREAM_MAXLEN", "Approximate length the alert outbox stream is capped at; an alert "
        "trimmed before every webhook took it counts as dropped."))
    # the conversion model kept current (router/retrainer.py), one router at a time under a lease
    retrain_interval: float = field(default=3600.0, metadata=_meta(
        "CROUPIER_RETRAIN_INTERVAL", "Seconds between scheduled training rounds of the conversion model of each "
        "running experiment that uses one (model_weight > 0) and has new events; a rate-drift alert starts a "
        "round sooner. A candidate replaces the current model only when better on the most recent held-out "
        "events (docs/model.md). 0 turns retraining off."))
    retrain_max_events: int = field(default=200_000, metadata=_meta(
        "CROUPIER_RETRAIN_MAX_EVENTS", "The latest events (assignments and conversions) a training round reads "
        "at most: bounds its memory and time."))
    retrain_holdout: float = field(default=0.2, metadata=_meta(
        "CROUPIER_RETRAIN_HOLDOUT", "The share of the most recent assignments a training round holds out to "
        "validate the candidate and the current model on; never trained on."))

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("port", 0 <= self.port <= 65535, "must be a port number (0-65535)"),
            ("decide_port", 0 <= self.decide_port <= 65535 and (self.decide_port != self.port or self.port == 0),
             "must be a port number (0-65535) other than CROUPIER_PORT"),
            ("workers", self.workers >= 1, "must be at least 1"),
            ("cookie_max_age", self.cookie_max_age > 0, "must be positive"),
            ("pass_seconds", 0 <= self.pass_seconds <= 3600, "must be in [0, 3600]"),
            ("refresh_interval", 0 < self.refresh_interval <= 60, "must be in (0, 60] seconds"),
            ("flush_interval", 0 < self.flush_interval <= 60, "must be in (0, 60] seconds"),
            ("capacity_block", 1 <= self.capacity_block <= 1_000_000, "must be in [1, 1000000] units"),
            ("capacity_idle", 0 < self.capacity_idle <= 3600, "must be in (0, 3600] seconds"),
            ("capacity_ttl", 1 <= self.capacity_ttl <= 3600 and self.capacity_ttl >= 3 * self.refresh_interval,
             "must be in [1, 3600] seconds and at least 3 x CROUPIER_REFRESH_INTERVAL"),
            ("max_pending", self.max_pending >= 1, "must be at least 1"),
            ("stream_maxlen", self.stream_maxlen >= 100, "must be at least 100"),
            ("archive_maxlen", self.archive_maxlen >= self.stream_maxlen,
             "must be at least CROUPIER_STREAM_MAXLEN"),
            ("archive_keep_seconds", 0 <= self.archive_keep_seconds <= 30 * 86_400,
             "must be in [0, 2592000] seconds"),
            ("bucket_seconds", self.bucket_seconds >= 1, "must be at least 1"),
            ("beacon_max_bytes", 64 <= self.beacon_max_bytes <= 1_048_576, "must be in [64, 1048576]"),
            ("beacon_rate", 0 <= self.beacon_rate <= 1_000_000, "must be in [0, 1000000] events per second"),
            ("beacon_burst", 1 <= self.beacon_burst <= 1_000_000, "must be in [1, 1000000]"),
            ("redis_timeout", 0 < self.redis_timeout <= 30, "must be in (0, 30] seconds"),
            ("geo_header", GEO_HEADER.ok(self.geo_header), GEO_HEADER.message),
            ("context_utc_offset", -840 <= self.context_utc_offset <= 840, "must be in [-840, 840] minutes"),
            ("max_segments", 1 <= self.max_segments <= 10_000, "must be in [1, 10000]"),
            ("monitor_interval", 0 < self.monitor_interval <= 3600, "must be in (0, 3600] seconds"),
            ("drift_window", 2 <= self.drift_window <= 100_000, "must be in [2, 100000] buckets"),
            ("drift_threshold", 0 < self.drift_threshold <= 1000, "must be in (0, 1000]"),
            ("drift_min_count", 1 <= self.drift_min_count <= 1_000_000, "must be in [1, 1000000]"),
            ("mix_recent", 1 <= self.mix_recent <= 100_000, "must be in [1, 100000] buckets"),
            ("mix_reference", 1 <= self.mix_reference <= 100_000, "must be in [1, 100000] buckets"),
            ("mix_threshold", 0 < self.mix_threshold <= 10, "must be in (0, 10]"),
            ("mix_min_views", 1 <= self.mix_min_views <= 100_000_000, "must be in [1, 100000000]"),
            ("alert_poll_interval", 0 < self.alert_poll_interval <= 60, "must be in (0, 60] seconds"),
            ("alert_lease_seconds", 0.3 <= self.alert_lease_seconds <= 600
             and self.alert_lease_seconds >= 3 * self.alert_poll_interval,
             "must be in [0.3, 600] seconds and at least 3 x CROUPIER_ALERT_POLL_INTERVAL"),
            ("alert_timeout", 0 < self.alert_timeout <= 60, "must be in (0, 60] seconds"),
            ("alert_retry_base", 0 < self.alert_retry_base <= 3600, "must be in (0, 3600] seconds"),
            ("alert_retry_max", self.alert_retry_base <= self.alert_retry_max <= 86_400,
             "must be in [CROUPIER_ALERT_RETRY_BASE, 86400] seconds"),
            ("alert_max_age", 1 <= self.alert_max_age <= 30 * 86_400, "must be in [1, 2592000] seconds"),
            ("alert_concurrency", 1 <= self.alert_concurrency <= 256, "must be in [1, 256]"),
            ("alert_max_inflight", 1 <= self.alert_max_inflight <= 100_000, "must be in [1, 100000]"),
            ("alert_stream_maxlen", self.alert_stream_maxlen >= 100, "must be at least 100"),
            ("retrain_interval", self.retrain_interval == 0 or 1 <= self.retrain_interval <= 30 * 86_400,
             "must be 0 (off) or in [1, 2592000] seconds"),
            ("retrain_max_events", 1000 <= self.retrain_max_events <= 10_000_000, "must be in [1000, 10000000]"),
            ("retrain_holdout", 0.05 <= self.retrain_holdout <= 0.5, "must be in [0.05, 0.5]"),
            ("log_level", self.log_level in ("debug", "info", "warning", "error"),
             "must be debug, info, warning or error"),
            ("secret_id", re.fullmatch(r"[A-Za-z0-9_-]{1,16}", self.secret_id) is not None,
             "must be 1-16 letters, digits, '_' or '-'"),
            ("cookie_prefix", COOKIE_PREFIX.ok(self.cookie_prefix), COOKIE_PREFIX.message),
            ("default_upstream", self.default_upstream == "" or UPSTREAM.ok(self.default_upstream),
             f"{UPSTREAM.message}, or empty"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise SettingsError(f"{_env_name(name)}={getattr(self, name)!r} {why}")
        self.redis_target()  # validates CROUPIER_REDIS_URL
        try:
            re.compile(self.bot_pattern)
        except re.error as exc:
            raise SettingsError(f"CROUPIER_BOT_PATTERN is not a valid regular expression: {exc}") from None
        self.signing_keys()  # validates CROUPIER_OLD_SECRETS
        self.api_key_tenants()  # validates CROUPIER_API_KEYS
        if self.secret and len(self.secret) < 16:
            raise SettingsError("CROUPIER_SECRET must be at least 16 characters")
        if self.pass_key and not PASS_KEY.ok(self.pass_key):  # a key is never echoed
            raise SettingsError(PASS_KEY.error("CROUPIER_PASS_KEY"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.metadata["env"], raw, type(f.default))
        settings = cls(**values)
        if not settings.secret:
            log.warning("CROUPIER_SECRET is unset: using a random key, so assignment cookies "
                        "will not survive a restart or be shared between routers")
            settings = cls(**{**values, "secret": secrets.token_urlsafe(32)})
        return settings

    def redis_target(self) -> RedisTarget:
        return parse_redis_url(self.redis_url)

    def signing_keys(self) -> dict[str, bytes]:
        """Key id → key; the current key first."""
        keys = {self.secret_id: self.secret.encode()}
        for item in filter(None, (part.strip() for part in self.old_secrets.split(","))):
            kid, sep, key = item.partition(":")
            if not sep or not kid or len(key) < 16:
                raise SettingsError("CROUPIER_OLD_SECRETS must be 'id:key,...' with keys of 16+ characters")
            keys.setdefault(kid, key.encode())
        return keys


    def api_key_tenants(self) -> tuple[tuple[str, str], ...]:
        """(key, tenant) pairs from CROUPIER_API_KEYS; tenant '' is the default tenant."""
        pairs: list[tuple[str, str]] = []
        for item in filter(None, (part.strip() for part in self.api_keys.split(","))):
            tenant, sep, key = item.partition(":")
            if not sep or not ID.ok(tenant):
                raise SettingsError(f"CROUPIER_API_KEYS must be 'tenant:key,...'; an entry's tenant {tenant!r} "
                                    f"{ID.message}")
            if re.fullmatch(r"[A-Za-z0-9_.~+/=-]{24,200}", key) is None:
                raise SettingsError(f"CROUPIER_API_KEYS: the key of tenant {tenant!r} must be 24-200 letters, "
                                    "digits or '_.~+/=-'")
            if any(key == known for known, _ in pairs):
                raise SettingsError(f"CROUPIER_API_KEYS: tenant {tenant!r} reuses a key given to another entry")
            pairs.append((key, "" if tenant == "default" else tenant))
        return tuple(pairs)


def _env_name(field_name: str) -> str:
    return next(f.metadata["env"] for f in fields(Settings) if f.name == field_name)


def _parse(env: str, raw: str, kind: type) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        return kind(raw.strip()) if kind in (int, float) else raw
    except ValueError:
        raise SettingsError(f"{env}={raw!r} is not a valid {kind.__name__}") from None
