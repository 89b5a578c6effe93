"""A visitor's context, from what NGINX forwards to the decide subrequest. Pure.

Fields: device class (User-Agent), traffic source (Referer host class, or the
``utm_medium`` of the original URI) with ``utm_source``/``utm_medium``/
``utm_campaign``, country and city (the edge's geo header), language (first
Accept-Language tag), hour of day and day of week (UTC plus a fixed offset),
and whether the visitor holds any valid Croupier cookie (returning).

Every value is a short lowercase token (``[a-z0-9._-]``, at most 32 characters),
safe in segment ids, Redis field names and cookies. Extraction never fails a
decision: any error gives ``EMPTY``.

Geo trust: the geo header is only ever what NGINX set. The decide location
overwrites it on every subrequest with ``$croupier_geo_country;$croupier_geo_city``
(empty unless the deployment maps those variables from a trusted source, such
as a GeoIP module or a CDN header), so a client's own copy never reaches the
router; values that are not a two-letter country code are dropped.
"""

from __future__ import annotations

import functools
import logging
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("croupier.context")

FIELDS = ("device", "source", "utm_source", "utm_medium", "utm_campaign", "country", "city", "language",
          "hour", "weekday", "returning")
DEVICES = ("mobile", "tablet", "desktop", "bot", "unknown")
SOURCES = ("search", "social", "email", "direct", "other")

_MAX = 32
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_TABLET = ("ipad", "tablet", "kindle", "silk/", "playbook", "nexus 7", "nexus 9", "nexus 10", "sm-t", "sm-x")
_MOBILE = ("mobi", "iphone", "ipod", "android", "windows phone", "blackberry", "bb10", "opera mini")
_DESKTOP = ("windows nt", "macintosh", "mac os x", "x11", "linux", "cros")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
# referrer host → source class; matched on the registrable part of the host
_SEARCH = ("google.", "bing.", "duckduckgo.", "yahoo.", "baidu.", "yandex.", "ecosia.", "search.brave.",
           "startpage.", "qwant.", "naver.", "seznam.")
_SOCIAL = ("facebook.", "fb.", "t.co", "twitter.", "x.com", "instagram.", "linkedin.", "lnkd.in", "reddit.",
           "pinterest.", "tiktok.", "youtube.", "snapchat.", "threads.net", "mastodon.", "bsky.", "vk.com")
_EMAIL = ("mail.google.", "outlook.", "mail.yahoo.", "webmail.", "mail.proton.", "mail.", "gmx.", "web.de")
_MEDIUM = {"email": "email", "e-mail": "email", "newsletter": "email",
           "social": "social", "social-media": "social", "social_network": "social", "paid-social": "social",
           "cpc": "search", "ppc": "search", "paidsearch": "search", "paid-search": "search", "organic": "search"}


@dataclass(frozen=True, slots=True)
class Context:
    device: str = ""
    source: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    country: str = ""
    city: str = ""
    language: str = ""
    hour: str = ""  # "0".."23", as text like every other field
    weekday: str = ""  # "mon".."sun"
    returning: str = ""  # "yes" | "no"

    def get(self, name: str) -> str:
        return getattr(self, name)


EMPTY = Context()
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def token(value: str) -> str:
    """A context value as a safe token: lowercase, ``[a-z0-9._-]``, at most 32 characters."""
    return _UNSAFE.sub("-", value.strip().lower())[:_MAX].strip("-")


@functools.lru_cache(maxsize=4096)  # a site sees few distinct User-Agents, again and again
def device_class(user_agent: str, is_bot: Callable[[str], object] | None = None) -> str:
    """mobile, tablet, desktop, bot (crawlers and tools) or unknown (no User-Agent).

    Substring tests on the lowercased string (Android without "mobile" is a tablet,
    as Google's own guidance for Android User-Agents has it)."""
    if not user_agent:
        return "unknown"
    if is_bot is not None and is_bot(user_agent):
        return "bot"
    ua = user_agent.lower()
    if any(m in ua for m in _TABLET) or ("android" in ua and "mobile" not in ua):
        return "tablet"
    if any(m in ua for m in _MOBILE):
        return "mobile"
    if any(m in ua for m in _DESKTOP):
        return "desktop"
    return "unknown"


def _host_of(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else ""
    host = rest.split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1].split(":", 1)[0].lower()
    return host.removeprefix("www.").removeprefix("m.")


def source_class(referer: str, own_host: str, utm_medium: str = "") -> str:
    """search, social, email, direct (none, or the site itself) or other; ``utm_medium`` wins when it says."""
    by_medium = _MEDIUM.get(utm_medium)
    if by_medium:
        return by_medium
    host = _host_of(referer) if referer else ""
    if not host or host == own_host.split(":", 1)[0].lower().removeprefix("www."):
        return "direct"
    return _host_class(host)


@functools.lru_cache(maxsize=4096)
def _host_class(host: str) -> str:
    for prefixes, label in ((_EMAIL, "email"), (_SEARCH, "search"), (_SOCIAL, "social")):
        for p in prefixes:
            if host.startswith(p) or f".{p}" in host or host == p.rstrip("."):
                return label
    return "other"


def utm(uri: str) -> tuple[str, str, str]:
    """``utm_source``, ``utm_medium`` and ``utm_campaign`` of a request URI (percent-decoding left out: tokens)."""
    query = uri.partition("?")[2]
    if "utm_" not in query:
        return "", "", ""
    found = {"utm_source": "", "utm_medium": "", "utm_campaign": ""}
    for pair in query.split("#", 1)[0].split("&"):
        name, _, value = pair.partition("=")
        if name in found and not found[name]:
            found[name] = token(value.replace("+", " ").replace("%20", " "))
    return found["utm_source"], found["utm_medium"], found["utm_campaign"]


def language(accept_language: str) -> str:
    """The primary subtag of the first Accept-Language tag (``de-CH,de;q=0.9`` → ``de``); ``*`` is none."""
    first = accept_language.split(",", 1)[0].split(";", 1)[0].strip()
    primary = first.split("-", 1)[0]
    return token(primary)[:8] if primary and primary != "*" else ""


def geo(value: str) -> tuple[str, str]:
    """Country and city from the edge's ``<country>;<city>`` header value; a bad country drops both."""
    country, _, city = value.partition(";")
    country = country.strip()
    if not _COUNTRY.fullmatch(country):
        return "", ""
    return country.lower(), token(city)


def clock(now: float, utc_offset_minutes: int = 0) -> tuple[str, str]:
    """Hour of day ("0".."23") and weekday ("mon".."sun") at ``now`` shifted by the offset."""
    local = int(now) + utc_offset_minutes * 60
    return str(local // 3600 % 24), _WEEKDAYS[(local // 86400 + 3) % 7]  # 1970-01-01 was a Thursday


@dataclass(frozen=True)
class ContextReader:
    """Reads a ``Context`` from the decide subrequest's fields, with the router's settings applied.

    ``holds_valid_cookie(cookie_header, now)`` says whether any Croupier cookie in the
    header verifies (the router passes one that checks signatures).
    """

    utc_offset_minutes: int = 0
    is_bot: Callable[[str], object] | None = None
    holds_valid_cookie: Callable[[str, float], bool] | None = None

    def read(self, *, host: str = "", uri: str = "/", user_agent: str = "", referer: str = "",
             accept_language: str = "", geo_value: str = "", cookie_header: str = "", now: float = 0.0,
             returning: bool | None = None) -> Context:
        """The context; ``returning`` when the caller already knows it. Never raises: ``EMPTY`` on any error."""
        try:
            source, medium, campaign = utm(uri)
            country, city = geo(geo_value) if geo_value else ("", "")
            hour, weekday = clock(now, self.utc_offset_minutes)
            if returning is None:
                returning = bool(cookie_header) and self.holds_valid_cookie is not None \
                    and self.holds_valid_cookie(cookie_header, now)
            return Context(
                device=device_class(user_agent, self.is_bot),
                source=source_class(referer, host, medium),
                utm_source=source, utm_medium=medium, utm_campaign=campaign,
                country=country, city=city, language=language(accept_language),
                hour=hour, weekday=weekday, returning="yes" if returning else "no",
            )
        except Exception:  # a context is a refinement: a visitor still gets a page without one
            log.debug("context extraction failed", exc_info=True)
            return EMPTY


# -- features for contextual policies ------------------------------------

# Fields with a small known vocabulary get slots of their own (no collisions where the signal
# usually is); open-vocabulary fields are hashed into the remaining slots.
_FIXED: dict[tuple[str, str], int] = {}
for _name, _values in (("device", DEVICES), ("source", SOURCES), ("returning", ("yes", "no")),
                       ("daypart", tuple(str(i) for i in range(6))), ("weekend", ("yes", "no"))):
    for _value in _values:
        _FIXED[(_name, _value)] = 1 + len(_FIXED)
FIXED_FEATURES = 1 + len(_FIXED)  # the intercept and the known-vocabulary slots
HASHED_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "country", "language")


def feature_indices(context: Context, dimensions: int) -> tuple[int, ...]:
    """The one-hot features of a context, sorted and unique: index 0 is the intercept; device,
    source, returning, daypart (six four-hour blocks) and weekend have fixed slots; the
    open-vocabulary fields are hashed into ``[FIXED_FEATURES, dimensions)`` (CRC-32 of
    ``field=value``, stable across processes; Weinberger et al. 2009, "Feature Hashing for
    Large Scale Multitask Learning")."""
    if not context.device:
        return (0,)
    out = {0}
    fixed = (("device", context.device), ("source", context.source), ("returning", context.returning),
             ("daypart", str(int(context.hour) // 4) if context.hour else ""),
             ("weekend", ("yes" if context.weekday in ("sat", "sun") else "no") if context.weekday else ""))
    for pair in fixed:
        index = _FIXED.get(pair)
        if index is not None:
            out.add(index)
    span = dimensions - FIXED_FEATURES
    if span > 0:
        for name in HASHED_FIELDS:
            value = getattr(context, name)
            if value:
                out.add(FIXED_FEATURES + zlib.crc32(f"{name}={value}".encode()) % span)
    return tuple(sorted(out))
