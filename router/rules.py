"""The input rules every part of Croupier shares, each defined once with its message.

An id is checked by the admin API, the channels API, the beacon, the token
parser, the NGINX renderer and the variant server; they all import the rule
from here, so they cannot disagree on what is valid or on how they say it.
Each caller wraps ``rule.message`` in its own error type (``InvalidExperiment``,
a 400 answer, ``SettingsError``), prefixed with the field it checked.

Pure and standard library only: the variant server's image copies this file
without the router's dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern a whole string must match, and what to tell someone whose value does not."""

    pattern: re.Pattern[str]
    message: str  # "must be ...": follows "<field>: " in an error

    def ok(self, value: object) -> bool:
        return isinstance(value, str) and self.pattern.fullmatch(value) is not None

    def error(self, field: str) -> str:
        return f"{field}: {self.message}"


def _rule(pattern: str, message: str) -> Rule:
    return Rule(re.compile(pattern), message)


# experiments, variants, tenants and slots; also a Redis key part and an NGINX map value
ID = _rule(r"[a-z0-9][a-z0-9_-]{0,39}",
           "must be 1-40 lowercase letters, digits, '_' or '-', starting with a letter or digit")
# a factor or level name of a factorial experiment: no '.' or '_', the separators of names built
# from factor and level names (an arm id joins its level names with '_')
LEVEL = _rule(r"[a-z0-9][a-z0-9-]{0,23}",
              "must be 1-24 lowercase letters, digits or '-', starting with a letter or digit")
_LEVEL = LEVEL.pattern.pattern
# a variant as the router names it: an ID, or a factorial experiment's combination of levels,
# its 2-8 level names joined by '_' in factor order (at most 8 * 24 + 7 = 199 characters).
# Not '.': a token (router/token.py) and NGINX's pass regex split their fields on it.
ARM = _rule(rf"{ID.pattern.pattern}|{_LEVEL}(_{_LEVEL}){{1,7}}",
            "must be a variant id (1-40 lowercase letters, digits, '_' or '-', starting with a letter "
            "or digit) or 2-8 level names joined by '_'")
# a conversion goal: also a counter name in the store (``conv:<goal>``)
GOAL = _rule(r"[a-z0-9][a-z0-9_-]{0,31}",
             "must be 1-32 lowercase letters, digits, '_' or '-', starting with a letter or digit")
# where NGINX proxies a variant: a host name or address and a port, nothing NGINX would
# read as a URL, a path or a variable
UPSTREAM = _rule(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{1,5}",
                 "must be host:port (letters, digits, '.' and '-', then a port)")
# the channels API's channel (email, sms, app, banner, ...)
CHANNEL = _rule(r"[a-z0-9][a-z0-9_-]{0,31}",
                "must be 1-32 lowercase letters, digits, '_' or '-' (email, sms, app, banner, ...)")
# a customer id of the channels API: also a Redis key part, so no spaces or braces
CUSTOMER = _rule(r"[A-Za-z0-9._:@+=-]{1,128}", "must be 1-128 letters, digits or '._:@+=-'")
# a client's event id, which deduplicates a beacon or a conversion sent twice
EVENT_ID = _rule(r"[A-Za-z0-9_-]{8,64}", "must be 8-64 letters, digits, '_' or '-'")
# the prefix of assignment cookie names (the router's and NGINX's must agree)
COOKIE_PREFIX = _rule(r"[A-Za-z0-9_-]{1,32}", "must be 1-32 letters, digits, '_' or '-'")
# the key the routers and NGINX share for routing passes (router/passes.py); a plain NGINX
# string, and never echoed in an error
PASS_KEY = _rule(r"[A-Za-z0-9_-]{32,128}", "must be 32-128 letters, digits, '_' or '-'")
# the request header NGINX fills with the visitor's country, and the router reads
GEO_HEADER = _rule(r"X-Croupier-[A-Za-z0-9-]{1,40}", "must be an X-Croupier-* header name")

# Defaults the router's settings and the NGINX renderer share: a rendered configuration
# and a router started without settings agree.
DEFAULT_COOKIE_PREFIX = "croupier_"
DEFAULT_GEO_HEADER = "X-Croupier-Geo"
