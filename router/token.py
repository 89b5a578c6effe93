"""Signed assignment tokens: what a visitor's cookie proves.

A token is ``v1.<kid>.<visitor>.<experiment>.<variant>.<issued>.<mac>``, the MAC
being HMAC-SHA256 (truncated to 128 bits) over every field before it. It names
the key that signed it, so keys can be rotated without logging everyone out.

An assignment made in a segment, or by a contextual policy, is a v2 token
``v2.<kid>.<visitor>.<experiment>.<variant>.<issued>.<segment>.<features>.<mac>``:
the segment id and the hashed feature indices (one byte each), both base64url,
so the beacon credits the segment and the features the visitor was assigned
with, without a lookup. Both versions verify; v1 is still written when there is
neither, so plain experiments' cookies are unchanged.
Pure: no I/O, no clock of its own (callers pass ``now``).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from dataclasses import dataclass

from croupier.router.rules import ARM, ID

VERSION = "v1"
VERSION_2 = "v2"
_SEGMENT = re.compile(r"[a-z0-9._=,-]{1,200}")
_VISITOR = re.compile(r"[A-Za-z0-9_-]{16,32}")
_MAC_BYTES = 16


class TokenError(ValueError):
    """Why a token was refused; ``reason`` is a short label for metrics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Assignment:
    visitor: str
    experiment: str
    variant: str
    issued: int
    segment: str = ""  # the segment the visitor was assigned in ('' none)
    features: tuple[int, ...] = ()  # hashed context features a contextual policy used (each < 256)


class _RandomPool:
    """Random bytes drawn from the OS in blocks: one syscall per 4,096 visitors, not one each."""

    def __init__(self, block: int = 65536) -> None:
        self.block = block
        self.buffer = b""
        self.offset = 0

    def take(self, n: int) -> bytes:
        if self.offset + n > len(self.buffer):
            self.buffer, self.offset = secrets.token_bytes(self.block), 0
        chunk = self.buffer[self.offset:self.offset + n]
        self.offset += n
        return chunk


_pool = _RandomPool()


def new_visitor_id() -> str:
    """128 random bits, URL-safe (22 characters)."""
    return base64.urlsafe_b64encode(_pool.take(16)).rstrip(b"=").decode()


def hmac_tag(key: bytes, payload: str) -> str:
    """HMAC-SHA256 of ``payload`` truncated to 128 bits, base64url without padding; shared by every signed value."""
    digest = hmac.digest(key, payload.encode(), "sha256")[:_MAC_BYTES]  # one-shot: no HMAC object per call
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(assignment: Assignment, kid: str, key: bytes) -> str:
    fields = [VERSION, kid, assignment.visitor, assignment.experiment, assignment.variant, str(assignment.issued)]
    if assignment.segment or assignment.features:
        fields[0] = VERSION_2
        fields += [_b64(assignment.segment.encode()), _b64(bytes(assignment.features))]
    payload = ".".join(fields)
    return f"{payload}.{hmac_tag(key, payload)}"


def verify(token: str, keys: dict[str, bytes], *, now: int, max_age: int,
           experiment: str | None = None) -> Assignment:
    """The assignment a token carries, or ``TokenError`` saying why not."""
    parts = token.split(".")
    if len(parts) == 7 and parts[0] == VERSION:
        _, kid, visitor, exp, variant, issued_s, mac = parts
        extra = None
    elif len(parts) == 9 and parts[0] == VERSION_2:
        _, kid, visitor, exp, variant, issued_s, *extra, mac = parts
    else:
        raise TokenError("malformed")
    key = keys.get(kid)
    if key is None:
        raise TokenError("unknown_key")
    if not hmac.compare_digest(hmac_tag(key, token[: -len(mac) - 1]), mac):
        raise TokenError("bad_signature")
    if not (_VISITOR.fullmatch(visitor) and ID.ok(exp) and ARM.ok(variant) and issued_s.isdigit()):
        raise TokenError("malformed")
    issued = int(issued_s)
    if issued > now + 300:  # small allowance for clock skew between routers
        raise TokenError("from_future")
    if now - issued > max_age:
        raise TokenError("expired")
    if experiment is not None and exp != experiment:
        raise TokenError("wrong_experiment")
    if extra is None:
        return Assignment(visitor, exp, variant, issued)
    try:
        segment, features = _unb64(extra[0]).decode("ascii"), tuple(_unb64(extra[1]))
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise TokenError("malformed") from None
    if segment and not _SEGMENT.fullmatch(segment):
        raise TokenError("malformed")
    return Assignment(visitor, exp, variant, issued, segment, features)
