"""Tenants: who an API key speaks for, and the signing keys of each tenant.

Several sites or customers share one Croupier. An experiment belongs to one
tenant ('' is the default tenant); an API key acts only for its tenant.
Tokens of a tenant's experiments are signed with keys derived from the site's
keys and the tenant's name, so a token issued for tenant A never verifies for
tenant B, even when B later reuses an experiment id A had. The default tenant
signs with the configured keys themselves: its tokens and web cookies are the
ones Croupier always issued. Pure: no I/O.
"""

from __future__ import annotations

import hmac


class ApiKeys:
    """Finds the tenant of a presented API key, comparing every configured key in constant time."""

    def __init__(self, pairs: tuple[tuple[str, str], ...]) -> None:
        self.pairs = tuple((key.encode(), tenant) for key, tenant in pairs)

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def tenant(self, presented: str) -> str | None:
        given = presented.encode()
        found = None
        for key, tenant in self.pairs:  # no early exit: the time taken does not say which key nearly matched
            if hmac.compare_digest(given, key):
                found = tenant
        return found


class TenantKeys:
    """Signing keys per tenant, derived once and cached."""

    def __init__(self, keys: dict[str, bytes], current_kid: str) -> None:
        self.base = keys
        self.current_kid = current_kid
        self._derived: dict[str, dict[str, bytes]] = {"": keys}

    def keys(self, tenant: str) -> dict[str, bytes]:
        """Key id → key, for verifying a token of ``tenant``'s experiment."""
        found = self._derived.get(tenant)
        if found is None:
            label = b"croupier-tenant\x00" + tenant.encode()
            found = self._derived[tenant] = {kid: hmac.digest(key, label, "sha256")
                                             for kid, key in self.base.items()}
        return found

    def signing(self, tenant: str) -> tuple[str, bytes]:
        """The key id and key new tokens of ``tenant``'s experiments are signed with."""
        return self.current_kid, self.keys(tenant)[self.current_kid]
