"""Per-client token buckets: one address flooding the beacon cannot crowd out the others.

Each client key holds a bucket of ``burst`` tokens refilled at ``rate`` per
second; an event takes one token. Pure: no I/O, and the clock is passed in.

Memory stays bounded: a bucket idle long enough to be full again is the same as
no bucket, so it is dropped; past ``max_clients`` the least recently seen bucket
is dropped too (that client starts again with a full burst, which only makes the
limit more lenient, never stricter).
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict


class TokenBuckets:
    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        if not rate > 0:
            raise ValueError(f"rate: must be positive, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst: must be at least 1, got {burst!r}")
        if max_clients < 1:
            raise ValueError(f"max_clients: must be at least 1, got {max_clients!r}")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_clients = max_clients
        self.refill_seconds = self.burst / self.rate  # an idle bucket is full again after this
        # key -> (tokens, last update); least recently seen first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> float:
        """Take one token for ``key``: 0.0 when allowed, else the seconds until a token is there."""
        self._evict_idle(now)
        held = self._buckets.pop(key, None)
        if held is None:
            tokens = self.burst
        else:
            tokens, last = held
            tokens = min(self.burst, tokens + max(0.0, now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def _evict_idle(self, now: float) -> None:
        # the front is the least recently seen: stop at the first bucket still refilling
        buckets = self._buckets
        while buckets:
            key, (_, last) = next(iter(buckets.items()))
            if now - last < self.refill_seconds:
                break
            del buckets[key]


def retry_after(wait: float) -> str:
    """A Retry-After value (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(wait)))


def client_key(real_ip: str | None, peer: str | None) -> str:
    """The address a client is limited by.

    ``X-Real-IP`` is NGINX's ``$remote_addr``, which NGINX sets on every request it
    forwards (overwriting whatever the client sent); a client-sent X-Forwarded-For
    is never read. Without a valid X-Real-IP (the router reached directly) the socket
    peer is used. An IPv6 client usually holds a whole /64, so that is one key.
    """
    for candidate in (real_ip, peer):
        if not candidate:
            continue
        try:
            address = ipaddress.ip_address(candidate.strip())
        except ValueError:
            continue
        if address.version == 6:
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)
    return "unknown"
