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


def _meta(env: str, help: str) -> dict[str, str]:
    return {"env": env, "help": help}


@dataclass(frozen=True)
class Settings:
    redis_url: str = field(default="redis://127.0.0.1:6379/0", metadata=_meta(
        "CROUPIER_REDIS_URL", "Redis holding the registry, the bandit statistics and the event streams."))
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
    cookie_prefix: str = field(default="croupier_", metadata=_meta(
        "CROUPIER_COOKIE_PREFIX", "Assignment cookies are named prefix + experiment id."))
    cookie_max_age: int = field(default=90 * 86400, metadata=_meta(
        "CROUPIER_COOKIE_MAX_AGE", "Seconds an assignment stays valid."))
    cookie_secure: bool = field(default=False, metadata=_meta(
        "CROUPIER_COOKIE_SECURE", "Mark cookies Secure (set it when the site is served over HTTPS)."))
    default_upstream: str = field(default="", metadata=_meta(
        "CROUPIER_DEFAULT_UPSTREAM", "Upstream for paths no experiment owns (empty: NGINX's default)."))
    decision_cache_seconds: int = field(default=5, metadata=_meta(
        "CROUPIER_DECISION_CACHE_SECONDS", "Seconds NGINX may reuse the answer for a returning visitor's valid "
        "cookie (0: ask the router every time). Pausing a variant reaches its returning visitors within this."))
    refresh_interval: float = field(default=0.5, metadata=_meta(
        "CROUPIER_REFRESH_INTERVAL", "Seconds between background refreshes of the in-memory snapshot."))
    flush_interval: float = field(default=0.2, metadata=_meta(
        "CROUPIER_FLUSH_INTERVAL", "Seconds between pipelined writes of recorded assignments."))
    max_pending: int = field(default=100_000, metadata=_meta(
        "CROUPIER_MAX_PENDING", "Assignments kept in memory while Redis is away; older ones are dropped."))
    stream_maxlen: int = field(default=1_000_000, metadata=_meta(
        "CROUPIER_STREAM_MAXLEN", "Approximate length each experiment's event stream is capped at."))
    bucket_seconds: int = field(default=60, metadata=_meta(
        "CROUPIER_BUCKET_SECONDS", "Width of the time buckets that charts and period statistics read."))
    monte_carlo_draws: int = field(default=4000, metadata=_meta(
        "CROUPIER_MONTE_CARLO_DRAWS", "Posterior draws used to estimate each arm's selection probability."))
    beacon_max_bytes: int = field(default=4096, metadata=_meta(
        "CROUPIER_BEACON_MAX_BYTES", "Largest beacon body accepted."))
    bot_pattern: str = field(default=DEFAULT_BOT_PATTERN, metadata=_meta(
        "CROUPIER_BOT_PATTERN", "Case-insensitive regular expression matched against User-Agent."))
    redis_timeout: float = field(default=0.5, metadata=_meta(
        "CROUPIER_REDIS_TIMEOUT", "Seconds a Redis call may take before it counts as failed."))
    log_level: str = field(default="info", metadata=_meta(
        "CROUPIER_LOG_LEVEL", "debug, info, warning or error."))

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("port", 0 <= self.port <= 65535, "must be a port number (0-65535)"),
            ("workers", self.workers >= 1, "must be at least 1"),
            ("cookie_max_age", self.cookie_max_age > 0, "must be positive"),
            ("decision_cache_seconds", 0 <= self.decision_cache_seconds <= 3600, "must be in [0, 3600]"),
            ("refresh_interval", 0 < self.refresh_interval <= 60, "must be in (0, 60] seconds"),
            ("flush_interval", 0 < self.flush_interval <= 60, "must be in (0, 60] seconds"),
            ("max_pending", self.max_pending >= 1, "must be at least 1"),
            ("stream_maxlen", self.stream_maxlen >= 100, "must be at least 100"),
            ("bucket_seconds", self.bucket_seconds >= 1, "must be at least 1"),
            ("monte_carlo_draws", 100 <= self.monte_carlo_draws <= 1_000_000, "must be in [100, 1000000]"),
            ("beacon_max_bytes", 64 <= self.beacon_max_bytes <= 1_048_576, "must be in [64, 1048576]"),
            ("redis_timeout", 0 < self.redis_timeout <= 30, "must be in (0, 30] seconds"),
            ("log_level", self.log_level in ("debug", "info", "warning", "error"),
             "must be debug, info, warning or error"),
            ("redis_url", self.redis_url.startswith(("redis://", "rediss://", "unix://")),
             "must start with redis://, rediss:// or unix://"),
            ("secret_id", re.fullmatch(r"[A-Za-z0-9_-]{1,16}", self.secret_id) is not None,
             "must be 1-16 letters, digits, '_' or '-'"),
            ("cookie_prefix", re.fullmatch(r"[A-Za-z0-9_-]{1,32}", self.cookie_prefix) is not None,
             "must be 1-32 letters, digits, '_' or '-'"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise SettingsError(f"{_env_name(name)}={getattr(self, name)!r} {why}")
        try:
            re.compile(self.bot_pattern)
        except re.error as exc:
            raise SettingsError(f"CROUPIER_BOT_PATTERN is not a valid regular expression: {exc}") from None
        self.signing_keys()  # validates CROUPIER_OLD_SECRETS
        if self.secret and len(self.secret) < 16:
            raise SettingsError("CROUPIER_SECRET must be at least 16 characters")

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

    def signing_keys(self) -> dict[str, bytes]:
        """Key id → key; the current key first."""
        keys = {self.secret_id: self.secret.encode()}
        for item in filter(None, (part.strip() for part in self.old_secrets.split(","))):
            kid, sep, key = item.partition(":")
            if not sep or not kid or len(key) < 16:
                raise SettingsError("CROUPIER_OLD_SECRETS must be 'id:key,...' with keys of 16+ characters")
            keys.setdefault(kid, key.encode())
        return keys


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


def settings_table() -> str:
    """The settings as a Markdown table (the README's table is generated from this)."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for f in fields(Settings):
        default = "(long pattern)" if f.name == "bot_pattern" else f"`{f.default}`" if f.default != "" else "(unset)"
        rows.append(f"| `{f.metadata['env']}` | {default} | {f.metadata['help']} |")
    return "\n".join(rows)
