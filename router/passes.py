"""Routing passes: what lets NGINX route a returning visitor without asking the router.

A pass rides in the assignment cookie after the token: ``<token>~<expires>.<tag>``, the
tag being MD5 over ``<expires>|<token>|<key>`` in unpadded base64url, which is exactly
what NGINX's secure_link module checks (``secure_link_md5``). While the pass is valid,
NGINX sends the visitor to the variant their token names, through the allowlist, with no
subrequest at all; once it expired (or is absent, or wrong) NGINX asks the router, which
verifies the token and answers with the same token and a fresh pass. One cookie, so
NGINX reads the Cookie header once, and the browser renews both together.

Why MD5 is enough here: it is all secure_link offers, and the pass only routes. It binds
the visitor's own token string (itself HMAC-SHA256 signed by the router), so it proves
nothing about any other assignment; the key comes last, so length extension does not
apply, and a collision attack would need the router to sign a message the attacker
chose. Counting never trusts a pass: the beacon verifies the token. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib

SEPARATOR = "~"  # never in a token (base64url and dots)


def token_of(cookie_value: str) -> str:
    """The assignment token in an assignment cookie, with or without a pass."""
    return cookie_value.split(SEPARATOR, 1)[0]


def with_pass(token: str, expires: int, key: str) -> str:
    """The cookie value carrying ``token`` and a pass valid until ``expires`` (Unix seconds)."""
    digest = hashlib.md5(f"{expires}|{token}|{key}".encode(), usedforsecurity=False).digest()
    return f"{token}{SEPARATOR}{expires}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"
